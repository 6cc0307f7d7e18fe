//! Only what is safe is retried: a POST reset after it was sent is never sent
//! twice (502); a keyed GET is replayed once and succeeds.

use std::time::Duration;

use crate::harness::{get, raw_request};
use crate::proxy_util::{start_proxy, Upstream};

#[test]
fn proxy_never_sends_a_post_twice() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let r = raw_request(
        &addr,
        b"POST /reset-once HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: post-1\r\n\
          Content-Length: 7\r\n\r\npayload",
        Duration::from_secs(10),
    )
    .expect("response");
    assert_eq!(r.status, 502);
    assert_eq!(up.count_path("/reset-once"), 1, "the POST was sent again");
    assert_eq!(up.seen()[0].body, b"payload");
}

#[test]
fn proxy_replays_a_keyed_get_once() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let r = get(&addr, "/reset-once", &[("X-Request-Id", "get-1")]).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-times"), Some("2"));
    assert_eq!(up.count_path("/reset-once"), 2);
    // Without a client id the proxy's own key makes it replayable too, with the same id.
    let r = get(&addr, "/reset-once", &[]).expect("response");
    assert_eq!(r.status, 200);
    let seen = up.seen();
    let ids: Vec<_> = seen[2..]
        .iter()
        .map(|s| s.header("x-request-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[0], ids[1],
        "a replay must carry the same idempotency key"
    );
}

#[test]
fn proxy_replays_a_get_at_most_once() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let r = get(&addr, "/reset", &[("X-Request-Id", "get-2")]).expect("response");
    assert_eq!(r.status, 502);
    assert_eq!(up.count_path("/reset"), 2);
}

#[test]
fn a_replayed_put_carries_its_whole_body() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    // Buffered for replay (≤ 64 KiB) but too large to go out with the head.
    let body: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut req = format!(
        "PUT /reset-once HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: put-1\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = raw_request(&addr, &req, Duration::from_secs(10)).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(up.count_path("/reset-once"), 2);
    for (attempt, seen) in up.seen().iter().enumerate() {
        assert_eq!(seen.body.len(), body.len(), "attempt {attempt}");
        assert!(seen.body == body, "attempt {attempt}: body differs");
    }
    assert_eq!(r.body, body);
}
