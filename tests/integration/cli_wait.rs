//! `selfheal start | stop | restart` wait for the outcome: ready, stopped, or
//! failed with the reason (exit 1); `--no-wait` returns at once.

use std::time::{Duration, Instant};

use crate::cli_util::cli;
use crate::harness::free_port;
use crate::sup_util::{alive, python, start, SOON};

/// A program that listens (its TCP probe passes) only `delay` after its start.
fn slow_listener(name: &str, port: u16, delay: &str) -> String {
    format!(
        r#"[programs.{name}]
command = ["{py}", "-c", "import socket, time; time.sleep({delay}); s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(3600)"]
health = {{ tcp = "127.0.0.1:{port}", interval = "100ms", start_period = "10s" }}
stop_timeout = "2s"
"#,
        py = python()
    )
}

#[test]
fn restart_returns_once_the_new_process_is_ready() {
    let sup = start("", &slow_listener("app", free_port(), "0.5"));
    sup.wait_state("app", "running", SOON);
    let old = sup.wait_pid("app");
    let before = sup.program("app")["incarnation"].as_u64().unwrap();

    let t0 = Instant::now();
    let out = cli(&sup, &["restart", "app"]);
    let took = t0.elapsed();
    let now = sup.program("app");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(now["state"], "running", "at return: {now}\n{out}");
    assert_eq!(now["ready"], true, "at return: {now}");
    assert_ne!(now["pid"].as_i64(), Some(old as i64), "{now}");
    assert_eq!(now["incarnation"].as_u64(), Some(before + 1), "{now}");
    assert_eq!(
        out.stdout.trim(),
        format!("app: running (pid {})", now["pid"]),
        "{out}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "returned after {took:?}, before the new process could listen"
    );
    assert!(!alive(old) || crate::sup_util::zombies_of(sup.proc.pid()).contains(&old));
}

#[test]
fn restart_no_wait_returns_while_the_program_is_still_starting() {
    let sup = start("", &slow_listener("app", free_port(), "1.0"));
    sup.wait_state("app", "running", SOON);
    let out = cli(&sup, &["restart", "--no-wait", "app"]);
    let now = sup.program("app");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(now["ready"], false, "--no-wait waited: {now}\n{out}");
    assert!(
        matches!(now["state"].as_str(), Some("stopping" | "starting")),
        "{now}"
    );
    // And it does come back.
    sup.wait_state("app", "running", SOON);
}

#[test]
fn start_of_a_crashing_program_exits_1_with_the_reason() {
    let port = free_port();
    let sup = start(
        "on_give_up = \"stay\"",
        &format!(
            r#"[programs.probed]
command = ["sh", "-c", "sleep 0.2; exit 1"]
health = {{ tcp = "127.0.0.1:{port}" }}
[programs.bare]
command = ["sh", "-c", "sleep 0.2; exit 3"]
restart = "never"
"#
        ),
    );
    // Both crash on their own first: stop them, then start them by hand.
    for name in ["probed", "bare"] {
        let out = cli(&sup, &["stop", name]);
        assert_eq!(out.code, 0, "{out}");
        assert!(
            matches!(
                sup.program(name)["state"].as_str(),
                Some("stopped" | "failed")
            ),
            "stop returned before {name} stopped: {}",
            sup.program(name)
        );
    }
    let out = cli(&sup, &["start", "probed"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("probed: failed: exited with code 1"),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");

    let out = cli(&sup, &["start", "bare"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("bare: failed: exited with code 3"),
        "{out}"
    );
    assert!(out.stderr.contains("now failed"), "{out}");
}

#[test]
fn stop_returns_once_the_program_is_stopped() {
    let sup = start(
        "",
        r#"[programs.slow]
command = ["sh", "-c", "trap 'sleep 0.4; exit 0' TERM; sleep 3600 & wait"]
"#,
    );
    sup.wait_state("slow", "running", SOON);
    let pid = sup.wait_pid("slow");
    let t0 = Instant::now();
    let out = cli(&sup, &["stop", "slow"]);
    let now = sup.program("slow");
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.trim(), "slow: stopped", "{out}");
    assert_eq!(now["state"], "stopped", "{now}");
    assert!(now["pid"].is_null(), "{now}");
    assert!(!alive(pid), "stop returned while pid {pid} lives");
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    // start waits too; a program without probe is ready once it runs.
    let out = cli(&sup, &["start", "slow"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(sup.program("slow")["state"], "running");
}
