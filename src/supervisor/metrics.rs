//! The supervisor's Prometheus metrics: one [`Metrics`] value, owned by the
//! supervisor and shared with the admin API as an `Arc`.
//!
//! Counters are atomics (the probe histograms: `prometheus-client`'s own short
//! lock), written by the owner task where its typed events are handled
//! ([`Metrics::program_event`], [`Metrics::note`], [`Metrics::probe`],
//! [`Metrics::orphan_reaped`]) and read by a scrape ([`Metrics::encode`]) on
//! the API task. The gauges (up, ready, start time, last exit code) are the
//! status snapshot's, which the owner builds on request as for `GET /status`
//! (tens of microseconds with 100 programs): they follow replicas, surge
//! restarts and reloads without bookkeeping of their own. Label `program`: the
//! config's program; its instances (replicas, the old and new process of a
//! surge) are folded into it.
//!
//! | metric | type | labels | source |
//! |---|---|---|---|
//! | `selfheal_program_up` | gauge | `program` | 1 while it has a live process (spawned, not yet reaped with its whole group) |
//! | `selfheal_program_processes` | gauge | `program` | its live processes (replicas; during a surge, old and new) |
//! | `selfheal_program_ready` | gauge | `program` | 1 while every instance not being retired is running and ready (its last probe passed, or it has none), not suspended |
//! | `selfheal_program_restarts_total` | counter | `program`, `reason` | restarts, by [`RestartReason`] |
//! | `selfheal_program_start_time_seconds` | gauge | `program` | Unix time of the newest live process's spawn; absent while it has none |
//! | `selfheal_program_last_exit_code` | gauge | `program` | shell convention: code, 128 + signal, 126/127; absent before a first exit |
//! | `selfheal_probe_duration_seconds` | histogram | `program` | every probe result that reached the supervisor (programs with a `health` probe only) |
//! | `selfheal_probe_failures_total` | counter | `program` | failed probes, the start-up ones (not counted towards `failures`) included (programs with a probe only) |
//! | `selfheal_orphans_reaped_total` | counter | – | reaped processes that were no program's leader nor an exec probe |
//! | `selfheal_log_lines_dropped_total` | counter | – | output lines dropped because stdout was stalled |
//! | `selfheal_build_info` | info | `version` | 1 |
//! | `selfheal_federation_up` | gauge | `program` | per program with a `metrics` URL: 1 when its page was fetched and appended to this scrape |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::notes::Note;
use super::state::{Event, Next};
use crate::admin::snapshot::Snapshot;
use crate::config::{MetricsUrl, Program};

/// Upper bounds of the probe-duration buckets, in seconds (+Inf is implicit).
pub const PROBE_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Why a program was restarted: the `reason` label of
/// `selfheal_program_restarts_total`. Every reason has a series from the start
/// (at 0), so `increase()` sees the first restart too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// It exited (or crashed) on its own and its policy restarts it.
    Exited,
    /// Its liveness probe failed `failures` times in a row: stopped and restarted.
    Unhealthy,
    /// `selfheal restart NAME`.
    Operator,
    /// It could not be spawned (exec failure, missing user…) and is retried.
    SpawnFailed,
}

impl RestartReason {
    /// Every reason, in label order. A new reason (memory, traffic) goes here.
    pub const ALL: [RestartReason; 4] = [
        RestartReason::Exited,
        RestartReason::Unhealthy,
        RestartReason::Operator,
        RestartReason::SpawnFailed,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RestartReason::Exited => "exited",
            RestartReason::Unhealthy => "unhealthy",
            RestartReason::Operator => "operator",
            RestartReason::SpawnFailed => "spawn_failed",
        }
    }

    fn index(self) -> usize {
        match self {
            RestartReason::Exited => 0,
            RestartReason::Unhealthy => 1,
            RestartReason::Operator => 2,
            RestartReason::SpawnFailed => 3,
        }
    }
}

/// The restart an event reports, if it reports one. `after_unhealthy`: the
/// program's last stop was a liveness stop ([`Event::Unhealthy`] came first),
/// so the exit that follows it is that stop's end, not a crash.
///
/// | event | next | reason |
/// |---|---|---|
/// | `Exited` | `Restart` | `unhealthy` after a liveness stop, else `exited` |
/// | `Exited` | `Respawn` (operator restart) | `operator` |
/// | `SpawnFailed` | `Restart` | `spawn_failed` |
/// | anything else | | none |
pub fn restart_reason(event: &Event, after_unhealthy: bool) -> Option<RestartReason> {
    match event {
        Event::Exited {
            next: Next::Restart { .. },
            ..
        } if after_unhealthy => Some(RestartReason::Unhealthy),
        Event::Exited {
            next: Next::Restart { .. },
            ..
        } => Some(RestartReason::Exited),
        Event::Exited {
            next: Next::Respawn,
            ..
        } => Some(RestartReason::Operator),
        Event::SpawnFailed {
            next: Next::Restart { .. },
            ..
        } => Some(RestartReason::SpawnFailed),
        Event::Exited { .. }
        | Event::SpawnFailed { .. }
        | Event::Started { .. }
        | Event::Ready { .. }
        | Event::NotReady { .. }
        | Event::Unhealthy { .. }
        | Event::Stopping { .. }
        | Event::Killed { .. }
        | Event::GroupLeft { .. }
        | Event::Daemonized { .. }
        | Event::Suspended { .. } => None,
    }
}

/// One program's counters (all its instances, every incarnation).
#[derive(Debug)]
struct ProgramCounters {
    name: Arc<str>,
    restarts: [AtomicU64; RestartReason::ALL.len()],
    probe_duration: Histogram,
    probe_failures: AtomicU64,
    /// It has (or had) a health probe: the probe series exist only then.
    probed: AtomicBool,
}

impl ProgramCounters {
    fn new(name: Arc<str>, probed: bool) -> Arc<ProgramCounters> {
        Arc::new(ProgramCounters {
            name,
            restarts: Default::default(),
            probe_duration: Histogram::new(PROBE_BUCKETS),
            probe_failures: AtomicU64::new(0),
            probed: AtomicBool::new(probed),
        })
    }
}

/// What the owner knows of one member (instance) of the stack.
#[derive(Debug)]
struct MemberEntry {
    counters: Arc<ProgramCounters>,
    /// Its last stop was a liveness stop (see [`restart_reason`]).
    after_unhealthy: bool,
}

/// The counters of every program, in first-seen order (the config's first),
/// and of every member by its index in the stack. Written by the owner, read
/// by a scrape; each lock is held for a look-up or a copy of the list.
#[derive(Debug, Default)]
struct Tables {
    programs: Vec<Arc<ProgramCounters>>,
    /// Position in `programs` by name: a look-up per event stays O(1) (a
    /// linear search made starting 1000 programs quadratic, 2 % of its CPU).
    by_name: HashMap<Arc<str>, usize>,
    members: Vec<Option<MemberEntry>>,
}

impl Tables {
    fn of(programs: Vec<Arc<ProgramCounters>>) -> Tables {
        let by_name = (0..)
            .zip(&programs)
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        Tables {
            programs,
            by_name,
            members: Vec::new(),
        }
    }

    fn program(&mut self, name: &str) -> Arc<ProgramCounters> {
        let known = self.by_name.get(name).and_then(|i| self.programs.get(*i));
        if let Some(p) = known {
            return p.clone();
        }
        let p = ProgramCounters::new(name.into(), false);
        self.by_name.insert(p.name.clone(), self.programs.len());
        self.programs.push(p.clone());
        p
    }

    fn member(&mut self, index: usize, program: &str) -> Option<&mut MemberEntry> {
        if self.members.len() <= index {
            self.members.resize_with(index + 1, || None);
        }
        let counters = match self.members.get(index) {
            Some(Some(m)) if &*m.counters.name == program => None,
            _ => Some(self.program(program)),
        };
        let slot = self.members.get_mut(index)?;
        if let Some(counters) = counters {
            *slot = Some(MemberEntry {
                counters,
                after_unhealthy: false,
            });
        }
        slot.as_mut()
    }
}

/// A program whose own metrics page is appended to the supervisor's scrape.
#[derive(Debug, Clone)]
pub struct Federated {
    pub program: String,
    pub url: MetricsUrl,
}

/// The supervisor's metrics; see the module docs.
#[derive(Debug)]
pub struct Metrics {
    tables: Mutex<Tables>,
    orphans: Counter,
    log_lines_dropped: Counter,
    /// Programs with a `metrics` URL, in config order (replaced at a reload).
    federated: Mutex<Vec<Federated>>,
    /// Replacements of an unhealthy process by cause (`over_memory`,
    /// `traffic`), labelled `program` and `cause`.
    replacements: Family<Vec<(String, String)>, Counter>,
}

/// The programs of `programs` that have a `metrics` URL, in order.
fn federated_of(programs: &[Program]) -> Vec<Federated> {
    programs
        .iter()
        .filter_map(|p| {
            Some(Federated {
                program: p.name.clone(),
                url: p.metrics.clone()?,
            })
        })
        .collect()
}

impl Metrics {
    /// Series for the config's `programs` (every one at 0 from the start);
    /// `log_lines_dropped` is the output writer's own counter.
    pub fn new(programs: &[Program], log_lines_dropped: Counter) -> Metrics {
        let tables = Tables::of(
            programs
                .iter()
                .map(|p| ProgramCounters::new(p.name.as_str().into(), p.health.is_some()))
                .collect(),
        );
        Metrics {
            tables: Mutex::new(tables),
            orphans: Counter::default(),
            log_lines_dropped,
            federated: Mutex::new(federated_of(programs)),
            replacements: Family::default(),
        }
    }

    /// The programs whose pages a scrape appends.
    pub fn federated(&self) -> Vec<Federated> {
        self.federated
            .lock()
            .map_or_else(|e| e.into_inner().clone(), |f| f.clone())
    }

    /// A reload's programs: their `metrics` URLs from now on.
    pub fn reloaded(&self, programs: &[Program]) {
        let next = federated_of(programs);
        match self.federated.lock() {
            Ok(mut f) => *f = next,
            Err(e) => *e.into_inner() = next,
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // Every update is a single push or assignment: still consistent.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An event of the stack's member `index`, an instance of `program`:
    /// counts a restart by its reason.
    pub fn program_event(&self, index: usize, program: &str, event: &Event) {
        let mut tables = self.tables();
        let Some(member) = tables.member(index, program) else {
            return;
        };
        let after_unhealthy = match event {
            Event::Unhealthy { .. } => {
                member.after_unhealthy = true;
                false
            }
            Event::Exited { .. } | Event::SpawnFailed { .. } => {
                std::mem::take(&mut member.after_unhealthy)
            }
            _ => false,
        };
        if let Some(reason) = restart_reason(event, after_unhealthy) {
            if let Some(counter) = member.counters.restarts.get(reason.index()) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One of the supervisor's notes: a surge restart (`selfheal restart` of
    /// a program with `listen`, or a reload that changed it) counts as an
    /// `operator` restart of that program (its old process is retired, not
    /// restarted, so no exit reports it).
    pub fn note(&self, note: &Note) {
        if let Note::SurgeStarted { program } = note {
            let counters = self.tables().program(program);
            if let Some(c) = counters.restarts.get(RestartReason::Operator.index()) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A probe result of member `index` that took `duration`.
    pub fn probe(&self, index: usize, ok: bool, duration: Duration) {
        let counters = match self.tables().members.get(index) {
            Some(Some(m)) => m.counters.clone(),
            _ => return,
        };
        counters.probed.store(true, Ordering::Relaxed);
        counters.probe_duration.observe(duration.as_secs_f64());
        if !ok {
            counters.probe_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An orphan was reaped.
    pub fn orphan_reaped(&self) {
        self.orphans.inc();
    }

    /// A process of `program` is being replaced for `cause` (`over_memory`:
    /// its `max_memory`; `traffic`: its `traffic_health`).
    pub fn replaced(&self, program: &str, cause: &str) {
        let labels = vec![
            ("program".to_string(), program.to_string()),
            ("cause".to_string(), cause.to_string()),
        ];
        self.replacements.get_or_create(&labels).inc();
    }

    /// The supervisor's own series in the OpenMetrics text format, without the
    /// final `# EOF` (the API appends federated pages, then it). The gauges
    /// come from `status` (the owner's snapshot), when there is one.
    pub fn encode(&self, out: &mut String, status: Option<&Snapshot>) -> std::fmt::Result {
        let mut registry = Registry::default();
        registry.register(
            "selfheal_orphans_reaped",
            "Processes reaped that were no program's leader nor a probe (orphans re-parented to the supervisor)",
            self.orphans.clone(),
        );
        registry.register(
            "selfheal_log_lines_dropped",
            "Program and supervisor output lines dropped because stdout was stalled",
            self.log_lines_dropped.clone(),
        );
        registry.register(
            "selfheal_program_replacements",
            "Processes replaced because they were unhealthy, by cause (over_memory: max_memory; traffic: traffic_health)",
            self.replacements.clone(),
        );
        registry.register(
            "selfheal_build",
            "The running selfheal binary",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(View {
            gauges: status.map(gauges).unwrap_or_default(),
            counters: self.tables().programs.clone(),
        }));
        prometheus_client::encoding::text::encode_registry(out, &registry)
    }
}

/// One program's gauges, from the status of its instances.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Gauges {
    pub program: String,
    /// Instances with a live process.
    pub processes: i64,
    /// Every instance that is not being retired is running and ready.
    pub ready: bool,
    /// Spawn of the newest live process (Unix ms).
    pub start_ms: Option<u64>,
    /// The last exit of its newest instance that has one.
    pub last_exit_code: Option<i32>,
    /// What its last restart cost (down time, requests held/replayed/shed),
    /// when a front reported it.
    pub last_restart: Option<crate::supervisor::channel::RestartCost>,
}

/// The gauges of every program in `status`, in order of first appearance.
/// Instances (replicas, a surge's old and new process) are folded into their
/// program; later instances are the newer ones.
pub fn gauges(status: &Snapshot) -> Vec<Gauges> {
    let mut out: Vec<(Gauges, usize)> = Vec::new();
    for p in &status.programs {
        let name = if p.program.is_empty() {
            &p.name
        } else {
            &p.program
        };
        let at = match out.iter().position(|(g, _)| &g.program == name) {
            Some(at) => at,
            None => {
                out.push((
                    Gauges {
                        program: name.clone(),
                        ready: true,
                        ..Gauges::default()
                    },
                    0,
                ));
                out.len() - 1
            }
        };
        let Some((g, wanted)) = out.get_mut(at) else {
            continue;
        };
        if p.pid.is_some() {
            g.processes += 1;
            g.start_ms = g.start_ms.max(p.started_at_ms);
        }
        if !p.retiring {
            *wanted += 1;
            g.ready &= p.ready;
        }
        if let Some(exit) = &p.last_exit {
            g.last_exit_code = Some(exit.code);
        }
        if let Some(cost) = &p.last_restart {
            g.last_restart = Some(*cost);
        }
    }
    out.into_iter()
        .map(|(mut g, wanted)| {
            g.ready &= wanted > 0;
            g
        })
        .collect()
}

/// `selfheal_federation_up`, one sample per federated program: `(name, up)`.
pub fn encode_federation_up<'a>(
    out: &mut String,
    results: impl Iterator<Item = (&'a str, bool)>,
) -> std::fmt::Result {
    let mut results = results.peekable();
    if results.peek().is_none() {
        return Ok(());
    }
    out.push_str("# HELP selfheal_federation_up 1 when the program's metrics page was fetched and appended to this scrape.\n");
    out.push_str("# TYPE selfheal_federation_up gauge\n");
    for (program, up) in results {
        writeln!(
            out,
            "selfheal_federation_up{{program=\"{program}\"}} {}",
            u8::from(up)
        )?;
    }
    Ok(())
}

/// What one scrape encodes of the programs: gauges from the snapshot,
/// counters from the tables.
#[derive(Debug)]
struct View {
    gauges: Vec<Gauges>,
    counters: Vec<Arc<ProgramCounters>>,
}

/// One gauge family: a sample per program for which `value` has one.
fn gauge_family<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    gauges: &[Gauges],
    (name, help, unit): (&str, &str, Option<&Unit>),
    value: impl Fn(&Gauges) -> Option<N>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for g in gauges {
        if let Some(v) = value(g) {
            let labels = [("program", g.program.as_str())];
            ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for View {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let gauges = &self.gauges;
        gauge_family(
            &mut encoder,
            gauges,
            (
                "selfheal_program_up",
                "1 while the program has a live process.",
                None,
            ),
            |g| Some(i64::from(g.processes > 0)),
        )?;
        gauge_family(
            &mut encoder,
            gauges,
            (
                "selfheal_program_processes",
                "Live processes of the program (its replicas; during a surge restart, the old and the new).",
                None,
            ),
            |g| Some(g.processes),
        )?;
        gauge_family(
            &mut encoder,
            gauges,
            (
                "selfheal_program_ready",
                "1 while every instance of the program is running and ready (last probe passed, or no probe).",
                None,
            ),
            |g| Some(i64::from(g.ready)),
        )?;
        gauge_family(
            &mut encoder,
            gauges,
            (
                "selfheal_program_start_time",
                "Unix time the newest live process was spawned (absent while there is none).",
                Some(&Unit::Seconds),
            ),
            |g| g.start_ms.map(|ms| ms as f64 / 1000.0),
        )?;
        gauge_family(
            &mut encoder,
            gauges,
            (
                "selfheal_program_last_exit_code",
                "Exit code of the last run: code, 128 + signal, 126/127 when it could not be executed (absent before a first exit).",
                None,
            ),
            |g| g.last_exit_code.map(i64::from),
        )?;
        gauge_family(
            &mut encoder,
            gauges,
            (
                "selfheal_program_last_restart_down",
                "How long the program was not ready in its last restart, from death (or the decision to replace it) to ready again.",
                Some(&Unit::Seconds),
            ),
            |g| g.last_restart.as_ref().map(|c| c.down_ms as f64 / 1000.0),
        )?;
        for (what, pick) in [
            (
                "held",
                (|c| c.held) as fn(&crate::supervisor::channel::RestartCost) -> u64,
            ),
            ("replayed", |c| c.replayed),
            ("shed", |c| c.shed),
        ] {
            let name = format!("selfheal_program_last_restart_{what}_requests");
            let help = format!("Requests the proxy {what} during the program's last restart.");
            gauge_family(&mut encoder, gauges, (&name, &help, None), |g| {
                g.last_restart.as_ref().map(|c| pick(c) as i64)
            })?;
        }
        let counters = &self.counters;
        let mut family = encoder.encode_descriptor(
            "selfheal_program_restarts",
            "Restarts of the program, by reason (exited, unhealthy, operator, spawn_failed).",
            None,
            MetricType::Counter,
        )?;
        for p in counters.iter() {
            for (reason, count) in RestartReason::ALL.iter().zip(&p.restarts) {
                let labels = [("program", &*p.name), ("reason", reason.label())];
                ConstCounter::new(count.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let probed: Vec<_> = counters
            .iter()
            .filter(|p| p.probed.load(Ordering::Relaxed))
            .collect();
        let mut family = encoder.encode_descriptor(
            "selfheal_probe_duration",
            "Time each health probe took (pass or fail).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for p in &probed {
            let labels = [("program", &*p.name)];
            p.probe_duration.encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "selfheal_probe_failures",
            "Failed health probes (start-up failures included).",
            None,
            MetricType::Counter,
        )?;
        for p in &probed {
            let labels = [("program", &*p.name)];
            ConstCounter::new(p.probe_failures.load(Ordering::Relaxed))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::*;
    use crate::admin::snapshot::ProgramStatus;
    use crate::supervisor::state::Termination;

    fn restart() -> Next {
        Next::Restart {
            count: 1,
            window: Duration::from_secs(60),
            delay: Duration::ZERO,
        }
    }

    fn exited(next: Next) -> Event {
        Event::Exited {
            pid: 7,
            how: Termination::Exited(1),
            ran: Duration::from_secs(1),
            next,
        }
    }

    #[test]
    fn each_event_maps_to_its_restart_reason() {
        let spawn_failed = Event::SpawnFailed {
            how: Termination::ExecFailed {
                code: 127,
                error: "nope".into(),
            },
            next: restart(),
        };
        let rows: Vec<(Event, bool, Option<RestartReason>)> = vec![
            (exited(restart()), false, Some(RestartReason::Exited)),
            (exited(restart()), true, Some(RestartReason::Unhealthy)),
            (exited(Next::Respawn), false, Some(RestartReason::Operator)),
            (exited(Next::Respawn), true, Some(RestartReason::Operator)),
            (spawn_failed, false, Some(RestartReason::SpawnFailed)),
            (exited(Next::Stopped), true, None),
            (exited(Next::Done), false, None),
            (exited(Next::Stay), false, None),
            (
                exited(Next::GiveUp {
                    max: 1,
                    window: Duration::from_secs(1),
                }),
                false,
                None,
            ),
            (Event::Started { pid: 1 }, false, None),
            (
                Event::Unhealthy {
                    pid: 1,
                    failures: 3,
                    reason: "x".into(),
                },
                false,
                None,
            ),
            (
                Event::Stopping {
                    pid: 1,
                    signal: Signal::SIGTERM,
                },
                true,
                None,
            ),
        ];
        for (event, after_unhealthy, want) in rows {
            assert_eq!(
                restart_reason(&event, after_unhealthy),
                want,
                "{event:?} after_unhealthy={after_unhealthy}"
            );
        }
    }

    #[test]
    fn labels_are_snake_case_and_distinct() {
        let labels: Vec<&str> = RestartReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels, ["exited", "unhealthy", "operator", "spawn_failed"]);
        for (i, r) in RestartReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    fn metrics() -> Metrics {
        let mut db = Program::new("db", vec!["true".into()]);
        db.health = Some(crate::config::Health {
            probe: crate::config::Probe::Tcp("127.0.0.1:1".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failures: 3,
            start_period: Duration::ZERO,
        });
        let programs = [Program::new("app", vec!["true".into()]), db];
        Metrics::new(&programs, Counter::default())
    }

    fn scrape(m: &Metrics, status: Option<&Snapshot>) -> String {
        let mut out = String::new();
        m.encode(&mut out, status).unwrap();
        out
    }

    #[test]
    fn a_liveness_stop_counts_as_unhealthy_and_the_next_crash_as_exited() {
        let m = metrics();
        let unhealthy = Event::Unhealthy {
            pid: 7,
            failures: 3,
            reason: "x".into(),
        };
        m.program_event(0, "app", &unhealthy);
        m.program_event(0, "app", &exited(restart()));
        m.program_event(0, "app", &exited(restart()));
        // Replica 1 of db (member 2) and a surge of app.
        m.program_event(2, "db", &exited(Next::Respawn));
        m.note(&Note::SurgeStarted {
            program: "app".into(),
        });
        // A program a reload added.
        m.program_event(5, "web", &exited(restart()));
        let text = scrape(&m, None);
        for line in [
            "selfheal_program_restarts_total{program=\"app\",reason=\"unhealthy\"} 1",
            "selfheal_program_restarts_total{program=\"app\",reason=\"exited\"} 1",
            "selfheal_program_restarts_total{program=\"app\",reason=\"operator\"} 1",
            "selfheal_program_restarts_total{program=\"db\",reason=\"operator\"} 1",
            "selfheal_program_restarts_total{program=\"web\",reason=\"exited\"} 1",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        // No status: no gauges.
        assert!(!text.contains("selfheal_program_up{"), "{text}");
    }

    fn instance(program: &str, pid: Option<i32>, ready: bool, retiring: bool) -> ProgramStatus {
        ProgramStatus {
            name: program.into(),
            program: program.into(),
            pid,
            started_at_ms: pid.map(|p| 1_000_000 + p as u64),
            ready,
            retiring,
            ..ProgramStatus::default()
        }
    }

    #[test]
    fn gauges_fold_instances_into_their_program() {
        let mut old = instance("app", Some(10), true, true);
        old.last_exit = None;
        let mut new = instance("app", Some(20), false, false);
        new.last_exit = Some(crate::admin::snapshot::ExitInfo {
            code: 137,
            description: "killed".into(),
        });
        let status = Snapshot {
            programs: vec![
                instance("db", Some(5), true, false),
                old,
                new,
                instance("db", None, false, false),
                instance("idle", None, false, false),
            ],
            ..Snapshot::default()
        };
        let g = gauges(&status);
        let names: Vec<&str> = g.iter().map(|g| g.program.as_str()).collect();
        assert_eq!(names, ["db", "app", "idle"]);
        let db = &g[0];
        assert_eq!((db.processes, db.ready), (1, false)); // replica 1 is down
        let app = &g[1];
        assert_eq!((app.processes, app.ready), (2, false)); // the new one is not ready yet
        assert_eq!(app.start_ms, Some(1_000_020)); // the newest process
        assert_eq!(app.last_exit_code, Some(137));
        assert_eq!((g[2].processes, g[2].start_ms), (0, None));

        let text = scrape(&metrics(), Some(&status));
        for line in [
            "selfheal_program_up{program=\"app\"} 1",
            "selfheal_program_processes{program=\"app\"} 2",
            "selfheal_program_ready{program=\"app\"} 0",
            "selfheal_program_up{program=\"idle\"} 0",
            "selfheal_program_start_time_seconds{program=\"app\"} 1000.02",
            "selfheal_program_last_exit_code{program=\"app\"} 137",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        assert!(!text.contains("selfheal_program_start_time_seconds{program=\"idle\"}"));
    }

    #[test]
    fn probes_fill_the_histogram_and_count_failures() {
        let m = metrics();
        m.program_event(1, "db", &Event::Started { pid: 3 });
        m.probe(1, true, Duration::from_millis(3));
        m.probe(1, false, Duration::from_millis(700));
        m.probe(9, false, Duration::ZERO); // unknown member: ignored
        m.orphan_reaped();
        let text = scrape(&m, None);
        for line in [
            "selfheal_probe_duration_seconds_count{program=\"db\"} 2",
            "selfheal_probe_duration_seconds_bucket{le=\"0.005\",program=\"db\"} 1",
            "selfheal_probe_failures_total{program=\"db\"} 1",
            "selfheal_orphans_reaped_total 1",
            "selfheal_log_lines_dropped_total 0",
            "selfheal_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        for absent in [
            "selfheal_probe_duration_seconds_count{program=\"app\"}",
            "selfheal_probe_failures_total{program=\"app\"}",
        ] {
            assert!(!text.contains(absent), "app has no probe: {text}");
        }
    }

    #[test]
    fn a_reload_replaces_the_federated_pages() {
        let m = metrics();
        assert!(m.federated().is_empty());
        let mut proxy = Program::new("proxy", vec!["p".into()]);
        proxy.metrics = Some(MetricsUrl {
            authority: "127.0.0.1:9101".into(),
            path: "/metrics".into(),
        });
        m.reloaded(&[proxy, Program::new("app", vec![])]);
        let f = m.federated();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].program, "proxy");
        assert_eq!(f[0].url.authority, "127.0.0.1:9101");
    }

    #[test]
    fn federation_up_has_one_family_or_none() {
        let mut out = String::new();
        encode_federation_up(&mut out, std::iter::empty()).unwrap();
        assert_eq!(out, "");
        encode_federation_up(&mut out, [("proxy", false), ("app", true)].into_iter()).unwrap();
        assert_eq!(out.matches("# TYPE").count(), 1, "{out}");
        assert!(out.contains("selfheal_federation_up{program=\"proxy\"} 0\n"));
        assert!(out.contains("selfheal_federation_up{program=\"app\"} 1\n"));
    }
}
