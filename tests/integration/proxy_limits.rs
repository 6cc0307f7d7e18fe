//! Production hygiene: every limit answers with its status code, and request
//! smuggling vectors are refused with 400 before anything reaches the upstream.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::proxy_util::{raw_exchange, start_proxy, status_of, Upstream};

const T: Duration = Duration::from_secs(10);

fn status(addr: &str, req: &[u8]) -> Option<u16> {
    status_of(&raw_exchange(addr, req, T))
}

#[test]
fn proxy_limits_request_line_headers_and_body() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--max-body", "1000"]);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    assert_eq!(status(&addr, long_uri.as_bytes()), Some(414));

    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    assert_eq!(status(&addr, big_header.as_bytes()), Some(431));

    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(status(&addr, many.as_bytes()), Some(431));

    let mut section = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..8 {
        section.push_str(&format!("X-S{i}: {}\r\n", "s".repeat(5000)));
    }
    section.push_str("\r\n");
    assert_eq!(status(&addr, section.as_bytes()), Some(431));

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(100_000)
    );
    assert_eq!(status(&addr, huge.as_bytes()), Some(431));

    // Declared too large: refused before reading.
    assert_eq!(
        status(
            &addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
        ),
        Some(413)
    );
    // Chunked, discovered too large while reading.
    let mut chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(format!("1f4\r\n{}\r\n", "c".repeat(500)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(status(&addr, &chunked), Some(413));
    assert!(
        up.seen().is_empty(),
        "a refused request reached the upstream: {:?}",
        up.seen()
    );
}

#[test]
fn proxy_refuses_smuggling_vectors_with_400() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &[]);
    let cases: [&[u8]; 5] = [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    ];
    for (i, req) in cases.iter().enumerate() {
        let out = raw_exchange(&addr, req, T);
        assert_eq!(
            status_of(&out),
            Some(400),
            "case {i}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    // The second request on a connection is checked too (framing is followed).
    let out = raw_exchange(
        &addr,
        b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        T,
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    assert_eq!(up.seen().len(), 1, "{:?}", up.seen());
    assert_eq!(up.seen()[0].path, "/first");
}

#[test]
fn proxy_times_out_slow_headers_and_slow_bodies() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(
        &[up.addr()],
        &["--header-timeout", "300ms", "--body-timeout", "300ms"],
    );
    // Slowloris: a head that never ends is cut (hyper closes; no request forwarded).
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(t0.elapsed() < Duration::from_secs(5), "slow head not cut");
    assert!(
        out.is_empty() || status_of(&out) == Some(408),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // An idle keep-alive connection is closed by the same timer.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = crate::harness::read_response(&mut s).expect("first response");
    assert_eq!(r.status, 200);
    let t0 = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.is_empty() && t0.elapsed() < Duration::from_secs(5),
        "idle connection kept"
    );
    // A body that stalls gets 408.
    let out = raw_exchange(
        &addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        T,
    );
    assert_eq!(
        status_of(&out),
        Some(408),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(
        up.seen().len(),
        1,
        "only /idle reaches the upstream: {:?}",
        up.seen()
    );
}

#[test]
fn a_slow_streamed_upload_is_not_an_upstream_timeout() {
    let up = Upstream::start();
    // Bodies over 1 KiB are streamed; the upstream gets 500 ms per wait.
    let (_proxy, addr) = start_proxy(
        &[up.addr()],
        &[
            "--upstream-timeout",
            "500ms",
            "--retry-buffer",
            "1024",
            "--body-timeout",
            "5s",
        ],
    );
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4096\r\n\r\n",
    )
    .unwrap();
    // A slow client: 4 pieces, 1.2 s in all, longer than the upstream timeout
    // but never pausing longer than the body timeout.
    for piece in 0..4u8 {
        s.write_all(&[b'a' + piece; 1024]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let r = crate::harness::read_response(&mut s).expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body.len(), 4096);
    assert_eq!(up.count_path("/upload"), 1);
}
