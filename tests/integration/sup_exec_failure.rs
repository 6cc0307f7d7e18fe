//! A program that cannot be executed: a clear line naming the cause, retried
//! with backoff (never faster than 100 ms), and the supervisor keeps running.

use std::time::Duration;

use crate::harness::wait_for;
use crate::sup_util::{next_start_delays, script, start, start_in, SOON};

/// "100ms" / "1.6s" / "2s" → milliseconds.
fn ms(text: &str) -> u64 {
    if let Some(n) = text.strip_suffix("ms") {
        return n.parse().unwrap();
    }
    let s: f64 = text.strip_suffix('s').unwrap().parse().unwrap();
    (s * 1000.0).round() as u64
}

#[test]
fn missing_binary_is_reported_and_retried_with_backoff() {
    let mut sup = start(
        "",
        r#"[programs.ghost]
command = ["/nonexistent/bin"]
backoff = { initial = "0s", max = "400ms", multiplier = 2, jitter = 0 }
restart_limit = { max = 1000, window = "60s" }
[programs.ok]
command = ["sleep", "infinity"]
"#,
    );
    let delays = wait_for("4 failed starts", SOON, || {
        let d = next_start_delays(&sup.output(), "ghost");
        (d.len() >= 4).then_some(d)
    });
    let out = sup.output();
    let line = out
        .lines()
        .find(|l| l.starts_with("selfheal | ghost "))
        .unwrap();
    assert!(
        line.contains("/nonexistent/bin") && line.contains("no such file"),
        "{line}"
    );
    assert!(
        delays.iter().all(|d| ms(d) >= 100),
        "exec failure retried faster than 100ms: {delays:?}"
    );
    assert_eq!(delays[..4], ["100ms", "100ms", "200ms", "400ms"], "{out}");
    // Still supervising: the sibling runs and the admin API answers.
    assert_eq!(sup.program("ok")["state"], "running");
    assert_eq!(sup.program("ghost")["last_exit"]["code"], 127);
    assert!(sup.proc.child.try_wait().is_ok_and(|s| s.is_none()));
}

#[test]
fn non_executable_file_is_reported() {
    // Executable at start (a config naming a non-executable file is refused
    // up front, see sup_config_preflight), then loses its execute bit while
    // the program keeps exiting and being restarted.
    let dir = crate::harness::temp_dir();
    let plain = script(dir.path(), "plain", "#!/bin/sh\nexit 1\n");
    let sup = start_in(
        dir,
        "",
        r#"[programs.plain]
command = ["@DIR@/plain"]
backoff = { initial = "0s", max = "200ms", jitter = 0 }
restart_limit = { max = 1000, window = "60s" }
"#,
    );
    sup.wait_count("selfheal | plain started", 1, SOON);
    std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    sup.wait_count(
        "selfheal | plain could not start",
        2,
        Duration::from_secs(10),
    );
    let out = sup.output();
    assert!(out.contains("not executable"), "{out}");
    assert_eq!(sup.program("plain")["last_exit"]["code"], 126);
}
