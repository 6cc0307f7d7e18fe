//! Thin entry point: parse, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use selfheal::cli::{Cli, Command};
use selfheal::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => selfheal::supervisor::main(cli.run),
        Some(Command::Run(args)) => selfheal::supervisor::main(args),
        Some(Command::Check(args)) => selfheal::config::check_main(&args),
        Some(Command::Status(args)) => selfheal::admin::client::status_main(&args),
        Some(Command::Start(args)) => selfheal::admin::client::command_main("start", &args),
        Some(Command::Stop(args)) => selfheal::admin::client::command_main("stop", &args),
        Some(Command::Restart(args)) => selfheal::admin::client::command_main("restart", &args),
        Some(Command::Health(args)) => selfheal::admin::client::health_main(&args),
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
