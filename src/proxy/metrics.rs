//! The proxy's Prometheus metrics, served on `--metrics-listen ADDR` (off by
//! default; the supervisor federates the page into its own `/metrics`).
//!
//! The request path must not slow down, so nothing is shared per request:
//! each worker thread owns one [`WorkerMetrics`] (its own cache lines), which
//! only that thread writes, with plain loads and stores (no locked
//! read-modify-write: one writer cannot race itself). A scrape, on a thread
//! of its own, reads every worker's values and sums them.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `selfheal_proxy_requests_total` | counter | `code` (`1xx`…`5xx`) | requests answered, by status class, counted when the client has the whole answer (or it was cut) |
//! | `selfheal_proxy_request_duration_seconds` | histogram | – | from the request head to the end of the answer (the access log's duration) |
//! | `selfheal_proxy_requests_held_total` | counter | – | requests that waited (paused and retried) for an upstream to accept a connection |
//! | `selfheal_proxy_requests_retried_total` | counter | – | requests that took more than one attempt |
//! | `selfheal_proxy_requests_replayed_total` | counter | – | requests sent again after a failure once sent (idempotent, keyed, buffered) |
//! | `selfheal_proxy_requests_shed_total` | counter | – | requests answered `503` because no upstream could be reached within the hold (or all were down for longer), or because the state channel said its program is stopped, failed or restarting later than the hold |
//! | `selfheal_proxy_upstream_up` | gauge | `upstream` | 1 while the upstream is admitted, 0 while it is ejected |
//!
//! Requests that hyper refuses before the proxy sees them (an unparsable
//! head) are not counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::upstream::Upstreams;

/// Upper bounds of the request-duration buckets, in seconds (+Inf implicit).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes, `1xx` to `5xx`, the `code` label.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A counter written by one thread only: a load and a store, no locked
/// instruction. Readers on other threads see a value at most one update old.
#[derive(Debug, Default)]
struct Local(AtomicU64);

impl Local {
    fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One worker thread's counts; written only by that thread (see the module
/// docs). Aligned so two workers' counts never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerMetrics {
    requests: [Local; CLASSES.len()],
    /// Per bucket (not cumulative); the last one is +Inf.
    buckets: [Local; DURATION_BUCKETS.len() + 1],
    duration_ns: Local,
    held: Local,
    retried: Local,
    replayed: Local,
    shed: Local,
}

/// What a request went through before its answer, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    /// Waited (paused) at least once for an upstream.
    pub held: bool,
    /// Attempts beyond the first.
    pub retries: u32,
    /// Sent again after a failure once sent.
    pub replayed: bool,
    /// Answered 503 for want of a reachable upstream.
    pub shed: bool,
}

impl WorkerMetrics {
    /// The answer's status (100–599; others are not counted) and the time
    /// from the request head to the end of the answer.
    pub fn answered(&self, status: u16, took: Duration) {
        if let Some(class) = status_class(status).and_then(|c| self.requests.get(c)) {
            class.add(1);
        }
        let secs = took.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        if let Some(b) = self.buckets.get(bucket) {
            b.add(1);
        }
        self.duration_ns
            .add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How the request got (or did not get) to an upstream.
    pub fn path(&self, p: Path) {
        if p.held {
            self.held.add(1);
        }
        if p.retries > 0 {
            self.retried.add(1);
        }
        if p.replayed {
            self.replayed.add(1);
        }
        if p.shed {
            self.shed.add(1);
        }
    }
}

/// `0` for 1xx … `4` for 5xx; `None` outside 100–599.
pub fn status_class(status: u16) -> Option<usize> {
    match status {
        100..=599 => Some(usize::from(status / 100 - 1)),
        _ => None,
    }
}

/// Every worker's counts and the upstreams' health: the collector a scrape encodes.
#[derive(Debug)]
pub struct ProxyMetrics {
    workers: Vec<Arc<WorkerMetrics>>,
    upstreams: Arc<Upstreams>,
}

impl ProxyMetrics {
    /// Counts for `workers` threads.
    pub fn new(workers: usize, upstreams: Arc<Upstreams>) -> ProxyMetrics {
        ProxyMetrics {
            workers: (0..workers).map(|_| Arc::default()).collect(),
            upstreams,
        }
    }

    /// Worker `idx`'s counts (to be written by that thread only).
    pub fn worker(&self, idx: usize) -> Option<Arc<WorkerMetrics>> {
        self.workers.get(idx).cloned()
    }

    fn sum(&self, field: impl Fn(&WorkerMetrics) -> &Local) -> u64 {
        self.workers.iter().map(|w| field(w).get()).sum()
    }

    /// The whole page (OpenMetrics text, ending in `# EOF`).
    pub fn page(self: &Arc<Self>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

impl Collector for ProxyMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "selfheal_proxy_requests",
            "Requests answered, by status class.",
            None,
            MetricType::Counter,
        )?;
        for (i, class) in CLASSES.iter().enumerate() {
            ConstCounter::new(self.sum(|w| &w.requests[i]))
                .encode(family.encode_family(&[("code", *class)])?)?;
        }
        // Per bucket, not cumulative: the encoder accumulates.
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, bound)| (bound, self.sum(|w| &w.buckets[i])))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum(|w| &w.duration_ns) as f64 / 1e9;
        encoder
            .encode_descriptor(
                "selfheal_proxy_request_duration",
                "Time from the request head to the end of the answer.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        for (name, help, field) in [
            (
                "selfheal_proxy_requests_held",
                "Requests that waited for an upstream to accept a connection.",
                (|w: &WorkerMetrics| &w.held) as fn(&WorkerMetrics) -> &Local,
            ),
            (
                "selfheal_proxy_requests_retried",
                "Requests that took more than one attempt.",
                |w: &WorkerMetrics| &w.retried,
            ),
            (
                "selfheal_proxy_requests_replayed",
                "Requests sent again after a failure once sent (idempotent, keyed, buffered).",
                |w: &WorkerMetrics| &w.replayed,
            ),
            (
                "selfheal_proxy_requests_shed",
                "Requests answered 503: no upstream reachable within the hold.",
                |w: &WorkerMetrics| &w.shed,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(self.sum(field)).encode(metric)?;
        }
        let mut family = encoder.encode_descriptor(
            "selfheal_proxy_upstream_up",
            "1 while the upstream is admitted, 0 while it is ejected.",
            None,
            MetricType::Gauge,
        )?;
        for i in 0..self.upstreams.len() {
            let up = i64::from(self.upstreams.is_admitted(i));
            let labels = [("upstream", self.upstreams.name(i))];
            ConstGauge::new(up).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Binds `--metrics-listen` (with `SO_REUSEPORT`, so the next incarnation of
/// a surge restart, or a replica, binds it beside this one: a scrape reaches
/// one of them) and serves `GET /metrics` on a thread of its own, away from
/// the workers' runtimes. Errors: the address cannot be bound.
pub fn serve(addr: &str, metrics: Arc<ProxyMetrics>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = bind_shared(addr).with_context(|| format!("--metrics-listen {addr}"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("proxy-metrics".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot start a runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics: cannot register the listener");
                        return;
                    }
                };
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let metrics = metrics.clone();
                        async move {
                            (
                                [(
                                    axum::http::header::CONTENT_TYPE,
                                    crate::admin::api::OPENMETRICS,
                                )],
                                metrics.page(),
                            )
                                .into_response()
                        }
                    }),
                );
                let _ = axum::serve(listener, app).await;
            });
        })
        .context("spawn the metrics thread")?;
    Ok(bound)
}

/// A non-blocking listener on `addr` (`IP:PORT`) with `SO_REUSEADDR` and
/// `SO_REUSEPORT`.
fn bind_shared(addr: &str) -> anyhow::Result<std::net::TcpListener> {
    use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType};
    let addr: std::net::SocketAddr = addr.parse().context("expected IP:PORT")?;
    let family = match addr {
        std::net::SocketAddr::V4(_) => AddressFamily::Inet,
        std::net::SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let fd = socket::socket(family, SockType::Stream, flags, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &socket::SockaddrStorage::from(addr),
    )?;
    socket::listen(&fd, Backlog::new(64).unwrap_or(Backlog::MAXCONN))?;
    Ok(std::net::TcpListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_incarnations_share_the_metrics_port() {
        let ups = Arc::new(Upstreams::parse(&["127.0.0.1:1".into()]).unwrap());
        let m = Arc::new(ProxyMetrics::new(1, ups));
        let first = serve("127.0.0.1:0", m.clone()).unwrap();
        let second = serve(&first.to_string(), m).unwrap();
        assert_eq!(first, second);
        assert!(serve(
            "localhost:1",
            Arc::new(ProxyMetrics::new(
                1,
                Arc::new(Upstreams::parse(&["127.0.0.1:1".into()]).unwrap())
            ))
        )
        .is_err());
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(100), Some(0));
        assert_eq!(status_class(200), Some(1));
        assert_eq!(status_class(308), Some(2));
        assert_eq!(status_class(499), Some(3));
        assert_eq!(status_class(503), Some(4));
        assert_eq!(status_class(599), Some(4));
        assert_eq!(status_class(99), None);
        assert_eq!(status_class(600), None);
    }

    #[test]
    fn a_scrape_sums_every_worker() {
        let ups =
            Arc::new(Upstreams::parse(&["127.0.0.1:1".into(), "127.0.0.1:2".into()]).unwrap());
        let m = Arc::new(ProxyMetrics::new(2, ups.clone()));
        let (a, b) = (m.worker(0).unwrap(), m.worker(1).unwrap());
        a.answered(200, Duration::from_micros(300));
        b.answered(204, Duration::from_millis(3));
        b.answered(503, Duration::from_secs(20));
        a.path(Path {
            held: true,
            retries: 2,
            replayed: false,
            shed: false,
        });
        b.path(Path {
            held: true,
            retries: 1,
            replayed: true,
            shed: true,
        });
        ups.eject(1, &std::io::Error::other("refused"));
        let page = m.page();
        for line in [
            "selfheal_proxy_requests_total{code=\"2xx\"} 2",
            "selfheal_proxy_requests_total{code=\"5xx\"} 1",
            "selfheal_proxy_requests_total{code=\"1xx\"} 0",
            "selfheal_proxy_request_duration_seconds_count 3",
            "selfheal_proxy_request_duration_seconds_bucket{le=\"0.0005\"} 1",
            "selfheal_proxy_request_duration_seconds_bucket{le=\"0.005\"} 2",
            "selfheal_proxy_request_duration_seconds_bucket{le=\"10.0\"} 2",
            "selfheal_proxy_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "selfheal_proxy_requests_held_total 2",
            "selfheal_proxy_requests_retried_total 2",
            "selfheal_proxy_requests_replayed_total 1",
            "selfheal_proxy_requests_shed_total 1",
            "selfheal_proxy_upstream_up{upstream=\"127.0.0.1:1\"} 1",
            "selfheal_proxy_upstream_up{upstream=\"127.0.0.1:2\"} 0",
        ] {
            assert!(page.contains(line), "{line:?} missing in\n{page}");
        }
        assert!(page.ends_with("# EOF\n"), "{page}");
        let sum: f64 = page
            .lines()
            .find_map(|l| l.strip_prefix("selfheal_proxy_request_duration_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 20.0033).abs() < 1e-6, "{sum}");
    }
}
