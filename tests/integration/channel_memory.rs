//! `max_memory`: a program whose process group grows past its limit is
//! replaced within about a second, and the proxy in front loses no request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{get, wait_for};
use crate::stack_util::{visit, Stack};

/// Keyed GETs through the front, one after another, until told to stop:
/// (failed answers, slowest answer).
pub struct Stream {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Vec<String>, Duration, u64)>>,
}

impl Stream {
    pub fn start(front: &str) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, front) = (stop.clone(), front.to_string());
        let thread = std::thread::spawn(move || {
            let (mut failed, mut slowest, mut n) = (Vec::new(), Duration::ZERO, 0u64);
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let t = Instant::now();
                let resp = visit(&front, &format!("stream-{n}"));
                slowest = slowest.max(t.elapsed());
                match resp {
                    Some(r) if r.status == 200 => {}
                    Some(r) => failed.push(format!("request {n}: {}", r.status)),
                    None => failed.push(format!("request {n}: no answer")),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (failed, slowest, n)
        });
        Stream {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the stream: (failed, slowest, total).
    pub fn finish(mut self) -> (Vec<String>, Duration, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("stream thread")
            .join()
            .expect("stream thread panicked")
    }
}

fn app_status(stack: &Stack) -> serde_json::Value {
    let status = stack.status();
    status["programs"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "app").cloned())
        .expect("app in the status")
}

#[test]
fn a_leaking_app_is_replaced_within_a_second_and_a_half_losing_no_request() {
    let stack = Stack::start_edited(&[(
        "stop_timeout = \"5s\"",
        "stop_timeout = \"5s\"\nmax_memory = \"200MiB\"",
    )]);
    let before = stack.pid_of("app").expect("app pid");
    let stream = Stream::start(&stack.front);
    let leaked = Instant::now();
    let resp = get(&stack.app, "/leak?mb=300", &[]).expect("leak answered");
    assert_eq!(resp.status, 202);
    wait_for("a new app incarnation", Duration::from_secs(5), || {
        stack.pid_of("app").filter(|p| *p != before)
    });
    let took = leaked.elapsed();
    stack.wait_ready(Duration::from_secs(10));
    let (failed, slowest, total) = stream.finish();
    println!("replaced {took:?} after the leak; {total} requests, slowest {slowest:?}");
    assert!(
        took <= Duration::from_millis(1500),
        "replaced after {took:?}"
    );
    assert!(failed.is_empty(), "failed: {failed:?}");
    let app = app_status(&stack);
    assert_eq!(app["replacements_by_cause"]["over_memory"], 1, "{app}");
    assert!(
        stack.proc.output().contains("over its memory limit"),
        "no over_memory event"
    );
    let replaced: Vec<f64> = crate::ops_metrics::samples(&stack.socket())
        .into_iter()
        .filter(|s| s.name == "selfheal_program_replacements_total")
        .filter(|s| s.labels.get("program").map(String::as_str) == Some("app"))
        .filter(|s| s.labels.get("cause").map(String::as_str) == Some("over_memory"))
        .map(|s| s.value)
        .collect();
    assert_eq!(replaced, vec![1.0], "the metric names the cause");
}

#[test]
fn under_the_limit_nothing_happens() {
    let stack = Stack::start_edited(&[(
        "stop_timeout = \"5s\"",
        "stop_timeout = \"5s\"\nmax_memory = \"200MiB\"",
    )]);
    let before = stack.pid_of("app").expect("app pid");
    let resp = get(&stack.app, "/leak?mb=50", &[]).expect("leak answered");
    assert_eq!(resp.status, 202);
    // Three checks' worth of time: the same incarnation all along.
    let until = Instant::now() + Duration::from_millis(3200);
    while Instant::now() < until {
        assert_eq!(
            stack.pid_of("app"),
            Some(before),
            "replaced under the limit"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let app = app_status(&stack);
    assert!(
        app["replacements_by_cause"].get("over_memory").is_none(),
        "{app}"
    );
}
