//! `traffic_health`: an app alive by its probe but answering 500 to every
//! request is replaced from what the proxy sees, and never without the key.

use std::time::{Duration, Instant};

use crate::harness::{get, wait_for};
use crate::stack_util::{visit, Stack};

const TRAFFIC: (&str, &str) = (
    "stop_timeout = \"5s\"",
    "stop_timeout = \"5s\"\ntraffic_health = { errors = 20, window = \"10s\", ratio = 0.5 }",
);

/// Sends `n` requests through the front; returns how many answered 500.
fn burst(stack: &Stack, n: usize) -> usize {
    (0..n)
        .filter(|k| visit(&stack.front, &format!("burst-{k}")).is_some_and(|r| r.status == 500))
        .count()
}

fn replacements(stack: &Stack) -> serde_json::Value {
    let status = stack.status();
    status["programs"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "app").cloned())
        .expect("app in the status")["replacements_by_cause"]
        .clone()
}

#[test]
fn an_app_failing_its_traffic_is_replaced() {
    let stack = Stack::start_edited(&[TRAFFIC]);
    let before = stack.pid_of("app").expect("app pid");
    let on = get(&stack.app, "/chaos/errors?on=1", &[]).expect("chaos answered");
    assert_eq!(on.status, 202);
    let started = Instant::now();
    assert!(burst(&stack, 30) >= 20, "the app does not answer 500");
    wait_for("the app to be replaced", Duration::from_secs(5), || {
        burst(&stack, 1);
        stack.pid_of("app").filter(|p| *p != before)
    });
    println!("replaced {:?} after the errors began", started.elapsed());
    stack.wait_ready(Duration::from_secs(10));
    // The new incarnation answers normally.
    wait_for(
        "200 from the new incarnation",
        Duration::from_secs(5),
        || (visit(&stack.front, "after")?.status == 200).then_some(()),
    );
    assert_eq!(replacements(&stack)["traffic"], 1);
    assert!(stack.proc.output().contains("unhealthy traffic"));
    let counted: Vec<f64> = crate::ops_metrics::samples(&stack.socket())
        .into_iter()
        .filter(|s| s.name == "selfheal_program_replacements_total")
        .filter(|s| s.labels.get("cause").map(String::as_str) == Some("traffic"))
        .map(|s| s.value)
        .collect();
    assert_eq!(counted, vec![1.0], "the metric names the cause");
}

#[test]
fn without_traffic_health_a_failing_app_is_never_replaced() {
    let stack = Stack::start();
    let before = stack.pid_of("app").expect("app pid");
    let on = get(&stack.app, "/chaos/errors?on=1", &[]).expect("chaos answered");
    assert_eq!(on.status, 202);
    // Three report periods of nothing but 500s.
    let until = Instant::now() + Duration::from_millis(3200);
    let mut errors = 0;
    while Instant::now() < until {
        errors += burst(&stack, 10);
        assert_eq!(
            stack.pid_of("app"),
            Some(before),
            "replaced without traffic_health"
        );
    }
    assert!(errors >= 20, "only {errors} answers were 500");
    assert!(replacements(&stack).get("traffic").is_none());
}
