//! The state channel: the supervisor tells a front (a program with
//! `upstreams = [...]`, the proxy) the state of each program it fronts, without
//! polling, and hears back what an outage cost. Wire format: [`crate::statefd`].
//!
//! One `socketpair(AF_UNIX, SOCK_SEQPACKET)` per front *program* (service),
//! made once and kept across its instances and incarnations (as listen sockets
//! are): the child end is handed to every process of it (see
//! [`Channels::child_fd`]), the parent end is driven by one writer task
//! ([`pump`]). Everything here is keyed by program name, never by stack
//! member: a program may have several processes (replicas, a surge's new one)
//! and members come and go. The owner task never blocks on it: messages go to
//! the task through an unbounded queue; when the socket would block, the task
//! keeps only the latest message per fronted program and sends it once the
//! socket is writable.
//!
//! The phase sent for one process is a pure function of its state
//! ([`phase`]); a fronted program's view combines its live processes
//! ([`combine`]); a message goes out when that view changes, or when the
//! program gained a process (surge, scale, reload) ([`Channels::sync`], called
//! after every batch of actions).
//!
//! A reload re-runs [`Channels::configure`]: a program that gains `upstreams`
//! gets its channel then, so its next processes (the reload restarts it, as
//! its config changed) inherit it; one that loses them, or is removed, has
//! its channel closed (processes that still hold the child end see EOF).

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

/// One program's view from the views of its live (not retiring, not gone)
/// processes: `ready` when any is ready; else `draining` when one is being
/// replaced as unhealthy; else `starting` when any is; else `backoff` with the
/// earliest next start; else (all stopped or failed, or none left) `failed`
/// when any failed, else `stopped`. The incarnation is the newest among the
/// processes that gave the phase (so a surge's new process does not look like
/// a new incarnation to the front before it serves). Pure.
pub fn combine(views: &[View]) -> View {
    let of = |p: Phase| views.iter().filter(move |v| v.phase == p);
    let newest = |p: Phase| of(p).map(|v| v.incarnation).max();
    for p in [Phase::Ready, Phase::Draining, Phase::Starting] {
        if let Some(incarnation) = newest(p) {
            return View {
                phase: p,
                next_start_ms: None,
                incarnation,
            };
        }
    }
    if let Some(incarnation) = newest(Phase::Backoff) {
        return View {
            phase: Phase::Backoff,
            next_start_ms: of(Phase::Backoff).filter_map(|v| v.next_start_ms).min(),
            incarnation,
        };
    }
    let phase = match newest(Phase::Failed) {
        Some(_) => Phase::Failed,
        None => Phase::Stopped,
    };
    View {
        phase,
        next_start_ms: None,
        incarnation: views.iter().map(|v| v.incarnation).max().unwrap_or(0),
    }
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
    name: Arc<str>,
    addresses: Vec<String>,
    last: Option<View>,
    /// Send the view at the next sync even if it did not change (the program
    /// gained a process, or its addresses changed).
    resend: bool,
    spawned_at: Option<(u64, Instant)>,
    ready_after: Option<Duration>,
    /// When it last stopped being ready, while it is not.
    down_since: Option<Instant>,
    /// The incarnation that became ready after the last outage, and that outage.
    last_restart: Option<(u64, RestartCost)>,
}

/// One front program's channel: shared by all its processes.
struct Channel {
    owner: Arc<str>,
    child: OwnedFd,
    fronted: Vec<Arc<str>>,
    tx: mpsc::UnboundedSender<(Arc<str>, Vec<u8>)>,
}

/// Every front's channel and every fronted program's tracking, by program name.
#[derive(Default)]
pub struct Channels {
    list: Vec<Channel>,
    tracks: HashMap<Arc<str>, Track>,
}

impl Channels {
    /// Makes one socketpair per program with `upstreams` that has none yet
    /// and starts its writer task (on the current runtime); updates what each
    /// front fronts and the fronted programs' addresses; closes the channels
    /// of programs that no longer front anything. `programs`: the whole
    /// current config, in any order. Called at start and after every reload.
    ///
    /// Errors: `socketpair(2)`/`fcntl(2)` failures; the channels made before
    /// the failure are kept.
    pub fn configure(
        &mut self,
        programs: &[Arc<Program>],
        owner_tx: &mpsc::UnboundedSender<Msg>,
    ) -> std::io::Result<()> {
        let by_name: HashMap<&str, &Program> =
            programs.iter().map(|p| (p.name.as_str(), &**p)).collect();
        self.list.retain(|c| {
            by_name
                .get(&*c.owner)
                .is_some_and(|p| !p.upstreams.is_empty())
        });
        for p in programs.iter().filter(|p| !p.upstreams.is_empty()) {
            let fronted: Vec<Arc<str>> = p
                .upstreams
                .iter()
                .filter(|n| by_name.contains_key(n.as_str()))
                .map(|n| Arc::from(n.as_str()))
                .collect();
            if let Some(c) = self.list.iter_mut().find(|c| *c.owner == *p.name) {
                c.fronted = fronted;
                continue;
            }
            let (parent, child) = socket::socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )?;
            set_nonblocking(&parent)?;
            let (tx, rx) = mpsc::unbounded_channel();
            // SAFETY: `parent` is an OwnedFd moved into the AsyncFd, which owns it
            // (open, same description) until the AsyncFd is dropped.
            let parent = unsafe { AsyncFd::register(parent) }.map_err(|e| e.into_parts().1)?;
            tokio::spawn(pump(parent, rx, owner_tx.clone()));
            self.list.push(Channel {
                owner: Arc::from(p.name.as_str()),
                child,
                fronted,
                tx,
            });
        }
        let fronted: Vec<Arc<str>> = self
            .list
            .iter()
            .flat_map(|c| c.fronted.iter().cloned())
            .collect();
        self.tracks.retain(|name, _| fronted.contains(name));
        for name in fronted {
            let addresses: Vec<String> = by_name
                .get(&*name)
                .map(|p| p.listen.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            let t = self.tracks.entry(name.clone()).or_insert_with(|| Track {
                name,
                addresses: addresses.clone(),
                last: None,
                resend: false,
                spawned_at: None,
                ready_after: None,
                down_since: None,
                last_restart: None,
            });
            if t.addresses != addresses {
                t.addresses = addresses;
                t.resend = true;
            }
        }
        Ok(())
    }

    /// The descriptor the processes of program `service` inherit as their
    /// state channel, if it fronts any.
    pub fn child_fd(&self, service: &str) -> Option<RawFd> {
        self.list
            .iter()
            .find(|c| *c.owner == *service)
            .map(|c| c.child.as_raw_fd())
    }

    /// A process of program `service` was just spawned: if it is a front,
    /// the new process is sent the state of every program it fronts first.
    pub fn spawned(&mut self, service: &str) {
        for c in self.list.iter().filter(|c| *c.owner == *service) {
            for f in &c.fronted {
                if let Some(t) = self.tracks.get(f) {
                    if let Some(v) = t.last {
                        let _ = c.tx.send((f.clone(), encode(t, v)));
                    }
                }
            }
        }
    }

    /// A change of the set of programs (reload, restart, scale): every
    /// fronted program's view is looked at again at the next [`Channels::sync`].
    pub fn touch_all(&mut self) {
        for t in self.tracks.values_mut() {
            t.resend = true;
        }
    }

    /// Program `service` gained a process (surge, scale, reload): its view is
    /// sent at the next [`Channels::sync`] even if it did not change.
    pub fn touch(&mut self, service: &str) {
        if let Some(t) = self.tracks.get_mut(service) {
            t.resend = true;
        }
    }

    /// Compares every fronted program's view with the last one sent and sends
    /// the changes; notes when a fronted program stops being ready and when it
    /// is ready again (the outage's `down_ms`; the `restart_cost` record is
    /// published when the front reports its counts, [`Channels::report`]).
    /// Only programs `changed` says an input touched (or never sent, or marked
    /// with [`Channels::touch`]) are looked at: the views cost a pass over the
    /// members, which must not be paid on every input of the event loop.
    pub fn sync(
        &mut self,
        now: Instant,
        changed: impl Fn(&str) -> bool,
        mut view_of: impl FnMut(&str) -> View,
    ) {
        for (f, t) in self.tracks.iter_mut() {
            if t.last.is_some() && !t.resend && !changed(f) {
                continue;
            }
            let v = view_of(f);
            if t.last.is_some_and(|l| same(l, v)) && !t.resend {
                continue;
            }
            t.resend = false;
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
            for c in self.list.iter().filter(|c| c.fronted.contains(f)) {
                let _ = c.tx.send((f.clone(), bytes.clone()));
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
                let t = self.tracks.get_mut(program.as_str())?;
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

    /// What program `service`'s last outage cost, if it is fronted and had one.
    pub fn last_restart(&self, service: &str) -> Option<RestartCost> {
        self.tracks.get(service)?.last_restart.map(|(_, c)| c)
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
        program: t.name.to_string(),
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
    mut rx: mpsc::UnboundedReceiver<(Arc<str>, Vec<u8>)>,
    owner: mpsc::UnboundedSender<Msg>,
) {
    let mut pending: BTreeMap<Arc<str>, Vec<u8>> = BTreeMap::new();
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
                while let Some((program, bytes)) = pending.iter().next() {
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
                            let program = program.clone();
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

impl super::Supervisor {
    /// The view fronts get of program `service`: its live processes combined
    /// ([`combine`]).
    fn service_view(&self, service: &str, now: Instant, now_ms: u64) -> View {
        let views: Vec<View> = self
            .stack
            .members
            .iter()
            .zip(&self.slots)
            .filter(|(m, _)| {
                *m.instance.service == *service && !m.instance.retiring && !m.instance.gone
            })
            .map(|(m, s)| view(&m.machine, s.generation, now, now_ms))
            .collect();
        combine(&views)
    }

    /// Tells fronts of every change of the programs they front; `touched`:
    /// the members the last inputs changed.
    pub(super) fn sync_channels(&mut self, touched: &[usize]) {
        let now = Instant::now();
        let now_ms = crate::admin::snapshot::now_ms();
        let services: Vec<Arc<str>> = touched
            .iter()
            .filter_map(|i| Some(self.stack.members.get(*i)?.instance.service.clone()))
            .collect();
        let changed = |service: &str| services.iter().any(|s| **s == *service);
        let mut channels = std::mem::take(&mut self.channels);
        channels.sync(now, changed, |service| {
            self.service_view(service, now, now_ms)
        });
        self.channels = channels;
    }

    /// Opens, updates and closes channels for the current configs (start,
    /// reload); a failure is published and leaves that front without one.
    pub(super) fn configure_channels(&mut self) -> std::io::Result<()> {
        let programs: Vec<Arc<Program>> =
            self.configs.values().map(|c| c.program.clone()).collect();
        self.channels.configure(&programs, &self.tx)
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
            tx.send((Arc::from("a"), msg.into_bytes())).unwrap();
        }
        tx.send((Arc::from("b"), b"{\"other\":1}".to_vec()))
            .unwrap();
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

    fn v(phase: Phase, next: Option<u64>, incarnation: u64) -> View {
        View {
            phase,
            next_start_ms: next,
            incarnation,
        }
    }

    #[test]
    fn a_program_is_ready_when_any_process_is() {
        let views = [
            v(Phase::Backoff, Some(5), 7),
            v(Phase::Ready, None, 3),
            v(Phase::Starting, None, 9),
        ];
        // The newest among the ready ones: a surge's new process is not news.
        assert_eq!(combine(&views), v(Phase::Ready, None, 3));
        let views = [v(Phase::Ready, None, 3), v(Phase::Ready, None, 4)];
        assert_eq!(combine(&views), v(Phase::Ready, None, 4));
    }

    #[test]
    fn draining_then_starting_then_the_earliest_backoff() {
        let views = [v(Phase::Starting, None, 2), v(Phase::Draining, None, 5)];
        assert_eq!(combine(&views), v(Phase::Draining, None, 5));
        let views = [v(Phase::Backoff, Some(900), 2), v(Phase::Starting, None, 1)];
        assert_eq!(combine(&views), v(Phase::Starting, None, 1));
        let views = [
            v(Phase::Backoff, Some(900), 2),
            v(Phase::Backoff, Some(400), 1),
            v(Phase::Failed, None, 6),
        ];
        assert_eq!(combine(&views), v(Phase::Backoff, Some(400), 2));
    }

    #[test]
    fn stopped_or_failed_only_when_all_are() {
        let views = [v(Phase::Stopped, None, 2), v(Phase::Failed, None, 1)];
        assert_eq!(combine(&views), v(Phase::Failed, None, 2));
        let views = [v(Phase::Stopped, None, 2), v(Phase::Stopped, None, 4)];
        assert_eq!(combine(&views), v(Phase::Stopped, None, 4));
        // No process left (scaled to 0, removed): stopped.
        assert_eq!(combine(&[]), v(Phase::Stopped, None, 0));
    }

    #[test]
    fn a_drifting_next_start_is_not_news() {
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
