//! Runtime model and connection serving.
//!
//! One OS thread per core, each running its own current-thread tokio runtime
//! with a `LocalSet`; every thread accepts from the same listening socket (the
//! kernel hands each connection to one of them), passes it on if it already
//! serves clearly more than another thread ([`super::spread`]), and otherwise
//! serves it to the end on that thread, with that thread's upstream pool.
//! Nothing on the request path is shared between threads except upstream
//! health (atomics, read-mostly).
//!
//! Shutdown: SIGTERM/SIGINT (handled on thread 0) flips a `watch`; every thread
//! stops accepting, asks each connection to finish gracefully (in-flight requests
//! complete, idle keep-alive connections close) and waits up to `--drain-timeout`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};

use super::access_log::{AccessLog, Sink, Writer};
use super::clientio::{self, ClientIo, ConnShared};
use super::forward::{self, ConnState};
use super::headers::{self, RequestIds};
use super::limits::{Limits, HYPER_MAX_HEAD};
use super::metrics::{ProxyMetrics, WorkerMetrics};
use super::schedule::Schedule;
use super::spread::{Handoff, Spread};
use super::upstream::{Pool, Upstreams};
use super::ProxyArgs;

/// Settings resolved from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hold_timeout: Duration,
    pub upstream_timeout: Duration,
    pub connect_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub send_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_body: u64,
    pub retry_buffer: u64,
    pub access_log: bool,
    /// `1.1 NAME` for `Via`, when `--via` is given.
    pub via: Option<HeaderValue>,
    pub event_interval: u32,
    pub limits: Limits,
    /// The programs' states from the supervisor's state channel, when the proxy
    /// inherited one (`SELFHEAL_STATE_FD`); `None`: behave as without it.
    pub schedule: Option<Arc<Schedule>>,
}

impl Settings {
    pub fn from_args(a: &ProxyArgs) -> Self {
        Settings {
            hold_timeout: a.hold_timeout,
            upstream_timeout: a.upstream_timeout,
            connect_timeout: a.connect_timeout,
            header_timeout: a.header_timeout,
            body_timeout: a.body_timeout,
            send_timeout: a.send_timeout,
            drain_timeout: a.drain_timeout,
            max_body: a.max_body,
            retry_buffer: a.retry_buffer.min(a.max_body),
            access_log: !a.no_access_log,
            via: a.via.clone(),
            event_interval: a.event_interval.max(1),
            limits: Limits::default(),
            schedule: None,
        }
    }
}

/// Everything one worker thread's requests need.
pub struct Worker {
    pub cfg: Arc<Settings>,
    pub upstreams: Arc<Upstreams>,
    pub pool: Rc<Pool>,
    pub ids: RequestIds,
    /// `Host` sent for clients that gave none (HTTP/1.0).
    pub default_host: HeaderValue,
    /// This thread's access log (`None` with `--no-access-log`).
    pub access_log: Option<Rc<AccessLog>>,
    /// This thread's metrics (`None` without `--metrics-listen`).
    pub metrics: Option<Arc<WorkerMetrics>>,
}

/// Runs the proxy on `listener` until SIGTERM/SIGINT and the drain.
pub fn run(
    listener: std::net::TcpListener,
    args: ProxyArgs,
    state: Option<std::os::fd::OwnedFd>,
) -> anyhow::Result<()> {
    let upstreams = Arc::new(Upstreams::parse(&args.upstream)?);
    let mut settings = Settings::from_args(&args);
    if let Some(fd) = state {
        settings.schedule =
            Some(Schedule::start(fd, &upstreams).context("start the state-channel reader")?);
    }
    let cfg = Arc::new(settings);
    let workers = match args.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let addr = listener.local_addr().context("listener address")?;
    let (tx, rx) = watch::channel(false);
    let access = match cfg.access_log {
        true => Some(Writer::start(args.log_format).context("start the access-log writer")?),
        false => None,
    };
    let metrics = match &args.metrics_listen {
        Some(addr) => {
            let metrics = Arc::new(ProxyMetrics::new(workers, upstreams.clone()));
            // Traffic matters more than its metrics: a port taken by another
            // program costs the metrics (and a warning), not the proxy.
            match super::metrics::serve(addr, metrics.clone()) {
                Ok(bound) => {
                    tracing::info!(%bound, "metrics on http://{bound}/metrics");
                    Some(metrics)
                }
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "serving without metrics");
                    None
                }
            }
        }
        None => None,
    };
    let (spread, mut inboxes) = Spread::new(workers);
    let lead_inbox = inboxes.remove(0);
    let mut threads = Vec::with_capacity(workers);
    for (idx, inbox) in (1..workers).zip(inboxes) {
        let l = listener.try_clone().context("clone listener")?;
        let (cfg, ups, sink) = (
            cfg.clone(),
            upstreams.clone(),
            access.as_ref().map(Writer::sink),
        );
        let intake = Intake {
            idx,
            spread: spread.clone(),
            inbox,
            shutdown: rx.clone(),
            metrics: metrics.as_ref().and_then(|m| m.worker(idx)),
        };
        let t = std::thread::Builder::new()
            .name(format!("proxy-{idx}"))
            .spawn(move || worker(l, cfg, ups, intake, sink, None))
            .context("spawn worker thread")?;
        threads.push(t);
    }
    let intake = Intake {
        idx: 0,
        spread,
        inbox: lead_inbox,
        shutdown: rx,
        metrics: metrics.as_ref().and_then(|m| m.worker(0)),
    };
    let lead = worker(
        listener,
        cfg,
        upstreams.clone(),
        intake,
        access.as_ref().map(Writer::sink),
        Some((tx, addr, workers)),
    );
    for t in threads {
        match t.join() {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }
    lead?;
    if let Some(access) = access {
        access.finish(ACCESS_LOG_WAIT);
    }
    tracing::info!("drained, exiting");
    Ok(())
}

type Leader = (watch::Sender<bool>, SocketAddr, usize);

/// Longest wait at exit for the access log's last lines to be written (only a
/// stalled stdout makes it wait at all).
const ACCESS_LOG_WAIT: Duration = Duration::from_secs(2);

/// Where one worker's connections come from besides its own accepts, and when
/// to stop taking them.
struct Intake {
    idx: usize,
    spread: Arc<Spread>,
    inbox: mpsc::UnboundedReceiver<Handoff>,
    shutdown: watch::Receiver<bool>,
    /// The worker's own counts, when metrics are on.
    metrics: Option<Arc<WorkerMetrics>>,
}

fn worker(
    listener: std::net::TcpListener,
    cfg: Arc<Settings>,
    upstreams: Arc<Upstreams>,
    intake: Intake,
    access_log: Option<Sink>,
    leader: Option<Leader>,
) -> anyhow::Result<()> {
    let idx = intake.idx;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // A busy worker polls for new I/O every `event_interval` task polls.
        // tokio's default (61) means an extra epoll_wait every few requests
        // under load; measured: a higher interval gives more requests per
        // wake-up and a lower p99 (docs/benchmarks.md, "Proxy vs nginx").
        .event_interval(cfg.event_interval)
        .build()
        .context("build runtime")?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::from_std(listener).context("register listener")?;
        let default_host = HeaderValue::from_str(upstreams.name(0))
            .unwrap_or(HeaderValue::from_static("localhost"));
        let w = Rc::new(Worker {
            pool: Rc::new(Pool::new(upstreams.len())),
            cfg,
            upstreams,
            ids: RequestIds::new(idx),
            default_host,
            access_log: access_log.map(|sink| Rc::new(AccessLog::new(sink))),
            metrics: intake.metrics.clone(),
        });
        let access_log = w.access_log.clone();
        if let Some(log) = &access_log {
            tokio::task::spawn_local(log.clone().flush_loop());
        }
        if let Some((tx, addr, workers)) = leader {
            let stop = crate::stop::stop_signal().context("SIGTERM/SIGINT handlers")?;
            tokio::task::spawn_local(w.upstreams.clone().check_loop());
            tokio::task::spawn_local(async move {
                let name = stop.await;
                tracing::info!(
                    signal = name,
                    "stopping: no new connections, draining in-flight requests"
                );
                let _ = tx.send(true);
            });
            tracing::info!(%addr, workers, "serving on {addr}");
        }
        accept_loop(w, listener, intake).await;
        if let Some(log) = access_log {
            log.finish(ACCESS_LOG_WAIT).await;
        }
        Ok(())
    })
}

/// Live connections of one thread, to wait for during the drain; each is
/// also counted in the spread under this worker's index.
struct Active {
    count: Cell<usize>,
    zero: Notify,
    spread: Arc<Spread>,
    idx: usize,
}

/// One served connection.
struct ActiveGuard(Rc<Active>);

impl ActiveGuard {
    fn new(active: &Rc<Active>) -> Self {
        active.count.set(active.count.get() + 1);
        ActiveGuard(active.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let a = &self.0;
        a.spread.release(a.idx);
        let n = a.count.get().saturating_sub(1);
        a.count.set(n);
        if n == 0 {
            a.zero.notify_one();
        }
    }
}

fn http_builder(cfg: &Settings) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .max_header_size(HYPER_MAX_HEAD)
        .max_buf_size(HYPER_MAX_HEAD + 16 * 1024)
        .keep_alive(true);
    b
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener, mut intake: Intake) {
    let active = Rc::new(Active {
        count: Cell::new(0),
        zero: Notify::new(),
        spread: intake.spread.clone(),
        idx: intake.idx,
    });
    let http = Rc::new(http_builder(&w.cfg));
    let spawn = |stream: TcpStream, peer: SocketAddr, intake: &Intake| {
        let guard = ActiveGuard::new(&active);
        let conn = serve_conn(
            w.clone(),
            http.clone(),
            stream,
            peer,
            intake.shutdown.clone(),
        );
        tokio::task::spawn_local(async move {
            conn.await;
            drop(guard);
        });
    };
    loop {
        if *intake.shutdown.borrow_and_update() {
            break;
        }
        tokio::select! {
            biased;
            _ = intake.shutdown.changed() => break,
            handed = intake.inbox.recv() => {
                if let Some((std_stream, peer)) = handed {
                    match TcpStream::from_std(std_stream) {
                        Ok(stream) => spawn(stream, peer, &intake),
                        Err(e) => {
                            intake.spread.release(intake.idx);
                            tracing::warn!(%peer, error = %e, "could not take over a connection");
                        }
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Some(stream) = pass_on(&intake, stream, peer) {
                        spawn(stream, peer, &intake);
                    }
                }
                Err(e) => {
                    // EMFILE and friends: back off a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    // Connections still in the inbox are closed unserved now, like those still
    // in the listen backlog: nothing on them has been answered yet.
    intake.inbox.close();
    while let Ok((unserved, _)) = intake.inbox.try_recv() {
        intake.spread.release(intake.idx);
        drop(unserved);
    }
    drop(listener);
    let drain = async {
        while active.count.get() > 0 {
            active.zero.notified().await;
        }
    };
    if tokio::time::timeout(w.cfg.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = active.count.get(),
            "drain timeout: closing remaining connections"
        );
    }
}

/// Hands a just-accepted connection to a less loaded worker, or gives it back
/// to be served here. Either way the serving worker has been counted.
fn pass_on(intake: &Intake, stream: TcpStream, peer: SocketAddr) -> Option<TcpStream> {
    let to = intake.spread.assign(intake.idx);
    if to == intake.idx {
        return Some(stream);
    }
    let std_stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            intake.spread.release(to);
            tracing::warn!(%peer, error = %e, "could not pass a connection on");
            return None;
        }
    };
    match intake.spread.hand_off(to, (std_stream, peer)) {
        Ok(()) => None,
        Err((std_stream, _)) => {
            // That worker is draining: serve it here after all.
            intake.spread.release(to);
            match TcpStream::from_std(std_stream) {
                Ok(stream) => {
                    intake.spread.charge(intake.idx);
                    Some(stream)
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "could not take a connection back");
                    None
                }
            }
        }
    }
}

async fn serve_conn(
    w: Rc<Worker>,
    http: Rc<http1::Builder>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let shared = Rc::new(ConnShared::default());
    let state = Rc::new(ConnState {
        shared: shared.clone(),
        requests: Cell::new(0),
        peer: headers::peer_value(peer.ip()),
    });
    let io = TokioIo::new(ClientIo::new(stream, shared.clone(), w.cfg.send_timeout));
    let svc = service_fn(move |req| forward::handle(w.clone(), state.clone(), req));
    // In a block of its own: the connection (and its I/O, which hands the
    // socket back) is dropped before the socket is closed below.
    let res = {
        let conn = http.serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => res,
            _ = shutdown.changed() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    // hyper answered a head it could not parse (400, 431...): the rest of
    // that request may still be arriving, as after our own error answers.
    let parse_error = res
        .as_ref()
        .is_err_and(|e| e.is_parse() || e.is_parse_too_large());
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
    if let Some(stream) = shared.take_stream() {
        if shared.linger.get() || parse_error {
            let stop = async move {
                while !*shutdown.borrow_and_update() {
                    if shutdown.changed().await.is_err() {
                        break;
                    }
                }
            };
            clientio::linger(stream, stop).await;
        }
    }
}
