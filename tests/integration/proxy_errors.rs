//! Each upstream failure maps to its own status, with a short body that does not
//! leak upstream details: 502 (failed after sending, not replayable), 503 with
//! Retry-After (nothing reachable within the hold), 504 (too slow).

use std::time::{Duration, Instant};

use crate::harness::{free_port, get, raw_request};
use crate::proxy_util::{start_proxy, Upstream};

#[test]
fn proxy_answers_502_when_upstream_resets_a_post() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let r = raw_request(
        &addr,
        b"POST /reset HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody",
        Duration::from_secs(10),
    )
    .expect("response");
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("127.0.0.1"), "leaked: {}", r.text());
}

#[test]
fn proxy_answers_503_with_retry_after_when_nothing_listens() {
    let dead = format!("127.0.0.1:{}", free_port());
    let (_proxy, addr) = start_proxy(&[dead], &["--hold-timeout", "300ms"]);
    let t0 = Instant::now();
    let r = get(&addr, "/", &[]).expect("response");
    let held = t0.elapsed();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(held >= Duration::from_millis(250), "not held: {held:?}");
    assert!(held < Duration::from_secs(3), "held too long: {held:?}");
}

#[test]
fn proxy_answers_504_when_upstream_is_too_slow() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--upstream-timeout", "200ms"]);
    let r = get(&addr, "/slow?ms=2000", &[]).expect("response");
    assert_eq!(r.status, 504);
    // Not replayed: a timeout is not proof that nothing happened.
    assert_eq!(up.count_path("/slow?ms=2000"), 1);
}

#[test]
fn proxy_answers_502_for_a_malformed_or_upgraded_response_and_never_replays_it() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    for path in ["/conflicting-length", "/upgrade"] {
        // A keyed GET: replayable after a crash, but not after an answer.
        let r = get(&addr, path, &[("X-Request-Id", path)]).expect("response");
        assert_eq!(r.status, 502, "{path}");
        assert!(!r.text().contains("content-length"), "leaked: {}", r.text());
        assert_eq!(up.count_path(path), 1, "{path} was sent again");
    }
}

#[test]
fn proxy_skips_interim_answers_and_relays_the_final_one() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let r = get(&addr, "/interim", &[]).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "final");
    assert_eq!(r.header("x-upstream"), Some("yes"));
}
