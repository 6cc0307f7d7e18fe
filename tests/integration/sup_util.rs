//! Helpers for the supervisor tests: a supervisor started on a config written
//! into its own temp dir (admin socket inside it), fixture scripts, the admin
//! CLI, and /proc inspection (children, zombies, liveness).

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{selfheal, temp_dir, wait_for, Proc, BIN};

/// Generous ceiling for "this should happen soon" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(15);

/// The system python (not a pyenv shim: shims are slow and root-only).
pub fn python() -> &'static str {
    let p = "/usr/bin/python3";
    assert!(
        Path::new(p).exists(),
        "{p} is missing: the supervisor fixtures need it (apt-get install python3)"
    );
    p
}

/// A supervisor under test with its temp dir.
pub struct Sup {
    pub dir: tempfile::TempDir,
    pub proc: Proc,
    pub socket: PathBuf,
    pub config: PathBuf,
}

/// Writes a config into a fresh temp dir and starts `selfheal --config` on it.
///
/// `@DIR@` in `programs` and `supervisor` is replaced by the temp dir path;
/// `supervisor` holds extra `[supervisor]` lines (the admin socket is added).
pub fn start(supervisor: &str, programs: &str) -> Sup {
    let dir = temp_dir();
    start_in(dir, supervisor, programs)
}

/// As [`start`], in a dir prepared by the caller (fixtures already written).
pub fn start_in(dir: tempfile::TempDir, supervisor: &str, programs: &str) -> Sup {
    let config = write_config(dir.path(), supervisor, programs);
    let socket = dir.path().join("admin.sock");
    let proc = selfheal("selfheal", &["--config", config.to_str().unwrap()]);
    let sup = Sup {
        dir,
        proc,
        socket,
        config,
    };
    sup.proc.wait_output("supervising", SOON);
    sup
}

/// Runs `selfheal ARGS --socket SOCKET`, returns (exit code, stdout+stderr).
pub fn cli_at(socket: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("run selfheal CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Writes `config.toml` into `dir` (see [`start`] for the substitutions).
pub fn write_config(dir: &Path, supervisor: &str, programs: &str) -> PathBuf {
    let d = dir.to_str().unwrap();
    let text = format!(
        "[supervisor]\nadmin_socket = \"{d}/admin.sock\"\n{}\n\n{}\n",
        supervisor.replace("@DIR@", d),
        programs.replace("@DIR@", d)
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Writes an executable script `name` into `dir` and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

impl Sup {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir_str(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }

    pub fn output(&self) -> String {
        self.proc.output()
    }

    /// How many times `needle` was printed so far.
    pub fn count(&self, needle: &str) -> usize {
        self.output().matches(needle).count()
    }

    /// Waits until `needle` was printed at least `n` times.
    pub fn wait_count(&self, needle: &str, n: usize, timeout: Duration) {
        wait_for(
            &format!("{n}× {needle:?} in the supervisor output"),
            timeout,
            || (self.count(needle) >= n).then_some(()),
        );
    }

    /// Runs `selfheal ARGS --socket SOCK`, returns (exit code, stdout+stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        cli_at(&self.socket, args)
    }

    /// `selfheal status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let (code, text) = self.cli(&["status", "--json"]);
        // 3: not every program is running and ready; the JSON is printed all the same.
        assert!(matches!(code, 0 | 3), "status --json failed: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json: {e}: {text}"))
    }

    /// The status entry of program `name`.
    pub fn program(&self, name: &str) -> serde_json::Value {
        let status = self.status();
        status["programs"]
            .as_array()
            .expect("programs array")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no program {name} in {status}"))
            .clone()
    }

    /// The pid of program `name` once it has one.
    pub fn wait_pid(&self, name: &str) -> i32 {
        wait_for(&format!("{name} to have a pid"), SOON, || {
            self.program(name)["pid"].as_i64().map(|p| p as i32)
        })
    }

    /// The pid of the first start of `name`, read from the event lines (for
    /// when the supervisor may be gone before the admin API can be asked).
    pub fn wait_started_pid(&self, name: &str) -> i32 {
        let needle = format!("selfheal | {name} started (pid ");
        wait_for(&format!("{name} to start"), SOON, || {
            let out = self.output();
            let (_, rest) = out.split_once(&needle)?;
            rest.split(')').next()?.parse().ok()
        })
    }

    /// Waits until `name` runs with a pid different from `old`.
    pub fn wait_new_pid(&self, name: &str, old: i32, timeout: Duration) -> i32 {
        wait_for(
            &format!("{name} to run with a pid other than {old}"),
            timeout,
            || {
                self.program(name)["pid"]
                    .as_i64()
                    .map(|p| p as i32)
                    .filter(|p| *p != old)
            },
        )
    }

    /// Waits until `name` is in `state`.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) {
        wait_for(&format!("{name} to be {state}"), timeout, || {
            (self.program(name)["state"] == state).then_some(())
        })
    }
}

/// Reads a file, waiting until it exists and is non-empty.
pub fn wait_file(path: &Path, timeout: Duration) -> String {
    wait_for(
        &format!("{} to be written", path.display()),
        timeout,
        || {
            std::fs::read_to_string(path)
                .ok()
                .filter(|s| s.ends_with('\n'))
        },
    )
}

/// `(pid, state, ppid)` of every process, from /proc/*/stat.
pub fn processes() -> Vec<(i32, char, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        panic!("cannot read /proc");
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(") ")?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, state, ppid))
        })
        .collect()
}

/// Zombies whose parent is `parent`.
pub fn zombies_of(parent: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, state, ppid)| *state == 'Z' && *ppid == parent)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Live (non-zombie) children of `parent`.
pub fn children_of(parent: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, state, ppid)| *state != 'Z' && *ppid == parent)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
        .is_some_and(|state| state != 'Z')
}

/// A field of /proc/PID/status (e.g. "SigBlk").
pub fn proc_status(pid: i32, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// The numbers of the `next start in …ms` parts of the event lines of `name`.
pub fn next_start_delays(output: &str, name: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.starts_with(&format!("selfheal | {name} ")))
        .filter_map(|l| l.split_once("next start in ").map(|(_, d)| d.to_string()))
        .collect()
}

/// Sends `sig` to `pid`.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2); no memory involved.
    unsafe { libc::kill(pid, sig) };
}
