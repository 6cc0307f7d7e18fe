//! The state channel (supervisor → proxy): answers that follow the app's
//! schedule, through the shipped stack (the proxy has `upstreams = ["app"]`).

use std::time::{Duration, Instant};

use crate::harness::{get, wait_for};
use crate::stack_util::{visit, Stack};

/// `selfheal stop app` → the next request is answered `503` + `Retry-After`
/// at once (not held 30 s on the supervisor's socket); `start app` → `200`.
#[test]
fn stopped_app_is_answered_503_at_once_and_served_again_after_start() {
    let stack = Stack::start();
    assert_eq!(visit(&stack.front, "before").expect("answer").status, 200);
    let (code, out) = stack.cli(&["stop", "app"]);
    assert_eq!(code, 0, "stop app: {out}");
    // The state reaches the proxy asynchronously: wait for the first 503.
    wait_for(
        "the proxy to learn the app stopped",
        Duration::from_secs(5),
        || (get(&stack.front, "/", &[])?.status == 503).then_some(()),
    );
    // Measured on a fresh connection: the whole answer within 100 ms.
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let resp = get(&stack.front, "/", &[]).expect("answer");
        let took = t.elapsed();
        worst = worst.max(took);
        assert_eq!(resp.status, 503);
        let retry: u64 = resp
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!(retry >= 1, "Retry-After {retry}");
    }
    println!("503 after stop: worst of 5 = {worst:?}");
    assert!(worst <= Duration::from_millis(100), "503 took {worst:?}");
    let (code, out) = stack.cli(&["start", "app"]);
    assert_eq!(code, 0, "start app: {out}");
    // The start reaches the proxy asynchronously (a request racing the CLI's
    // answer may still see `stopped`); from `starting` on it is held, then served.
    let t = Instant::now();
    wait_for("200 again after start", Duration::from_secs(10), || {
        (visit(&stack.front, "after")?.status == 200).then_some(())
    });
    println!("200 again {:?} after start returned", t.elapsed());
}

/// An app in backoff whose next start lies past the hold budget: `503` with a
/// `Retry-After` from the real schedule (3 s backoff + start time, rounded up).
#[test]
fn backoff_past_the_hold_is_answered_with_the_schedule() {
    let stack = Stack::start_edited(&[
        (
            r#"backoff = { initial = "0s", max = "5s", reset_after = "1s" }
restart_limit = { max = 30, window = "60s" }
health = { http"#,
            r#"backoff = { initial = "3s", max = "3s", jitter = 0.0, reset_after = "1s" }
restart_limit = { max = 30, window = "60s" }
health = { http"#,
        ),
        (
            r#""--upstream", "127.0.0.1:${SELFHEAL_APP_PORT:-8000}","#,
            r#""--upstream", "127.0.0.1:${SELFHEAL_APP_PORT:-8000}", "--hold-timeout", "1s","#,
        ),
    ]);
    assert_eq!(visit(&stack.front, "before").expect("answer").status, 200);
    let killed = Instant::now();
    let kill = get(&stack.app, "/kill", &[]).expect("kill answered");
    assert_eq!(kill.status, 202);
    // Requests sent before the supervisor has seen the exit wait in the held
    // socket's backlog (as without the channel); the rule applies from then on.
    wait_for("the app in backoff", Duration::from_secs(2), || {
        let status = stack.status();
        let app = status["programs"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "app")?
            .clone();
        (app["state"] == "backoff").then_some(())
    });
    let resp = wait_for("a 503 from the schedule", Duration::from_secs(3), || {
        get(&stack.front, "/", &[]).filter(|r| r.status == 503)
    });
    let retry: u64 = resp
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    let left = Duration::from_secs(3).saturating_sub(killed.elapsed());
    println!("Retry-After {retry} s with {left:?} of backoff left");
    // Next start ≤ 3 s away plus the app's start-to-ready (well under 1 s).
    assert!(
        (left.as_secs()..=4).contains(&retry) && retry >= 1,
        "Retry-After {retry} for {left:?} of backoff"
    );
    // And once it is back, served again.
    wait_for(
        "the app to be served again",
        Duration::from_secs(10),
        || (visit(&stack.front, "again")?.status == 200).then_some(()),
    );
}

/// The restart cost reaches the status and the event stream.
#[test]
fn restart_cost_is_in_the_status_and_the_events() {
    let stack = Stack::start();
    let kill = get(&stack.app, "/kill", &[]).expect("kill answered");
    assert_eq!(kill.status, 202);
    // A request during the outage is held, then served.
    let resp = visit(&stack.front, "during").expect("answer");
    assert_eq!(resp.status, 200);
    let cost = wait_for(
        "last_restart in the status",
        Duration::from_secs(10),
        || {
            let status = stack.status();
            let app = status["programs"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "app")?
                .clone();
            let cost = app["last_restart"].clone();
            cost.is_object().then_some(cost)
        },
    );
    println!("last_restart: {cost}");
    assert!(cost["down_ms"].as_u64().is_some(), "{cost}");
    for key in ["held", "replayed", "shed"] {
        assert!(cost[key].as_u64().is_some(), "{key} in {cost}");
    }
    // The event's human line, in the supervisor's output.
    wait_for("the restart_cost event", Duration::from_secs(5), || {
        stack
            .proc
            .output()
            .contains("restart cost: down")
            .then_some(())
    });
    // In the status table…
    let (_, table) = stack.cli(&["status"]);
    assert!(table.contains("last restart of app: down"), "{table}");
    // …and in /metrics, the same figures.
    let samples = crate::ops_metrics::samples(&stack.socket());
    let value = |name: &str| {
        samples
            .iter()
            .find(|s| s.name == name && s.labels.get("program").map(String::as_str) == Some("app"))
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let down = value("selfheal_program_last_restart_down_seconds");
    assert!(
        (down * 1000.0 - cost["down_ms"].as_f64().unwrap()).abs() < 1.5,
        "{down} vs {cost}"
    );
    for key in ["held", "replayed", "shed"] {
        let metric = value(&format!("selfheal_program_last_restart_{key}_requests"));
        assert_eq!(metric, cost[key].as_f64().unwrap(), "{key}");
    }
}
