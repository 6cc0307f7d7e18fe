//! `max_memory`: the resident memory of a program's process group, read from
//! `/proc` once a second ([`CHECK_INTERVAL`]) while some program has a limit.
//!
//! The group's members are found by scanning `/proc/*/stat` for the group id
//! (field 5, `pgrp`), and their resident sets summed from `/proc/PID/statm`
//! (field 2, pages). No cgroup is used: the supervisor does not create or own
//! one, and a container's cgroup covers the whole stack, not one program. A
//! process that left the group (`setsid`/`setpgid`) is not counted, as it is
//! not stopped with the group either.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::events::Record;
use super::stack::{Change, StackInput};
use super::state::{Input, Pid, State};
use super::Supervisor;

/// How often the groups of programs with `max_memory` are measured.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// `pgrp` of a `/proc/PID/stat` line (after the parenthesised command name,
/// which may itself hold spaces and parentheses).
pub fn parse_pgrp(stat: &str) -> Option<Pid> {
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Resident pages of a `/proc/PID/statm` line (its second field).
pub fn parse_resident_pages(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes resident in the process group `pgid` (0 when nothing is found).
pub fn group_rss(pgid: Pid) -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)
        .unwrap_or(4096) as u64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<Pid>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_pgrp(&s))
                == Some(pgid)
        })
        .filter_map(|pid| {
            let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
            parse_resident_pages(&statm)
        })
        .sum::<u64>()
        * page
}

/// Ticks every [`CHECK_INTERVAL`] when there is a timer; never without one.
pub async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A timer when any program has `max_memory`, else none (no wake-ups at all).
pub fn timer(any_limit: bool) -> Option<tokio::time::Interval> {
    any_limit.then(|| {
        let mut t = tokio::time::interval(CHECK_INTERVAL);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    })
}

/// The `over_memory` event.
pub fn over_memory_record(program: &Arc<str>, pid: Pid, rss: u64, limit: u64) -> Record {
    let fields = json!({ "pid": pid, "rss": rss, "limit": limit, "cause": "over_memory" });
    let serde_json::Value::Object(fields) = fields else {
        return Record::text(Some(program.clone()), String::new());
    };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    Record::typed(
        Some(program.clone()),
        "over_memory",
        format!(
            "over its memory limit (pid {pid}): {:.1} MiB resident in its process group > max_memory {:.1} MiB; replacing it",
            mib(rss),
            mib(limit)
        ),
        fields,
    )
}

impl Supervisor {
    /// Measures every live process of a program with `max_memory`; one over
    /// its limit is replaced ([`Supervisor::replace_unhealthy`]). Retiring
    /// processes (stopping for good) and ones already being replaced are not.
    pub(super) fn check_memory(&mut self) {
        let mut over = Vec::new();
        for (i, (slot, member)) in self.slots.iter().zip(&self.stack.members).enumerate() {
            let Some(limit) = slot.program.max_memory else {
                continue;
            };
            if member.instance.retiring || member.instance.gone || self.being_replaced(i) {
                continue;
            }
            let pid = match member.machine.state {
                State::Starting { pid, .. } | State::Running { pid, .. } => pid,
                _ => continue,
            };
            let rss = group_rss(pid);
            if rss > limit {
                over.push((i, over_memory_record(&member.name, pid, rss, limit)));
            }
        }
        for (i, record) in over {
            self.replace_unhealthy(i, "over_memory", record);
        }
    }

    /// Whether a surge is under way to replace member `index`.
    fn being_replaced(&self, index: usize) -> bool {
        self.stack
            .members
            .iter()
            .any(|m| m.instance.replaces == Some(index) && !m.instance.retiring)
    }

    /// Replaces member `index`'s live process for `cause` (a measure other
    /// than its probe: `over_memory`, `traffic`), publishing `record` and
    /// counting the cause. A program that surges (`restart_strategy`), whose
    /// process is ready and that no rollout is replacing already, is replaced
    /// by a surge of that one instance: the new process starts on the held
    /// sockets, the old one is retired once the new one is ready (zero
    /// downtime; `stack::instances`). Otherwise (stop-first, not ready, a
    /// rollout under way) it takes the liveness path: [`Input::Replace`]
    /// (stop signal, then the restart policy, counted as a failure). A member
    /// a surge is replacing already is left alone (nothing is published).
    pub(super) fn replace_unhealthy(&mut self, index: usize, cause: &'static str, record: Record) {
        if self.being_replaced(index) {
            return;
        }
        let Some(member) = self.stack.members.get(index) else {
            return;
        };
        let service = member.instance.service.clone();
        let surge = self.stack.service(&service).is_some_and(|s| s.surge)
            && member.machine.is_ready()
            && !self.stack.rolling(&service);
        self.publish(record);
        self.metrics.replaced(&service, cause);
        if let Some(slot) = self.slots.get_mut(index) {
            *slot.replacements.entry(cause).or_default() += 1;
        }
        let input = if surge {
            StackInput::Apply(vec![Change::Roll {
                service,
                members: vec![index],
            }])
        } else {
            StackInput::Program {
                index,
                input: Input::Replace,
            }
        };
        self.feed(input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgrp_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "1234 (my (odd) prog) S 1 1200 1200 0 -1 4194560 100 0 0 0";
        assert_eq!(parse_pgrp(stat), Some(1200));
        assert_eq!(parse_pgrp("garbage"), None);
    }

    #[test]
    fn resident_pages_is_the_second_field() {
        assert_eq!(
            parse_resident_pages("5000 1234 300 10 0 600 0\n"),
            Some(1234)
        );
        assert_eq!(parse_resident_pages("5000"), None);
    }

    #[test]
    fn own_group_is_measured() {
        let pgid = nix::unistd::getpgrp().as_raw();
        assert!(group_rss(pgid) > 0);
        assert_eq!(group_rss(i32::MAX), 0);
    }
}
