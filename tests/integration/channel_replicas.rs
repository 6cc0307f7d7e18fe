//! The state channel with programs of several processes: a fronted program's
//! state combines its live processes, an unhealthy one of a surging program is
//! replaced by a surge, and a reload that gives a program `upstreams` gives its
//! new processes the channel.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::channel_memory::Stream;
use crate::harness::{get, wait_for};
use crate::stack_util::{visit, Stack};

const TWO: (&str, &str) = (
    r#"replicas = "${SELFHEAL_APP_REPLICAS:-1}""#,
    "replicas = 2",
);

/// The pids of the app's live (not retiring) processes.
fn app_pids(stack: &Stack) -> Vec<i64> {
    let status = stack.status();
    let mut pids: Vec<i64> = status["programs"]
        .as_array()
        .expect("programs")
        .iter()
        .filter(|p| p["program"] == "app" && p["retiring"] != true)
        .filter_map(|p| p["pid"].as_i64())
        .collect();
    pids.sort_unstable();
    pids
}

/// `POST path` on the stack's admin socket: the whole answer.
fn admin_post(stack: &Stack, path: &str) -> String {
    let mut stream = UnixStream::connect(stack.socket()).expect("connect to the admin socket");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: selfheal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    answer
}

/// `over_memory` replacements summed over the app's processes.
fn over_memory(stack: &Stack) -> u64 {
    let status = stack.status();
    status["programs"]
        .as_array()
        .expect("programs")
        .iter()
        .filter(|p| p["program"] == "app" && p["retiring"] != true)
        .filter_map(|p| p["replacements_by_cause"]["over_memory"].as_u64())
        .sum()
}

#[test]
fn a_leaking_replica_is_replaced_by_a_surge_and_the_other_keeps_its_process() {
    let stack = Stack::start_edited(&[
        TWO,
        (
            "stop_timeout = \"5s\"",
            "stop_timeout = \"5s\"\nmax_memory = \"200MiB\"",
        ),
    ]);
    let before = wait_for("two app processes", Duration::from_secs(10), || {
        let pids = app_pids(&stack);
        (pids.len() == 2).then_some(pids)
    });
    let stream = Stream::start(&stack.front);
    let resp = get(&stack.app, "/leak?mb=300", &[]).expect("leak answered");
    assert_eq!(resp.status, 202);
    let after = wait_for(
        "the leaking process replaced",
        Duration::from_secs(15),
        || {
            let pids = app_pids(&stack);
            (pids.len() == 2 && pids != before).then_some(pids)
        },
    );
    stack.wait_ready(Duration::from_secs(10));
    let (failed, slowest, total) = stream.finish();
    println!("{before:?} -> {after:?}; {total} requests, slowest {slowest:?}");
    assert!(failed.is_empty(), "failed: {failed:?}");
    let kept = before.iter().filter(|p| after.contains(p)).count();
    assert_eq!(kept, 1, "one process kept: {before:?} -> {after:?}");
    assert_eq!(over_memory(&stack), 1);
    let out = stack.proc.output();
    assert!(
        out.contains("over its memory limit"),
        "no over_memory event"
    );
    assert!(
        out.contains("restarting without downtime"),
        "not replaced by a surge:\n{out}"
    );
}

/// One of two app processes stopped: the app is still ready for the front
/// (it serves); both stopped: `503` at once.
#[test]
fn a_program_is_ready_for_its_front_while_any_process_is() {
    let stack = Stack::start_edited(&[TWO]);
    wait_for("two app processes", Duration::from_secs(10), || {
        (app_pids(&stack).len() == 2).then_some(())
    });
    // `selfheal stop app#1` sends the `#` unencoded (a URI fragment): the
    // admin API is asked directly, with the name percent-encoded.
    let answer = admin_post(&stack, "/programs/app%231/stop");
    assert!(answer.starts_with("HTTP/1.1 200"), "stop app#1: {answer}");
    wait_for("app#1 stopped", Duration::from_secs(10), || {
        let status = stack.status();
        let stopped = status["programs"]
            .as_array()?
            .iter()
            .any(|p| p["name"] == "app#1" && p["state"] == "stopped");
        stopped.then_some(())
    });
    for k in 0..20 {
        let resp = visit(&stack.front, &format!("one-{k}")).expect("answer");
        assert_eq!(resp.status, 200, "request {k} with one process left");
    }
    let answer = admin_post(&stack, "/programs/app%230/stop");
    assert!(answer.starts_with("HTTP/1.1 200"), "stop app#0: {answer}");
    wait_for("503 once both are stopped", Duration::from_secs(5), || {
        (get(&stack.front, "/", &[])?.status == 503).then_some(())
    });
}

/// The proxy starts without `upstreams`; a reload adds them: the proxy is
/// restarted (its config changed) and its new process has the channel, so a
/// stopped app is answered `503` at once rather than held on the app's socket.
#[test]
fn a_reload_that_adds_upstreams_gives_the_new_front_the_channel() {
    let line = "upstreams = [\"app\"]\n";
    let stack = Stack::start_edited(&[(line, "")]);
    let path = stack.dir.path().join("edited.toml");
    let text = std::fs::read_to_string(&path).expect("read edited config");
    let marker = "depends_on = { app = \"healthy\" }";
    assert!(text.contains(marker), "no proxy dependency line");
    std::fs::write(&path, text.replacen(marker, &format!("{line}{marker}"), 1))
        .expect("write config");
    let before = stack.pid_of("proxy").expect("proxy pid");
    let (code, out) = stack.cli(&["reload"]);
    assert_eq!(code, 0, "reload: {out}");
    wait_for("a new proxy process", Duration::from_secs(15), || {
        let status = stack.status();
        status["programs"]
            .as_array()?
            .iter()
            .find(|p| p["program"] == "proxy" && p["retiring"] != true && p["ready"] == true)
            .and_then(|p| p["pid"].as_i64())
            .filter(|p| *p != i64::from(before))
    });
    wait_for("the new proxy serving", Duration::from_secs(10), || {
        (visit(&stack.front, "after-reload")?.status == 200).then_some(())
    });
    let (code, out) = stack.cli(&["stop", "app"]);
    assert_eq!(code, 0, "stop app: {out}");
    wait_for("503 from the new proxy", Duration::from_secs(5), || {
        (get(&stack.front, "/", &[])?.status == 503).then_some(())
    });
}
