//! The upstream side of an exchange: one HTTP/1.1 keep-alive connection, driven
//! directly by the task serving the client.
//!
//! Why not hyper's client: its connection runs as a separate task fed through
//! channels, so every request crossed tasks four times (request in, head out,
//! body out, ready again) and the response head was parsed into hyper's own
//! types before being rebuilt. Here the client's task writes the request head
//! (and a buffered body) in one `write`, reads the answer in one `read`, and a
//! small response is relayed as one buffer, with the connection back in the
//! pool before the client is answered. Measured in docs/benchmarks.md.
//!
//! What the proxy relies on, and this module guarantees:
//! - [`ExchangeError::NotSent`] only when no byte of the request reached the
//!   socket (a pooled connection found closed, or the first write refused), so
//!   the caller may send it again anywhere, whatever the method.
//! - A connection goes back to the pool only after a response was read whole
//!   with nothing after it, and when both sides keep it alive.
//! - The response head is parsed strictly (httparse, one `Content-Length`
//!   value, `Transfer-Encoding` overriding it as RFC 9112 §6.3 says); anything
//!   else is [`ExchangeError::Malformed`] and a `502`, never relayed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING,
};
use http::{request, Method, StatusCode, Version};
use hyper::body::Body as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::body::{BodyError, ProxyBody};
use super::framing::{parse_decimal, Chunk, Framing};

/// Largest upstream response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most upstream response header fields accepted.
const MAX_HEADERS: usize = 128;
/// A buffered request body up to this size goes out in the same write as the head.
const COALESCE_BODY: usize = 16 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Nothing of the request was written: it may go again, anywhere.
    #[error("connection closed before the request was written")]
    NotSent(#[source] io::Error),
    /// The client's request body failed while it was being relayed.
    #[error("request body failed")]
    Body(#[source] BodyError),
    /// The connection failed after (part of) the request was written.
    #[error("upstream connection failed")]
    Io(#[source] io::Error),
    /// The upstream did not take the request, or did not begin its answer,
    /// within the allowed time.
    #[error("upstream timed out")]
    TimedOut,
    /// The upstream answered something that is not valid HTTP/1.1.
    #[error("malformed upstream response: {0}")]
    Malformed(&'static str),
}

/// One keep-alive connection to an upstream.
#[derive(Debug)]
pub struct UpConn {
    stream: TcpStream,
    /// Read buffer; empty between exchanges.
    pub(super) buf: BytesMut,
    /// Request head under construction (kept for its capacity).
    head: Vec<u8>,
}

/// A response head and how its body is framed.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Both sides allow another request on this connection after this one.
    pub keep_alive: bool,
}

impl UpConn {
    pub fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        UpConn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            head: Vec::with_capacity(1024),
        }
    }

    /// Is this idle connection still usable? Costs no system call unless the
    /// event loop saw it become readable (the upstream closed it, or sent
    /// something unasked, which also makes it unusable).
    pub fn is_usable(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends a request and reads the response head. The body, if any, is read
    /// afterwards through [`UpConn::poll_read_more`] with the returned framing.
    ///
    /// `patience` bounds each wait on the upstream: a write it does not take
    /// and the wait for the response head once the request is sent. The time
    /// a client takes to upload a streamed body is not counted (its own pauses
    /// are bounded by the body timeout).
    pub async fn exchange(
        &mut self,
        parts: &request::Parts,
        body: &mut ProxyBody,
        patience: Duration,
    ) -> Result<ResponseHead, ExchangeError> {
        self.write_request(parts, body, patience).await?;
        let head = self.read_head(parts.method == Method::HEAD);
        tokio::time::timeout(patience, head)
            .await
            .unwrap_or(Err(ExchangeError::TimedOut))
    }

    /// Writes all of `bytes`, or fails if the upstream takes none for `patience`.
    async fn send_all(&mut self, bytes: &[u8], patience: Duration) -> Result<(), ExchangeError> {
        tokio::time::timeout(patience, self.stream.write_all(bytes))
            .await
            .map_err(|_| ExchangeError::TimedOut)?
            .map_err(ExchangeError::Io)
    }

    async fn write_request(
        &mut self,
        parts: &request::Parts,
        body: &mut ProxyBody,
        patience: Duration,
    ) -> Result<(), ExchangeError> {
        let mut head = std::mem::take(&mut self.head);
        head.clear();
        let framing = encode_head(&mut head, parts, body);
        // A buffered body is only read, never consumed: it stays whole for a
        // replay. A small one goes out in the same write as the head.
        let buffered = match body {
            ProxyBody::Full(Some(b)) if b.len() <= COALESCE_BODY => {
                head.extend_from_slice(b);
                None
            }
            ProxyBody::Full(Some(b)) => Some(b.clone()),
            _ => None,
        };
        // The first write decides whether anything was sent: the kernel takes
        // all of a small head or fails without sending any of it.
        // Tried at once first: the usual case needs no timer (each one costs
        // a clock read and a timer entry on the hot path); only a write that
        // has to wait is bounded by `patience`.
        let first = match self.stream.try_write(&head) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(patience, self.stream.write(&head)).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.head = head;
                        return Err(ExchangeError::TimedOut);
                    }
                }
            }
            other => other,
        };
        let written = match first {
            Ok(0) => Err(ExchangeError::NotSent(io::ErrorKind::WriteZero.into())),
            Ok(n) => Ok(n),
            Err(e) => Err(ExchangeError::NotSent(e)),
        };
        let result = match written {
            Ok(n) => self.send_all(&head[n..], patience).await,
            Err(e) => Err(e),
        };
        self.head = head;
        result?;
        if let Some(b) = buffered {
            return self.send_all(&b, patience).await;
        }
        if !body.is_replayable() {
            return self.write_body(body, framing, patience).await;
        }
        Ok(())
    }

    /// Relays a body streamed from the client (consumed as it goes).
    async fn write_body(
        &mut self,
        body: &mut ProxyBody,
        chunked: bool,
        patience: Duration,
    ) -> Result<(), ExchangeError> {
        let mut body = Pin::new(body);
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            let frame = frame.map_err(ExchangeError::Body)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if chunked {
                // One write per chunk: size line, data and CRLF together.
                let mut framed = Vec::with_capacity(data.len() + 20);
                framed.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                framed.extend_from_slice(&data);
                framed.extend_from_slice(b"\r\n");
                self.send_all(&framed, patience).await?;
            } else {
                self.send_all(&data, patience).await?;
            }
        }
        if chunked {
            self.send_all(b"0\r\n\r\n", patience).await?;
        }
        Ok(())
    }

    /// Reads into the buffer; `Ok(0)` at the end of the stream. The poll form
    /// serves the response body relay, which has no future of its own.
    pub fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_CHUNK);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buf)
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read_more(cx)).await
    }

    async fn read_head(&mut self, head_request: bool) -> Result<ResponseHead, ExchangeError> {
        loop {
            if let Some(head) = self.parse_head(head_request)? {
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ExchangeError::Malformed("response head too large"));
            }
            if self.read_more().await.map_err(ExchangeError::Io)? == 0 {
                return Err(ExchangeError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upstream closed the connection before a complete response head",
                )));
            }
        }
    }

    /// A complete final response head from the buffer (interim 1xx ones are
    /// skipped), or `None` if more bytes are needed.
    pub(super) fn parse_head(
        &mut self,
        head_request: bool,
    ) -> Result<Option<ResponseHead>, ExchangeError> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut fields);
            let len = match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(ExchangeError::Malformed("too many response header fields"))
                }
                Err(_) => return Err(ExchangeError::Malformed("unparsable response head")),
            };
            let code = resp.code.unwrap_or(0);
            let status = StatusCode::from_u16(code)
                .map_err(|_| ExchangeError::Malformed("invalid status code"))?;
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(ExchangeError::Malformed(
                    "protocol upgrade is not supported",
                ));
            }
            if status.is_informational() {
                // 100 Continue, 103 Early Hints: not relayed; the final answer follows.
                let _ = self.buf.split_to(len);
                continue;
            }
            let version = if resp.version == Some(0) {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            };
            let mut headers = HeaderMap::with_capacity(resp.headers.len());
            for f in resp.headers.iter() {
                let name = HeaderName::from_bytes(f.name.as_bytes())
                    .map_err(|_| ExchangeError::Malformed("invalid header name"))?;
                let value = HeaderValue::from_bytes(f.value)
                    .map_err(|_| ExchangeError::Malformed("invalid header value"))?;
                headers.append(name, value);
            }
            let _ = self.buf.split_to(len);
            let (framing, reusable) =
                response_framing(status, version, head_request, &mut headers)?;
            let keep_alive = reusable && keeps_alive(version, &headers);
            return Ok(Some(ResponseHead {
                status,
                headers,
                framing,
                keep_alive,
            }));
        }
    }
}

/// Writes the request line and header section; returns whether the body is
/// sent chunked. The client's own framing headers are replaced by ours.
fn encode_head(out: &mut Vec<u8>, parts: &request::Parts, body: &ProxyBody) -> bool {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let client_length = parts.headers.contains_key(CONTENT_LENGTH);
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let chunked = match body {
        ProxyBody::Empty | ProxyBody::Full(None) => {
            // A body of zero bytes the client announced, or a method whose
            // request normally has one, says so; others send no framing.
            if client_length || matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
            false
        }
        ProxyBody::Full(Some(b)) => {
            push_length(out, b.len() as u64);
            false
        }
        ProxyBody::Stream(_) => match body.size_hint().exact() {
            Some(n) => {
                push_length(out, n);
                false
            }
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                true
            }
        },
    };
    out.extend_from_slice(b"\r\n");
    chunked
}

fn push_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// How the body of a response is delimited (RFC 9112 §6.3), and whether the
/// connection can carry another request afterwards as far as framing goes.
///
/// - `Transfer-Encoding`: only `chunked` alone is accepted (another coding
///   would reach the client undecoded once the hop-by-hop field is removed;
///   nginx answers 502 too), and not on HTTP/1.0 (§6.1: faulty framing).
///   With a `Content-Length` as well, the length is dropped toward the client
///   and the connection is closed after the response (§6.3 ¶3).
/// - `Content-Length`: one value; a list or repeated lines of the same value
///   (`5, 5`) are collapsed to one (RFC 9110 §8.6), differing ones are refused.
fn response_framing(
    status: StatusCode,
    version: Version,
    head_request: bool,
    headers: &mut HeaderMap,
) -> Result<(Framing, bool), ExchangeError> {
    let bodiless =
        head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if headers.contains_key(TRANSFER_ENCODING) && !bodiless {
        if version == Version::HTTP_10 {
            return Err(ExchangeError::Malformed(
                "transfer-encoding in an HTTP/1.0 response",
            ));
        }
        let mut codings = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(|t| t.trim_ascii())
            .filter(|t| !t.is_empty());
        let only_chunked = codings
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none();
        if !only_chunked {
            return Err(ExchangeError::Malformed("unsupported transfer-encoding"));
        }
        let had_length = headers.remove(CONTENT_LENGTH).is_some();
        return Ok((Framing::Chunked(Chunk::Size), !had_length));
    }
    // Checked and collapsed even without a body: the client reads the length
    // of a HEAD answer as the length of the GET one.
    let length = content_length(headers)?;
    if bodiless {
        return Ok((Framing::Done, true));
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), true),
        None => (Framing::UntilClose, false),
    })
}

/// The one `Content-Length` value (lines and list elements must agree); a
/// list or repeated lines are collapsed to a single value in `headers`.
fn content_length(headers: &mut HeaderMap) -> Result<Option<u64>, ExchangeError> {
    let mut length: Option<u64> = None;
    let mut listed = false;
    for v in headers.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let n = parse_decimal(part.trim_ascii())
                .ok_or(ExchangeError::Malformed("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ExchangeError::Malformed(
                    "conflicting content-length values",
                ));
            }
            listed |= length.is_some();
            length = Some(n);
        }
    }
    if let (true, Some(n)) = (listed, length) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(length)
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; 1.0 only with
/// `Connection: keep-alive`.
fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers.get_all(CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_of(
        status: u16,
        head: bool,
        fields: &[(&str, &str)],
    ) -> Result<(Framing, bool), ExchangeError> {
        let mut h = HeaderMap::new();
        for (n, v) in fields {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        response_framing(
            StatusCode::from_u16(status).unwrap(),
            Version::HTTP_11,
            head,
            &mut h,
        )
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |s, h, fields: &[(&str, &str)]| framing_of(s, h, fields).map(|r| r.0).ok();
        assert_eq!(
            f(200, false, &[("content-length", "12")]),
            Some(Framing::Length(12))
        );
        assert_eq!(
            f(200, false, &[("content-length", "3, 3")]),
            Some(Framing::Length(3))
        );
        assert_eq!(
            f(200, true, &[("content-length", "12")]),
            Some(Framing::Done)
        );
        assert_eq!(f(204, false, &[]), Some(Framing::Done));
        assert_eq!(
            f(304, false, &[("content-length", "5")]),
            Some(Framing::Done)
        );
        // CL + TE: chunked wins, the length goes, the connection is not reused.
        assert_eq!(
            framing_of(
                200,
                false,
                &[("transfer-encoding", "chunked"), ("content-length", "4")]
            )
            .ok(),
            Some((Framing::Chunked(Chunk::Size), false))
        );
        assert_eq!(
            framing_of(200, false, &[("transfer-encoding", "chunked")]).ok(),
            Some((Framing::Chunked(Chunk::Size), true))
        );
        for te in [
            "gzip, chunked",
            "chunked, chunked",
            "gzip",
            "identity",
            "chunked, gzip",
        ] {
            assert!(
                framing_of(200, false, &[("transfer-encoding", te)]).is_err(),
                "{te}"
            );
        }
        assert_eq!(f(200, false, &[]), Some(Framing::UntilClose));
        assert!(framing_of(
            200,
            false,
            &[("content-length", "3"), ("content-length", "4")]
        )
        .is_err());
        assert!(framing_of(200, false, &[("content-length", "-1")]).is_err());
        assert!(framing_of(200, false, &[("content-length", "1e3")]).is_err());
    }

    #[test]
    fn keep_alive_by_version() {
        let mut h = HeaderMap::new();
        assert!(keeps_alive(Version::HTTP_11, &h));
        assert!(!keeps_alive(Version::HTTP_10, &h));
        h.insert(CONNECTION, HeaderValue::from_static("Keep-Alive"));
        assert!(keeps_alive(Version::HTTP_10, &h));
        h.insert(CONNECTION, HeaderValue::from_static("foo, close"));
        assert!(!keeps_alive(Version::HTTP_11, &h));
    }

    #[test]
    fn head_encoding_replaces_client_framing() {
        let req = http::Request::builder()
            .method(Method::POST)
            .uri("/a?b=1")
            .header("host", "x")
            .header("content-length", "99")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        let body = ProxyBody::Full(Some(bytes::Bytes::from_static(b"hello")));
        assert!(!encode_head(&mut out, &parts, &body));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /a?b=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n"
        );
        let mut out = Vec::new();
        let get = http::Request::get("/").body(()).unwrap().into_parts().0;
        encode_head(&mut out, &get, &ProxyBody::Empty);
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }
}
