//! What the supervisor says about the upstreams' programs (the state channel,
//! `SELFHEAL_STATE_FD`, see [`crate::statefd`]), and the rule that turns it
//! into an answer before any connect: [`gate`].
//!
//! | program's phase | gate |
//! |---|---|
//! | unknown (no channel, or no program has this upstream's address) | go (as without the channel) |
//! | ready | go |
//! | starting, draining | hold: wait for a change, within the hold budget |
//! | backoff, `next_start + ready_after` within what is left of the hold | hold |
//! | backoff, later | `503`, `Retry-After` = seconds to `next_start + ready_after`, rounded up |
//! | stopped, failed | `503` at once, `Retry-After` [`STOPPED_RETRY_AFTER`] |
//!
//! With several upstreams the most hopeful wins (go, then hold, then the
//! shortest `Retry-After`). A held request waits on [`Schedule::changed`], so
//! it goes out as soon as its program is ready, not on the retry timer.
//!
//! For `traffic_health`, the proxy counts per upstream the answers it relayed
//! and the errors it saw (`5xx` answers, upstream timeouts) and reports them
//! per program and incarnation once a second
//! ([`crate::statefd::Report::Traffic`]; nothing for a quiet second).
//!
//! While a program is not ready the proxy counts requests held, replayed and
//! shed for it; when it is ready again it reports them
//! ([`crate::statefd::Report::Cost`]).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nix::sys::socket::{self, MsgFlags};
use tokio::sync::watch;

use super::upstream::Upstreams;
use crate::statefd::{Phase, Report, StateMsg, MAX_PACKET};

/// `Retry-After` (s) for a program stopped by an operator or failed: nothing
/// says when it comes back.
pub const STOPPED_RETRY_AFTER: u64 = 5;

/// How often traffic counts are reported (`traffic_health`).
pub const TRAFFIC_REPORT: Duration = Duration::from_secs(1);

/// What the proxy knows of one upstream's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub program: String,
    pub phase: Phase,
    pub next_start_ms: Option<u64>,
    pub ready_after_ms: Option<u64>,
    pub incarnation: u64,
}

/// The rule's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send it (the usual retry rule applies).
    Go,
    /// Wait for a change of state.
    Hold,
    /// `503` with this `Retry-After`, in seconds.
    Shed { retry_after: u64 },
}

/// The rule for one upstream (see the module table). Pure.
pub fn gate(k: Option<&Known>, now_ms: u64, hold_left: Duration) -> Gate {
    let Some(k) = k else { return Gate::Go };
    match k.phase {
        Phase::Ready => Gate::Go,
        Phase::Starting | Phase::Draining => Gate::Hold,
        Phase::Backoff => {
            let eta = k.next_start_ms.unwrap_or(now_ms).saturating_sub(now_ms)
                + k.ready_after_ms.unwrap_or(0);
            if u128::from(eta) <= hold_left.as_millis() {
                Gate::Hold
            } else {
                Gate::Shed {
                    retry_after: eta.div_ceil(1000).max(1),
                }
            }
        }
        Phase::Stopped | Phase::Failed => Gate::Shed {
            retry_after: STOPPED_RETRY_AFTER,
        },
    }
}

/// Several upstreams: go if any goes, else hold if any holds, else the
/// shortest `Retry-After`.
pub fn combine(gates: impl IntoIterator<Item = Gate>) -> Gate {
    let mut best: Option<Gate> = None;
    for g in gates {
        best = Some(match (best, g) {
            (_, Gate::Go) => return Gate::Go,
            (Some(Gate::Hold), _) | (_, Gate::Hold) => Gate::Hold,
            (Some(Gate::Shed { retry_after: a }), Gate::Shed { retry_after: b }) => Gate::Shed {
                retry_after: a.min(b),
            },
            (None | Some(Gate::Go), s) => s,
        });
    }
    best.unwrap_or(Gate::Go)
}

/// Counts of one upstream while its program is not ready.
#[derive(Debug, Default)]
struct Counts {
    held: AtomicU64,
    replayed: AtomicU64,
    shed: AtomicU64,
    /// Answers relayed and errors seen since the last traffic report.
    requests: AtomicU64,
    errors: AtomicU64,
}

/// The shared view of every upstream's program, fed by the reader thread.
#[derive(Debug)]
pub struct Schedule {
    known: Vec<RwLock<Option<Known>>>,
    /// Per upstream, for the request path without a lock: whether requests
    /// may go at once (its program is unknown or ready), and the incarnation
    /// + 1 (0: unknown). Written by the reader thread with `known`.
    open: Vec<AtomicBool>,
    incarnations: Vec<AtomicU64>,
    counts: Vec<Counts>,
    addrs: Vec<Option<SocketAddr>>,
    names: Vec<String>,
    changed: watch::Sender<u64>,
    fd: OwnedFd,
}

impl Schedule {
    /// Starts reading `fd` on a thread of its own (blocking reads); the
    /// schedule is updated as messages arrive.
    pub fn start(fd: OwnedFd, ups: &Upstreams) -> std::io::Result<Arc<Schedule>> {
        let n = ups.len();
        let names: Vec<String> = (0..n).map(|i| ups.name(i).to_string()).collect();
        let schedule = Arc::new(Schedule {
            known: (0..n).map(|_| RwLock::new(None)).collect(),
            open: (0..n).map(|_| AtomicBool::new(true)).collect(),
            incarnations: (0..n).map(|_| AtomicU64::new(0)).collect(),
            counts: (0..n).map(|_| Counts::default()).collect(),
            addrs: names.iter().map(|s| s.parse().ok()).collect(),
            names,
            changed: watch::channel(0).0,
            fd,
        });
        let reader = schedule.clone();
        std::thread::Builder::new()
            .name("state-channel".into())
            .spawn(move || reader.read_loop())?;
        let reporter = schedule.clone();
        std::thread::Builder::new()
            .name("traffic-report".into())
            .spawn(move || loop {
                std::thread::sleep(TRAFFIC_REPORT);
                reporter.report_traffic();
            })?;
        Ok(schedule)
    }

    /// A receiver that sees every change of state.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The combined gate over all upstreams.
    pub fn gate(&self, hold_left: Duration) -> Gate {
        // The common case, lock-free: some upstream is ready (or unknown).
        if self.open.iter().any(|o| o.load(Ordering::Acquire)) {
            return Gate::Go;
        }
        let now = crate::admin::snapshot::now_ms();
        combine(self.known.iter().map(|k| {
            let k = k.read().ok();
            gate(k.as_ref().and_then(|k| k.as_ref()), now, hold_left)
        }))
    }

    /// Counts `what` for every upstream whose program is known and not ready.
    pub fn count(&self, what: Count) {
        for (k, c) in self.known.iter().zip(&self.counts) {
            let down = k
                .read()
                .ok()
                .is_some_and(|k| k.as_ref().is_some_and(|k| k.phase != Phase::Ready));
            if down {
                let counter = match what {
                    Count::Held => &c.held,
                    Count::Replayed => &c.replayed,
                    Count::Shed => &c.shed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One answer from upstream `i` (`error`: a `5xx`), or an upstream
    /// timeout (`error`), for `traffic_health`.
    pub fn traffic(&self, i: usize, error: bool) {
        if let Some(c) = self.counts.get(i) {
            c.requests.fetch_add(1, Ordering::Relaxed);
            if error {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends the counts since the last call, per program and incarnation.
    fn report_traffic(&self) {
        for (k, c) in self.known.iter().zip(&self.counts) {
            let requests = c.requests.swap(0, Ordering::Relaxed);
            let errors = c.errors.swap(0, Ordering::Relaxed);
            if requests == 0 && errors == 0 {
                continue;
            }
            let Some(known) = k.read().ok().and_then(|k| k.clone()) else {
                continue;
            };
            self.send(&Report::Traffic {
                program: known.program,
                incarnation: known.incarnation,
                requests,
                errors,
            });
        }
    }

    /// Sends a report; never blocks: a full socket loses the report, not a request.
    fn send(&self, report: &Report) {
        if let Ok(bytes) = serde_json::to_vec(report) {
            let _ = socket::send(
                self.fd.as_raw_fd(),
                &bytes,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            );
        }
    }

    /// The incarnation of upstream `i`'s program, when known.
    pub fn incarnation(&self, i: usize) -> Option<u64> {
        self.incarnations
            .get(i)?
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// Returns once upstream `i`'s `incarnation` is being replaced: the
    /// program is `draining` it, or a later incarnation exists already (a
    /// `draining` message may have been coalesced away), or the program has
    /// no process left at all (`stopped`, `failed`: a request still waiting
    /// sits in the held socket's backlog, where nothing will accept it).
    /// Never otherwise.
    pub async fn drained(&self, i: usize, incarnation: u64, rx: &mut watch::Receiver<u64>) {
        loop {
            let gone = self
                .known
                .get(i)
                .and_then(|k| k.read().ok().and_then(|k| k.clone()))
                .is_some_and(|k| {
                    (k.phase == Phase::Draining && k.incarnation == incarnation)
                        || k.incarnation > incarnation
                        || matches!(k.phase, Phase::Stopped | Phase::Failed)
                });
            if gone {
                return;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    fn matches(&self, i: usize, addresses: &[String]) -> bool {
        addresses
            .iter()
            .any(|a| match (self.addrs.get(i), a.parse::<SocketAddr>()) {
                (Some(Some(mine)), Ok(theirs)) => *mine == theirs,
                _ => self.names.get(i).is_some_and(|n| n == a),
            })
    }

    fn read_loop(&self) {
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            let n = match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return,
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "state channel closed");
                    return;
                }
            };
            let Some(msg) = buf
                .get(..n)
                .and_then(|b| serde_json::from_slice::<StateMsg>(b).ok())
            else {
                continue;
            };
            self.apply(msg);
        }
    }

    fn apply(&self, msg: StateMsg) {
        let mut recovered = false;
        for i in 0..self.known.len() {
            if !self.matches(i, &msg.addresses) {
                continue;
            }
            let Some(slot) = self.known.get(i) else {
                continue;
            };
            let Ok(mut k) = slot.write() else { continue };
            let was_down = k.as_ref().is_some_and(|k| k.phase != Phase::Ready);
            recovered |= was_down && msg.state == Phase::Ready;
            if let (Some(open), Some(inc)) = (self.open.get(i), self.incarnations.get(i)) {
                open.store(msg.state == Phase::Ready, Ordering::Release);
                inc.store(msg.incarnation.saturating_add(1), Ordering::Release);
            }
            *k = Some(Known {
                program: msg.program.clone(),
                phase: msg.state,
                next_start_ms: msg.next_start_ms,
                ready_after_ms: msg.ready_after_ms,
                incarnation: msg.incarnation,
            });
        }
        tracing::info!(program = %msg.program, state = ?msg.state, incarnation = msg.incarnation, "upstream program state");
        if recovered {
            self.report_cost(&msg);
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// The counts of the outage that just ended, summed over the program's
    /// upstreams and reset, sent to the supervisor.
    fn report_cost(&self, msg: &StateMsg) {
        let (mut held, mut replayed, mut shed) = (0, 0, 0);
        for (i, c) in self.counts.iter().enumerate() {
            if self.matches(i, &msg.addresses) {
                held += c.held.swap(0, Ordering::Relaxed);
                replayed += c.replayed.swap(0, Ordering::Relaxed);
                shed += c.shed.swap(0, Ordering::Relaxed);
            }
        }
        let report = Report::Cost {
            program: msg.program.clone(),
            incarnation: msg.incarnation,
            held,
            replayed,
            shed,
        };
        self.send(&report);
    }
}

/// What [`Schedule::count`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Held,
    Replayed,
    Shed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(phase: Phase, next_start_ms: Option<u64>, ready_after_ms: Option<u64>) -> Known {
        Known {
            program: "app".into(),
            phase,
            next_start_ms,
            ready_after_ms,
            incarnation: 1,
        }
    }

    const HOLD: Duration = Duration::from_secs(5);

    #[test]
    fn unknown_and_ready_go() {
        assert_eq!(gate(None, 0, HOLD), Gate::Go);
        assert_eq!(
            gate(Some(&known(Phase::Ready, None, None)), 0, HOLD),
            Gate::Go
        );
    }

    #[test]
    fn starting_and_draining_hold() {
        for p in [Phase::Starting, Phase::Draining] {
            assert_eq!(gate(Some(&known(p, None, None)), 0, HOLD), Gate::Hold);
        }
    }

    #[test]
    fn stopped_and_failed_shed_at_once() {
        for p in [Phase::Stopped, Phase::Failed] {
            assert_eq!(
                gate(Some(&known(p, None, None)), 0, HOLD),
                Gate::Shed {
                    retry_after: STOPPED_RETRY_AFTER
                }
            );
        }
    }

    #[test]
    fn backoff_holds_only_what_fits_the_budget() {
        let k = known(Phase::Backoff, Some(10_000 + 3_000), Some(500));
        // 3.5 s away: fits 5 s, not 3 s.
        assert_eq!(gate(Some(&k), 10_000, HOLD), Gate::Hold);
        assert_eq!(
            gate(Some(&k), 10_000, Duration::from_secs(3)),
            Gate::Shed { retry_after: 4 }
        );
        // Exactly on a second: not rounded up further.
        let k = known(Phase::Backoff, Some(10_000 + 2_000), None);
        assert_eq!(
            gate(Some(&k), 10_000, Duration::from_secs(1)),
            Gate::Shed { retry_after: 2 }
        );
        // A start already due holds.
        let k = known(Phase::Backoff, Some(9_000), Some(100));
        assert_eq!(gate(Some(&k), 10_000, HOLD), Gate::Hold);
    }

    /// The reader maps a state to the upstream with its address, gates by it,
    /// and reports the outage's counts when the program is ready again.
    #[test]
    fn states_arrive_gate_requests_and_the_cost_goes_back() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let ups = Upstreams::parse(&["127.0.0.1:8000".into(), "127.0.0.1:9000".into()]).unwrap();
        let s = Schedule::start(theirs, &ups).unwrap();
        let mut rx = s.changed();
        let send = |state: Phase, addr: &str, inc: u64| {
            let m = StateMsg {
                program: "app".into(),
                state,
                addresses: vec![addr.into()],
                next_start_ms: None,
                ready_after_ms: None,
                incarnation: inc,
            };
            socket::send(
                ours.as_raw_fd(),
                &serde_json::to_vec(&m).unwrap(),
                MsgFlags::empty(),
            )
            .unwrap();
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut next = || rt.block_on(rx.changed()).unwrap();
        // One upstream stopped, the other unknown: go (as without the channel).
        send(Phase::Stopped, "127.0.0.1:8000", 1);
        next();
        assert_eq!(s.gate(HOLD), Gate::Go);
        send(Phase::Stopped, "127.0.0.1:9000", 1);
        next();
        assert_eq!(
            s.gate(HOLD),
            Gate::Shed {
                retry_after: STOPPED_RETRY_AFTER
            }
        );
        s.count(Count::Shed);
        s.count(Count::Held);
        assert_eq!(s.incarnation(1), Some(1));
        send(Phase::Ready, "127.0.0.1:9000", 2);
        next();
        assert_eq!(s.gate(HOLD), Gate::Go);
        assert_eq!(s.incarnation(1), Some(2));
        let mut buf = [0u8; 1024];
        let n = socket::recv(ours.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        let report: Report = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(
            report,
            Report::Cost {
                program: "app".into(),
                incarnation: 2,
                held: 1,
                replayed: 0,
                shed: 1
            }
        );
    }

    #[test]
    fn combine_prefers_go_then_hold_then_the_shortest_wait() {
        let shed = |s| Gate::Shed { retry_after: s };
        assert_eq!(combine([]), Gate::Go);
        assert_eq!(combine([shed(3), Gate::Go, Gate::Hold]), Gate::Go);
        assert_eq!(combine([shed(3), Gate::Hold]), Gate::Hold);
        assert_eq!(combine([shed(3), shed(2), shed(9)]), shed(2));
    }
}
