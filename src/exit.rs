//! The supervisor's exit codes: one table, documented in the README.

use std::process::ExitCode;

/// Why the supervisor ended (the client commands have [`CliExit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Clean shutdown after SIGTERM/SIGINT/SIGQUIT (also `check` that found no error).
    Clean,
    /// Runtime failure of the supervisor itself (a socket it could not bind).
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

/// Exit codes of the client commands (`status`, `start`, `stop`, `restart`,
/// `health`, `logs`, `events`), a table of their own in the README, distinct
/// from the supervisor's [`Exit`]. Errors are printed on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliExit {
    /// The command did what it was asked (`health`: the stack is ready).
    Ok,
    /// The action failed: the program failed to start or stop, the wait timed
    /// out, the supervisor refused (e.g. it is shutting down); `health`: not ready.
    Failed,
    /// Usage or config error: a bad command line (clap's own code), an
    /// unreadable config, a program name the supervisor does not know.
    Usage,
    /// `status`: not every program is running and ready (or `exited`, done by
    /// its policy), as `supervisorctl status` exits 3; the table is still printed.
    NotAllRunning,
    /// The supervisor cannot be reached: no socket, connection refused,
    /// permission denied, or no answer in time.
    Unreachable,
}

impl CliExit {
    pub const fn code(self) -> u8 {
        match self {
            CliExit::Ok => 0,
            CliExit::Failed => 1,
            CliExit::Usage => 2,
            CliExit::NotAllRunning => 3,
            CliExit::Unreachable => 4,
        }
    }
}

impl From<CliExit> for ExitCode {
    fn from(exit: CliExit) -> Self {
        ExitCode::from(exit.code())
    }
}
