//! Request-smuggling guard: a byte scanner in front of hyper's parser.
//!
//! hyper, given both `Content-Length` and `Transfer-Encoding`, silently drops the
//! length, lets chunked framing win and closes the connection afterwards: the
//! request still reaches the service, with no trace of the conflict. To answer
//! `400` as nginx does, [`ScanIo`] watches the bytes hyper reads, follows request
//! framing (head lines, `Content-Length` bodies, chunked bodies) and records the
//! index of the first head carrying both headers. The service compares it with
//! the index of the request it is handling.
//!
//! When the scanner cannot follow the framing (anything hyper would reject
//! anyway) it switches itself off: hyper's own handling remains.
//! Differing duplicate `Content-Length`s and bad chunking are rejected by hyper
//! (parse error → 400, body decode error → 400 in [`super::body`]).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::{leading_hex, parse_decimal};

const LINE_CAP: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    Off,
}

/// Follows request framing over a byte stream.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    line: [u8; LINE_CAP],
    stored: usize,
    total: usize,
    seen_request_line: bool,
    cl: Option<u64>,
    cl_bad: bool,
    te: bool,
    heads: u64,
    flagged: Option<u64>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Head,
            line: [0; LINE_CAP],
            stored: 0,
            total: 0,
            seen_request_line: false,
            cl: None,
            cl_bad: false,
            te: false,
            heads: 0,
            flagged: None,
        }
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

impl Scanner {
    /// Index (0-based, per connection) of the first request head that carried both
    /// `Content-Length` and `Transfer-Encoding`.
    pub fn flagged(&self) -> Option<u64> {
        self.flagged
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Off => return,
                State::Body(n) | State::ChunkData(n) => {
                    let k = (n as usize).min(data.len());
                    data = &data[k..];
                    let left = n - k as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkEnd,
                        (_, l) => State::ChunkData(l),
                    };
                }
                State::Head | State::ChunkSize | State::ChunkEnd | State::Trailer => {
                    let (part, rest, done) = match data.iter().position(|&c| c == b'\n') {
                        Some(p) => (&data[..p], &data[p + 1..], true),
                        None => (data, &data[data.len()..], false),
                    };
                    let room = LINE_CAP - self.stored;
                    let k = room.min(part.len());
                    self.line[self.stored..self.stored + k].copy_from_slice(&part[..k]);
                    self.stored += k;
                    self.total += part.len();
                    data = rest;
                    if done {
                        self.end_line();
                        self.stored = 0;
                        self.total = 0;
                    }
                }
            }
        }
    }

    fn end_line(&mut self) {
        let mut len = self.total;
        if self.stored == self.total && self.stored > 0 && self.line[self.stored - 1] == b'\r' {
            len -= 1;
        }
        let line = &self.line[..self.stored.min(len)];
        let complete = self.stored >= len;
        match self.state {
            State::Head if len == 0 => {
                if !self.seen_request_line {
                    return; // tolerated empty lines before a request line
                }
                let next = if self.te && self.cl.is_some() {
                    self.flagged.get_or_insert(self.heads);
                    State::Off
                } else if self.cl_bad {
                    State::Off
                } else if self.te {
                    State::ChunkSize
                } else {
                    match self.cl {
                        Some(n) if n > 0 => State::Body(n),
                        _ => State::Head,
                    }
                };
                self.heads += 1;
                self.seen_request_line = false;
                self.cl = None;
                self.cl_bad = false;
                self.te = false;
                self.state = next;
            }
            State::Head if !self.seen_request_line => self.seen_request_line = true,
            State::Head => {
                let Some(colon) = line.iter().position(|&c| c == b':') else {
                    return;
                };
                let name = &line[..colon];
                if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    self.te = true;
                } else if name.eq_ignore_ascii_case(b"content-length") {
                    match parse_decimal(trim(&line[colon + 1..])).filter(|_| complete) {
                        Some(n) => self.cl = Some(n),
                        None => self.cl_bad = true,
                    }
                }
            }
            State::ChunkSize => {
                self.state = match leading_hex(line).map(|(size, _)| size) {
                    Some(0) => State::Trailer,
                    Some(n) => State::ChunkData(n),
                    None => State::Off,
                }
            }
            State::ChunkEnd => {
                self.state = if len == 0 {
                    State::ChunkSize
                } else {
                    State::Off
                };
            }
            State::Trailer if len == 0 => self.state = State::Head,
            State::Trailer => {}
            State::Body(_) | State::ChunkData(_) | State::Off => {}
        }
    }
}

/// A connection whose incoming bytes are fed to a shared [`Scanner`].
pub struct ScanIo<T> {
    inner: T,
    scanner: Rc<RefCell<Scanner>>,
}

impl<T> ScanIo<T> {
    pub fn new(inner: T, scanner: Rc<RefCell<Scanner>>) -> Self {
        ScanIo { inner, scanner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ScanIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let fresh = &buf.filled()[before..];
            if !fresh.is_empty() {
                this.scanner.borrow_mut().feed(fresh);
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ScanIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Scanner {
        let mut s = Scanner::default();
        for c in chunks {
            s.feed(c);
        }
        s
    }

    #[test]
    fn flags_cl_and_te_in_either_order() {
        let a =
            scan(&[b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"]);
        assert_eq!(a.flagged(), Some(0));
        let b =
            scan(&[b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n"]);
        assert_eq!(b.flagged(), Some(0));
    }

    #[test]
    fn follows_bodies_across_requests_and_splits() {
        let stream: &[u8] = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
GET /c HTTP/1.1\r\nHost: x\r\n\r\n\
POST /d HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for split in [1usize, 2, 7, 64, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(split).collect();
            assert_eq!(scan(&chunks).flagged(), Some(3), "split {split}");
        }
    }

    #[test]
    fn plain_requests_are_not_flagged() {
        let s = scan(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n"]);
        assert_eq!(s.flagged(), None);
        assert_eq!(s.heads, 2);
    }
}
