//! Connections opened at once are spread evenly over the proxy's worker
//! threads, not left on whichever thread woke first.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::proxy_util::{start_proxy, status_of, Upstream};

const CONNECTIONS: usize = 24;

#[test]
fn simultaneous_connections_are_spread_over_workers() {
    let up = Upstream::start();
    let (_proxy, addr) = start_proxy(&[up.addr()], &["--workers", "2"]);
    // Every connection is accepted (and given to a worker) before any request.
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(&addr).expect("connect to proxy"))
        .collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!("GET /c{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        c.write_all(req.as_bytes()).expect("send request");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        assert_eq!(status_of(&out), Some(200), "connection {i}");
    }
    // The proxy's request id names the worker: PREFIX-WWWW-COUNTER.
    let mut per_worker: HashMap<String, usize> = HashMap::new();
    for seen in up.seen() {
        let id = seen
            .header("x-request-id")
            .expect("proxy sets X-Request-Id");
        let worker = id.split('-').nth(1).expect("worker field").to_string();
        *per_worker.entry(worker).or_default() += 1;
    }
    assert_eq!(per_worker.values().sum::<usize>(), CONNECTIONS);
    assert_eq!(
        per_worker.len(),
        2,
        "one worker served everything: {per_worker:?}"
    );
    // Handed off once a worker is two ahead; allow some slack for two workers
    // accepting at the same instant.
    assert!(
        per_worker.values().all(|&n| n >= CONNECTIONS / 2 - 3),
        "uneven spread: {per_worker:?}"
    );
}
