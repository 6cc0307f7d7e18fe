//! Raw bytes on both sides of the proxy: an upstream that records exactly the
//! bytes it receives and answers with scripted bytes, and a client that reads
//! responses strictly enough to tell a complete answer from a cut one.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the raw upstream answers to each request.
#[derive(Debug, Clone)]
pub enum Script {
    /// These bytes; the connection stays open for the next request.
    Reply(Vec<u8>),
    /// These bytes, then the connection is closed.
    ReplyClose(Vec<u8>),
    /// These pieces, with a pause between two (so the proxy has answered the
    /// client's head before the later pieces arrive); then kept open.
    Pieces(Vec<Vec<u8>>),
    /// Nothing: the connection is closed at once.
    Close,
}

struct Shared {
    script: Mutex<Script>,
    received: Mutex<Vec<u8>>,
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// The scripted upstream (threads; its listener lives as long as the test).
pub struct RawUpstream {
    pub port: u16,
    shared: Arc<Shared>,
}

/// Pause between two [`Script::Pieces`].
pub const PIECE_PAUSE: Duration = Duration::from_millis(300);

impl RawUpstream {
    pub fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw upstream");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Shared {
            script: Mutex::new(Script::Reply(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            )),
            received: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                std::thread::spawn(move || serve(stream, s));
            }
        });
        RawUpstream { port, shared }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sets the answer for the requests that follow, and forgets what was received.
    pub fn script(&self, s: Script) {
        *self.shared.script.lock().unwrap() = s;
        self.shared.received.lock().unwrap().clear();
    }

    /// Every byte received since the last [`RawUpstream::script`].
    pub fn received(&self) -> Vec<u8> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request as the proxy frames it (it always sends a length or
/// chunked); returns its raw bytes, or `None` at the end of the connection.
fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(pending, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let chunked = head.contains("\r\ntransfer-encoding: chunked\r\n");
    let mut need = |pending: &mut Vec<u8>, len: usize| -> Option<()> {
        while pending.len() < len {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            pending.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    let end = if chunked {
        loop {
            if let Some(i) = find(&pending[head_end..], b"0\r\n\r\n") {
                break head_end + i + 5;
            }
            let len = pending.len() + 1;
            need(pending, len)?;
        }
    } else {
        need(pending, head_end + length)?;
        head_end + length
    };
    Some(pending.drain(..end).collect())
}

fn serve(mut stream: TcpStream, s: Arc<Shared>) {
    let mut pending = Vec::new();
    while let Some(req) = read_request(&mut stream, &mut pending) {
        s.received.lock().unwrap().extend_from_slice(&req);
        s.requests.fetch_add(1, Ordering::SeqCst);
        let script = s.script.lock().unwrap().clone();
        match script {
            Script::Reply(b) => {
                if stream.write_all(&b).is_err() {
                    return;
                }
            }
            Script::ReplyClose(b) => {
                let _ = stream.write_all(&b);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Script::Pieces(pieces) => {
                for (k, p) in pieces.iter().enumerate() {
                    if k > 0 {
                        // The scripted peer's own timing, not a wait on a condition.
                        std::thread::sleep(PIECE_PAUSE);
                    }
                    if stream.write_all(p).is_err() {
                        return;
                    }
                }
            }
            Script::Close => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// One response as the client got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A complete response (interim 1xx ones skipped).
    Complete { status: u16, body: Vec<u8> },
    /// The connection ended (closed or reset) before a complete response;
    /// `head`: the status of a head that did arrive.
    Cut { head: Option<u16> },
    /// Nothing within the read timeout (the proxy neither answered nor closed).
    Hung,
}

/// Reads responses off a client connection, keeping every raw byte.
pub struct Client {
    pub stream: TcpStream,
    pub raw: Vec<u8>,
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    pub fn connect(addr: &str, timeout: Duration) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to proxy");
        stream.set_read_timeout(Some(timeout)).unwrap();
        stream.set_write_timeout(Some(timeout)).unwrap();
        Client {
            stream,
            raw: Vec::new(),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Reads more; `Ok(false)` at the end of the connection, `Err` on timeout.
    fn fill(&mut self) -> Result<bool, ()> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.raw.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(()),
            Err(_) => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// The next response (`head_request`: its body is not sent).
    pub fn next(&mut self, head_request: bool) -> Got {
        loop {
            let head_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                    break i + 4;
                }
                match self.fill() {
                    Ok(true) => {}
                    Ok(false) => return Got::Cut { head: None },
                    Err(()) => return Got::Hung,
                }
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            self.buf.drain(..head_end);
            if (100..200).contains(&status) {
                continue;
            }
            let field = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let cut = Got::Cut { head: Some(status) };
            if head_request || status == 204 || status == 304 {
                return Got::Complete {
                    status,
                    body: Vec::new(),
                };
            }
            if field("transfer-encoding:").is_some_and(|v| v == "chunked") {
                let mut body = Vec::new();
                loop {
                    let line_end = loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            break i;
                        }
                        match self.fill() {
                            Ok(true) => {}
                            Ok(false) => return cut,
                            Err(()) => return Got::Hung,
                        }
                    };
                    let size = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                    let Ok(n) =
                        usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    else {
                        return cut;
                    };
                    self.buf.drain(..line_end + 2);
                    if n == 0 {
                        // Trailers up to the empty line.
                        loop {
                            if let Some(i) = find(&self.buf, b"\r\n") {
                                let empty = i == 0;
                                self.buf.drain(..i + 2);
                                if empty {
                                    return Got::Complete { status, body };
                                }
                                continue;
                            }
                            match self.fill() {
                                Ok(true) => {}
                                Ok(false) => return cut,
                                Err(()) => return Got::Hung,
                            }
                        }
                    }
                    while self.buf.len() < n + 2 {
                        match self.fill() {
                            Ok(true) => {}
                            Ok(false) => return cut,
                            Err(()) => return Got::Hung,
                        }
                    }
                    body.extend_from_slice(&self.buf[..n]);
                    self.buf.drain(..n + 2);
                }
            }
            if let Some(len) = field("content-length:") {
                let Ok(n) = len.parse::<usize>() else {
                    return cut;
                };
                while self.buf.len() < n {
                    match self.fill() {
                        Ok(true) => {}
                        Ok(false) => return cut,
                        Err(()) => return Got::Hung,
                    }
                }
                let body = self.buf.drain(..n).collect();
                return Got::Complete { status, body };
            }
            // Delimited by the end of the connection.
            loop {
                match self.fill() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(()) => return Got::Hung,
                }
            }
            let body = std::mem::take(&mut self.buf);
            return Got::Complete { status, body };
        }
    }

    /// Whether the proxy has closed the connection (reads to the end).
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return true,
                Err(()) => return false,
            }
        }
        false
    }
}
