//! One request's path through the proxy, as named steps:
//! [`admit`] (checks, header rewriting, body preparation), then attempts of
//! [`pick_upstream`] → [`connect`] → [`send`] (request out, response head in)
//! → [`relay`], with [`fail`] gathering the facts of a failed attempt for
//! [`retry::decide`] (the rule) and carrying out its decision; and one
//! access-log line, written when the client has its whole answer.

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Instant;

use http::header::HeaderValue;
use http::{Method, Response, Uri, Version};
use hyper::body::Incoming;

use super::access_log;
use super::body::{self, Checkin, ProxyBody, RespBody};
use super::clientio::ConnShared;
use super::error::ProxyError;
use super::h1::{ExchangeError, ResponseHead, UpConn};
use super::headers;
use super::limits;
use super::request;
use super::retry::{self, Backoff, Decision, Facts, Failure, Verdict};
use super::schedule::{Count, Gate, Schedule};
use super::server::Worker;
use super::upstream::Pick;

/// What a connection knows about itself.
pub struct ConnState {
    pub shared: Rc<ConnShared>,
    /// Requests seen so far on this connection (index of the next one).
    pub requests: Cell<u64>,
    /// The client address, as an `X-Forwarded-For` element.
    pub peer: HeaderValue,
}

/// Which upstream served a request and how it got there.
#[derive(Debug, Default)]
struct Outcome {
    upstream: Option<usize>,
    retries: u32,
    /// Paused at least once waiting for an upstream.
    held: bool,
    replayed: bool,
}

/// One access-log line (and the metrics' count of the answer): what was
/// asked, what the client got.
pub struct AccessLine {
    worker: Rc<Worker>,
    method: Method,
    uri: Uri,
    start: Instant,
    status: u16,
    upstream: Option<usize>,
    retries: u32,
}

impl AccessLine {
    /// Writes the line; `aborted` is the cause when the client's answer was cut
    /// after its head (then the status is what the head said, not what the
    /// client could use).
    pub fn emit(self, aborted: Option<&str>) {
        let duration = self.start.elapsed();
        if let Some(metrics) = &self.worker.metrics {
            metrics.answered(self.status, duration);
        }
        let Some(access) = &self.worker.access_log else {
            return;
        };
        access.record(&access_log::Entry {
            method: &self.method,
            path: self.uri.path(),
            status: self.status,
            duration,
            upstream: self.upstream.map(|i| self.worker.upstreams.name(i)),
            retries: self.retries,
            aborted,
        });
    }
}

/// The hyper service: never fails; every failure is an answer.
pub async fn handle(
    w: Rc<Worker>,
    c: Rc<ConnState>,
    req: Request,
) -> Result<Response<RespBody>, Infallible> {
    let index = c.requests.get();
    c.requests.set(index + 1);
    let log = (w.cfg.access_log || w.metrics.is_some())
        .then(|| (req.method().clone(), req.uri().clone(), Instant::now()));
    let mut out = Outcome::default();
    let result = forward(&w, &c, index, req, &mut out).await;
    if let Some(metrics) = &w.metrics {
        metrics.path(super::metrics::Path {
            held: out.held,
            retries: out.retries,
            replayed: out.replayed,
            // The state channel's 503s (`NotReady`) are shed requests too.
            shed: matches!(
                result,
                Err(ProxyError::Unavailable | ProxyError::NotReady(_))
            ),
        });
    }
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            if e.status().is_server_error() {
                let upstream = out.upstream.map(|i| w.upstreams.name(i));
                tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), upstream, "proxy error");
            }
            if e.closes_connection() {
                c.shared.linger.set(true);
            }
            e.response()
        }
    };
    if let Some((method, uri, start)) = log {
        let line = AccessLine {
            worker: w.clone(),
            method,
            uri,
            start,
            status: resp.status().as_u16(),
            upstream: out.upstream,
            retries: out.retries,
        };
        // A relayed body writes the line when it ends (whole or cut).
        if let Some(line) = resp.body_mut().log_at_end(line) {
            line.emit(None);
        }
    }
    Ok(resp)
}

type Request = http::Request<Incoming>;

/// The request as it will be sent, and what the retry rule needs to know of it.
struct Admitted {
    parts: http::request::Parts,
    body: ProxyBody,
    keyed: bool,
}

/// Checks a request (framing verdict of the scanner, limits, method, target,
/// `Host`, codings), rewrites its head for the upstream and prepares its body.
async fn admit(
    w: &Worker,
    c: &ConnState,
    index: u64,
    req: Request,
) -> Result<Admitted, ProxyError> {
    let cfg = &*w.cfg;
    if let Some(why) = c.shared.scanner.borrow().verdict(index) {
        return Err(ProxyError::BadRequest(why));
    }
    let (mut parts, incoming) = req.into_parts();
    limits::check_head(&parts, &cfg.limits)?;
    request::check(&mut parts, &w.default_host)?;
    let keyed = headers::prepare_request(&mut parts.headers, &c.peer, &w.ids);
    if let Some(via) = &cfg.via {
        headers::append_via(&mut parts.headers, via);
    }
    parts.version = Version::HTTP_11;
    let body = body::prepare(incoming, cfg.max_body, cfg.retry_buffer, cfg.body_timeout).await?;
    // A buffered body has been seen whole by the scanner too: refuse a
    // chunking it could not follow (hyper's decoder is more lenient).
    if body.is_replayable() {
        if let Some(why) = c.shared.scanner.borrow().verdict(index) {
            return Err(ProxyError::BadRequest(why));
        }
    }
    Ok(Admitted { parts, body, keyed })
}

async fn forward(
    w: &Rc<Worker>,
    c: &ConnState,
    index: u64,
    req: Request,
    out: &mut Outcome,
) -> Result<Response<RespBody>, ProxyError> {
    let mut req = admit(w, c, index, req).await?;
    // A buffered body stays whole across attempts (the exchange only reads it).
    let buffered = req.body.is_replayable();
    let mut deadline = Instant::now() + w.cfg.hold_timeout;
    let mut backoff = Backoff::new();
    let mut replays = 0u32;
    // Subscribed once the schedule says anything but go (most requests never).
    let mut changes = None;
    let mut held = false;
    loop {
        if let Some(s) = &w.cfg.schedule {
            if changes.is_some()
                || s.gate(deadline.saturating_duration_since(Instant::now())) != Gate::Go
            {
                let rx = changes.get_or_insert_with(|| s.changed());
                let waited = wait_for_schedule(s, rx, deadline, &mut held).await;
                out.held |= held;
                waited?;
            }
        }
        let i = pick_upstream(w)?;
        out.upstream = Some(i);
        let _in_flight = w.pool.begin(i);
        let (failure, cause) = match connect(w, i, deadline).await {
            Err(e) => (Failure::Connect, ExchangeError::NotSent(e)),
            Ok((mut conn, reused)) => {
                match send_or_drained(w, i, &mut conn, &mut req, buffered, replays).await {
                    Some(Ok(head)) => {
                        if let Some(s) = &w.cfg.schedule {
                            s.traffic(i, head.status.is_server_error());
                        }
                        return relay(w, i, conn, head);
                    }
                    Some(Err(e)) => (classify(&e, reused), e),
                    None => {
                        // The supervisor is replacing this incarnation: the request
                        // is replayed on the next one, with a hold of its own.
                        deadline = Instant::now() + w.cfg.hold_timeout;
                        let e = std::io::Error::other("upstream incarnation replaced (draining)");
                        (Failure::AfterSend, ExchangeError::Io(e))
                    }
                }
            }
        };
        let facts = Facts {
            failure,
            method: &req.parts.method,
            keyed: req.keyed,
            body_buffered: buffered,
            replays,
            time_left: Instant::now() < deadline,
        };
        let (pause, replay) = fail(w, i, &facts, cause)?;
        out.retries += 1;
        replays += u32::from(replay);
        if replay {
            if let Some(s) = &w.cfg.schedule {
                s.count(Count::Replayed);
            }
        }
        out.replayed |= replay;
        out.held |= pause;
        if pause {
            match backoff.next_within(Instant::now(), deadline) {
                // A change of state (ready again) ends the pause early.
                Some(d) => match &mut changes {
                    Some(rx) => {
                        tokio::select! {
                            _ = tokio::time::sleep(d) => {}
                            _ = rx.changed() => {}
                        }
                    }
                    None => tokio::time::sleep(d).await,
                },
                None => return Err(ProxyError::Unavailable),
            }
        }
    }
}

/// Step 0, with the state channel only: the schedule's gate (see
/// [`super::schedule`]). Returns when the request may go; holds while the
/// gate says hold, waking on every change of state; `503` with the
/// schedule's `Retry-After` when it says shed or the hold runs out.
async fn wait_for_schedule(
    s: &Schedule,
    rx: &mut tokio::sync::watch::Receiver<u64>,
    deadline: Instant,
    held: &mut bool,
) -> Result<(), ProxyError> {
    loop {
        rx.borrow_and_update();
        let left = deadline.saturating_duration_since(Instant::now());
        match s.gate(left) {
            Gate::Go => return Ok(()),
            Gate::Shed { retry_after } => {
                s.count(Count::Shed);
                return Err(ProxyError::NotReady(retry_after));
            }
            Gate::Hold => {
                if !std::mem::replace(held, true) {
                    s.count(Count::Held);
                }
                let late = tokio::time::sleep_until(deadline.into());
                tokio::select! {
                    _ = rx.changed() => {}
                    _ = late => {
                        s.count(Count::Shed);
                        let retry_after = match s.gate(std::time::Duration::ZERO) {
                            Gate::Shed { retry_after } => retry_after,
                            Gate::Go | Gate::Hold => 1,
                        };
                        return Err(ProxyError::NotReady(retry_after));
                    }
                }
            }
        }
    }
}

/// Step 1: least-outstanding pick among admitted upstreams (or a probe).
fn pick_upstream(w: &Worker) -> Result<usize, ProxyError> {
    match w.pool.pick(&w.upstreams, w.cfg.hold_timeout) {
        Pick::Healthy(i) | Pick::Probe(i) => Ok(i),
        Pick::AllDown => Err(ProxyError::Unavailable),
    }
}

/// Step 2: a pooled connection or a new one, within the connect timeout (cut
/// to what is left of the hold, but never below the first backoff step).
async fn connect(w: &Worker, i: usize, deadline: Instant) -> std::io::Result<(UpConn, bool)> {
    let left = deadline.saturating_duration_since(Instant::now());
    let timeout = w.cfg.connect_timeout.min(left.max(Backoff::FIRST));
    w.pool.checkout(i, &w.upstreams, timeout).await
}

/// Step 3: write the request, read the response head.
async fn send(
    w: &Worker,
    conn: &mut UpConn,
    req: &mut Admitted,
) -> Result<ResponseHead, ExchangeError> {
    conn.exchange(&req.parts, &mut req.body, w.cfg.upstream_timeout)
        .await
}

/// Step 3 with the state channel, for a request that may be replayed
/// (idempotent, keyed, buffered, not replayed yet): sent as usual, but given
/// up (`None`) as soon as the supervisor says the incarnation it went to is
/// `draining` (replaced as unhealthy: it would end in `502`/`504`), so that
/// it is replayed on the next incarnation at once.
async fn send_or_drained(
    w: &Worker,
    i: usize,
    conn: &mut UpConn,
    req: &mut Admitted,
    buffered: bool,
    replays: u32,
) -> Option<Result<ResponseHead, ExchangeError>> {
    let replayable = retry::is_idempotent(&req.parts.method)
        && req.keyed
        && buffered
        && replays < retry::MAX_REPLAYS;
    let watch = w
        .cfg
        .schedule
        .as_ref()
        .filter(|_| replayable)
        .and_then(|s| Some((s, s.incarnation(i)?)));
    match watch {
        Some((s, incarnation)) => {
            let mut rx = s.changed();
            tokio::select! {
                r = send(w, conn, req) => Some(r),
                _ = s.drained(i, incarnation, &mut rx) => None,
            }
        }
        None => Some(send(w, conn, req).await),
    }
}

/// Step 4: the response for the client; its body is relayed as it arrives.
/// Framing errors in what arrived with the head are a `502` (nothing was sent
/// to the client yet).
fn relay(
    w: &Rc<Worker>,
    i: usize,
    conn: UpConn,
    head: ResponseHead,
) -> Result<Response<RespBody>, ProxyError> {
    let mut headers = head.headers;
    headers::strip_hop_by_hop(&mut headers);
    if let Some(via) = &w.cfg.via {
        headers::append_via(&mut headers, via);
    }
    let checkin = Checkin {
        worker: w.clone(),
        upstream: i,
    };
    let body = RespBody::upstream(
        conn,
        head.framing,
        head.keep_alive,
        checkin,
        w.cfg.upstream_timeout,
    )
    .map_err(|e| ProxyError::BadGateway(ExchangeError::Malformed(e.0)))?;
    // Always answer as HTTP/1.1 (hyper downgrades for 1.0 clients).
    let mut resp = Response::new(body);
    *resp.status_mut() = head.status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The retry rule's view of an exchange error.
fn classify(e: &ExchangeError, reused: bool) -> Failure {
    match e {
        ExchangeError::NotSent(_) => Failure::NotSent { reused },
        ExchangeError::Io(_) => Failure::AfterSend,
        ExchangeError::TimedOut => Failure::TimedOut,
        ExchangeError::Malformed(_) => Failure::Malformed,
        ExchangeError::Body(_) => Failure::ClientBody,
    }
}

/// Step 5: after a failed attempt: what the failure says about the upstream
/// (a connect failure ejects it; a crash under a sent request clears its
/// idle connections, dead too), then the rule's decision: `(pause, replay)`
/// to go again, or the error to answer.
fn fail(
    w: &Worker,
    i: usize,
    facts: &Facts<'_>,
    cause: ExchangeError,
) -> Result<(bool, bool), ProxyError> {
    match (&facts.failure, &cause) {
        (Failure::Connect, ExchangeError::NotSent(e)) => {
            w.upstreams.eject(i, e);
            w.pool.clear(i);
        }
        (Failure::AfterSend, _) => w.pool.clear(i),
        (Failure::TimedOut, _) => {
            if let Some(s) = &w.cfg.schedule {
                s.traffic(i, true);
            }
        }
        _ => {}
    }
    match retry::decide(facts) {
        Decision::Fail(v) => Err(match v {
            Verdict::Unavailable => ProxyError::Unavailable,
            Verdict::GatewayTimeout => ProxyError::GatewayTimeout,
            Verdict::BadGateway => ProxyError::BadGateway(cause),
            Verdict::ClientError => match cause {
                ExchangeError::Body(b) => b.to_proxy_error(),
                other => ProxyError::BadGateway(other),
            },
        }),
        Decision::Retry { pause, replay } => {
            if replay {
                tracing::debug!(cause = %cause, upstream = w.upstreams.name(i), "replaying keyed idempotent request");
            }
            Ok((pause, replay))
        }
    }
}
