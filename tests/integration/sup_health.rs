//! A hang detected by each probe kind (http, tcp, redis, exec) gets the program
//! restarted (new pid) within failures × (interval + timeout) + stop_timeout + slack.

use std::time::{Duration, Instant};

use crate::harness::{free_port, redis_server, temp_dir};
use crate::sup_util::{kill, python, script, start_in, Sup, SOON};

const SLACK: Duration = Duration::from_secs(4);

/// Probe settings shared by the tests, and the bound they imply.
const PROBE: &str = r#"interval = "200ms", timeout = "200ms", failures = 2"#;
const STOP: &str = r#"stop_timeout = "500ms""#;

fn bound() -> Duration {
    2 * (Duration::from_millis(200) + Duration::from_millis(200))
        + Duration::from_millis(500)
        + SLACK
}

/// Waits for `name` to be ready, hangs it with `hang(pid)`, and checks it is
/// replaced in time.
fn hang_and_expect_restart(sup: &Sup, name: &str, hang: impl FnOnce(i32)) {
    sup.wait_state(name, "running", SOON);
    let pid = sup.wait_pid(name);
    let t0 = Instant::now();
    hang(pid);
    let new = sup.wait_new_pid(name, pid, bound() + Duration::from_secs(2));
    let took = t0.elapsed();
    assert_ne!(new, pid);
    assert!(took <= bound(), "restart took {took:?} > {:?}", bound());
    let out = sup.output();
    assert!(
        out.contains(&format!(
            "{name} unhealthy (pid {pid}): 2 probe failures in a row"
        )),
        "{out}"
    );
}

#[test]
fn http_probe_detects_a_hang() {
    let dir = temp_dir();
    let port = free_port();
    let d = dir.path().to_str().unwrap().to_string();
    script(
        dir.path(),
        "web.py",
        &format!(
            r#"import http.server, os, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        while os.path.exists("{d}/hang-%d" % os.getpid()):
            time.sleep(3600)
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *a):
        pass
http.server.HTTPServer.allow_reuse_address = True
http.server.HTTPServer(("127.0.0.1", {port}), H).serve_forever()
"#
        ),
    );
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.web]
command = ["{py}", "@DIR@/web.py"]
health = {{ http = "http://127.0.0.1:{port}/", {PROBE} }}
{STOP}
"#,
            py = python()
        ),
    );
    hang_and_expect_restart(&sup, "web", |pid| {
        std::fs::write(sup.path(&format!("hang-{pid}")), "").unwrap()
    });
}

#[test]
fn tcp_probe_detects_a_closed_listener() {
    let dir = temp_dir();
    let port = free_port();
    let d = dir.path().to_str().unwrap().to_string();
    script(
        dir.path(),
        "listener.py",
        &format!(
            r#"import os, socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port}))
s.listen(16)
s.settimeout(0.05)
hang = "{d}/hang-%d" % os.getpid()
while not os.path.exists(hang):
    try:
        c, _ = s.accept()
        c.close()
    except socket.timeout:
        pass
s.close()
time.sleep(3600)
"#
        ),
    );
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.tcp]
command = ["{py}", "@DIR@/listener.py"]
health = {{ tcp = "127.0.0.1:{port}", {PROBE} }}
{STOP}
"#,
            py = python()
        ),
    );
    hang_and_expect_restart(&sup, "tcp", |pid| {
        std::fs::write(sup.path(&format!("hang-{pid}")), "").unwrap()
    });
}

#[test]
fn redis_probe_detects_a_stopped_server() {
    let dir = temp_dir();
    let port = free_port();
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.redis]
command = ["{redis}", "--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", "@DIR@"]
health = {{ redis = "redis://127.0.0.1:{port}", {PROBE} }}
{STOP}
"#,
            redis = redis_server().display()
        ),
    );
    // SIGSTOP: the server keeps its socket but answers nothing. The status
    // shows it suspended; the stop signal is followed by SIGCONT, so the
    // server can act on it and exit cleanly instead of waiting for SIGKILL.
    hang_and_expect_restart(&sup, "redis", |pid| kill(pid, libc::SIGSTOP));
    let out = sup.output();
    assert!(out.contains("redis suspended (pid"), "{out}");
    assert!(
        !out.contains("sent SIGKILL"),
        "SIGCONT let it stop by itself: {out}"
    );
}

#[test]
fn exec_probe_detects_a_failing_check() {
    let dir = temp_dir();
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.worker]
command = ["sleep", "infinity"]
health = {{ exec = ["sh", "-c", "test ! -e @DIR@/hang-$(cat @DIR@/pid 2>/dev/null)"], {PROBE} }}
{STOP}
"#
        ),
    );
    hang_and_expect_restart(&sup, "worker", |pid| {
        std::fs::write(sup.path(&format!("hang-{pid}")), "").unwrap();
        std::fs::write(sup.path("pid"), pid.to_string()).unwrap();
    });
}

/// The first probes come fast (10ms, 20ms, …) to see readiness early; they must
/// not count as liveness failures, or a program that needs a moment to listen is
/// killed in a loop (without any `start_period`).
#[test]
fn slow_starter_is_not_killed_by_the_fast_first_probes() {
    let dir = temp_dir();
    let port = free_port();
    script(
        dir.path(),
        "slow.py",
        &format!(
            r#"import socket, time
time.sleep(0.3)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port}))
s.listen(16)
while True:
    s.accept()[0].close()
"#
        ),
    );
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.slow]
command = ["{py}", "@DIR@/slow.py"]
health = {{ tcp = "127.0.0.1:{port}", interval = "2s", timeout = "200ms", failures = 3 }}
"#,
            py = python()
        ),
    );
    sup.proc.wait_output("slow ready (pid", SOON);
    let out = sup.output();
    assert!(!out.contains("unhealthy"), "{out}");
    assert_eq!(sup.count("selfheal | slow started"), 1, "{out}");
}
