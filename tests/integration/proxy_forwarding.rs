//! The proxy relays requests and responses faithfully: end-to-end headers and
//! bodies pass, hop-by-hop headers are stripped both ways, `X-Forwarded-*` and
//! `X-Request-Id` are set, connections are reused on both sides.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{get, raw_request, read_response, wait_for};
use crate::proxy_util::{raw_exchange, start_proxy, status_of, Upstream};

#[test]
fn proxy_forwards_headers_and_strips_hop_by_hop_both_ways() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let resp = get(
        &addr,
        "/hello?x=1",
        &[
            ("X-Custom", "kept"),
            ("Keep-Alive", "timeout=9"),
            ("Proxy-Authorization", "Basic abc"),
            ("TE", "trailers"),
            ("X-Secret", "named by connection"),
            ("Connection", "X-Secret"),
            ("Upgrade", "websocket"),
        ],
    )
    .expect("response");
    assert_eq!(resp.status, 200);
    // Response side: upstream's hop-by-hop headers are gone, others kept.
    assert_eq!(resp.header("x-upstream"), Some("yes"));
    for h in ["keep-alive", "x-hop", "proxy-authenticate"] {
        assert!(
            resp.header(h).is_none(),
            "{h} leaked to the client: {:?}",
            resp.headers
        );
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.path, "/hello?x=1");
    assert_eq!(r.header("x-custom"), Some("kept"));
    for h in [
        "keep-alive",
        "proxy-authorization",
        "te",
        "x-secret",
        "upgrade",
    ] {
        assert!(
            r.header(h).is_none(),
            "{h} reached the upstream: {:?}",
            r.headers
        );
    }
    assert_eq!(r.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(r.header("x-forwarded-proto"), Some("http"));
    assert_eq!(r.header("x-forwarded-host"), Some(addr.as_str()));
    assert_eq!(r.header("host"), Some(addr.as_str()));
    assert!(
        r.header("x-request-id").is_some_and(|v| v.len() >= 16),
        "{:?}",
        r.headers
    );
}

#[test]
fn proxy_appends_forwarded_for_and_keeps_a_client_request_id() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let resp = get(
        &addr,
        "/",
        &[("X-Forwarded-For", "10.0.0.1"), ("X-Request-Id", "abc-123")],
    );
    assert_eq!(resp.expect("response").status, 200);
    let seen = up.seen();
    assert_eq!(
        seen[0].header("x-forwarded-for"),
        Some("10.0.0.1, 127.0.0.1")
    );
    assert_eq!(seen[0].header("x-request-id"), Some("abc-123"));
    // Two requests without an id get two different ids.
    get(&addr, "/a", &[]).expect("a");
    get(&addr, "/b", &[]).expect("b");
    let ids: Vec<String> = up.seen()[1..]
        .iter()
        .map(|r| r.header("x-request-id").unwrap().to_string())
        .collect();
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn proxy_adds_via_only_when_asked() {
    let up = Upstream::start();
    let (_plain, plain) = start_proxy(&[up.addr()], &[]);
    let resp = get(&plain, "/plain", &[]).expect("response");
    assert!(resp.header("via").is_none(), "{:?}", resp.headers);
    assert!(up.seen()[0].header("via").is_none());

    let (_named, named) = start_proxy(&[up.addr()], &["--via", "edge-1"]);
    let resp = get(&named, "/named", &[("Via", "1.0 corp-proxy")]).expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("via"), Some("1.1 edge-1"));
    assert_eq!(
        up.seen()[1].header("via"),
        Some("1.0 corp-proxy, 1.1 edge-1")
    );
}

#[test]
fn proxy_forwards_bodies_content_length_chunked_and_large() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let t = Duration::from_secs(10);
    // Content-Length body, echoed back.
    let r = raw_request(
        &addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        t,
    )
    .expect("cl response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    // Chunked request body: the upstream receives the decoded body.
    let r = raw_request(
        &addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
        t,
    )
    .expect("chunked response");
    assert_eq!((r.status, r.text().as_str()), (200, "abcdefg"));
    assert_eq!(up.seen()[1].body, b"abcdefg");
    assert!(
        up.seen()[1].header("transfer-encoding").is_none()
            || up.seen()[1].header("content-length").is_none()
    );
    // Chunked response from the upstream.
    let r = get(&addr, "/chunked", &[]).expect("chunked upstream response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    // A body larger than the replay buffer is streamed through intact.
    let big: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut req = format!(
        "PUT /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    req.extend_from_slice(&big);
    let r = raw_request(&addr, &req, t).expect("big response");
    assert_eq!(r.status, 200);
    assert!(
        r.body == big,
        "large body altered ({} bytes back)",
        r.body.len()
    );
}

#[test]
fn proxy_reuses_connections_on_both_sides() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..5 {
        write!(s, "GET /k{i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_response(&mut s).expect("keep-alive response");
        assert_eq!(r.status, 200);
    }
    assert_eq!(up.count_path("/k4"), 1);
    assert_eq!(
        up.connections(),
        1,
        "the proxy opened more than one upstream connection"
    );
}

#[test]
fn proxy_serves_http10_clients() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let out = raw_exchange(&addr, b"GET /old HTTP/1.0\r\n\r\n", Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&out), Some(200), "{text}");
    assert!(text.ends_with("ok"), "{text}");
    wait_for("upstream saw /old", Duration::from_secs(5), || {
        (up.count_path("/old") == 1).then_some(())
    });
    // The upstream still got an HTTP/1.1 request with a Host.
    assert!(up.seen()[0].header("host").is_some());
}
