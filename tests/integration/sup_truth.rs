//! Issue 10, kinds 7, 10 and 11: `health` tells the truth; a program that
//! daemonizes is named plainly; stable runs are not punished by the restart limit.

use crate::common::wait_for;
use crate::harness::{free_port, redis_server};
use crate::sup_util::{kill, start, SOON};

fn health(sup: &crate::sup_util::Sup) -> (i32, String) {
    sup.cli(&["health"])
}

#[test]
fn health_is_not_ready_after_an_operator_stop() {
    let sup = start(
        "",
        "[programs.web]\ncommand = [\"sleep\", \"3600\"]\n[programs.db]\ncommand = [\"sleep\", \"3600\"]\n",
    );
    sup.wait_pid("web");
    wait_for("ready", SOON, || (health(&sup).0 == 0).then_some(()));
    let (code, text) = sup.cli(&["stop", "web"]);
    assert_eq!(code, 0, "{text}");
    sup.wait_state("web", "stopped", SOON);
    let (code, text) = health(&sup);
    assert_ne!(
        code, 0,
        "a stopped program that should run is not ready: {text}"
    );
    assert!(text.contains("web: stopped by the operator"), "{text}");
    let (_, json) = sup.cli(&["health", "--json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect(&json);
    assert_eq!(v["ready"], false, "{v}");
    assert!(
        v["reasons"][0].as_str().unwrap_or("").contains("web"),
        "{v}"
    );
}

#[test]
fn health_is_not_ready_after_a_crash_under_never_or_a_failed_start() {
    let sup = start(
        "on_give_up = \"stay\"",
        "[programs.once]\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nrestart = \"never\"\n[programs.missing]\ncommand = [\"/nonexistent/x\"]\nrestart_limit = { max = 0, window = \"60s\" }\n[programs.done]\ncommand = [\"true\"]\nrestart = \"on-failure\"\n",
    );
    sup.wait_state("once", "failed", SOON);
    sup.wait_state("missing", "failed", SOON);
    sup.wait_state("done", "exited", SOON);
    let (code, text) = health(&sup);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("once: failed"), "{text}");
    assert!(text.contains("missing: failed"), "{text}");
    assert!(
        !text.contains("done:"),
        "a finished one-shot is fine: {text}"
    );
}

#[test]
fn a_daemonizing_program_is_named_and_not_restarted_in_a_loop() {
    let dir = crate::harness::temp_dir();
    let port = free_port();
    let d = dir.path().display().to_string();
    let mut sup = crate::sup_util::start_in(
        dir,
        "on_give_up = \"exit\"",
        &format!(
            "[programs.redis]\ncommand = [\"{redis}\", \"--daemonize\", \"yes\", \"--port\", \"{port}\", \"--bind\", \"127.0.0.1\", \"--dir\", \"{d}\", \"--pidfile\", \"{d}/redis.pid\", \"--save\", \"\"]\nrestart = \"always\"\n",
            redis = redis_server().display()
        ),
    );
    let code = sup.proc.wait_exit(SOON);
    let out = sup.output();
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("daemonized itself"), "{out}");
    assert!(out.contains("foreground"), "{out}");
    assert_eq!(sup.count("redis started"), 1, "no pile of copies: {out}");
}

#[test]
fn killing_a_healthy_program_again_and_again_never_gives_up() {
    let sup = start(
        "on_give_up = \"exit\"",
        "[programs.steady]\ncommand = [\"sleep\", \"3600\"]\nrestart = \"always\"\nbackoff = { initial = \"0s\", reset_after = \"300ms\", jitter = 0 }\nrestart_limit = { max = 2, window = \"60s\" }\n",
    );
    let mut pid = sup.wait_pid("steady");
    for _ in 0..5 {
        // Each run is ready (no probe) for longer than reset_after: stable.
        wait_for("a run longer than reset_after", SOON, || {
            (sup.program("steady")["uptime_ms"].as_u64()? >= 400).then_some(())
        });
        kill(pid, libc::SIGKILL);
        pid = sup.wait_new_pid("steady", pid, SOON);
    }
    assert!(crate::sup_util::alive(sup.proc.pid()), "{}", sup.output());
    assert!(!sup.output().contains("giving up"), "{}", sup.output());
}
