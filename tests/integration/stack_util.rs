//! The shipped `supervisor.toml` stack (redis → app → proxy), started on free
//! ports with its data and admin socket in a temp dir, for end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{free_port, get, redis_cmd, temp_dir, wait_for, Proc, Response, BIN};

pub struct Stack {
    pub proc: Proc,
    pub dir: tempfile::TempDir,
    pub redis_port: u16,
    pub app: String,
    pub front: String,
}

/// Ports of a stack, chosen once so a restart on the same data dir can reuse them.
#[derive(Clone, Copy)]
pub struct Ports {
    pub redis: u16,
    pub app: u16,
    pub front: u16,
    /// The proxy's `--metrics-listen` port.
    pub metrics: u16,
}

impl Ports {
    pub fn free() -> Ports {
        Ports {
            redis: free_port(),
            app: free_port(),
            front: free_port(),
            metrics: free_port(),
        }
    }
}

pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisor.toml")
}

impl Stack {
    /// Starts the shipped stack and waits until every program is ready.
    pub fn start() -> Stack {
        Self::start_in(temp_dir(), Ports::free(), &[])
    }

    /// Starts it in `dir` (data in `dir/data`) with `ports` and extra env.
    pub fn start_in(dir: tempfile::TempDir, ports: Ports, env: &[(&str, &str)]) -> Stack {
        Self::start_from(&shipped_config(), dir, ports, env)
    }

    /// The shipped stack with the shipped config edited: each `(from, to)` is
    /// replaced once (the text must be there).
    pub fn start_edited(edits: &[(&str, &str)]) -> Stack {
        let dir = temp_dir();
        let mut text = std::fs::read_to_string(shipped_config()).expect("read supervisor.toml");
        for (from, to) in edits {
            assert!(text.contains(from), "supervisor.toml has no {from:?}");
            text = text.replacen(from, to, 1);
        }
        let path = dir.path().join("edited.toml");
        std::fs::write(&path, text).expect("write edited config");
        Self::start_from(&path, dir, Ports::free(), &[])
    }

    /// Starts the stack described by `config` (the shipped one, or a copy
    /// edited by a test) as [`Stack::start_in`] does.
    pub fn start_from(
        config: &Path,
        dir: tempfile::TempDir,
        ports: Ports,
        env: &[(&str, &str)],
    ) -> Stack {
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create data dir");
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(config)
            .env("SELFHEAL_DATA", &data)
            .env("SELFHEAL_RUN", dir.path())
            .env("SELFHEAL_REDIS_PORT", ports.redis.to_string())
            .env("SELFHEAL_APP_PORT", ports.app.to_string())
            .env("SELFHEAL_LISTEN", format!("127.0.0.1:{}", ports.front))
            .env("SELFHEAL_PROXY_METRICS_PORT", ports.metrics.to_string())
            .env_remove("SELFHEAL_REDIS_URL")
            .env_remove("SELFHEAL_CHAOS")
            .env_remove("SELFHEAL_LOG_FORMAT")
            .env_remove("SELFHEAL_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn("supervisor (shipped stack)", cmd);
        let stack = Stack {
            proc,
            dir,
            redis_port: ports.redis,
            app: format!("127.0.0.1:{}", ports.app),
            front: format!("127.0.0.1:{}", ports.front),
        };
        stack.wait_ready(Duration::from_secs(30));
        stack
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// Runs `selfheal <args> --socket <ours>` and returns (exit code, stdout).
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .expect("run selfheal CLI");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    pub fn wait_ready(&self, timeout: Duration) {
        wait_for("every program of the stack to be ready", timeout, || {
            (self.cli(&["health"]).0 == 0).then_some(())
        });
    }

    /// The status snapshot as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (code, out) = self.cli(&["status", "--json"]);
        assert!(matches!(code, 0 | 3), "status failed: {out}");
        serde_json::from_str(&out).expect("status JSON")
    }

    /// The pid of a running program.
    pub fn pid_of(&self, program: &str) -> Option<i32> {
        let status = self.status();
        status["programs"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == program)
            .and_then(|p| p["pid"].as_i64())
            .map(|p| p as i32)
    }

    /// The visit counter straight from Redis.
    pub fn counter(&self) -> i64 {
        let addr = format!("127.0.0.1:{}", self.redis_port);
        let reply = wait_for("redis to answer GET", Duration::from_secs(10), || {
            redis_cmd(&addr, "GET selfheal:visits")
        });
        // RESP bulk string: "$N\r\nVALUE\r\n", or "$-1" when absent.
        reply
            .lines()
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// `GET /` with a request id; the count of a 200 answer.
pub fn visit(addr: &str, id: &str) -> Option<Response> {
    get(addr, "/", &[("X-Request-Id", id)])
}

pub fn count(resp: &Response) -> Option<i64> {
    (resp.status == 200)
        .then(|| resp.header("x-visit-count")?.parse().ok())
        .flatten()
}
