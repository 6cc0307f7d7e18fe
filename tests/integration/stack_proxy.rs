//! End to end through the proxy of the shipped stack: a steady stream of requests
//! while the app is crashed (`/kill`, then SIGKILL) sees zero failed requests, and
//! the Redis counter equals the number of 2xx answers (nothing lost or doubled).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::harness::{get, wait_for};
use crate::stack_util::{count, visit, Stack};

/// Runs `clients` request loops against `addr` until `stop`; returns (2xx, failures).
fn stream(
    addr: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<(i64, Vec<String>)>> {
    (0..clients)
        .map(|c| {
            let addr = addr.to_string();
            let stop = stop.clone();
            thread::spawn(move || {
                let (mut ok, mut failures) = (0, Vec::new());
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match visit(&addr, &format!("c{c}-{i}")) {
                        Some(r) if count(&r).is_some() => ok += 1,
                        other => failures.push(format!("{other:?}")),
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                (ok, failures)
            })
        })
        .collect()
}

fn crash_under_stream(crash: impl Fn(&Stack)) {
    let stack = Stack::start();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = stream(&stack.front, 3, stop.clone());
    for round in 0..4 {
        let before = stack.pid_of("app").expect("app pid");
        crash(&stack);
        wait_for(
            &format!("app restarted (round {round})"),
            Duration::from_secs(10),
            || stack.pid_of("app").filter(|p| *p != before),
        );
        stack.wait_ready(Duration::from_secs(10));
        // Let traffic flow through the new incarnation before the next crash.
        let seen = stack.counter();
        wait_for("traffic after the restart", Duration::from_secs(10), || {
            (stack.counter() > seen + 20).then_some(())
        });
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failures) = (0, Vec::new());
    for c in clients {
        let (n, f) = c.join().expect("client thread");
        ok += n;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(
        stack.counter(),
        ok,
        "the Redis counter equals the number of 2xx answers"
    );
    assert!(ok > 100, "the stream ran ({ok} answers)");
}

#[test]
fn kill_through_the_proxy_under_a_stream_fails_no_request() {
    crash_under_stream(|stack| {
        let r = get(&stack.front, "/kill", &[]).expect("/kill answered");
        assert_eq!(r.status, 202, "{r:?}");
    });
}

#[test]
fn sigkill_of_the_app_under_a_stream_fails_no_request() {
    crash_under_stream(|stack| {
        let pid = stack.pid_of("app").expect("app pid");
        // SAFETY: kill(2) on a pid read from the supervisor's status.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
}

#[test]
fn the_proxy_restarts_and_the_front_port_never_refuses() {
    let stack = Stack::start();
    let pid = stack.pid_of("proxy").expect("proxy pid");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // The front socket belongs to the supervisor: this waits, then is served.
    let r = visit(&stack.front, "after-proxy-kill").expect("served by the next proxy");
    assert!(count(&r).is_some(), "{r:?}");
    wait_for("a new proxy", Duration::from_secs(5), || {
        stack.pid_of("proxy").filter(|p| *p != pid)
    });
}
