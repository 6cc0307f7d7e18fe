//! Thin entry point: parse, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use selfheal::admin::client;
use selfheal::admin::wait::Verb;
use selfheal::cli::{Cli, Command};
use selfheal::exit::Exit;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `selfheal -- CMD` reads a config only when `--config` is on the command
    // line: the image sets SELFHEAL_CONFIG for its demo stack, and
    // `docker run IMAGE -- CMD` must run CMD alone, as tini would.
    let run_matches = match matches.subcommand() {
        Some(("run", sub)) => sub,
        _ => &matches,
    };
    let from_env = run_matches.value_source("config") == Some(ValueSource::EnvVariable);
    let run = match &mut cli.command {
        Some(Command::Run(args)) => Some(args),
        None => Some(&mut cli.run),
        Some(_) => None,
    };
    if let Some(args) = run.filter(|a| from_env && !a.main.command.is_empty()) {
        args.config.config = None;
    }
    let result = match cli.command {
        None => selfheal::supervisor::main(cli.run),
        Some(Command::Run(args)) => selfheal::supervisor::main(args),
        Some(Command::Check(args)) => selfheal::config::check_main(&args),
        Some(Command::Status(args)) => Ok(client::status_main(&args)),
        Some(Command::Start(args)) => Ok(client::command_main(Verb::Start, &args)),
        Some(Command::Stop(args)) => Ok(client::command_main(Verb::Stop, &args)),
        Some(Command::Restart(args)) => Ok(client::command_main(Verb::Restart, &args)),
        Some(Command::Health(args)) => Ok(client::health_main(&args)),
        Some(Command::Logs(args)) => Ok(client::logs_main(&args)),
        Some(Command::Events(args)) => Ok(client::events_main(&args)),
        Some(Command::Reload(args)) => Ok(client::reload_main(&args)),
        Some(Command::Signal(args)) => Ok(client::signal_main(&args)),
        Some(Command::Scale(args)) => Ok(client::scale_main(&args)),
        Some(Command::Completions(args)) => selfheal::cli::completions_main(&args),
        Some(Command::Man(args)) => selfheal::cli::man_main(&args),
        Some(Command::App(args)) => selfheal::app::main(args),
        Some(Command::Proxy(args)) => selfheal::proxy::main(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("selfheal: {err:#}");
            Exit::Internal.into()
        }
    }
}
