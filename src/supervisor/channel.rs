//! The state channel: the supervisor tells a front (a program with
//! `upstreams = [...]`, the proxy) the state of each program it fronts, without
//! polling, and hears back what an outage cost. Wire format: [`crate::statefd`].
//!
//! One `socketpair(AF_UNIX, SOCK_SEQPACKET)` per front, made once and kept
//! across its incarnations (as listen sockets are): the child end is handed to
//! every incarnation (see [`Channels::child_fd`]), the parent end is driven by
//! one writer task ([`pump`]). The owner task never blocks on it: messages go to
//! the task through an unbounded queue; when the socket would block, the task
//! keeps only the latest message per fronted program and sends it once the
//! socket is writable.
//!
//! The phase sent is a pure function of the fronted program's state
//! ([`phase`]); a message goes out when the phase or the incarnation changes
//! ([`Channels::sync`], called after every batch of actions).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::events::Record;
use super::state::{AfterStop, Machine, State, Stopping};
use super::Msg;
use crate::config::Program;
use crate::statefd::{Phase, Report, StateMsg, MAX_PACKET};

/// The phase a front sees for a program in `state` (pure; the table is the
/// `match`): ready only when running, ready and not suspended; a stop to
/// replace an unhealthy incarnation (liveness, memory, traffic) is `draining`
/// (the front replays keyed idempotent requests in flight to it), an operator
/// restart is `starting` (its in-flight requests finish gracefully), a stop
/// for good (operator stop, shutdown) is `stopped`.
pub fn phase(state: &State, suspended: bool) -> Phase {
    match state {
        State::Running { ready: true, .. } if !suspended => Phase::Ready,
        State::Waiting | State::Starting { .. } | State::Running { .. } => Phase::Starting,
        State::Stopping(Stopping { then, .. }) => match then {
            AfterStop::Stay => Phase::Stopped,
            AfterStop::Recover => Phase::Draining,
            AfterStop::Restart | AfterStop::Crashed => Phase::Starting,
        },
        State::Backoff { .. } => Phase::Backoff,
        State::Stopped | State::Exited => Phase::Stopped,
        State::Failed => Phase::Failed,
    }
}

/// What a front is told of one program at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub phase: Phase,
    /// Epoch ms of the next start, in backoff.
    pub next_start_ms: Option<u64>,
    pub incarnation: u64,
}

/// The view of `machine` at `now` (`now_ms`: the same instant on the wall clock).
pub fn view(machine: &Machine, incarnation: u64, now: Instant, now_ms: u64) -> View {
    let next_start_ms = match &machine.state {
        State::Backoff { until } => {
            Some(now_ms + until.saturating_duration_since(now).as_millis() as u64)
        }
        _ => None,
    };
    View {
        phase: phase(&machine.state, machine.suspended),
        next_start_ms,
        incarnation,
    }
}

/// What the last outage of a program cost (status `last_restart`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartCost {
    /// From the moment it stopped being ready (death or the decision to
    /// replace it) to ready again, in ms.
    pub down_ms: u64,
    /// Requests the front held, replayed and shed (`503`) meanwhile.
    pub held: u64,
    pub replayed: u64,
    pub shed: u64,
}

/// One fronted program, as the channels track it.
#[derive(Debug)]
struct Track {
    name: String,
    addresses: Vec<String>,
    last: Option<View>,
    spawned_at: Option<(u64, Instant)>,
    ready_after: Option<Duration>,
    /// When it last stopped being ready, while it is not.
    down_since: Option<Instant>,
    /// The incarnation that became ready after the last outage, and that outage.
    last_restart: Option<(u64, RestartCost)>,
}

struct Channel {
    owner: usize,
    child: OwnedFd,
    fronted: Vec<usize>,
    tx: mpsc::UnboundedSender<(usize, Vec<u8>)>,
}

/// Every front's channel and every fronted program's tracking.
#[derive(Default)]
pub struct Channels {
    list: Vec<Channel>,
    tracks: HashMap<usize, Track>,
}

impl Channels {
    /// Makes one socketpair per program with `upstreams` and starts its
    /// writer task (on the current runtime). `programs` in stack order.
    pub fn open(
        programs: &[Arc<Program>],
        owner_tx: &mpsc::UnboundedSender<Msg>,
    ) -> std::io::Result<Channels> {
        let index: HashMap<&str, usize> = programs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        let mut channels = Channels::default();
        for (owner, p) in programs.iter().enumerate() {
            if p.upstreams.is_empty() {
                continue;
            }
            let (parent, child) = socket::socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )?;
            set_nonblocking(&parent)?;
            let fronted: Vec<usize> = p
                .upstreams
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect();
            for &f in &fronted {
                if let Some(fp) = programs.get(f) {
                    channels.tracks.entry(f).or_insert_with(|| Track {
                        name: fp.name.clone(),
                        addresses: fp.listen.iter().map(ToString::to_string).collect(),
                        last: None,
                        spawned_at: None,
                        ready_after: None,
                        down_since: None,
                        last_restart: None,
                    });
                }
            }
            let (tx, rx) = mpsc::unbounded_channel();
            // SAFETY: `parent` is an OwnedFd moved into the AsyncFd, which owns it
            // (open, same description) until the AsyncFd is dropped.
            let parent = unsafe { AsyncFd::register(parent) }.map_err(|e| e.into_parts().1)?;
            tokio::spawn(pump(parent, rx, owner_tx.clone()));
            channels.list.push(Channel {
                owner,
                child,
                fronted,
                tx,
            });
        }
        Ok(channels)
    }

    /// The descriptor program `i` inherits as its state channel, if it fronts any.
    pub fn child_fd(&self, i: usize) -> Option<RawFd> {
        self.list
            .iter()
            .find(|c| c.owner == i)
            .map(|c| c.child.as_raw_fd())
    }

    /// Program `i` was just spawned: if it is a front, its new incarnation is
    /// sent the state of every program it fronts first.
    pub fn spawned(&mut self, i: usize) {
        for c in self.list.iter().filter(|c| c.owner == i) {
            for &f in &c.fronted {
                if let Some(t) = self.tracks.get(&f) {
                    if let Some(v) = t.last {
                        let _ = c.tx.send((f, encode(t, v)));
                    }
                }
            }
        }
    }

    /// Compares every fronted program's view with the last one sent and sends
    /// the changes; notes when a fronted program stops being ready and when it
    /// is ready again (the outage's `down_ms`; the `restart_cost` record is
    /// published when the front reports its counts, [`Channels::report`]).
    pub fn sync(&mut self, now: Instant, mut view_of: impl FnMut(usize) -> Option<View>) {
        for (&f, t) in self.tracks.iter_mut() {
            let Some(v) = view_of(f) else { continue };
            if t.last.is_some_and(|l| same(l, v)) {
                continue;
            }
            let was_ready = t.last.is_some_and(|l| l.phase == Phase::Ready);
            if t.spawned_at.is_none_or(|(inc, _)| inc != v.incarnation) {
                t.spawned_at = Some((v.incarnation, now));
            }
            match (was_ready, v.phase == Phase::Ready) {
                (true, false) => t.down_since = Some(now),
                (false, true) => {
                    if let Some((_, at)) = t.spawned_at.filter(|(inc, _)| *inc == v.incarnation) {
                        t.ready_after = Some(now.saturating_duration_since(at));
                    }
                    if let Some(since) = t.down_since.take() {
                        let down_ms = now.saturating_duration_since(since).as_millis() as u64;
                        t.last_restart = Some((
                            v.incarnation,
                            RestartCost {
                                down_ms,
                                ..RestartCost::default()
                            },
                        ));
                    }
                }
                _ => {}
            }
            t.last = Some(v);
            let bytes = encode(t, v);
            for c in self.list.iter().filter(|c| c.fronted.contains(&f)) {
                let _ = c.tx.send((f, bytes.clone()));
            }
        }
    }

    /// A front's report: the counts of the outage that ended with
    /// `incarnation` go into the status, and the event to publish is returned.
    pub fn report(&mut self, report: Report) -> Option<Record> {
        match report {
            Report::Cost {
                program,
                incarnation,
                held,
                replayed,
                shed,
            } => {
                let t = self.tracks.values_mut().find(|t| t.name == program)?;
                let (inc, cost) = t.last_restart.as_mut()?;
                if *inc != incarnation {
                    return None;
                }
                cost.held += held;
                cost.replayed += replayed;
                cost.shed += shed;
                Some(restart_record(&t.name, *cost))
            }
            // Traffic is the traffic module's (`Supervisor::on_report`).
            Report::Traffic { .. } => None,
        }
    }

    /// What program `i`'s last outage cost, if it is fronted and had one.
    pub fn last_restart(&self, i: usize) -> Option<RestartCost> {
        self.tracks.get(&i)?.last_restart.map(|(_, c)| c)
    }
}

/// The `restart_cost` event: down time and the requests it touched.
pub fn restart_record(program: &str, c: RestartCost) -> Record {
    let fields = json!({
        "down_ms": c.down_ms, "held": c.held, "replayed": c.replayed, "shed": c.shed,
    });
    let serde_json::Value::Object(fields) = fields else {
        return Record::text(Some(program.into()), String::new());
    };
    Record::typed(
        Some(program.into()),
        "restart_cost",
        format!(
            "restart cost: down {}, requests held {}, replayed {}, shed {}",
            super::state::human(Duration::from_millis(c.down_ms)),
            c.held,
            c.replayed,
            c.shed
        ),
        fields,
    )
}

/// Whether `b` says nothing new after `a`. The next start is recomputed on the
/// wall clock at every look, so it drifts by a millisecond or so; a new
/// backoff moves it by far more than [`NEXT_START_SLACK_MS`].
fn same(a: View, b: View) -> bool {
    let close = match (a.next_start_ms, b.next_start_ms) {
        (Some(x), Some(y)) => x.abs_diff(y) <= NEXT_START_SLACK_MS,
        (x, y) => x == y,
    };
    a.phase == b.phase && a.incarnation == b.incarnation && close
}

/// See [`same`].
const NEXT_START_SLACK_MS: u64 = 50;

fn encode(t: &Track, v: View) -> Vec<u8> {
    let msg = StateMsg {
        program: t.name.clone(),
        state: v.phase,
        addresses: t.addresses.clone(),
        next_start_ms: v.next_start_ms,
        ready_after_ms: t.ready_after.map(|d| d.as_millis() as u64),
        incarnation: v.incarnation,
    };
    serde_json::to_vec(&msg).unwrap_or_default()
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The writer (and reader) of one channel's parent end: sends queued state
/// messages, keeping only the latest per program while the socket is full,
/// and passes the front's reports to the owner task.
async fn pump(
    fd: AsyncFd<OwnedFd>,
    mut rx: mpsc::UnboundedReceiver<(usize, Vec<u8>)>,
    owner: mpsc::UnboundedSender<Msg>,
) {
    let mut pending: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some((program, bytes)) => {
                    pending.insert(program, bytes);
                    while let Ok((program, bytes)) = rx.try_recv() {
                        pending.insert(program, bytes);
                    }
                }
                None => return,
            },
            guard = fd.writable(), if !pending.is_empty() => {
                let Ok(mut guard) = guard else { return };
                while let Some((&program, bytes)) = pending.iter().next() {
                    let sent = guard.try_io(|inner| {
                        socket::send(
                            inner.get_ref().as_raw_fd(),
                            bytes,
                            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                        )
                        .map_err(std::io::Error::from)
                    });
                    match sent {
                        // Sent, or refused for good (too large): either way done.
                        Ok(_) => {
                            pending.remove(&program);
                        }
                        Err(_would_block) => break,
                    }
                }
            }
            guard = fd.readable() => {
                let Ok(mut guard) = guard else { return };
                loop {
                    let got = guard.try_io(|inner| {
                        socket::recv(inner.get_ref().as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT)
                            .map_err(std::io::Error::from)
                    });
                    match got {
                        Ok(Ok(n)) if n > 0 => {
                            if let Some(report) = buf.get(..n).and_then(|b| serde_json::from_slice::<Report>(b).ok()) {
                                let _ = owner.send(Msg::Report(report));
                            }
                        }
                        Ok(_) | Err(_) => break,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopping(then: AfterStop) -> State {
        State::Stopping(Stopping {
            pid: 1,
            since: Instant::now(),
            kill_at: None,
            then,
            leader: None,
            recheck_at: None,
        })
    }

    #[test]
    fn ready_only_when_running_ready_and_not_suspended() {
        let now = Instant::now();
        let ready = State::Running {
            pid: 1,
            since: now,
            ready: true,
        };
        assert_eq!(phase(&ready, false), Phase::Ready);
        assert_eq!(phase(&ready, true), Phase::Starting);
        let unready = State::Running {
            pid: 1,
            since: now,
            ready: false,
        };
        assert_eq!(phase(&unready, false), Phase::Starting);
    }

    #[test]
    fn waiting_and_starting_are_starting() {
        assert_eq!(phase(&State::Waiting, false), Phase::Starting);
        let s = State::Starting {
            pid: 1,
            since: Instant::now(),
        };
        assert_eq!(phase(&s, false), Phase::Starting);
    }

    #[test]
    fn stopping_by_what_follows() {
        assert_eq!(phase(&stopping(AfterStop::Stay), false), Phase::Stopped);
        assert_eq!(phase(&stopping(AfterStop::Restart), false), Phase::Starting);
        assert_eq!(phase(&stopping(AfterStop::Recover), false), Phase::Draining);
        assert_eq!(phase(&stopping(AfterStop::Crashed), false), Phase::Starting);
    }

    #[test]
    fn backoff_stopped_exited_failed() {
        let b = State::Backoff {
            until: Instant::now(),
        };
        assert_eq!(phase(&b, false), Phase::Backoff);
        assert_eq!(phase(&State::Stopped, false), Phase::Stopped);
        assert_eq!(phase(&State::Exited, false), Phase::Stopped);
        assert_eq!(phase(&State::Failed, false), Phase::Failed);
    }

    /// A reader that does not read: the owner's queue never blocks, and once
    /// the socket is full only the latest message per program is kept; it
    /// arrives when the reader reads again.
    #[tokio::test]
    async fn a_full_socket_keeps_the_latest_state_per_program() {
        let (parent, child) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        set_nonblocking(&parent).unwrap();
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it from now on.
        let parent = unsafe { AsyncFd::register(parent) }.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (owner, _owner_rx) = mpsc::unbounded_channel();
        tokio::spawn(pump(parent, rx, owner));
        let big = "x".repeat(4000);
        for n in 0..2000u32 {
            let msg = format!("{{\"n\":{n},\"pad\":\"{big}\"}}");
            tx.send((0, msg.into_bytes())).unwrap();
        }
        tx.send((1, b"{\"other\":1}".to_vec())).unwrap();
        // Let the pump fill the socket, then read everything.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        set_nonblocking(&child).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; MAX_PACKET];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match socket::recv(child.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
            let latest = got.iter().any(|m| m.contains("\"n\":1999,"));
            if latest && got.iter().any(|m| m.contains("other")) {
                break;
            }
        }
        assert!(got.iter().any(|m| m.contains("other")), "program 1 lost");
        assert!(
            got.iter().any(|m| m.contains("\"n\":1999,")),
            "the latest state of program 0 did not arrive"
        );
        // Coalesced: far fewer than 2000 packets of program 0.
        let zeros = got.iter().filter(|m| m.contains("\"n\"")).count();
        assert!(zeros < 2000, "nothing was coalesced ({zeros})");
    }

    #[test]
    fn a_drifting_next_start_is_not_news() {
        let v = |phase, next: Option<u64>, inc| View {
            phase,
            next_start_ms: next,
            incarnation: inc,
        };
        assert!(same(
            v(Phase::Backoff, Some(1000), 1),
            v(Phase::Backoff, Some(1003), 1)
        ));
        assert!(!same(
            v(Phase::Backoff, Some(1000), 1),
            v(Phase::Backoff, Some(2000), 1)
        ));
        assert!(!same(v(Phase::Ready, None, 1), v(Phase::Ready, None, 2)));
        assert!(!same(v(Phase::Ready, None, 1), v(Phase::Starting, None, 1)));
    }

    #[test]
    fn backoff_view_carries_the_next_start_on_the_wall_clock() {
        let now = Instant::now();
        let mut m = Machine::new(
            super::super::state::Policy::of(&Program::new("x", vec!["x".into()])),
            1,
        );
        m.state = State::Backoff {
            until: now + Duration::from_millis(1500),
        };
        let v = view(&m, 4, now, 10_000);
        assert_eq!(
            v,
            View {
                phase: Phase::Backoff,
                next_start_ms: Some(11_500),
                incarnation: 4
            }
        );
    }
}
