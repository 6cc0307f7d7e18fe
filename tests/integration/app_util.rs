//! Helpers for the `selfheal app` tests: start the app against a Redis, visit `/`,
//! read the counter straight from Redis.

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{free_port, get, raw_request, redis_cmd, Proc, Response, BIN};

/// A running `selfheal app` and the address it serves on.
pub struct App {
    pub proc: Proc,
    pub addr: String,
}

/// `selfheal app` on a fresh port against `redis_url`, with `extra` flags; returns
/// once it logged "serving". Debug logs of the app itself are on (tests wait on them).
pub fn start_app(redis_url: &str, extra: &[&str]) -> App {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = app_command(redis_url, &addr, extra);
    cmd.env_remove("LISTEN_FDS");
    let proc = Proc::spawn("selfheal app", cmd);
    proc.wait_output("serving on", Duration::from_secs(10));
    App { proc, addr }
}

/// The command line of the app, not started.
pub fn app_command(redis_url: &str, listen: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["app", "--listen", listen, "--redis", redis_url])
        .args(extra)
        .env("RUST_LOG", "info,selfheal=debug")
        .env_remove("SELFHEAL_CHAOS")
        .env_remove("SELFHEAL_REDIS_TIMEOUT");
    cmd
}

/// `GET /` with an optional request id.
pub fn visit(addr: &str, request_id: Option<&str>) -> Option<Response> {
    match request_id {
        Some(id) => get(addr, "/", &[("X-Request-Id", id)]),
        None => get(addr, "/", &[]),
    }
}

/// The `X-Visit-Count` of a 200 answer; panics with the answer otherwise.
pub fn count_of(resp: &Response) -> i64 {
    assert_eq!(
        resp.status,
        200,
        "expected 200, got {resp:?} body {}",
        resp.text()
    );
    resp.header("x-visit-count")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric X-Visit-Count in {resp:?}"))
}

/// The counter as stored in Redis (0 when absent).
pub fn stored_count(redis_port: u16) -> i64 {
    let reply = redis_cmd(&format!("127.0.0.1:{redis_port}"), "GET selfheal:visits")
        .expect("redis answers GET");
    // "$-1\r\n" (absent) or "$<len>\r\n<n>\r\n".
    reply
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// `GET path` that gives up after `timeout` (None: no answer in time).
/// `/livez` answers 200 within 5 s.
pub fn assert_live(addr: &str) {
    let livez = get_within(addr, "/livez", Duration::from_secs(5)).expect("/livez answered");
    assert_eq!(livez.status, 200, "{livez:?}");
}

pub fn get_within(addr: &str, path: &str, timeout: Duration) -> Option<Response> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    raw_request(addr, req.as_bytes(), timeout)
}

/// Runs `f` and returns its result with how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

/// Kills a process with SIGKILL and waits for it (Redis "crash").
pub fn crash(proc: &mut Proc) {
    proc.signal(libc::SIGKILL);
    proc.wait_exit(Duration::from_secs(10));
}
