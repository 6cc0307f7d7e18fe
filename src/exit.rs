//! The supervisor's exit codes: one table, documented in the README.

use std::process::ExitCode;

/// Why the supervisor (or a CLI command) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Clean shutdown after SIGTERM/SIGINT/SIGQUIT, or a CLI command that succeeded.
    Clean,
    /// Runtime failure of the supervisor itself (a socket it could not bind, an
    /// admin API it could not reach from the CLI).
    Internal,
    /// The configuration (or the command line) is invalid.
    Config,
    /// A program exceeded its restart limit and `on_give_up = "exit"`: the stack is
    /// stopped so that Docker/Kubernetes restart the container.
    GaveUp,
    /// A stop signal repeated after the grace forced the shutdown: children were SIGKILLed.
    Forced,
    /// The main program's end (`selfheal -- CMD`, or `main = true`): its exit
    /// code, 128 + n if signal n killed it, 126/127 if it could not be executed.
    Program(u8),
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::Internal => 1,
            Exit::Config => 2,
            Exit::GaveUp => 3,
            Exit::Forced => 4,
            Exit::Program(code) => code,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
