//! Request-smuggling guard: a byte scanner in front of hyper's parser.
//!
//! hyper, given both `Content-Length` and `Transfer-Encoding`, silently drops the
//! length, lets chunked framing win and closes the connection afterwards: the
//! request still reaches the service, with no trace of the conflict. To answer
//! `400` as nginx does, [`super::clientio::ClientIo`] feeds the bytes hyper
//! reads to a [`Scanner`], which follows request framing (head lines,
//! `Content-Length` bodies, chunked bodies) and records the index of the first
//! head carrying both headers. The service compares it with the index of the
//! request it is handling.
//!
//! The scanner never switches itself off. Header lines are parsed byte by byte
//! with no length limit (a `Content-Length` padded with any amount of
//! whitespace is still read), and when it cannot follow the framing (a length
//! it cannot read, a broken chunk) it records the first request it can no
//! longer vouch for: that request and every later one on the connection are
//! refused. hyper rejects all of those inputs itself too; the record only
//! matters if the two parsers ever disagree, and then refusing is the safe side.

use super::framing::{chunk_size, leading_hex};

/// Bytes of a chunk-size or trailer line kept (the size comes first; what
/// follows it is checked by hyper's decoder).
const LINE_CAP: usize = 64;
/// Longest header name the scanner needs to recognise (`transfer-encoding`).
const NAME_CAP: usize = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a request head, at the start of a line.
    LineStart,
    /// In the request line or a header line that does not matter.
    SkipLine,
    /// In a header name (bytes so far in `name`).
    Name,
    /// In the value of `Content-Length`.
    Length(Digits),
    /// In the value of another header.
    Value,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    /// Framing could not be followed; nothing more is read.
    Lost,
}

/// Where a `Content-Length` value parse is: leading whitespace, digits,
/// trailing whitespace (httparse trims the value; hyper wants digits only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digits {
    Lead,
    In(u64),
    Trail(u64),
}

/// Follows request framing over a byte stream.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    line: [u8; LINE_CAP],
    stored: usize,
    name: [u8; NAME_CAP],
    name_len: usize,
    /// A CR seen at the end of what was fed: it ends the line if LF follows
    /// (in a body line: the line ended with CRLF, not a bare LF).
    cr: bool,
    seen_request_line: bool,
    cl: Option<u64>,
    cl_bad: bool,
    te: bool,
    heads: u64,
    flagged: Option<u64>,
    lost: Option<u64>,
    /// The current request line has a `#`.
    fragment: bool,
    /// Index of the first request whose target had a fragment.
    fragment_at: Option<u64>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::LineStart,
            line: [0; LINE_CAP],
            stored: 0,
            name: [0; NAME_CAP],
            name_len: 0,
            cr: false,
            seen_request_line: false,
            cl: None,
            cl_bad: false,
            te: false,
            heads: 0,
            flagged: None,
            lost: None,
            fragment: false,
            fragment_at: None,
        }
    }
}

impl Scanner {
    /// Index (0-based, per connection) of the first request head that carried both
    /// `Content-Length` and `Transfer-Encoding`.
    pub fn flagged(&self) -> Option<u64> {
        self.flagged
    }

    /// Why request `index` of this connection must be refused, if it must:
    /// it carried both `Content-Length` and `Transfer-Encoding`, or it comes
    /// at or after the point where the scanner lost the framing.
    pub fn verdict(&self, index: u64) -> Option<&'static str> {
        if self.flagged == Some(index) {
            Some("content-length with transfer-encoding")
        } else if self.fragment_at == Some(index) {
            // RFC 9112 §3.2: no form of request-target has a fragment; the
            // `http` crate would silently drop it.
            Some("fragment in request-target")
        } else if self.lost.is_some_and(|l| index >= l) {
            Some("request framing could not be followed")
        } else {
            None
        }
    }

    fn lose(&mut self, first_unvouched: u64) {
        self.lost.get_or_insert(first_unvouched);
        self.state = State::Lost;
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while let Some((&c, rest)) = data.split_first() {
            match self.state {
                State::Lost => return,
                State::Body(n) | State::ChunkData(n) => {
                    let k = (n as usize).min(data.len());
                    data = &data[k..];
                    let left = n - k as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::LineStart,
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkEnd,
                        (_, l) => State::ChunkData(l),
                    };
                }
                State::ChunkSize | State::ChunkEnd | State::Trailer => {
                    let (part, rest, done) = match data.iter().position(|&c| c == b'\n') {
                        Some(p) => (&data[..p], &data[p + 1..], true),
                        None => (data, &data[data.len()..], false),
                    };
                    let k = (LINE_CAP - self.stored).min(part.len());
                    self.line[self.stored..self.stored + k].copy_from_slice(&part[..k]);
                    self.stored += k;
                    self.cr = part.last() == Some(&b'\r') || (part.is_empty() && self.cr);
                    data = rest;
                    if done {
                        self.end_body_line();
                        self.stored = 0;
                        self.cr = false;
                    }
                }
                // Most head bytes are in lines or values that do not matter:
                // skip to the line's end (or a `#` in the request line).
                State::SkipLine | State::Value => {
                    let request_line = self.state == State::SkipLine;
                    let stop = data
                        .iter()
                        .position(|&b| b == b'\n' || (request_line && b == b'#'));
                    self.cr = false;
                    match stop {
                        Some(i) if data[i] == b'#' => {
                            self.fragment = true;
                            data = &data[i + 1..];
                        }
                        Some(i) => {
                            data = &data[i + 1..];
                            self.end_head_line();
                        }
                        None => data = &[],
                    }
                }
                _ => {
                    data = rest;
                    self.head_byte(c);
                }
            }
        }
    }

    /// One byte of a request head.
    fn head_byte(&mut self, c: u8) {
        if c == b'\n' {
            self.cr = false;
            return self.end_head_line();
        }
        if std::mem::take(&mut self.cr) {
            // A CR not followed by LF: hyper rejects it; inside a length it
            // makes the length unreadable.
            self.head_byte_inner(b'\r');
        }
        if c == b'\r' {
            self.cr = true;
            return;
        }
        self.head_byte_inner(c);
    }

    fn head_byte_inner(&mut self, c: u8) {
        self.state = match self.state {
            State::LineStart if !self.seen_request_line => {
                self.seen_request_line = true;
                self.name_len = 0;
                State::SkipLine
            }
            State::LineStart => {
                self.name_len = 0;
                self.push_name(c)
            }
            State::Name => self.push_name(c),
            State::Length(d) => self.length_byte(d, c),
            s => s,
        };
    }

    /// A header-name byte; at the colon, decides which value parse follows.
    fn push_name(&mut self, c: u8) -> State {
        if c != b':' {
            if self.name_len < NAME_CAP {
                self.name[self.name_len] = c;
            }
            self.name_len += 1;
            return State::Name;
        }
        let name = &self.name[..self.name_len.min(NAME_CAP)];
        let exact = self.name_len <= NAME_CAP;
        if exact && name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.te = true;
            State::Value
        } else if exact && name.eq_ignore_ascii_case(b"content-length") {
            State::Length(Digits::Lead)
        } else {
            State::Value
        }
    }

    fn length_byte(&mut self, d: Digits, c: u8) -> State {
        let ws = c == b' ' || c == b'\t';
        let next = match (d, c) {
            (Digits::Lead, _) if ws => Some(Digits::Lead),
            (Digits::Lead, b'0'..=b'9') => Some(Digits::In(u64::from(c - b'0'))),
            (Digits::In(n), b'0'..=b'9') => n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
                .map(Digits::In),
            (Digits::In(n) | Digits::Trail(n), _) if ws => Some(Digits::Trail(n)),
            _ => None,
        };
        match next {
            Some(d) => State::Length(d),
            None => {
                self.cl_bad = true;
                State::Value
            }
        }
    }

    fn end_head_line(&mut self) {
        match self.state {
            State::LineStart => self.end_head(),
            State::Length(Digits::In(n) | Digits::Trail(n)) => {
                if self.cl.is_some_and(|m| m != n) {
                    self.cl_bad = true;
                }
                self.cl = Some(n);
                self.state = State::LineStart;
            }
            State::Length(Digits::Lead) => {
                self.cl_bad = true;
                self.state = State::LineStart;
            }
            _ => self.state = State::LineStart,
        }
    }

    /// The empty line: the body that follows is framed by what was seen.
    fn end_head(&mut self) {
        if !self.seen_request_line {
            return; // tolerated empty lines before a request line
        }
        let index = self.heads;
        self.heads += 1;
        let (te, cl, cl_bad) = (self.te, self.cl, self.cl_bad);
        if std::mem::take(&mut self.fragment) {
            self.fragment_at.get_or_insert(index);
        }
        self.seen_request_line = false;
        self.cl = None;
        self.cl_bad = false;
        self.te = false;
        self.state = State::LineStart;
        if te && (cl.is_some() || cl_bad) {
            self.flagged.get_or_insert(index);
            self.lose(index + 1);
        } else if cl_bad {
            self.lose(index);
        } else if te {
            self.state = State::ChunkSize;
        } else if let Some(n) = cl.filter(|&n| n > 0) {
            self.state = State::Body(n);
        }
    }

    /// The end of a chunk-size, chunk-end or trailer line.
    fn end_body_line(&mut self) {
        let index = self.heads.saturating_sub(1);
        let mut len = self.stored;
        if self.cr && len > 0 && self.line[len - 1] == b'\r' {
            len -= 1;
        }
        let line = &self.line[..len];
        match self.state {
            // A size line it cannot read (hyper may accept more, e.g. 16 or
            // more digits): this request is refused too, once its body is in.
            // Checked as strictly as upstream answers are (hyper's decoder
            // also takes e.g. `5 ` or 16 digits); of a line longer than what
            // is kept, only the size is checked.
            State::ChunkSize => {
                let size = if !self.cr {
                    None
                } else if self.stored == LINE_CAP {
                    leading_hex(line).map(|(size, _)| size)
                } else {
                    chunk_size(line).ok()
                };
                match size {
                    Some(0) => self.state = State::Trailer,
                    Some(n) => self.state = State::ChunkData(n),
                    None => self.lose(index),
                }
            }
            State::ChunkEnd if len == 0 && self.cr => self.state = State::ChunkSize,
            State::ChunkEnd => self.lose(index),
            State::Trailer if !self.cr => self.lose(index),
            State::Trailer if len == 0 => self.state = State::LineStart,
            _ => {}
        }
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
    fn padded_lengths_keep_the_scanner_on() {
        let pad = " ".repeat(50);
        let stream = format!(
            "POST /a HTTP/1.1\r\nContent-Length:{pad}5{pad}\r\n\r\nhello\
             POST /b HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        for split in [1usize, 3, stream.len()] {
            let chunks: Vec<&[u8]> = stream.as_bytes().chunks(split).collect();
            let s = scan(&chunks);
            assert_eq!(s.flagged(), Some(1), "split {split}");
            assert_eq!(s.verdict(0), None);
            assert!(s.verdict(1).is_some());
        }
    }

    #[test]
    fn unreadable_framing_refuses_what_follows() {
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            let s = scan(&[bad.as_bytes()]);
            assert!(s.verdict(0).is_some(), "{bad:?}");
            assert!(s.verdict(1).is_some(), "{bad:?}");
        }
        let s = scan(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]);
        assert!(s.verdict(0).is_some());
        assert!(s.verdict(1).is_some());
    }

    #[test]
    fn a_fragment_in_the_request_line_is_refused() {
        let stream: &[u8] = b"GET /a HTTP/1.1\r\nX-A: #\r\n\r\nGET /b#f HTTP/1.1\r\n\r\n";
        for split in [1usize, 5, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(split).collect();
            let s = scan(&chunks);
            assert_eq!(s.verdict(0), None, "split {split}");
            assert!(s.verdict(1).is_some(), "split {split}");
        }
    }

    #[test]
    fn plain_requests_are_not_flagged() {
        let s = scan(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n"]);
        assert_eq!(s.flagged(), None);
        assert_eq!(s.heads, 2);
    }
}
