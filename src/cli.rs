//! The command-line surface. `main.rs` parses [`Cli`] and dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{app::AppArgs, proxy::ProxyArgs};

/// selfheal: supervise a stack of programs as PID 1 and bring them back.
///
/// With no subcommand it runs the supervisor (same as `selfheal run`).
#[derive(Debug, Parser)]
#[command(name = "selfheal", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the supervisor (the default when no subcommand is given).
    Run(RunArgs),
    /// Validate a config (and that its programs can start on this host) and print the
    /// resolved start order; exit 0, or 2 with every error (and warning, with --strict).
    Check(CheckArgs),
    /// Show every program: state, pid, uptime, restarts, last exit, health.
    Status(StatusArgs),
    /// Start a stopped or failed program.
    Start(ProgramArg),
    /// Stop a program (it stays stopped until started).
    Stop(ProgramArg),
    /// Restart a program now.
    Restart(ProgramArg),
    /// Exit 0 when every program is ready (or, with --live, when the supervisor answers).
    Health(HealthArgs),
    /// The demo web app (counts visits in Redis exactly once).
    App(AppArgs),
    /// The built-in reverse proxy (holds and retries through upstream crashes).
    Proxy(ProxyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Config file [default: ./supervisor.toml, then /etc/selfheal/supervisor.toml].
    #[arg(short, long, env = "SELFHEAL_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Treat warnings (a binary, interpreter, workdir, user or group missing on
    /// this host) as errors: exit 2.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Log format of the supervisor's own lines and of the programs' output.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "SELFHEAL_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// How the CLI finds the running supervisor's admin socket.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// Admin socket path [default: the `admin_socket` of the config].
    #[arg(long, env = "SELFHEAL_ADMIN_SOCKET")]
    pub socket: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// Only check that the supervisor itself is alive (liveness), not readiness.
    #[arg(long)]
    pub live: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProgramArg {
    /// Program name, as in `[programs.NAME]`.
    pub name: String,
    #[command(flatten)]
    pub socket: SocketArg,
}

impl ConfigArg {
    /// The explicit file, else `./supervisor.toml` when it exists, else the system one.
    pub fn resolve(&self) -> PathBuf {
        if let Some(path) = &self.config {
            return path.clone();
        }
        let local = PathBuf::from("supervisor.toml");
        if local.exists() {
            local
        } else {
            PathBuf::from("/etc/selfheal/supervisor.toml")
        }
    }
}
