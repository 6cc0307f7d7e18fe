//! Upstream response framing: a body delimited by the end of the connection is
//! relayed whole, a body cut short is never passed off as complete, and a
//! connection is reused only when the response said it may be.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{get, read_response};
use crate::proxy_util::{start_proxy, Upstream};

#[test]
fn proxy_relays_a_body_that_ends_with_the_connection() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1"]);
    let r = get(&addr, "/until-close", &[]).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body until close");
    assert_eq!(r.header("x-upstream"), Some("yes"));
    // That connection is gone; the next request needs and gets a new one.
    assert_eq!(get(&addr, "/next", &[]).expect("response").status, 200);
    assert_eq!(up.connections(), 2);
}

#[test]
fn proxy_never_completes_a_truncated_body() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1"]);
    let mut c = TcpStream::connect(&addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /truncated HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut out = Vec::new();
    // Ends (the proxy closes the client connection) instead of hanging or
    // padding the body: the client can tell the response is incomplete.
    c.read_to_end(&mut out)
        .expect("the proxy closes the connection");
    // hyper may not flush the head before the body fails; either way the
    // client never holds a response that looks complete.
    let text = String::from_utf8_lossy(&out);
    if !text.is_empty() {
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let body = &text[text.find("\r\n\r\n").expect("a head") + 4..];
        assert!(body.len() < 100, "a truncated body was completed: {text}");
    }
    // The broken upstream connection was not pooled.
    assert_eq!(get(&addr, "/after", &[]).expect("response").status, 200);
    assert_eq!(up.connections(), 2);
}

#[test]
fn proxy_does_not_reuse_an_http10_upstream_connection() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1"]);
    for _ in 0..2 {
        let r = get(&addr, "/http10", &[]).expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, "http10"));
    }
    assert_eq!(up.connections(), 2);
}

#[test]
fn proxy_keeps_the_client_connection_across_head_and_get() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1"]);
    let mut c = TcpStream::connect(&addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // HEAD: the upstream's Content-Length describes a body that is not sent.
    c.write_all(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).expect("read head"), 1, "closed early");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 2"), "{head}");
    c.write_all(b"GET /g HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let r = read_response(&mut c).expect("GET answered on the same connection");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(
        up.connections(),
        1,
        "the upstream connection was not reused"
    );
}
