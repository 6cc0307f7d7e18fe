//! Bodies on both sides of the proxy.
//!
//! Requests: a body small enough (`--retry-buffer`) is read whole before the first
//! attempt so it can be replayed; a larger one is streamed (never replayed once
//! sent), with the `--max-body` limit and the per-read `--body-timeout` enforced
//! as it flows. Responses: the upstream body is relayed frame by frame and the
//! upstream connection goes back to this thread's pool at the end of the stream.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use super::error::ProxyError;
use super::forward::AccessLine;
use super::framing::{Framing, FramingError, Step};
use super::h1::UpConn;
use super::server::Worker;

/// Why a streamed request body stopped, to answer 413 / 408 / 400 instead of 502.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than the limit")]
    TooLarge,
    #[error("request body read timed out")]
    Timeout,
    #[error("request body from the client failed")]
    Client(#[source] hyper::Error),
}

impl BodyError {
    pub fn to_proxy_error(&self) -> ProxyError {
        match self {
            BodyError::TooLarge => ProxyError::BodyTooLarge,
            BodyError::Timeout => ProxyError::BodyTimeout,
            BodyError::Client(_) => ProxyError::BadBody,
        }
    }
}

/// The body sent upstream.
#[derive(Debug)]
pub enum ProxyBody {
    Empty,
    /// Whole body in memory (replayable).
    Full(Option<Bytes>),
    /// Streamed from the client (not replayable once sent).
    Stream(Box<Streamed>),
}

#[derive(Debug)]
pub struct Streamed {
    prefix: Option<Bytes>,
    inner: Incoming,
    seen: u64,
    max: u64,
    timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl ProxyBody {
    /// Whether the body is in memory, so that it can be sent again.
    pub fn is_replayable(&self) -> bool {
        !matches!(self, ProxyBody::Stream(_))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Stream(s) => {
                if let Some(p) = s.prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                match Pin::new(&mut s.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(d) = frame.data_ref() {
                            s.seen += d.len() as u64;
                            if s.seen > s.max {
                                return Poll::Ready(Some(Err(BodyError::TooLarge)));
                            }
                        }
                        let deadline = Instant::now() + s.timeout;
                        s.idle.as_mut().reset(deadline);
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e)))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => {
                        if std::future::Future::poll(s.idle.as_mut(), cx).is_ready() {
                            return Poll::Ready(Some(Err(BodyError::Timeout)));
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream(s) => s.prefix.is_none() && s.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream(s) => {
                let p = s.prefix.as_ref().map_or(0, |b| b.len() as u64);
                let inner = s.inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + p);
                if let Some(u) = inner.upper() {
                    hint.set_upper(u + p);
                }
                hint
            }
        }
    }
}

/// Reads the client's body into memory when it fits `retry_buffer`, else returns
/// a streaming body that enforces `max_body` and `timeout` as it goes.
pub async fn prepare(
    mut body: Incoming,
    max_body: u64,
    retry_buffer: u64,
    timeout: Duration,
) -> Result<ProxyBody, ProxyError> {
    if body.is_end_stream() {
        return Ok(ProxyBody::Empty);
    }
    let exact = body.size_hint().exact();
    if exact.is_some_and(|n| n > max_body) {
        return Err(ProxyError::BodyTooLarge);
    }
    let stream = |prefix: Option<Bytes>, inner: Incoming, seen: u64| {
        ProxyBody::Stream(Box::new(Streamed {
            prefix,
            inner,
            seen,
            max: max_body,
            timeout,
            idle: Box::pin(tokio::time::sleep(timeout)),
        }))
    };
    if exact.is_some_and(|n| n > retry_buffer) {
        return Ok(stream(None, body, 0));
    }
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut seen: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(ProxyError::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!(cause = %e, "request body failed");
                return Err(ProxyError::BadBody);
            }
            Ok(Some(Ok(f))) => f,
        };
        // Request trailers are dropped: the body is re-framed with a length.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > max_body {
            return Err(ProxyError::BodyTooLarge);
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            Some(f) => {
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
            None => buf.extend_from_slice(&data),
        }
        if seen > retry_buffer {
            let prefix = first.take().unwrap_or_else(|| buf.split().freeze());
            return Ok(stream(Some(prefix), body, seen));
        }
    }
    Ok(match first {
        Some(b) => ProxyBody::Full(Some(b)),
        None if buf.is_empty() => ProxyBody::Empty,
        None => ProxyBody::Full(Some(buf.freeze())),
    })
}

/// The body sent to the client.
pub enum RespBody {
    /// Whole in memory: generated by the proxy, or a small upstream body.
    Full(Option<Bytes>),
    /// Relayed from an upstream connection as it arrives.
    Relay(Box<Relay>),
}

/// Where a connection goes back once its response has been read whole.
pub struct Checkin {
    pub worker: Rc<Worker>,
    pub upstream: usize,
}

/// Why a relayed response was cut before its end (the client's connection is
/// then closed: a chunked answer never gets its last chunk, a sized one
/// never gets all its bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The upstream sent nothing for the upstream timeout.
    Stalled,
    /// The upstream closed (or reset) the connection inside the body.
    Closed,
    /// The upstream broke the body framing.
    Framing(&'static str),
    /// The client went away (or stopped reading) before the end.
    ClientGone,
}

impl Cut {
    pub fn as_str(self) -> &'static str {
        match self {
            Cut::Stalled => "upstream stalled inside the body",
            Cut::Closed => "upstream closed inside the body",
            Cut::Framing(what) => what,
            Cut::ClientGone => "client gone before the end",
        }
    }
}

/// An upstream body being relayed, and the connection it comes from.
pub struct Relay {
    /// `None` once the body is complete or broken.
    conn: Option<UpConn>,
    framing: Framing,
    keep_alive: bool,
    checkin: Checkin,
    /// Body bytes decoded before the head was answered, sent first.
    prefix: Option<Bytes>,
    /// Longest wait for the next upstream bytes (`--upstream-timeout`).
    idle: Duration,
    /// Armed on the first read that has to wait; `last` is the last progress.
    timer: Option<Pin<Box<Sleep>>>,
    last: Instant,
    /// Written when the client has the whole body, or when it was cut.
    log: Option<AccessLine>,
}

impl Relay {
    /// The body is complete: the connection goes back when both sides keep it
    /// alive and nothing follows the response.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.checkin
                    .worker
                    .pool
                    .checkin(self.checkin.upstream, conn);
            }
        }
        if let Some(line) = self.log.take() {
            line.emit(None);
        }
    }

    /// The response cannot be completed: the upstream connection is closed
    /// (never reused), the cause logged, and the error makes hyper close the
    /// client's connection without ending the body.
    fn abandon(&mut self, cut: Cut) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.cut(cut);
        Poll::Ready(Some(Err(io::Error::other(cut.as_str()))))
    }

    fn cut(&mut self, cut: Cut) {
        self.conn = None;
        self.framing = Framing::Done;
        let upstream = self.checkin.worker.upstreams.name(self.checkin.upstream);
        if cut == Cut::ClientGone {
            tracing::debug!(cause = cut.as_str(), upstream, "response aborted");
        } else {
            tracing::warn!(cause = cut.as_str(), upstream, "response aborted");
        }
        if let Some(line) = self.log.take() {
            line.emit(Some(cut.as_str()));
        }
    }

    /// Waits for more upstream bytes, at most `idle` since the last progress.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Cut>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Err(Cut::Closed));
        };
        match conn.poll_read_more(cx) {
            Poll::Ready(Ok(n)) => {
                self.last = Instant::now();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(Cut::Closed)),
            Poll::Pending => loop {
                let deadline = self.last + self.idle;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if Instant::now() >= deadline => {
                        return Poll::Ready(Err(Cut::Stalled))
                    }
                    Poll::Ready(()) => {}
                }
            },
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.log.is_some() || self.conn.is_some() {
            self.cut(Cut::ClientGone);
        }
    }
}

impl RespBody {
    pub fn full(b: Bytes) -> Self {
        RespBody::Full(Some(b))
    }

    /// The body of an upstream response whose head was just read from `conn`.
    /// What is already buffered is decoded now, before the head is answered:
    /// a body that is all there (the usual small response) is answered from
    /// memory with the connection back in the pool at once, and a framing
    /// error in it is a `502` rather than a cut answer.
    ///
    /// `idle` bounds each later wait for upstream bytes.
    pub fn upstream(
        mut conn: UpConn,
        mut framing: Framing,
        keep_alive: bool,
        checkin: Checkin,
        idle: Duration,
    ) -> Result<Self, FramingError> {
        let mut first: Option<Bytes> = None;
        let mut more = BytesMut::new();
        let whole = loop {
            match framing.step(&mut conn.buf)? {
                Step::Data(d) => match first.take() {
                    None if more.is_empty() => first = Some(d),
                    Some(f) => {
                        more.extend_from_slice(&f);
                        more.extend_from_slice(&d);
                    }
                    None => more.extend_from_slice(&d),
                },
                Step::Done => break true,
                Step::NeedMore => break false,
            }
        };
        let prefix = match first {
            Some(f) => Some(f),
            None if more.is_empty() => None,
            None => Some(more.freeze()),
        };
        if whole {
            // The usual small response: no relay, no timer, the connection
            // back in the pool before the client is answered.
            if keep_alive && conn.buf.is_empty() {
                checkin.worker.pool.checkin(checkin.upstream, conn);
            }
            return Ok(RespBody::Full(prefix));
        }
        Ok(RespBody::Relay(Box::new(Relay {
            conn: Some(conn),
            framing,
            keep_alive,
            checkin,
            prefix,
            idle,
            timer: None,
            last: Instant::now(),
            log: None,
        })))
    }

    /// A relayed body keeps the access-log line to write it when the body
    /// ends (whole or cut); any other gives it back to be written now.
    pub fn log_at_end(&mut self, line: AccessLine) -> Option<AccessLine> {
        match self {
            RespBody::Relay(r) => {
                r.log = Some(line);
                None
            }
            RespBody::Full(_) => Some(line),
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let r = match self.get_mut() {
            RespBody::Full(b) => return Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Relay(r) => &mut **r,
        };
        if let Some(p) = r.prefix.take() {
            if r.framing.is_done() {
                r.finish();
            }
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        loop {
            let Some(conn) = r.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match r.framing.step(&mut conn.buf) {
                Err(e) => return r.abandon(Cut::Framing(e.0)),
                Ok(Step::Data(d)) => {
                    if r.framing.is_done() {
                        r.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Ok(Step::Done) => {
                    r.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => match ready!(r.poll_read(cx)) {
                    Ok(0) if r.framing == Framing::UntilClose => {
                        r.conn = None;
                        r.framing = Framing::Done;
                        r.finish();
                        return Poll::Ready(None);
                    }
                    Ok(0) => return r.abandon(Cut::Closed),
                    Ok(_) => continue,
                    Err(cut) => return r.abandon(cut),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Full(b) => b.is_none(),
            RespBody::Relay(r) => r.prefix.is_none() && r.framing.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RespBody::Relay(r) => match r.framing.remaining() {
                Some(n) => {
                    SizeHint::with_exact(n + r.prefix.as_ref().map_or(0, |p| p.len() as u64))
                }
                None => SizeHint::default(),
            },
        }
    }
}
