//! Redis away: `/livez` stays 200 (liveness must not depend on Redis), `/readyz`
//! goes 503 and back; `GET /` retries within its deadline, then 503 + Retry-After;
//! a request that is retrying when Redis comes back is counted once.

use std::time::Duration;

use crate::app_util::{
    assert_live, count_of, crash, get_within, start_app, stored_count, timed, visit,
};
use crate::harness::{free_port, temp_dir, wait_for, Redis};

#[test]
fn livez_stays_up_and_readyz_follows_redis() {
    let dir = temp_dir();
    let mut redis = Redis::start(dir.path());
    let port = redis.port;
    let app = start_app(&redis.url(), &[]);

    let ready = get_within(&app.addr, "/readyz", Duration::from_secs(5)).expect("answer");
    assert_eq!(ready.status, 200);

    crash(&mut redis.proc);
    assert_live(&app.addr);
    let (readyz, took) = timed(|| get_within(&app.addr, "/readyz", Duration::from_secs(5)));
    assert_eq!(readyz.expect("answer").status, 503);
    assert!(took < Duration::from_millis(1500), "readyz took {took:?}");

    let _redis = Redis::start_on(dir.path(), port);
    wait_for("readyz 200 again", Duration::from_secs(10), || {
        get_within(&app.addr, "/readyz", Duration::from_secs(2)).filter(|r| r.status == 200)
    });
    assert_live(&app.addr);
}

#[test]
fn app_starts_and_is_live_without_redis_then_counts_when_it_appears() {
    let dir = temp_dir();
    let port = free_port();
    let app = start_app(
        &format!("redis://127.0.0.1:{port}"),
        &["--redis-timeout", "300ms"],
    );

    assert_live(&app.addr);
    assert_eq!(
        get_within(&app.addr, "/readyz", Duration::from_secs(5))
            .expect("answer")
            .status,
        503
    );

    let redis = Redis::start_on(dir.path(), port);
    let resp = wait_for("a counted visit", Duration::from_secs(10), || {
        visit(&app.addr, Some("late-1")).filter(|r| r.status == 200)
    });
    assert_eq!(count_of(&resp), 1);
    assert_eq!(stored_count(redis.port), 1);
}

#[test]
fn redis_down_past_deadline_gives_503_with_retry_after_in_time() {
    let dir = temp_dir();
    let mut redis = Redis::start(dir.path());
    let app = start_app(&redis.url(), &["--redis-timeout", "1s"]);
    count_of(&visit(&app.addr, None).expect("answer"));

    crash(&mut redis.proc);
    let (resp, took) = timed(|| visit(&app.addr, Some("down-1")));
    let resp = resp.expect("an answer, not a hang");
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(resp.header("x-request-id"), Some("down-1"));
    assert!(resp.header("x-visit-count").is_none());
    let json: serde_json::Value = serde_json::from_slice(&resp.body).expect("json body");
    assert_eq!(json["error"], "redis unavailable");
    assert!(
        took >= Duration::from_millis(900),
        "gave up before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2000),
        "deadline 1s overrun: {took:?}"
    );
    // The app itself is fine.
    assert_live(&app.addr);
}

#[test]
fn request_retrying_while_redis_restarts_is_counted_once() {
    let dir = temp_dir();
    let mut redis = Redis::start(dir.path());
    let port = redis.port;
    let app = start_app(&redis.url(), &["--redis-timeout", "8s"]);
    let before = count_of(&visit(&app.addr, None).expect("answer"));

    crash(&mut redis.proc);
    std::thread::scope(|s| {
        let pending = s.spawn(|| visit(&app.addr, Some("across-restart")));
        app.proc
            .wait_output("redis attempt failed", Duration::from_secs(5));
        let redis = Redis::start_on(dir.path(), port);
        let resp = pending.join().expect("thread").expect("answer");
        assert_eq!(
            count_of(&resp),
            before + 1,
            "acknowledged write survived (AOF) and counted once"
        );
        // The same id again (a proxy retry) does not count twice.
        assert_eq!(
            count_of(&visit(&app.addr, Some("across-restart")).expect("answer")),
            before + 1
        );
        assert_eq!(stored_count(redis.port), before + 1);
    });
}

#[test]
fn frozen_redis_gives_503_at_the_deadline_not_a_hang_and_recovers() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let app = start_app(&redis.url(), &["--redis-timeout", "1s"]);
    let before = count_of(&visit(&app.addr, None).expect("answer"));

    // SIGSTOP: the socket stays open but nothing answers (worse than a crash).
    redis.proc.signal(libc::SIGSTOP);
    let (resp, took) = timed(|| visit(&app.addr, Some("frozen-1")));
    let resp = resp.expect("an answer, not a hang");
    redis.proc.signal(libc::SIGCONT);
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert!(
        took < Duration::from_millis(2000),
        "deadline 1s overrun: {took:?}"
    );

    // Once Redis thaws the app counts again. The frozen request may or may not have
    // reached Redis before the deadline (it was answered 503 either way); a retry of
    // the same id returns whatever was stored, and counts at most once.
    let again = wait_for("visits counted again", Duration::from_secs(10), || {
        visit(&app.addr, Some("frozen-1")).filter(|r| r.status == 200)
    });
    let n = count_of(&again);
    assert_eq!(n, before + 1, "counted exactly once");
    assert_eq!(stored_count(redis.port), before + 1);
}
