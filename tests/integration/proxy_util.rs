//! Helpers for the proxy tests: a tiny HTTP/1.1 upstream in threads that records
//! every request, and a way to start the real proxy in front of it.
//!
//! The upstream's behaviour is chosen by path:
//! - `/reset` reads the whole request, then resets the connection (no answer);
//! - `/reset-once` does that the first time it sees an `X-Request-Id`, then answers;
//! - `/slow?ms=N` answers after N ms;
//! - `/chunked` answers with a chunked body;
//! - anything else answers 200 with the request body (or `ok`) and a few
//!   hop-by-hop headers that the proxy must strip.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{free_port, selfheal, wait_for, Proc};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::common::find_header(&self.headers, name)
    }
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    ids: Mutex<HashMap<String, usize>>,
    connections: AtomicUsize,
    stopped: AtomicBool,
    open: Mutex<Vec<(usize, TcpStream)>>,
}

/// The test upstream; stopped (listener and every connection closed) on drop.
pub struct Upstream {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Upstream {
    pub fn start() -> Upstream {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Upstream {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind test upstream");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = s.connections.fetch_add(1, Ordering::SeqCst);
                if let Ok(c) = stream.try_clone() {
                    s.open.lock().unwrap().push((id, c));
                }
                let s = s.clone();
                std::thread::spawn(move || serve(id, stream, s));
            }
        });
        Upstream { port, shared }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests received with this path.
    pub fn count_path(&self, path: &str) -> usize {
        self.seen().iter().filter(|r| r.path == path).count()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Closes the listener and every open connection.
    pub fn stop(&self) {
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop so that it sees `stopped` and drops the listener.
        let _ = TcpStream::connect(self.addr());
        for (_, c) in self.shared.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        wait_for(
            "test upstream to stop listening",
            Duration::from_secs(5),
            || TcpStream::connect(self.addr()).is_err().then_some(()),
        );
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resets the connection (RST, not FIN) by closing with SO_LINGER 0.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a descriptor we own, with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let find = |n: &str| crate::common::find_header(&headers, n);
    let mut body = Vec::new();
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body).ok()?;
    } else if find("transfer-encoding").is_some() {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

fn serve(conn_id: usize, stream: TcpStream, s: Arc<Shared>) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut w = write_half;
    let mut r = BufReader::new(stream);
    while let Some(req) = read_request(&mut r) {
        s.seen.lock().unwrap().push(req.clone());
        let id = req.header("x-request-id").unwrap_or("").to_string();
        let times = {
            let mut ids = s.ids.lock().unwrap();
            let n = ids.entry(id).or_insert(0);
            *n += 1;
            *n
        };
        let path = req.path.split('?').next().unwrap_or("");
        if path == "/reset" || (path == "/reset-once" && times == 1) {
            drop(r);
            s.open.lock().unwrap().retain(|(i, _)| *i != conn_id);
            reset(w);
            return;
        }
        if path == "/slow" {
            let ms: u64 = req
                .path
                .split("ms=")
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            std::thread::sleep(Duration::from_millis(ms));
        }
        // Answers that end the connection: the body runs until close, or the
        // upstream dies part-way through a body it announced.
        let last_words: Option<&[u8]> = match path {
            "/until-close" => Some(b"HTTP/1.1 200 OK\r\nX-Upstream: yes\r\n\r\nbody until close"),
            "/truncated" => Some(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
            "/http10" => Some(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhttp10"),
            _ => None,
        };
        if let Some(bytes) = last_words {
            let _ = w.write_all(bytes);
            // Shut down, not drop: `open` holds a clone of this socket.
            let _ = w.shutdown(Shutdown::Both);
            s.open.lock().unwrap().retain(|(i, _)| *i != conn_id);
            return;
        }
        let ok = if path == "/interim" {
            w.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Upstream: yes\r\n\r\nfinal",
            )
        } else if path == "/conflicting-length" {
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello")
        } else if path == "/upgrade" {
            w.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            )
        } else if path == "/chunked" {
            w.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Upstream: yes\r\n\r\n\
                  5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
        } else {
            let body: &[u8] = if req.body.is_empty() {
                b"ok"
            } else {
                &req.body
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Upstream: yes\r\nX-Times: {times}\r\n\
                 Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n\
                 Proxy-Authenticate: Basic\r\n\r\n",
                body.len()
            );
            // HEAD: the same head, no body.
            let body = if req.method == "HEAD" { &b""[..] } else { body };
            w.write_all(head.as_bytes()).and_then(|_| w.write_all(body))
        };
        if ok.is_err() {
            return;
        }
    }
}

/// The real proxy listening on a free port in front of `upstreams`, ready.
pub fn start_proxy(upstreams: &[String], extra: &[&str]) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args: Vec<&str> = vec!["proxy", "--listen", &addr];
    for u in upstreams {
        args.push("--upstream");
        args.push(u);
    }
    args.extend_from_slice(extra);
    let proc = selfheal("proxy", &args);
    proc.wait_output("serving on", Duration::from_secs(20));
    (proc, addr)
}

/// Sends raw bytes and returns everything read until EOF or timeout (None on error
/// before any byte).
pub fn raw_exchange(addr: &str, request: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect to proxy");
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The status code of the first response in `bytes`.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.split_whitespace().nth(1)?.parse().ok()
}
