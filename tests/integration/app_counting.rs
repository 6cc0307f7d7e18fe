//! `GET /` counts each request once: sequential visits increase by one, a retry
//! with the same request id gets the same count and does not increment.

use crate::app_util::{count_of, start_app, stored_count, visit};
use crate::harness::{get, temp_dir, Redis};

#[test]
fn sequential_visits_count_up_by_one() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let app = start_app(&redis.url(), &[]);

    let first = count_of(&visit(&app.addr, None).expect("answer"));
    for i in 1..=5 {
        let resp = visit(&app.addr, None).expect("answer");
        assert_eq!(count_of(&resp), first + i);
        assert!(resp.header("x-request-id").is_some_and(|v| !v.is_empty()));
        assert!(
            resp.text()
                .contains(&format!("visited {} times", first + i)),
            "{}",
            resp.text()
        );
    }
    assert_eq!(stored_count(redis.port), first + 5);
}

#[test]
fn retry_with_same_request_id_counts_once() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let app = start_app(&redis.url(), &[]);

    let before = stored_count(redis.port);
    let first = visit(&app.addr, Some("retry-me-1")).expect("answer");
    let n = count_of(&first);
    assert_eq!(n, before + 1);
    assert_eq!(first.header("x-request-id"), Some("retry-me-1"));
    for _ in 0..3 {
        let again = visit(&app.addr, Some("retry-me-1")).expect("answer");
        assert_eq!(count_of(&again), n, "a retry must get the same count");
        assert_eq!(again.header("x-request-id"), Some("retry-me-1"));
    }
    assert_eq!(stored_count(redis.port), n, "retries must not increment");
    // Negative control: a different id does count.
    assert_eq!(
        count_of(&visit(&app.addr, Some("retry-me-2")).expect("answer")),
        n + 1
    );
}

#[test]
fn concurrent_retries_of_one_id_count_once() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let app = start_app(&redis.url(), &[]);

    let counts: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| count_of(&visit(&app.addr, Some("same-id")).expect("answer"))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(counts.iter().all(|c| *c == 1), "{counts:?}");
    assert_eq!(stored_count(redis.port), 1);
}

#[test]
fn json_answer_has_count_request_id_and_instance() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let app = start_app(&redis.url(), &[]);

    let resp = get(
        &app.addr,
        "/",
        &[("Accept", "application/json"), ("X-Request-Id", "j-1")],
    )
    .expect("answer");
    let n = count_of(&resp);
    assert!(resp
        .header("content-type")
        .is_some_and(|v| v.contains("application/json")));
    let json: serde_json::Value = serde_json::from_slice(&resp.body).expect("json body");
    assert_eq!(json["count"], n);
    assert_eq!(json["request_id"], "j-1");
    assert_eq!(json["instance"]["pid"], app.proc.pid());
    assert!(json["instance"]["started_at"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn invalid_request_id_is_refused_and_not_counted() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let app = start_app(&redis.url(), &[]);
    let long = "x".repeat(200);
    let resp = visit(&app.addr, Some(&long)).expect("answer");
    assert_eq!(resp.status, 400);
    assert_eq!(stored_count(redis.port), 0);
}
