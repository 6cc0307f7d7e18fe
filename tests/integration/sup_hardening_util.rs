//! Helpers for the hardening tests (issue 10): a supervisor started from a
//! caller-made `Command` (environment, cwd, launcher, stdout), the admin CLI
//! with a deadline, and /proc readings (memory, descriptors, environment).

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{wait_for, Proc, BIN};
use crate::sup_util::{write_config, Sup, SOON};

/// Writes the config into `dir` and starts `selfheal --config` through
/// `prepare(cmd)` (which may set the environment, cwd, or wrap it), as a [`Sup`].
pub fn start_cmd(
    dir: tempfile::TempDir,
    supervisor: &str,
    programs: &str,
    prepare: impl FnOnce(&mut Command),
) -> Sup {
    let config = write_config(dir.path(), supervisor, programs);
    let socket = dir.path().join("admin.sock");
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&config);
    prepare(&mut cmd);
    let proc = Proc::spawn("selfheal", cmd);
    let sup = Sup {
        dir,
        proc,
        socket,
        config,
    };
    sup.proc.wait_output("supervising", SOON);
    sup
}

/// A process with caller-chosen stdio, killed (its group) on drop.
pub struct Bare {
    pub child: Child,
    _runtime: Option<tempfile::TempDir>,
}

impl Bare {
    /// Spawns `cmd` in its own process group; stdin is /dev/null.
    pub fn spawn(mut cmd: Command) -> Bare {
        use std::os::unix::process::CommandExt;
        let runtime = crate::harness::own_runtime_dir(&mut cmd);
        cmd.stdin(Stdio::null()).process_group(0);
        Bare {
            child: cmd.spawn().expect("spawn the supervisor"),
            _runtime: runtime,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for the exit; `None` if it did not exit within `timeout`.
    pub fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on the process group we created.
            unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// `selfheal ARGS --socket SOCK` with a deadline: `Some((code, output))`, or
/// `None` when it did not finish within `timeout` (then it is killed).
pub fn cli_within(socket: &Path, args: &[&str], timeout: Duration) -> Option<(i32, String)> {
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--socket")
        .arg(socket)
        .stdout(writer.try_clone().expect("dup"))
        .stderr(writer);
    let mut child = Bare::spawn(cmd);
    let status = child.exited_within(timeout)?;
    drop(child);
    let mut text = String::new();
    let mut reader = reader;
    let _ = reader.read_to_string(&mut text);
    Some((status.code().unwrap_or(-1), text))
}

/// The status entry of program `name` from `selfheal status --json`, or `None`
/// when the CLI did not finish within `timeout`.
pub fn status_of(socket: &Path, name: &str, timeout: Duration) -> Option<serde_json::Value> {
    let (code, text) = cli_within(socket, &["status", "--json"], timeout)?;
    assert!(matches!(code, 0 | 3), "status --json failed: {text}");
    let status: serde_json::Value = serde_json::from_str(&text).ok()?;
    status["programs"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// The `pid` of program `name` from `selfheal status --json`, within a deadline.
pub fn status_pid(socket: &Path, name: &str, timeout: Duration) -> Option<i32> {
    status_of(socket, name, timeout)?["pid"]
        .as_i64()
        .map(|p| p as i32)
}

/// A `kB` field of /proc/PID/status (e.g. `VmHWM`), in kB.
pub fn status_kb(pid: i32, field: &str) -> u64 {
    crate::sup_util::proc_status(pid, field)
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} for pid {pid}"))
}

/// `(fd number, link target)` of every descriptor of `pid`.
pub fn fds_of(pid: i32) -> Vec<(i32, PathBuf)> {
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            Some((fd, std::fs::read_link(e.path()).ok()?))
        })
        .collect()
}

/// The environment of `pid`, as raw `KEY=VALUE` entries.
pub fn environ_of(pid: i32) -> Vec<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The first live child of `parent` (a namespaced supervisor's host pid).
pub fn wait_child(parent: i32, what: &str) -> i32 {
    wait_for(what, SOON, || {
        crate::sup_util::children_of(parent).first().copied()
    })
}
