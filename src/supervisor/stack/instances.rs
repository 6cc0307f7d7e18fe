//! Programs with several processes over time or at once: replicas, the
//! zero-downtime surge restart, rolling restarts, scaling, and the programs a
//! reload adds, changes or removes. All pure, like the rest of the stack.
//!
//! A *service* is a program of the config (`[programs.app]`); each of its
//! processes is one [`Member`] (an *instance*) with its own machine: replica
//! `r` of `app` is named `app` for r = 0 and `app#r` otherwise. Members are
//! never removed from the vector (indices stay valid for the runtime): a
//! member that is no longer wanted is *retired* — stopped with its stop
//! signal — and once it has no process it is *gone*
//! ([`StackAction::Gone`]) and ignored by everything.
//!
//! **Surge** (`restart_strategy = "surge"`, the default with `listen`): a new
//! member for the same replica starts while the old one serves (they share the
//! held sockets); once the new one is ready the old one is retired, so it
//! drains. If the new one ends, fails or is not ready within
//! [`SURGE_TIMEOUT`], it is retired instead and the old one keeps serving.
//! **Stop-first**: the member's machine gets `Restart` (stop, then start).
//!
//! A **rollout** replaces the instances of a service one at a time, the next
//! only once the previous replacement is ready; it stops at the first failure.
//!
//! | step \ fact | new ready | new ended / timed out | old gone |
//! |---|---|---|---|
//! | Surge | retire old; next step | retire new; rollout failed | – |
//! | InPlace | (same member, new pid, ready) next step | Backoff/Failed: rollout failed | – |

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Change, Member, Stack, StackAction};
use crate::config::Condition;
use crate::supervisor::notes::Note;
use crate::supervisor::state::{Input, Machine, Pid, Policy, State};

/// How long a surge waits for the new instance to become ready.
pub const SURGE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a surge's new process without a probe must stay up before the old
/// one is stopped (supervisord's `startsecs`): a new process that cannot start
/// then never costs the old one.
pub const SURGE_SETTLE: Duration = Duration::from_secs(1);

/// What the stack needs to know to make instances of one program.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: Arc<str>,
    pub policy: Policy,
    /// Signals forwarded to it (numbers).
    pub forward: Vec<i32>,
    /// Programs it depends on, by name.
    pub deps: Vec<(Arc<str>, Condition)>,
    pub replicas: u32,
    /// Replace by surge (else stop-first).
    pub surge: bool,
}

/// One replacement under way in a rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// `new` replaces `old` once ready.
    Surge { old: usize, new: usize },
    /// `index` restarts in place; done when ready with a pid other than `old_pid`.
    InPlace { index: usize, old_pid: Option<Pid> },
}

/// Instances of one service being replaced one at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    service: Arc<str>,
    queue: VecDeque<usize>,
    step: Option<Step>,
}

/// Per-member bookkeeping for replicas and surges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    /// The config program it is a process of.
    pub service: Arc<str>,
    pub replica: u32,
    /// Being removed: stopped, then gone once without a process.
    pub retiring: bool,
    /// Retired and without a process: ignored by everything.
    pub gone: bool,
    /// A surge: the new member's ready deadline.
    pub(in crate::supervisor::stack) surge_deadline: Option<Instant>,
    /// The member this one was started to replace (while the surge lasts).
    pub replaces: Option<usize>,
}

/// Display name of replica `r` of `service`.
pub fn instance_name(service: &str, replica: u32) -> Arc<str> {
    if replica == 0 {
        Arc::from(service)
    } else {
        Arc::from(format!("{service}#{replica}"))
    }
}

impl Stack {
    /// Applies one [`Change`].
    pub(super) fn apply(&mut self, change: Change, now: Instant, out: &mut Vec<StackAction>) {
        match change {
            Change::Add { service, seed } => {
                let (name, n) = (service.name.clone(), service.replicas);
                self.set_service(service);
                for replica in 0..n {
                    self.add_instance(&name, replica, seed ^ u64::from(replica), out);
                }
            }
            Change::Update(service) => self.set_service(service),
            Change::Remove(name) => self.remove_service(&name, now, out),
            Change::Roll { service, members } => self.roll(&service, members, now, out),
            Change::Scale {
                service,
                replicas,
                seed,
            } => self.scale(&service, replicas, seed, now, out),
            Change::Settings {
                on_give_up,
                shutdown_timeout,
            } => self.set_settings(on_give_up, shutdown_timeout),
        }
    }

    /// Registers (or updates, on reload) the rule for making instances of a service.
    pub fn set_service(&mut self, service: Service) {
        self.services.insert(service.name.clone(), service);
    }

    /// The rule of a service.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// Members that are processes of `service` and still wanted, by replica.
    pub fn live_instances(&self, service: &str) -> Vec<usize> {
        let mut out: Vec<usize> = (0..self.members.len())
            .filter(|i| {
                self.members
                    .get(*i)
                    .is_some_and(|m| &*m.instance.service == service && !m.instance.retiring)
            })
            .collect();
        out.sort_by_key(|i| self.members.get(*i).map(|m| m.instance.replica));
        out
    }

    /// Adds instance `replica` of `service` (in `Waiting`); the runtime is told
    /// with [`StackAction::NewInstance`] before anything else about it. The
    /// caller must [`Stack::relink`] before the next step (once for a whole
    /// batch: relinking is O(members), so once per instance made a 1000-program
    /// start quadratic, 15 % of its CPU).
    pub fn add_instance(
        &mut self,
        service: &str,
        replica: u32,
        seed: u64,
        out: &mut Vec<StackAction>,
    ) -> Option<usize> {
        let rule = self.services.get(service)?;
        let machine = Machine::new(rule.policy.clone(), seed);
        let mut member = Member::new(
            &instance_name(service, replica),
            machine,
            rule.forward.clone(),
        );
        member.instance.service = rule.name.clone();
        member.instance.replica = replica;
        let index = self.members.len();
        self.members.push(member);
        out.push(StackAction::NewInstance {
            index,
            service: rule.name.clone(),
            replica,
        });
        self.to_check.push(index);
        Some(index)
    }

    /// Recomputes every member's dependencies and dependants from the services'
    /// names: a dependency on a service is met by any of its live instances.
    pub fn relink(&mut self) {
        let mut by_service: HashMap<Arc<str>, Vec<usize>> = HashMap::new();
        for (i, m) in self.members.iter().enumerate() {
            if !m.instance.gone {
                by_service
                    .entry(m.instance.service.clone())
                    .or_default()
                    .push(i);
            }
        }
        let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); self.members.len()];
        for i in 0..self.members.len() {
            let Some(m) = self.members.get(i) else {
                continue;
            };
            let Some(rule) = self.services.get(&m.instance.service) else {
                continue; // built without services (tests): keep the given deps
            };
            let deps: Vec<(usize, Condition)> = rule
                .deps
                .iter()
                .flat_map(|(name, c)| {
                    by_service
                        .get(name)
                        .into_iter()
                        .flatten()
                        .map(move |d| (*d, *c))
                })
                .collect();
            for (d, _) in &deps {
                if let Some(list) = dependants.get_mut(*d) {
                    list.push(i);
                }
            }
            if let Some(m) = self.members.get_mut(i) {
                m.deps = deps;
            }
        }
        for (m, list) in self.members.iter_mut().zip(dependants) {
            if self.services.contains_key(&m.instance.service) {
                m.dependants = list;
            }
        }
    }

    /// Stops member `index` for good (it drains with its stop signal).
    pub fn retire(&mut self, index: usize, now: Instant, out: &mut Vec<StackAction>) {
        let Some(m) = self.members.get_mut(index) else {
            return;
        };
        if m.instance.retiring {
            return;
        }
        m.instance.retiring = true;
        self.retiring.push(index);
        self.feed(index, Input::Stop, now, out);
    }

    /// `restart` of the given members of `service`: a rollout, one at a time.
    pub fn roll(
        &mut self,
        service: &str,
        members: Vec<usize>,
        now: Instant,
        out: &mut Vec<StackAction>,
    ) {
        let Some(rule) = self.services.get(service) else {
            return;
        };
        let service = rule.name.clone();
        self.rollout_outcomes.remove(&service);
        // A restart (or reload) while one runs: the replacement under way
        // finishes, then every instance listed now is replaced — the one just
        // made too, since it was made from the config before this input.
        if let Some(running) = self.rollouts.iter_mut().find(|r| r.service == service) {
            running.queue = members.into();
        } else {
            self.rollouts.push(Rollout {
                service,
                queue: members.into(),
                step: None,
            });
        }
        self.advance_rollouts(now, out);
    }

    /// Changes the number of instances of `service` to `n`: new replicas
    /// start (`Waiting`, then by dependencies), the highest ones are retired.
    pub fn scale(
        &mut self,
        service: &str,
        n: u32,
        seed: u64,
        now: Instant,
        out: &mut Vec<StackAction>,
    ) {
        let Some(rule) = self.services.get_mut(service) else {
            return;
        };
        rule.replicas = n;
        let live = self.live_instances(service);
        let used: Vec<u32> = live
            .iter()
            .filter_map(|i| self.members.get(*i).map(|m| m.instance.replica))
            .collect();
        for replica in (0..n).filter(|r| !used.contains(r)) {
            self.add_instance(service, replica, seed ^ u64::from(replica), out);
        }
        for i in live {
            let high = self.members.get(i).is_some_and(|m| m.instance.replica >= n);
            if high {
                self.retire(i, now, out);
            }
        }
    }

    /// Retires every instance of a service the config no longer has.
    pub fn remove_service(&mut self, service: &str, now: Instant, out: &mut Vec<StackAction>) {
        for i in self.live_instances(service) {
            self.retire(i, now, out);
        }
        self.rollouts.retain(|r| &*r.service != service);
        self.services.remove(service);
    }

    /// Runs after every input: surges finish or fail, rollouts move on, retired
    /// members without a process become gone.
    pub(super) fn settle_instances(&mut self, now: Instant, out: &mut Vec<StackAction>) {
        if self.mode == super::Mode::Up {
            self.finish_surges(now, out);
            self.advance_rollouts(now, out);
        } else {
            self.rollouts.clear(); // a shutdown stops every instance anyway
        }
        // A retired member whose spawn was already under way when it was
        // retired comes back with a process: that one is stopped too.
        let revived: Vec<usize> = self
            .retiring
            .iter()
            .copied()
            .filter(|i| {
                self.members.get(*i).is_some_and(|m| {
                    matches!(
                        m.machine.state,
                        State::Starting { .. } | State::Running { .. }
                    )
                })
            })
            .collect();
        for i in revived {
            self.feed(i, Input::Stop, now, out);
        }
        let members = &mut self.members;
        self.retiring.retain(|i| {
            let Some(m) = members.get_mut(*i) else {
                return false;
            };
            let idle = matches!(
                m.machine.state,
                State::Stopped | State::Exited | State::Failed
            );
            if idle && !m.spawn_pending {
                m.instance.gone = true;
                out.push(StackAction::Gone(*i));
                return false;
            }
            true
        });
    }

    /// The earliest surge deadline, if any.
    pub(super) fn surge_deadline(&self) -> Option<Instant> {
        self.surges
            .iter()
            .filter_map(|i| {
                let m = self.members.get(*i)?;
                let settle = match m.machine.policy().probe {
                    None => m.machine.state.since().map(|t| t + SURGE_SETTLE),
                    Some(_) => None,
                };
                settle.into_iter().chain(m.instance.surge_deadline).min()
            })
            .min()
    }

    fn finish_surges(&mut self, now: Instant, out: &mut Vec<StackAction>) {
        for new in self.surges.clone() {
            let Some(m) = self.members.get(new) else {
                continue;
            };
            let Some(old) = m.instance.replaces else {
                continue;
            };
            // Without a probe a process is "ready" at once: it must then stay
            // up for SURGE_SETTLE before the old one is stopped.
            let settled = m.machine.policy().probe.is_some()
                || m.machine
                    .state
                    .since()
                    .is_some_and(|t| now.saturating_duration_since(t) >= SURGE_SETTLE);
            let ready = m.machine.is_ready() && settled;
            // Its first process ended (even if restarted at once), or time is up.
            let ended = m.machine.last_exit.is_some()
                || matches!(
                    m.machine.state,
                    State::Backoff { .. } | State::Failed | State::Exited | State::Stopped
                )
                || m.instance.surge_deadline.is_some_and(|d| d <= now);
            let ready = ready && !ended;
            if !(ready || ended) {
                continue;
            }
            let name = m.name.clone();
            self.surges.retain(|s| *s != new);
            let restarts = self
                .members
                .get(old)
                .map_or(0, |o| o.machine.total_restarts);
            if let Some(m) = self.members.get_mut(new) {
                m.instance.replaces = None;
                m.instance.surge_deadline = None;
                if ready {
                    m.machine.total_restarts = restarts + 1;
                }
            }
            if ready {
                out.push(StackAction::Note(Note::SurgeDone { program: name }));
                self.retire(old, now, out);
            } else {
                out.push(StackAction::Note(Note::SurgeFailed { program: name }));
                self.retire(new, now, out);
            }
        }
    }

    fn advance_rollouts(&mut self, now: Instant, out: &mut Vec<StackAction>) {
        let mut k = 0;
        while let Some(rollout) = self.rollouts.get(k).cloned() {
            match self.advance(rollout, now, out) {
                Some(r) => {
                    if let Some(slot) = self.rollouts.get_mut(k) {
                        *slot = r;
                    }
                    k += 1;
                }
                None => {
                    self.rollouts.remove(k);
                }
            }
        }
    }

    /// One rollout moved on as far as it can now; `None` when it is over.
    fn advance(
        &mut self,
        mut r: Rollout,
        now: Instant,
        out: &mut Vec<StackAction>,
    ) -> Option<Rollout> {
        loop {
            match r.step {
                Some(step) => match self.step_outcome(step) {
                    None => return Some(r),
                    Some(true) => r.step = None,
                    Some(false) => {
                        self.rollout_outcomes.insert(r.service.clone(), false);
                        out.push(StackAction::Note(Note::RolloutFailed {
                            program: r.service.clone(),
                            left: r.queue.len(),
                        }));
                        return None;
                    }
                },
                None => {
                    let Some(index) = r.queue.pop_front() else {
                        self.rollout_outcomes.insert(r.service.clone(), true);
                        out.push(StackAction::Note(Note::RolloutDone {
                            program: r.service.clone(),
                        }));
                        return None;
                    };
                    r.step = self.begin_step(index, now, out);
                }
            }
        }
    }

    /// Starts replacing `index`: a surge when its service surges and it serves.
    fn begin_step(
        &mut self,
        index: usize,
        now: Instant,
        out: &mut Vec<StackAction>,
    ) -> Option<Step> {
        let m = self.members.get(index)?;
        if m.instance.retiring {
            return None;
        }
        let surge = self
            .services
            .get(&m.instance.service)
            .is_some_and(|s| s.surge);
        let serving = m.machine.state.pid().is_some() && m.machine.is_ready();
        if surge && serving {
            let (service, replica) = (m.instance.service.clone(), m.instance.replica);
            out.push(StackAction::Note(Note::SurgeStarted {
                program: m.name.clone(),
            }));
            let seed = now.elapsed().as_nanos() as u64 ^ index as u64;
            let new = self.add_instance(&service, replica, seed, out)?;
            self.relink();
            if let Some(n) = self.members.get_mut(new) {
                n.instance.replaces = Some(index);
                n.instance.surge_deadline = Some(now + SURGE_TIMEOUT);
            }
            self.surges.push(new);
            return Some(Step::Surge { old: index, new });
        }
        let old_pid = m.machine.state.pid();
        self.feed(index, Input::Restart, now, out);
        Some(Step::InPlace { index, old_pid })
    }

    /// `Some(true)` done, `Some(false)` failed, `None` under way.
    fn step_outcome(&self, step: Step) -> Option<bool> {
        match step {
            Step::Surge { new, .. } => {
                let m = self.members.get(new)?;
                if m.instance.replaces.is_some() {
                    return None;
                }
                Some(!m.instance.retiring)
            }
            Step::InPlace { index, old_pid } => {
                let m = self.members.get(index)?;
                let pid = m.machine.state.pid();
                if m.machine.is_ready() && pid.is_some() && pid != old_pid {
                    return Some(true);
                }
                match m.machine.state {
                    State::Failed | State::Stopped | State::Exited => Some(false),
                    _ => None,
                }
            }
        }
    }

    /// The last rollout of `service`: `running`, `done`, `failed`, or `None`
    /// (never restarted).
    pub fn rollout_state(&self, service: &str) -> Option<&'static str> {
        if self.rolling(service) {
            return Some("running");
        }
        self.rollout_outcomes
            .get(service)
            .map(|ok| if *ok { "done" } else { "failed" })
    }

    /// Whether a rollout of `service` is under way.
    pub fn rolling(&self, service: &str) -> bool {
        self.rollouts.iter().any(|r| &*r.service == service)
            || self.surges.iter().any(|i| {
                self.members
                    .get(*i)
                    .is_some_and(|m| &*m.instance.service == service)
            })
    }
}
