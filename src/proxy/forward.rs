//! One request's path through the proxy: checks, header rewriting, body
//! preparation, then the hold/retry loop over upstream picks (rule in
//! [`super::retry`]), and one access-log line.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Instant;

use http::header::{HeaderValue, HOST};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;

use super::access_log;
use super::body::{self, Checkin, RespBody};
use super::error::ProxyError;
use super::h1::ExchangeError;
use super::headers;
use super::limits;
use super::retry::{self, Backoff};
use super::server::Worker;
use super::smuggle::Scanner;
use super::upstream::Pick;

/// What a connection knows about itself.
pub struct ConnState {
    pub scanner: Rc<RefCell<Scanner>>,
    /// Requests seen so far on this connection (index of the next one).
    pub requests: Cell<u64>,
    /// The client address, as an `X-Forwarded-For` element.
    pub peer: HeaderValue,
}

/// Which upstream served a request and how many extra attempts it took.
#[derive(Debug, Default)]
struct Outcome {
    upstream: Option<usize>,
    retries: u32,
}

/// The hyper service: never fails; every failure is an answer.
pub async fn handle(
    w: Rc<Worker>,
    c: Rc<ConnState>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let index = c.requests.get();
    c.requests.set(index + 1);
    let start = w.cfg.access_log.then(Instant::now);
    let log = w
        .cfg
        .access_log
        .then(|| (req.method().clone(), req.uri().clone()));
    let mut out = Outcome::default();
    let resp = match forward(&w, &c, index, req, &mut out).await {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() {
                let upstream = out.upstream.map(|i| w.upstreams.name(i));
                tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), upstream, "proxy error");
            }
            e.response()
        }
    };
    if let (Some(access), Some((method, uri)), Some(start)) = (&w.access_log, log, start) {
        access.record(&access_log::Entry {
            method: &method,
            path: uri.path(),
            status: resp.status().as_u16(),
            duration: start.elapsed(),
            upstream: out.upstream.map(|i| w.upstreams.name(i)),
            retries: out.retries,
            aborted: None,
        });
    }
    Ok(resp)
}

async fn forward(
    w: &Rc<Worker>,
    c: &ConnState,
    index: u64,
    req: Request<Incoming>,
    out: &mut Outcome,
) -> Result<Response<RespBody>, ProxyError> {
    let cfg = &*w.cfg;
    if c.scanner.borrow().flagged() == Some(index) {
        return Err(ProxyError::BadRequest(
            "content-length with transfer-encoding",
        ));
    }
    let (mut parts, incoming) = req.into_parts();
    limits::check_head(&parts, &cfg.limits)?;
    let keyed = headers::prepare_request(&mut parts.headers, &c.peer, &w.ids);
    if let Some(via) = &cfg.via {
        headers::append_via(&mut parts.headers, via);
    }
    if !parts.headers.contains_key(HOST) {
        parts.headers.insert(HOST, w.default_host.clone());
    }
    parts.version = Version::HTTP_11;
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
    }
    let mut body =
        body::prepare(incoming, cfg.max_body, cfg.retry_buffer, cfg.body_timeout).await?;
    // A buffered body stays whole across attempts (the exchange only reads it).
    let buffered = body.is_replayable();

    let deadline = Instant::now() + cfg.hold_timeout;
    let mut backoff = Backoff::new();
    let mut replays = 0u32;
    loop {
        let i = match w.pool.pick(&w.upstreams, cfg.hold_timeout) {
            Pick::Healthy(i) | Pick::Probe(i) => i,
            Pick::AllDown => return Err(ProxyError::Unavailable),
        };
        out.upstream = Some(i);
        let _in_flight = w.pool.begin(i);
        let left = deadline.saturating_duration_since(Instant::now());
        let connect_timeout = cfg.connect_timeout.min(left.max(retry::Backoff::FIRST));
        let (mut conn, reused) = match w.pool.checkout(i, &w.upstreams, connect_timeout).await {
            Ok(s) => s,
            Err(e) => {
                // Nothing was sent: any method may go again, elsewhere, after a pause.
                w.upstreams.eject(i, &e);
                w.pool.clear(i);
                out.retries += 1;
                match backoff.next_within(Instant::now(), deadline) {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    None => return Err(ProxyError::Unavailable),
                }
            }
        };
        match conn.exchange(&parts, &mut body, cfg.upstream_timeout).await {
            Err(ExchangeError::TimedOut) => return Err(ProxyError::GatewayTimeout),
            Ok(head) => {
                let mut headers = head.headers;
                headers::strip_hop_by_hop(&mut headers);
                if let Some(via) = &cfg.via {
                    headers::append_via(&mut headers, via);
                }
                let checkin = Checkin {
                    pool: w.pool.clone(),
                    upstream: i,
                };
                let body = RespBody::upstream(conn, head.framing, head.keep_alive, checkin);
                // Always answer as HTTP/1.1 (hyper downgrades for 1.0 clients).
                let mut resp = Response::new(body);
                *resp.status_mut() = head.status;
                *resp.headers_mut() = headers;
                return Ok(resp);
            }
            Err(ExchangeError::NotSent(_)) => {
                // The connection closed before the request was written.
                out.retries += 1;
                if !reused {
                    match backoff.next_within(Instant::now(), deadline) {
                        Some(d) => tokio::time::sleep(d).await,
                        None => return Err(ProxyError::Unavailable),
                    }
                }
            }
            Err(ExchangeError::Body(b)) => return Err(b.to_proxy_error()),
            // The upstream is alive and answered nonsense: sending it again
            // would get the same answer.
            Err(err @ ExchangeError::Malformed(_)) => return Err(ProxyError::BadGateway(err)),
            Err(err) => {
                // The upstream died under a sent request (a crash): its other
                // idle connections are dead too, so the replay must not be
                // spent on one of them.
                w.pool.clear(i);
                if retry::may_replay(&parts.method, keyed, buffered, replays)
                    && Instant::now() < deadline
                {
                    tracing::debug!(cause = %err, upstream = w.upstreams.name(i), "replaying keyed idempotent request");
                    replays += 1;
                    out.retries += 1;
                } else {
                    return Err(ProxyError::BadGateway(err));
                }
            }
        }
    }
}
