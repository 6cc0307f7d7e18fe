//! When `selfheal start | stop | restart NAME` is done: a pure verdict over two
//! readings of the program's status, the one taken just before the verb was
//! sent and the latest (the CLI polls `GET /status` every [`POLL`]).
//!
//! A program's `incarnation` counts its spawn attempts (a failed exec too), so
//! the *awaited* incarnation `a` tells the process the verb made from the one
//! before. With `b` the incarnation before the verb:
//!
//! - `restart`: `a = b + 1` (a restart always spawns anew; on a `waiting`
//!   program the next spawn is the one).
//! - `start`: `a = b` when the program had a live process (`starting`,
//!   `running`, `unready`, `suspended`: start leaves it alone and waits for
//!   it), else `a = b + 1`.
//!
//! `start` / `restart`, with `i` the incarnation now:
//!
//! | state now | `i < a` (not spawned yet) | `i = a` | `i > a` |
//! |---|---|---|---|
//! | `running` and no problem (ready), with a probe, or without one for [`SETTLE`] | wait | **done** | failed¹ |
//! | `running` without a probe, up less than [`SETTLE`] | wait | wait | failed¹ |
//! | `exited` (ended well, not to be restarted) | failed² | **done** | failed¹ |
//! | `starting`, `unready`, `suspended`, `waiting` | wait | wait | failed¹ |
//! | `stopping` | wait | failed³ | failed¹ |
//! | `backoff` | wait | failed⁴ | failed¹ |
//! | `stopped`, `failed` | failed² | failed⁴ | failed¹ |
//!
//! ¹ the awaited incarnation ended and another was spawned (a crash under
//!   `restart = "on-failure"` with no backoff delay, or a liveness kill):
//!   whatever the new one does, the start failed; the reason is the last exit.
//! ² the verb did not take, or another operator undid it (the supervisor
//!   applies a verb before it answers, so the first reading already shows it).
//! ³ the new process is being stopped before it was ready: its probe failed
//!   `failures` times, its leader exited leaving its group alive, or another
//!   operator stopped it.
//! ⁴ it crashed or could not be executed (`backoff`), gave up or is not to be
//!   restarted (`failed`), or was stopped by another operator (`stopped`).
//!
//! A program without a probe is ready as soon as it runs, so `sh -c 'sleep
//! 0.2; exit 1'` would count as started; as supervisord's `startsecs` (1 s by
//! default), the CLI waits until such a program has been up for [`SETTLE`]
//! (its crash within that time fails the start). A probed program is done at
//! its first pass: that is what its probe is for.
//!
//! `stop`: `stopped`, `exited` and `failed` are **done** (no process is
//! left: its whole process group is gone); `stopping` waits; any other state
//! (`waiting`, `starting`, `running`, …) means someone started it again: failed.
//!
//! A reading taken before the verb can be overtaken by the program itself (a
//! crash and respawn in the few milliseconds between that reading and the
//! verb): the verdict is then "failed" with that crash as the reason, which is
//! true of the program, if not of the verb.

use std::time::Duration;

use super::snapshot::ProgramStatus;

/// How often the CLI reads the status while it waits.
pub const POLL: Duration = Duration::from_millis(25);

/// How long a program without a probe must have run before `start`/`restart`
/// count it as started (supervisord's `startsecs` default).
pub const SETTLE: Duration = Duration::from_secs(1);

/// The operator verbs the CLI waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
}

impl Verb {
    /// The path segment of `POST /programs/{name}/{verb}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
        }
    }
}

/// What the latest reading means for the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not there yet: read again.
    Wait,
    /// Done; the text says how it ended (`app: running (pid 12)`).
    Done(String),
    /// The action failed; the text is the reason, for stderr.
    Failed(String),
}

/// One wait: the verb and the incarnations it is judged by.
#[derive(Debug, Clone, Copy)]
pub struct Goal {
    verb: Verb,
    /// The incarnation before the verb.
    before: u64,
    /// The incarnation whose readiness completes a start/restart.
    awaited: u64,
}

/// The states with a live process that `start` leaves alone.
fn live(state: &str) -> bool {
    matches!(state, "starting" | "running" | "unready" | "suspended")
}

impl Goal {
    /// The goal of `verb`, given the program's status just before it was sent.
    pub fn new(verb: Verb, before: &ProgramStatus) -> Goal {
        let b = before.incarnation;
        let awaited = match verb {
            Verb::Start if live(&before.state) => b,
            Verb::Start | Verb::Restart | Verb::Stop => b + 1,
        };
        Goal {
            verb,
            before: b,
            awaited,
        }
    }

    /// The verdict on the latest reading (see the module doc for the table).
    pub fn judge(&self, now: &ProgramStatus) -> Verdict {
        match self.verb {
            Verb::Stop => self.judge_stop(now),
            Verb::Start | Verb::Restart => self.judge_start(now),
        }
    }

    fn judge_stop(&self, now: &ProgramStatus) -> Verdict {
        match now.state.as_str() {
            "stopped" | "exited" | "failed" => {
                Verdict::Done(format!("{}: {}", now.name, now.state))
            }
            "stopping" => Verdict::Wait,
            _ => Verdict::Failed(format!(
                "{}: started again while it was being stopped (incarnation {} → {}): now {}",
                now.name, self.before, now.incarnation, now.state
            )),
        }
    }

    fn judge_start(&self, now: &ProgramStatus) -> Verdict {
        let name = &now.name;
        let i = now.incarnation;
        // A probed program is running only after a pass (so it has a result);
        // one without probe must also have stayed up for SETTLE.
        let settled = now.health.is_some()
            || now
                .uptime_ms
                .is_some_and(|up| up >= SETTLE.as_millis() as u64);
        let ready = now.state == "running" && now.problem.is_none() && settled;
        if i > self.awaited {
            let last = now
                .last_exit
                .as_ref()
                .map_or("it ended", |e| e.description.as_str());
            return Verdict::Failed(format!(
                "{name}: failed: {last} (restarted since: incarnation {i} is {})",
                now.state
            ));
        }
        let spawned = i == self.awaited;
        match now.state.as_str() {
            "running" if ready && spawned => Verdict::Done(match now.pid {
                Some(pid) => format!("{name}: running (pid {pid})"),
                None => format!("{name}: running"),
            }),
            "exited" if spawned => Verdict::Done(format!(
                "{name}: exited ({})",
                now.last_exit
                    .as_ref()
                    .map_or("ended well", |e| e.description.as_str())
            )),
            "running" | "starting" | "unready" | "suspended" | "waiting" => Verdict::Wait,
            "stopping" | "backoff" if !spawned => Verdict::Wait,
            "stopping" => Verdict::Failed(format!(
                "{name}: failed: stopped before it was ready{}",
                probe_reason(now)
            )),
            "backoff" | "failed" if spawned => Verdict::Failed(format!(
                "{name}: failed: {}; now {}{}",
                now.last_exit
                    .as_ref()
                    .map_or("it ended", |e| e.description.as_str()),
                now.state,
                problem_suffix(now)
            )),
            _ => Verdict::Failed(format!(
                "{name}: failed: now {}{}",
                now.state,
                problem_suffix(now)
            )),
        }
    }
}

/// The verdict for a program with several instances (`instances`: its live,
/// non-retiring ones): `restart` follows the program's rollout (`done`,
/// `failed`); `start` waits until every instance is running and ready;
/// `stop` until none has a process.
pub fn judge_all(verb: Verb, instances: &[ProgramStatus]) -> Verdict {
    let name = instances.first().map_or("?", |p| p.program.as_str());
    let ready = !instances.is_empty()
        && instances
            .iter()
            .all(|p| p.state == "running" && p.problem.is_none());
    match verb {
        Verb::Restart => match instances.first().and_then(|p| p.rollout.as_deref()) {
            Some("failed") => Verdict::Failed(format!(
                "{name}: failed: a new process never became ready; the others were left as they were"
            )),
            Some("done") if ready => Verdict::Done(format!("{name}: {} ready", instances.len())),
            _ => Verdict::Wait,
        },
        Verb::Start if ready => Verdict::Done(format!("{name}: {} ready", instances.len())),
        Verb::Start => Verdict::Wait,
        Verb::Stop => {
            let down = instances
                .iter()
                .all(|p| matches!(p.state.as_str(), "stopped" | "exited" | "failed"));
            if down {
                Verdict::Done(format!("{name}: stopped"))
            } else {
                Verdict::Wait
            }
        }
    }
}

/// ` (last probe: REASON)` when the last probe failed.
fn probe_reason(now: &ProgramStatus) -> String {
    now.health
        .as_ref()
        .filter(|h| !h.ok)
        .map_or_else(String::new, |h| format!(" (last probe: {})", h.reason))
}

/// `: PROBLEM` for a failed program (why it gave up), else the failed probe.
fn problem_suffix(now: &ProgramStatus) -> String {
    match (&now.problem, now.state.as_str()) {
        (Some(problem), "failed" | "stopped") => format!(" ({problem})"),
        _ => probe_reason(now),
    }
}

/// `timed out after 60s: app is starting (starting: no probe has passed yet)`.
pub fn timeout_message(after: Duration, now: &ProgramStatus) -> String {
    format!(
        "timed out after {}: {} is {}{}",
        humantime::format_duration(after),
        now.name,
        now.state,
        now.problem
            .as_ref()
            .map_or_else(String::new, |p| format!(" ({p})"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::snapshot::{ExitInfo, HealthInfo};

    fn status(state: &str, incarnation: u64) -> ProgramStatus {
        let problem = match state {
            "running" | "exited" => None,
            other => Some(format!("{other}: why")),
        };
        ProgramStatus {
            name: "app".into(),
            state: state.into(),
            ready: state == "running",
            problem,
            pid: live(state).then_some(42),
            uptime_ms: live(state).then_some(5000),
            incarnation,
            last_exit: Some(ExitInfo {
                code: 1,
                description: "exited with code 1".into(),
            }),
            ..ProgramStatus::default()
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum V {
        Wait,
        Done,
        Failed,
    }

    fn kind(v: &Verdict) -> V {
        match v {
            Verdict::Wait => V::Wait,
            Verdict::Done(_) => V::Done,
            Verdict::Failed(_) => V::Failed,
        }
    }

    /// The table of the module doc, row by row: (state now, i < a, i = a, i > a).
    #[test]
    fn start_and_restart_table() {
        use V::*;
        let rows = [
            ("running", Wait, Done, Failed),
            ("exited", Failed, Done, Failed),
            ("starting", Wait, Wait, Failed),
            ("unready", Wait, Wait, Failed),
            ("suspended", Wait, Wait, Failed),
            ("waiting", Wait, Wait, Failed),
            ("stopping", Wait, Failed, Failed),
            ("backoff", Wait, Failed, Failed),
            ("stopped", Failed, Failed, Failed),
            ("failed", Failed, Failed, Failed),
        ];
        // restart from running and start from stopped, both at incarnation
        // 3, await 4: the same table.
        for (verb, from) in [(Verb::Restart, "running"), (Verb::Start, "stopped")] {
            let goal = Goal::new(verb, &status(from, 3));
            assert_eq!(goal.awaited, 4);
            for (state, before, at, after) in rows {
                for (i, want) in [(3, before), (4, at), (5, after)] {
                    let got = goal.judge(&status(state, i));
                    let verb = verb.as_str();
                    assert_eq!(
                        kind(&got),
                        want,
                        "{verb}: {state} at incarnation {i}: {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn start_of_a_live_program_awaits_that_process() {
        for state in ["starting", "running", "unready", "suspended"] {
            assert_eq!(Goal::new(Verb::Start, &status(state, 7)).awaited, 7);
        }
        for state in [
            "waiting", "stopping", "backoff", "stopped", "exited", "failed",
        ] {
            assert_eq!(Goal::new(Verb::Start, &status(state, 7)).awaited, 8);
        }
        // Already running and ready: done at the first reading.
        let goal = Goal::new(Verb::Start, &status("running", 7));
        assert_eq!(kind(&goal.judge(&status("running", 7))), V::Done);
        // Starting, then it crashes into backoff: that crash fails the start.
        let goal = Goal::new(Verb::Start, &status("starting", 7));
        assert_eq!(kind(&goal.judge(&status("backoff", 7))), V::Failed);
    }

    #[test]
    fn running_but_not_ready_waits() {
        let goal = Goal::new(Verb::Restart, &status("running", 1));
        let mut now = status("running", 2);
        now.problem = Some("suspended by a signal".into());
        assert_eq!(goal.judge(&now), Verdict::Wait);
    }

    #[test]
    fn without_a_probe_running_counts_after_settle() {
        let goal = Goal::new(Verb::Restart, &status("running", 1));
        let mut now = status("running", 2);
        now.uptime_ms = Some(SETTLE.as_millis() as u64 - 1);
        assert_eq!(goal.judge(&now), Verdict::Wait);
        now.uptime_ms = Some(SETTLE.as_millis() as u64);
        assert_eq!(kind(&goal.judge(&now)), V::Done);
        // With a probe, its first pass is enough.
        now.uptime_ms = Some(3);
        now.health = Some(HealthInfo {
            ok: true,
            reason: "HTTP 200".into(),
        });
        assert_eq!(kind(&goal.judge(&now)), V::Done);
    }

    #[test]
    fn stop_table() {
        use V::*;
        let goal = Goal::new(Verb::Stop, &status("running", 2));
        for (state, want) in [
            ("stopped", Done),
            ("exited", Done),
            ("failed", Done),
            ("stopping", Wait),
            ("waiting", Failed),
            ("starting", Failed),
            ("running", Failed),
            ("unready", Failed),
            ("suspended", Failed),
            ("backoff", Failed),
        ] {
            let got = goal.judge(&status(state, 2));
            assert_eq!(kind(&got), want, "stop: {state}: {got:?}");
        }
    }

    #[test]
    fn reasons_name_the_exit_and_the_probe() {
        let goal = Goal::new(Verb::Start, &status("stopped", 0));
        let Verdict::Failed(text) = goal.judge(&status("backoff", 1)) else {
            panic!("not failed");
        };
        assert_eq!(text, "app: failed: exited with code 1; now backoff");
        let Verdict::Failed(text) = goal.judge(&status("starting", 2)) else {
            panic!("not failed");
        };
        assert!(
            text.starts_with("app: failed: exited with code 1 (restarted since"),
            "{text}"
        );
        let mut stopping = status("stopping", 1);
        stopping.health = Some(HealthInfo {
            ok: false,
            reason: "connection refused".into(),
        });
        let Verdict::Failed(text) = goal.judge(&stopping) else {
            panic!("not failed");
        };
        assert_eq!(
            text,
            "app: failed: stopped before it was ready (last probe: connection refused)"
        );
        let text = timeout_message(Duration::from_secs(60), &status("starting", 1));
        assert_eq!(text, "timed out after 1m: app is starting (starting: why)");
    }
}
