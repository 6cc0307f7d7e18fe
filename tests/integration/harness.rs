//! Shared test harness: temp dirs, free ports, deadlines, a tiny raw HTTP/1.1
//! client (raw so that malformed requests can be sent on purpose), a real
//! `redis-server`, and the real `selfheal` binary run with a config, killed on
//! drop, its log printed when a test fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::common::{read_response, wait_for, Response};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_selfheal");

/// A port that was free a moment ago (bind :0, read, close).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Sends raw bytes on a fresh connection and reads one response (the server is
/// expected to close or to send Content-Length/chunked). `None` on any I/O error.
pub fn raw_request(addr: &str, request: &[u8], timeout: Duration) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    stream.write_all(request).ok()?;
    read_response(&mut stream)
}

/// `GET path` with optional extra headers, `Connection: close`.
pub fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw_request(addr, req.as_bytes(), Duration::from_secs(10))
}

/// A fresh temporary directory, kept on disk (and named) when the test fails.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("selfheal-test-")
        .tempdir()
        .expect("create temp dir")
}

/// A process whose combined output is collected in memory; killed (its whole
/// process group) on drop; the output is printed if the test is panicking.
pub struct Proc {
    pub child: Child,
    pub label: String,
    output: Arc<Mutex<Vec<u8>>>,
    _runtime: Option<tempfile::TempDir>,
}

/// Gives `cmd` a `SELFHEAL_RUNTIME_DIR` of its own (unless the caller set one),
/// so that a supervisor under test advertises its admin socket where no other
/// test (nor the host's `selfheal status`) looks. Keep the guard while it runs.
pub fn own_runtime_dir(cmd: &mut Command) -> Option<tempfile::TempDir> {
    if cmd.get_envs().any(|(k, _)| k == "SELFHEAL_RUNTIME_DIR") {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("selfheal-rt-")
        .tempdir()
        .expect("create a runtime dir");
    cmd.env("SELFHEAL_RUNTIME_DIR", dir.path());
    Some(dir)
}

impl Proc {
    /// Spawns `cmd` in its own process group with stdout+stderr captured.
    pub fn spawn(label: &str, mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt;
        let runtime = own_runtime_dir(&mut cmd);
        let (reader, writer) = std::io::pipe().expect("pipe");
        cmd.stdin(Stdio::null())
            .stdout(writer.try_clone().expect("dup pipe"))
            .stderr(writer)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        drop(cmd); // closes our copies of the write end
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut reader = reader;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Proc {
            child,
            label: label.to_string(),
            output,
            _runtime: runtime,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output contains `needle`.
    pub fn wait_output(&self, needle: &str, timeout: Duration) {
        wait_for(
            &format!("{} to print {needle:?}", self.label),
            timeout,
            || self.output().contains(needle).then_some(()),
        );
    }

    /// Sends a signal to the process (not its group).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned; no memory is involved.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the process to exit and returns its exit code (None if signalled).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let label = self.label.clone();
        let status = wait_for(&format!("{label} to exit"), timeout, || {
            self.child.try_wait().ok().flatten()
        });
        status.code()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on the process group we created for this child.
            unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- output of {} -----\n{}\n-----",
                self.label,
                self.output()
            );
        }
    }
}

/// A real `redis-server` on a free loopback port, data in `dir`.
pub struct Redis {
    pub port: u16,
    pub proc: Proc,
}

impl Redis {
    pub fn start(dir: &Path) -> Redis {
        Self::start_on(dir, free_port())
    }

    pub fn start_on(dir: &Path, port: u16) -> Redis {
        let mut cmd = Command::new(redis_server());
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--dir"])
        .arg(dir);
        let proc = Proc::spawn("redis-server", cmd);
        let addr = format!("127.0.0.1:{port}");
        wait_for("redis to answer PING", Duration::from_secs(10), || {
            redis_cmd(&addr, "PING").filter(|r| r.contains("PONG"))
        });
        Redis { port, proc }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// The `redis-server` binary; panics loudly when it is missing (never skips).
pub fn redis_server() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join("redis-server");
        if p.exists() {
            return p;
        }
    }
    panic!("redis-server is not installed: run `make deps` (apt-get install redis-server)");
}

/// Sends one inline Redis command and returns the raw reply line(s).
pub fn redis_cmd(addr: &str, command: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The `selfheal` binary with `args`, as a [`Proc`].
pub fn selfheal(label: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    Proc::spawn(label, cmd)
}
