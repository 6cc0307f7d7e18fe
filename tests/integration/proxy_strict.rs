//! What the conformance corpus cannot show one request at a time: which
//! upstream connections are reused, time bounds on stalled peers (and on the
//! drain), the lingering close, and what the access log says was answered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::wait_for;
use crate::proxy_raw_util::{Client, Got, RawUpstream, Script};
use crate::proxy_util::start_proxy;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

fn answer(head: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 200 OK\r\n{head}\r\n").into_bytes();
    v.extend_from_slice(body);
    v
}

fn one(addr: &str, req: &[u8]) -> Got {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    c.stream.write_all(req).expect("send");
    c.next(false)
}

/// RFC 9112 §6.3: a response with both Content-Length and Transfer-Encoding
/// is read as chunked and its connection closed afterwards (it may be a
/// smuggling attempt by whatever sits behind the upstream).
#[test]
fn a_response_with_length_and_chunking_closes_its_upstream_connection() {
    let up = RawUpstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1"]);
    up.script(Script::Reply(answer(
        "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
    )));
    assert_eq!(
        one(&addr, GET),
        Got::Complete {
            status: 200,
            body: b"hello".to_vec()
        }
    );
    up.script(Script::Reply(answer("Content-Length: 2\r\n", b"ok")));
    for _ in 0..2 {
        assert!(matches!(one(&addr, GET), Got::Complete { status: 200, .. }));
    }
    // The first connection was not reused; the plain answer's one was.
    assert_eq!(up.connections(), 2);
}

/// A 101 answer switches protocols: that connection never serves another
/// request (the client gets 502: the proxy does not tunnel).
#[test]
fn a_switching_answer_never_returns_its_connection_to_the_pool() {
    let up = RawUpstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1"]);
    up.script(Script::Reply(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n".to_vec(),
    ));
    assert!(matches!(one(&addr, GET), Got::Complete { status: 502, .. }));
    up.script(Script::Reply(answer("Content-Length: 2\r\n", b"ok")));
    assert!(matches!(one(&addr, GET), Got::Complete { status: 200, .. }));
    assert_eq!(up.connections(), 2);
}

/// An upstream that stops inside a body: the client's answer is cut after
/// `--upstream-timeout` of silence, and a SIGTERM drain does not wait out
/// `--drain-timeout` for it.
#[test]
fn a_stalled_upstream_body_is_cut_and_does_not_hold_the_drain() {
    let up = RawUpstream::start();
    let (mut proxy, addr) = start_proxy(
        &[up.addr()],
        &[
            "--workers",
            "1",
            "--upstream-timeout",
            "1s",
            "--drain-timeout",
            "60s",
        ],
    );
    up.script(Script::Pieces(vec![answer(
        "Content-Length: 10\r\n",
        b"01",
    )]));
    let mut c = Client::connect(&addr, Duration::from_secs(20));
    c.stream.write_all(GET).expect("send");
    wait_for(
        "the request to reach the upstream",
        Duration::from_secs(10),
        || (up.requests() == 1).then_some(()),
    );
    let start = Instant::now();
    proxy.signal(libc::SIGTERM);
    assert_eq!(c.next(false), Got::Cut { head: Some(200) });
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let log = proxy.output();
    assert!(log.contains("upstream stalled inside the body"), "{log}");
}

/// A client that stops reading a large answer is dropped after
/// `--send-timeout`, and its log line says the answer was cut.
#[test]
fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let up = RawUpstream::start();
    let (proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1", "--send-timeout", "1s"]);
    let body = vec![b'x'; 64 << 20];
    up.script(Script::Reply(answer(
        &format!("Content-Length: {}\r\n", body.len()),
        &body,
    )));
    let mut c = TcpStream::connect(&addr).expect("connect");
    c.write_all(GET).expect("send");
    // Never read: socket buffers fill, the proxy's writes stall.
    proxy.wait_output("client gone before the end", Duration::from_secs(30));
    drop(c);
}

/// After an error answer to a request whose body is still arriving, the
/// proxy reads and discards it (lingering close) so a client that sends its
/// whole request before reading (as most do) can finish sending and then
/// read the answer, instead of having its writes reset.
#[test]
fn an_error_answer_reaches_a_client_still_sending_its_body() {
    let up = RawUpstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1", "--max-body", "1000"]);
    let size = 8 << 20;
    // Refused by the proxy (413), by hyper's parser (400), by the proxy's
    // request rules (501).
    let heads = [
        (
            format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\n\r\n"),
            "413",
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n".to_string(),
            "400",
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_string(),
            "501",
        ),
    ];
    for (head, status) in heads {
        let mut c = TcpStream::connect(&addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(head.as_bytes()).expect("send head");
        let chunk = vec![b'y'; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            if let Err(e) = c.write_all(&chunk) {
                panic!("{status}: the proxy reset the connection after {sent} body bytes: {e}");
            }
            sent += chunk.len();
        }
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "got {text:?}"
        );
    }
    assert_eq!(up.requests(), 0);
}

/// The access log records what the client got: a framing error found before
/// the head was answered is logged as the 502 it became; one found after is
/// logged as aborted.
#[test]
fn the_access_log_records_what_the_client_got() {
    let up = RawUpstream::start();
    let (proxy, addr) = start_proxy(&[up.addr()], &["--workers", "1"]);
    up.script(Script::Reply(answer(
        "Transfer-Encoding: chunked\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
    )));
    assert!(matches!(
        one(&addr, b"GET /early HTTP/1.1\r\nHost: a\r\n\r\n"),
        Got::Complete { status: 502, .. }
    ));
    up.script(Script::Pieces(vec![
        answer("Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n"),
        b"0x5\r\nworld\r\n0\r\n\r\n".to_vec(),
    ]));
    assert!(matches!(
        one(&addr, b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n"),
        Got::Cut { .. }
    ));
    proxy.wait_output("path=\"/late\"", Duration::from_secs(10));
    let log = proxy.output();
    let line = |path: &str| {
        log.lines()
            .find(|l| l.contains(&format!("path=\"{path}\"")))
            .unwrap_or_else(|| panic!("no access line for {path}: {log}"))
            .to_string()
    };
    assert!(line("/early").contains("status=502"), "{}", line("/early"));
    assert!(line("/late").contains("aborted="), "{}", line("/late"));
}
