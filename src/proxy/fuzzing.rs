//! Entry points for the `cargo fuzz` targets in `fuzz/`: the proxy's own
//! HTTP/1.1 parsers, driven on bytes alone, with plain results the targets
//! compare with `httparse` and with reference decoders. Not an API: hidden
//! from the docs, and shaped only by what the fuzz targets need, so that the
//! parsers' internals can change without touching the targets.

use std::cell::RefCell;

use bytes::BytesMut;

use super::framing::{Chunk, Framing, Step};
use super::h1::{ExchangeError, UpConn};
use super::smuggle::Scanner;

/// How a response body is delimited, as decided from its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (HEAD, 204, 304).
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response head the proxy accepted.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    /// Fields as they would be relayed (before hop-by-hop stripping), names
    /// lower-case.
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    /// Bytes of the input the head (and any skipped 1xx heads) took.
    pub consumed: usize,
}

/// The proxy's response-head parser ([`UpConn`]'s) on `input`: `Ok(None)` when
/// more bytes are needed, `Err` with the reason when the proxy answers 502.
pub fn parse_response_head(input: &[u8], head_request: bool) -> Result<Option<Head>, String> {
    with_conn(|conn| {
        conn.buf.clear();
        conn.buf.extend_from_slice(input);
        let parsed = conn.parse_head(head_request);
        let left = conn.buf.len();
        match parsed {
            Ok(None) => Ok(None),
            Ok(Some(h)) => Ok(Some(Head {
                status: h.status.as_u16(),
                headers: h
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                    .collect(),
                framing: match h.framing {
                    Framing::Done => BodyFraming::None,
                    Framing::Length(n) => BodyFraming::Length(n),
                    Framing::Chunked(_) => BodyFraming::Chunked,
                    Framing::UntilClose => BodyFraming::UntilClose,
                },
                keep_alive: h.keep_alive,
                consumed: input.len() - left,
            })),
            Err(e @ ExchangeError::Malformed(_)) => Err(e.to_string()),
            Err(e) => Err(format!("unexpected error kind: {e}")),
        }
    })
}

/// An [`UpConn`] needs a registered socket, though parsing never touches it:
/// one loopback pair per thread, made once.
struct Fixture {
    conn: UpConn,
    _peer: std::net::TcpStream,
    _rt: tokio::runtime::Runtime,
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn with_conn<T>(f: impl FnOnce(&mut UpConn) -> T) -> T {
    FIXTURE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fixture = slot.get_or_insert_with(|| fixture().expect("loopback socket pair"));
        f(&mut fixture.conn)
    })
}

fn fixture() -> std::io::Result<Fixture> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let ours = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (peer, _) = listener.accept()?;
    ours.set_nonblocking(true)?;
    let _guard = rt.enter();
    let conn = UpConn::new(tokio::net::TcpStream::from_std(ours)?);
    Ok(Fixture {
        conn,
        _peer: peer,
        _rt: rt,
    })
}

/// Which body decoder to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    Chunked,
    Length(u64),
    UntilClose,
}

/// What a body decoder made of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// The body ended; `consumed` bytes of the input were its framing and data.
    Done {
        body: Vec<u8>,
        consumed: usize,
    },
    /// All input used, the body not finished (for `UntilClose`: the body so far).
    NeedMore {
        body: Vec<u8>,
    },
    Error(&'static str),
}

/// Runs the proxy's response-body decoder over `input`, handed to it in
/// pieces of the given sizes (cycled; 0 counts as 1), as reads would.
pub fn decode_body(decoder: Decoder, input: &[u8], pieces: &[usize]) -> Decoded {
    let mut framing = match decoder {
        Decoder::Chunked => Framing::Chunked(Chunk::Size),
        Decoder::Length(n) => Framing::Length(n),
        Decoder::UntilClose => Framing::UntilClose,
    };
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    let mut piece = pieces.iter().copied().cycle();
    loop {
        match framing.step(&mut buf) {
            Err(e) => return Decoded::Error(e.0),
            Ok(Step::Data(d)) => body.extend_from_slice(&d),
            Ok(Step::Done) => {
                return Decoded::Done {
                    body,
                    consumed: fed - buf.len(),
                }
            }
            Ok(Step::NeedMore) => {
                if fed == input.len() {
                    return Decoded::NeedMore { body };
                }
                let n = piece.next().unwrap_or(usize::MAX).max(1);
                let end = fed.saturating_add(n).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

/// Feeds a client's byte stream to the request-smuggling scanner in the given
/// pieces; returns the index (0-based) of the first request it refuses.
pub fn scan_requests(pieces: &[&[u8]]) -> Option<u64> {
    let mut scanner = Scanner::default();
    for p in pieces {
        scanner.feed(p);
    }
    scanner.flagged()
}
