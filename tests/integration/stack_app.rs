//! End to end on the shipped stack, at the app's own port: crash, Redis loss,
//! restart on the same data, hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::harness::{get, wait_for};
use crate::stack_util::{count, visit, Ports, Stack};

#[test]
fn kill_restarts_the_app_and_the_next_request_is_served() {
    let stack = Stack::start();
    let first = count(&visit(&stack.app, "k-1").expect("first visit")).expect("200");
    let old_pid = stack.pid_of("app").expect("app pid");
    let kill = get(&stack.app, "/kill", &[]).expect("kill answered");
    assert_eq!(kill.status, 202);
    // The port stays open (held by the supervisor): this waits in the backlog
    // and is served by the next incarnation.
    let next = visit(&stack.app, "k-2").expect("served after the crash");
    assert_eq!(count(&next), Some(first + 1), "{next:?}");
    let new_pid = wait_for("a new app pid", Duration::from_secs(5), || {
        stack.pid_of("app").filter(|p| *p != old_pid)
    });
    assert_ne!(new_pid, old_pid);
    stack
        .proc
        .wait_output("app exited with code 1", Duration::from_secs(5));
}

#[test]
fn redis_sigkill_under_a_stream_loses_and_doubles_nothing() {
    let stack = Stack::start();
    let stop = Arc::new(AtomicBool::new(false));
    let app = stack.app.clone();
    let flag = stop.clone();
    let client = thread::spawn(move || {
        let (mut ok, mut failed, mut last) = (0i64, 0i64, 0i64);
        let mut i = 0;
        while !flag.load(Ordering::Relaxed) {
            i += 1;
            match visit(&app, &format!("r-{i}")).as_ref().and_then(count) {
                Some(n) => {
                    assert_eq!(n, last + 1, "counts are consecutive: no loss, no double");
                    last = n;
                    ok += 1;
                }
                None => failed += 1,
            }
        }
        (ok, failed)
    });
    wait_for("some traffic", Duration::from_secs(10), || {
        (stack.counter() > 20).then_some(())
    });
    let redis = stack.pid_of("redis").expect("redis pid");
    // SAFETY: kill(2) on a pid read from the supervisor's status.
    unsafe { libc::kill(redis, libc::SIGKILL) };
    wait_for("redis restarted", Duration::from_secs(10), || {
        stack.pid_of("redis").filter(|p| *p != redis)
    });
    wait_for("traffic after the restart", Duration::from_secs(10), || {
        let before = stack.counter();
        thread::sleep(Duration::from_millis(50));
        (stack.counter() > before + 10).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = client.join().expect("client thread");
    assert_eq!(failed, 0, "no request failed across the Redis crash");
    assert_eq!(
        stack.counter(),
        ok,
        "the counter equals the number of 2xx answers"
    );
}

#[test]
fn sigterm_flushes_redis_and_a_restart_continues_the_count() {
    let ports = Ports::free();
    let dir = crate::harness::temp_dir();
    let path = dir.path().to_path_buf();
    let mut stack = Stack::start_in(dir, ports, &[]);
    let mut last = 0;
    for i in 0..5 {
        last = count(&visit(&stack.app, &format!("p-{i}")).expect("visit")).expect("200");
    }
    stack.proc.signal(libc::SIGTERM);
    assert_eq!(stack.proc.wait_exit(Duration::from_secs(20)), Some(0));
    let log = stack.proc.output();
    assert!(
        log.contains("ready to exit, bye bye"),
        "redis shut down cleanly:\n{log}"
    );
    let keep = std::mem::replace(&mut stack.dir, crate::harness::temp_dir());
    drop(stack);
    assert!(path.join("data").exists());
    let again = Stack::start_in(keep, ports, &[]);
    let next = count(&visit(&again.app, "p-after").expect("visit")).expect("200");
    assert_eq!(next, last + 1, "the counter continues where it was");
}

#[test]
fn hang_is_caught_by_liveness_and_the_app_replaced() {
    let stack = Stack::start();
    let old = stack.pid_of("app").expect("app pid");
    let hang = get(&stack.app, "/hang", &[]).expect("hang answered");
    assert_eq!(hang.status, 202);
    // interval 1s × failures 3 + timeout 0.5s + stop_timeout 5s, plus slack.
    let new = wait_for("liveness restart", Duration::from_secs(15), || {
        stack.pid_of("app").filter(|p| *p != old)
    });
    assert_ne!(new, old);
    stack
        .proc
        .wait_output("app unhealthy", Duration::from_secs(1));
    stack.wait_ready(Duration::from_secs(10));
    assert!(count(&visit(&stack.app, "h-1").expect("served again")).is_some());
}
