//! Upstreams: the shared set (health: passive ejection on connect failure, active
//! re-admission by a TCP connect every ~100 ms), and each worker thread's own pool
//! of keep-alive connections with least-outstanding balancing.
//!
//! Health is shared by all threads (one atomic per upstream, read on every pick);
//! connections and in-flight counts are per thread, so the hot path takes no lock
//! and touches no shared counter.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::h1::UpConn;

/// Interval of the active check of ejected upstreams.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Idle pooled connections older than this are dropped rather than reused, to
/// stay clear of upstream keep-alive timeouts (Node's default is 5 s).
pub const POOL_IDLE: Duration = Duration::from_secs(4);

/// Idle connections kept per upstream per thread.
const POOL_MAX_IDLE: usize = 512;

#[derive(Debug)]
enum Target {
    Addr(SocketAddr),
    Host(String),
}

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    target: Target,
    /// 0 when admitted; else the moment of ejection (ms since `Upstreams::epoch`, +1).
    ejected_at: AtomicU64,
}

/// The configured upstreams and their health, shared by every thread.
#[derive(Debug)]
pub struct Upstreams {
    list: Vec<Upstream>,
    epoch: Instant,
}

/// The result of balancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// An admitted upstream.
    Healthy(usize),
    /// All are ejected: try this one anyway (a success re-admits it).
    Probe(usize),
    /// All have been ejected for longer than the hold timeout: answer 503 now.
    AllDown,
}

impl Upstreams {
    /// Parses `host:port` (an `http://` prefix and a trailing `/` are accepted).
    pub fn parse(specs: &[String]) -> anyhow::Result<Self> {
        anyhow::ensure!(!specs.is_empty(), "at least one --upstream is required");
        let mut list = Vec::with_capacity(specs.len());
        for spec in specs {
            let s = spec.trim();
            let s = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
            anyhow::ensure!(
                s.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
                "upstream {spec:?} is not host:port"
            );
            let target = match s.parse::<SocketAddr>() {
                Ok(a) => Target::Addr(a),
                Err(_) => Target::Host(s.to_string()),
            };
            list.push(Upstream {
                name: s.to_string(),
                target,
                ejected_at: AtomicU64::new(0),
            });
        }
        Ok(Upstreams {
            list,
            epoch: Instant::now(),
        })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.list[i].name
    }

    pub fn is_admitted(&self, i: usize) -> bool {
        self.list[i].ejected_at.load(Ordering::Relaxed) == 0
    }

    fn now_mark(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Passive ejection after a connect failure.
    pub fn eject(&self, i: usize, cause: &io::Error) {
        let mark = self.now_mark();
        if self.list[i]
            .ejected_at
            .compare_exchange(0, mark, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(upstream = %self.list[i].name, %cause, "upstream ejected");
        }
    }

    /// Re-admission after a successful connect (active check or probe request).
    pub fn readmit(&self, i: usize) {
        if self.list[i].ejected_at.load(Ordering::Relaxed) != 0
            && self.list[i].ejected_at.swap(0, Ordering::Relaxed) != 0
        {
            tracing::info!(upstream = %self.list[i].name, "upstream re-admitted");
        }
    }

    /// How long every upstream has been ejected (`None` if one is admitted).
    pub fn all_down_for(&self) -> Option<Duration> {
        let now = self.now_mark();
        let mut newest = 0;
        for u in &self.list {
            let at = u.ejected_at.load(Ordering::Relaxed);
            if at == 0 {
                return None;
            }
            newest = newest.max(at);
        }
        Some(Duration::from_millis(now.saturating_sub(newest)))
    }

    /// Opens a TCP connection to upstream `i`.
    pub async fn connect(&self, i: usize, timeout: Duration) -> io::Result<TcpStream> {
        let fut = async {
            match &self.list[i].target {
                Target::Addr(a) => TcpStream::connect(*a).await,
                Target::Host(h) => TcpStream::connect(h.as_str()).await,
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }

    /// The active check: while an upstream is ejected, try a TCP connect to it
    /// every [`CHECK_INTERVAL`]; re-admit it when one succeeds.
    pub async fn check_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for i in 0..self.list.len() {
                if !self.is_admitted(i) && self.connect(i, CHECK_INTERVAL).await.is_ok() {
                    self.readmit(i);
                }
            }
        }
    }
}

struct Slot {
    idle: RefCell<Vec<(UpConn, Instant)>>,
    outstanding: Cell<u32>,
}

/// One worker thread's connections and in-flight counts, one slot per upstream.
pub struct Pool {
    slots: Box<[Slot]>,
    rotate: Cell<usize>,
}

/// Counts a request as outstanding on an upstream until dropped.
pub struct InFlight<'a> {
    pool: &'a Pool,
    upstream: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let c = &self.pool.slots[self.upstream].outstanding;
        c.set(c.get().saturating_sub(1));
    }
}

impl Pool {
    pub fn new(upstreams: usize) -> Self {
        let slots = (0..upstreams)
            .map(|_| Slot {
                idle: RefCell::new(Vec::new()),
                outstanding: Cell::new(0),
            })
            .collect();
        Pool {
            slots,
            rotate: Cell::new(0),
        }
    }

    /// Least outstanding requests (from this thread) among admitted upstreams; ties
    /// go round robin. With none admitted, rotate over all of them as probes.
    pub fn pick(&self, ups: &Upstreams, hold: Duration) -> Pick {
        let n = self.slots.len();
        let start = self.rotate.get();
        self.rotate.set(if start + 1 >= n { 0 } else { start + 1 });
        let mut best: Option<(usize, u32)> = None;
        for k in 0..n {
            let i = if start + k >= n {
                start + k - n
            } else {
                start + k
            };
            if !ups.is_admitted(i) {
                continue;
            }
            let o = self.slots[i].outstanding.get();
            if best.is_none_or(|(_, b)| o < b) {
                best = Some((i, o));
            }
        }
        match best {
            Some((i, _)) => Pick::Healthy(i),
            None if ups.all_down_for().is_some_and(|d| d > hold) => Pick::AllDown,
            None => Pick::Probe(start),
        }
    }

    pub fn begin(&self, upstream: usize) -> InFlight<'_> {
        let c = &self.slots[upstream].outstanding;
        c.set(c.get() + 1);
        InFlight {
            pool: self,
            upstream,
        }
    }

    /// A usable connection to upstream `i` and whether it was reused from the
    /// pool; else a new one. An error here means nothing was sent.
    pub async fn checkout(
        &self,
        i: usize,
        ups: &Upstreams,
        connect_timeout: Duration,
    ) -> io::Result<(UpConn, bool)> {
        loop {
            let popped = self.slots[i].idle.borrow_mut().pop();
            let Some((mut conn, since)) = popped else {
                break;
            };
            if since.elapsed() <= POOL_IDLE && conn.is_usable() {
                return Ok((conn, true));
            }
        }
        let stream = ups.connect(i, connect_timeout).await?;
        ups.readmit(i);
        Ok((UpConn::new(stream), false))
    }

    /// Gives a connection back after its response was read whole.
    pub fn checkin(&self, i: usize, conn: UpConn) {
        let mut idle = self.slots[i].idle.borrow_mut();
        if idle.len() < POOL_MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    /// Drops every idle connection to upstream `i` (after a connect failure the
    /// pooled ones are likely dead too).
    pub fn clear(&self, i: usize) {
        self.slots[i].idle.borrow_mut().clear();
    }
}
