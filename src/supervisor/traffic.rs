//! `traffic_health`: a program that is alive (its probe passes) but fails the
//! traffic its front relays is replaced as if its probe had failed.
//!
//! The front (the proxy) reports, per program and incarnation, the requests it
//! relayed and the errors it saw (`5xx` answers, upstream timeouts) about once
//! a second ([`crate::statefd::Report::Traffic`]). The supervisor keeps those
//! reports for the last `window` ([`Window`]); when the errors in it reach
//! `errors` and at least `ratio` of the requests, the incarnation is replaced
//! ([`Supervisor::replace_unhealthy`], cause `traffic`). A new incarnation
//! starts with an empty window; reports about an earlier one are ignored.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::events::Record;
use super::state::State;
use super::Supervisor;
use crate::config::TrafficHealth;
use crate::statefd::Report;

/// The reports of the last `window` for one program.
#[derive(Debug, Clone)]
pub struct Window {
    rule: TrafficHealth,
    incarnation: u64,
    samples: VecDeque<(Instant, u64, u64)>,
}

/// Why a window tripped: its sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tripped {
    pub requests: u64,
    pub errors: u64,
}

impl Window {
    pub fn new(rule: TrafficHealth) -> Window {
        Window {
            rule,
            incarnation: 0,
            samples: VecDeque::new(),
        }
    }

    /// Adds one report about `incarnation` at `now` (a newer incarnation
    /// empties the window first; an older one is ignored). Returns the sums
    /// when the rule trips, and empties the window then.
    pub fn record(
        &mut self,
        now: Instant,
        incarnation: u64,
        requests: u64,
        errors: u64,
    ) -> Option<Tripped> {
        if incarnation < self.incarnation {
            return None;
        }
        if incarnation > self.incarnation {
            self.incarnation = incarnation;
            self.samples.clear();
        }
        self.samples.push_back((now, requests, errors));
        while self
            .samples
            .front()
            .is_some_and(|(at, _, _)| now.saturating_duration_since(*at) > self.rule.window)
        {
            self.samples.pop_front();
        }
        let (requests, errors) = self
            .samples
            .iter()
            .fold((0, 0), |(r, e), (_, sr, se)| (r + sr, e + se));
        let share = errors as f64 >= self.rule.ratio * requests.max(errors) as f64;
        if errors >= self.rule.errors && share {
            self.samples.clear();
            return Some(Tripped { requests, errors });
        }
        None
    }

    /// The rule it applies.
    pub fn rule(&self) -> TrafficHealth {
        self.rule
    }

    pub fn window(&self) -> Duration {
        self.rule.window
    }
}

/// The `unhealthy_traffic` event.
pub fn traffic_record(program: &str, pid: i32, t: Tripped, window: Duration) -> Record {
    let fields = json!({
        "pid": pid, "cause": "traffic", "errors": t.errors, "requests": t.requests,
        "window_ms": window.as_millis() as u64,
    });
    let serde_json::Value::Object(fields) = fields else {
        return Record::text(Some(program.into()), String::new());
    };
    Record::typed(
        Some(program.into()),
        "unhealthy_traffic",
        format!(
            "unhealthy traffic (pid {pid}): {} errors (5xx, timeouts) in {} requests within {}; replacing it",
            t.errors,
            t.requests,
            super::state::human(window)
        ),
        fields,
    )
}

impl Supervisor {
    /// A front's report on its state channel.
    pub(super) fn on_report(&mut self, report: Report) {
        match report {
            Report::Cost { .. } => {
                if let Some(record) = self.channels.report(report) {
                    self.publish(record);
                }
            }
            Report::Traffic {
                program,
                incarnation,
                requests,
                errors,
            } => self.on_traffic(&program, incarnation, requests, errors),
        }
    }

    /// A report about program `program`'s `incarnation` (the one its fronts
    /// were told of): it counts against the live process of that program
    /// whose incarnation that is. Replicas of one program share the front's
    /// view, so with several the errors are not told apart by process: they
    /// count against the first live one with that incarnation.
    fn on_traffic(&mut self, program: &str, incarnation: u64, requests: u64, errors: u64) {
        let Some(index) = self
            .stack
            .members
            .iter()
            .zip(&self.slots)
            .position(|(m, s)| {
                *m.instance.service == *program
                    && !m.instance.retiring
                    && !m.instance.gone
                    && s.generation == incarnation
            })
        else {
            return;
        };
        let (Some(slot), Some(member)) = (self.slots.get_mut(index), self.stack.members.get(index))
        else {
            return;
        };
        let pid = match member.machine.state {
            State::Starting { pid, .. } | State::Running { pid, .. } => pid,
            _ => return,
        };
        if slot.generation != incarnation {
            return;
        }
        let Some(window) = slot.traffic.as_mut() else {
            return;
        };
        if let Some(tripped) = window.record(Instant::now(), incarnation, requests, errors) {
            let record = traffic_record(&member.name, pid, tripped, window.window());
            self.replace_unhealthy(index, "traffic", record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> TrafficHealth {
        TrafficHealth {
            errors: 20,
            window: Duration::from_secs(10),
            ratio: 0.5,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn trips_on_enough_errors_at_the_ratio_within_the_window() {
        let mut w = Window::new(rule());
        assert_eq!(w.record(Instant::now(), 1, 30, 10), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            w.record(Instant::now(), 1, 10, 10),
            Some(Tripped {
                requests: 40,
                errors: 20
            })
        );
        // Emptied: it takes new errors to trip again.
        assert_eq!(w.record(Instant::now(), 1, 1, 1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn many_errors_among_many_successes_do_not_trip() {
        let mut w = Window::new(rule());
        assert_eq!(w.record(Instant::now(), 1, 1000, 100), None);
    }

    #[tokio::test(start_paused = true)]
    async fn old_reports_leave_the_window() {
        let mut w = Window::new(rule());
        assert_eq!(w.record(Instant::now(), 1, 15, 15), None);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(w.record(Instant::now(), 1, 15, 15), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_incarnation_starts_clean_and_old_reports_are_ignored() {
        let mut w = Window::new(rule());
        assert_eq!(w.record(Instant::now(), 1, 15, 15), None);
        assert_eq!(w.record(Instant::now(), 2, 15, 15), None);
        assert_eq!(w.record(Instant::now(), 1, 15, 15), None);
        assert!(w.record(Instant::now(), 2, 5, 5).is_some());
    }
}
