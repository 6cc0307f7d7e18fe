//! Helpers for the `selfheal -- CMD` tests (issue 12, the drop-in init): the
//! supervisor run as a plain process or as PID 1 of a new pid namespace
//! (`unshare --pid --fork --mount-proc`), with stdin, stdout and stderr kept
//! apart (they are the main program's own, byte for byte), a signal recorder
//! fixture, and the host pid of a namespaced process.
//!
//! Every behaviour is tested in both modes: [`both_modes!`] turns a function
//! `fn name(mode: Mode)` into the tests `name::plain` and `name::as_pid_1`.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{wait_for, BIN};
use crate::sup_util::{children_of, processes, python, script, SOON};

/// How the supervisor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A plain process (a child subreaper).
    Plain,
    /// PID 1 of a fresh pid namespace, as in a container.
    Pid1,
}

/// Generates `mod NAME { plain, as_pid_1 }` tests calling `NAME(Mode)`.
macro_rules! both_modes {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn plain() {
                super::$name($crate::init_util::Mode::Plain)
            }
            #[test]
            fn as_pid_1() {
                super::$name($crate::init_util::Mode::Pid1)
            }
        }
    )+};
}
pub(crate) use both_modes;

/// `selfheal ARGS…` in `mode` (not yet spawned).
pub fn command<S: AsRef<OsStr>>(mode: Mode, args: &[S]) -> Command {
    match mode {
        Mode::Plain => {
            let mut cmd = Command::new(BIN);
            cmd.args(args);
            cmd
        }
        Mode::Pid1 => {
            assert!(
                nix::unistd::geteuid().is_root(),
                "the PID 1 tests need root (unshare --pid)"
            );
            let mut cmd = Command::new("unshare");
            cmd.args(["--pid", "--fork", "--mount-proc", BIN])
                .args(args);
            cmd
        }
    }
}

/// A running `selfheal` (or its `unshare` wrapper) with stdout and stderr
/// collected apart; its process group is SIGKILLed on drop (in PID 1 mode
/// that ends the whole namespace), and both streams are printed on failure.
pub struct Init {
    pub child: Child,
    pub mode: Mode,
    pub started: Instant,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
    _runtime: Option<tempfile::TempDir>,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// From spawn to exit.
    pub elapsed: Duration,
}

impl Finished {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl Init {
    /// Spawns `selfheal ARGS` in `mode`; `stdin` bytes are written by a thread
    /// and then closed (`None`: stdin is /dev/null).
    pub fn spawn<S: AsRef<OsStr>>(mode: Mode, args: &[S], stdin: Option<Vec<u8>>) -> Init {
        Self::spawn_cmd(mode, command(mode, args), stdin)
    }

    /// As [`Init::spawn`], for a caller-prepared command (environment, launcher).
    pub fn spawn_cmd(mode: Mode, mut cmd: Command, stdin: Option<Vec<u8>>) -> Init {
        use std::os::unix::process::CommandExt;
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let runtime = crate::harness::own_runtime_dir(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn selfheal");
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout pipe"), stdout.clone()),
            collect(child.stderr.take().expect("stderr pipe"), stderr.clone()),
        ];
        Init {
            child,
            mode,
            started,
            stdout,
            stderr,
            readers,
            status: None,
            _runtime: runtime,
        }
    }

    /// The host pid of the supervisor itself (in PID 1 mode, unshare's child).
    pub fn supervisor_pid(&self) -> i32 {
        let pid = self.child.id() as i32;
        match self.mode {
            Mode::Plain => pid,
            Mode::Pid1 => wait_for("the namespaced supervisor", SOON, || {
                children_of(pid).first().copied()
            }),
        }
    }

    /// Sends `sig` to the supervisor (only to it, never to its group).
    pub fn signal(&self, sig: i32) {
        crate::sup_util::kill(self.supervisor_pid(), sig);
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until stderr contains `needle` `n` times.
    pub fn wait_stderr_count(&self, needle: &str, n: usize, timeout: Duration) {
        wait_for(
            &format!("{n}× {needle:?} on the supervisor's stderr"),
            timeout,
            || (self.stderr_text().matches(needle).count() >= n).then_some(()),
        );
    }

    /// Waits for the exit within `timeout` (panics otherwise); returns the exit
    /// code and everything printed.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let status = wait_for("selfheal to exit", timeout, || {
            self.child.try_wait().ok().flatten()
        });
        let elapsed = self.started.elapsed();
        self.status = Some(status);
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Finished {
            code: status.code(),
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: std::mem::take(&mut *self.stderr.lock().unwrap()),
            elapsed,
        }
    }

    /// Waits for the exit; `None` if still running after `timeout` (no panic).
    pub fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().ok().flatten() {
                self.status = Some(status);
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Drains `from` into `into` on a thread.
fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    })
}

impl Drop for Init {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on the process group we created for this child.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let out = String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned();
            eprintln!(
                "----- selfheal ({:?}) stdout -----\n{out}\n----- stderr -----\n{}\n-----",
                self.mode,
                self.stderr_text()
            );
        }
    }
}

/// Runs `selfheal ARGS` in `mode` to the end (within [`SOON`]), `stdin` piped in.
pub fn run<S: AsRef<OsStr>>(mode: Mode, args: &[S], stdin: Option<Vec<u8>>) -> Finished {
    Init::spawn(mode, args, stdin).finish(SOON)
}

/// Writes the signal recorder into `dir` (as `recorder.py`) and returns its
/// path. Run as `recorder.py DIR`, it handles each signal of `handled` by
/// appending its name (`TERM`, `USR1`…) as a line to `DIR/got`, writes its pid
/// to `DIR/ready` once every handler is in place, and exits with `code` once it
/// has received every signal of `exit_after` (or on SIGUSR2 when that is empty
/// and USR2 is not handled).
pub fn recorder(dir: &Path, handled: &[&str], exit_after: &[&str], code: i32) -> PathBuf {
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let body = format!(
        r#"#!{python}
import os, signal, sys
d = sys.argv[1]
handled = [{handled}]
wanted = set([{wanted}])
got = set()
def on(sig, frame):
    name = signal.Signals(sig).name[3:]
    with open(os.path.join(d, "got"), "a") as f:
        f.write(name + "\n")
    got.add(name)
for name in handled:
    signal.signal(getattr(signal, "SIG" + name), on)
with open(os.path.join(d, "ready.tmp"), "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))
while not wanted <= got:
    signal.pause()
sys.exit({code})
"#,
        python = python(),
        handled = list(handled),
        wanted = list(exit_after),
    );
    script(dir, "recorder.py", &body)
}

/// The signal names recorded so far by [`recorder`] in `dir`.
pub fn recorded(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("got"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host pid of the process that is `ns_pid` in the pid namespace of
/// `supervisor` (a host pid): the same number for a plain supervisor.
pub fn host_pid(mode: Mode, supervisor: i32, ns_pid: i32) -> i32 {
    if mode == Mode::Plain {
        return ns_pid;
    }
    let ns = std::fs::read_link(format!("/proc/{supervisor}/ns/pid")).expect("pid ns link");
    wait_for(
        &format!("the host pid of namespaced pid {ns_pid}"),
        SOON,
        || {
            processes().into_iter().map(|(p, _, _)| p).find(|p| {
                std::fs::read_link(format!("/proc/{p}/ns/pid"))
                    .ok()
                    .as_ref()
                    == Some(&ns)
                    && crate::sup_util::proc_status(*p, "NSpid")
                        .and_then(|v| v.split_whitespace().last()?.parse::<i32>().ok())
                        == Some(ns_pid)
            })
        },
    )
}

/// `sh -c 'exit N'` style argv after `--`.
pub fn sh(script: &str) -> Vec<String> {
    ["--", "/bin/sh", "-c", script]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
