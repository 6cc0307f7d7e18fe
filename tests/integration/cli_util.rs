//! Helpers for the CLI tests: run `selfheal ARGS` and keep stdout, stderr and
//! the exit code apart (the CLI's contract is about all three).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use crate::harness::BIN;
use crate::sup_util::Sup;

/// What one CLI run left.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to its end.
pub fn run(mut cmd: Command) -> Out {
    let out = cmd.output().expect("run the selfheal CLI");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `selfheal ARGS` with no socket-finding help from the environment.
pub fn bare(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SELFHEAL_ADMIN_SOCKET")
        .env_remove("SELFHEAL_CONFIG");
    cmd
}

/// `selfheal ARGS --socket SOCKET`.
pub fn at(socket: &Path, args: &[&str]) -> Out {
    let mut cmd = bare(args);
    cmd.arg("--socket").arg(socket);
    run(cmd)
}

/// `selfheal ARGS` against `sup`'s socket.
pub fn cli(sup: &Sup, args: &[&str]) -> Out {
    at(&sup.socket, args)
}
