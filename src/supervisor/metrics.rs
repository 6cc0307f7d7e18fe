//! The supervisor's Prometheus metrics: one [`Metrics`] value, owned by the
//! supervisor and shared with the admin API as an `Arc`.
//!
//! Every value is an atomic (or, for the probe histograms, a short lock of the
//! `prometheus-client` crate's own), written by the owner task where its typed
//! events are handled ([`Metrics::program_event`], [`Metrics::probe`],
//! [`Metrics::orphan_reaped`]) and read by a scrape ([`Metrics::encode`]) on
//! the API task, which never asks the owner for anything.
//!
//! | metric | type | labels | source |
//! |---|---|---|---|
//! | `selfheal_program_up` | gauge | `program` | 1 while it has a live process (spawned, not yet reaped with its whole group) |
//! | `selfheal_program_ready` | gauge | `program` | 1 while it is running and ready (its last probe passed, or it has none), not suspended |
//! | `selfheal_program_restarts_total` | counter | `program`, `reason` | restarts decided (as `restarts` of `selfheal status`), by [`RestartReason`] |
//! | `selfheal_program_start_time_seconds` | gauge | `program` | Unix time of the live process's spawn; absent while it has none |
//! | `selfheal_program_last_exit_code` | gauge | `program` | shell convention: code, 128 + signal, 126/127; absent before a first exit |
//! | `selfheal_probe_duration_seconds` | histogram | `program` | every probe result that reached the supervisor (programs with a `health` probe only) |
//! | `selfheal_probe_failures_total` | counter | `program` | failed probes, the start-up ones (not counted towards `failures`) included (programs with a probe only) |
//! | `selfheal_orphans_reaped_total` | counter | – | reaped processes that were no program's leader nor an exec probe |
//! | `selfheal_log_lines_dropped_total` | counter | – | output lines dropped because stdout was stalled |
//! | `selfheal_build_info` | info | `version` | 1 |
//! | `selfheal_federation_up` | gauge | `program` | per program with a `metrics` URL: 1 when its page was fetched and appended to this scrape |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::state::{Event, Machine, Next};
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

/// "None" for the optional gauges stored as `i64`.
const ABSENT: i64 = i64::MIN;

/// One program's series.
#[derive(Debug)]
struct ProgramMetrics {
    name: Arc<str>,
    up: AtomicBool,
    ready: AtomicBool,
    /// Unix time of the spawn, in ms ([`ABSENT`] without a live process).
    start_ms: AtomicI64,
    last_exit_code: AtomicI64,
    restarts: [AtomicU64; RestartReason::ALL.len()],
    probe_duration: Histogram,
    probe_failures: AtomicU64,
    /// The last stop was a liveness stop (see [`restart_reason`]).
    after_unhealthy: AtomicBool,
    /// It has a health probe (the probe series exist only then).
    probed: bool,
}

impl ProgramMetrics {
    fn new(program: &Program) -> ProgramMetrics {
        ProgramMetrics {
            name: program.name.as_str().into(),
            probed: program.health.is_some(),
            up: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            start_ms: AtomicI64::new(ABSENT),
            last_exit_code: AtomicI64::new(ABSENT),
            restarts: Default::default(),
            probe_duration: Histogram::new(PROBE_BUCKETS),
            probe_failures: AtomicU64::new(0),
            after_unhealthy: AtomicBool::new(false),
        }
    }
}

/// A program whose own metrics page is appended to the supervisor's scrape.
#[derive(Debug, Clone)]
pub struct Federated {
    pub program: String,
    pub url: MetricsUrl,
}

/// The per-program series as a `prometheus-client` collector, encoded in
/// config order at each scrape.
#[derive(Debug)]
struct Programs(Arc<Vec<ProgramMetrics>>);

/// The supervisor's metrics; see the module docs.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    programs: Arc<Vec<ProgramMetrics>>,
    orphans: Counter,
    /// Programs with a `metrics` URL, in config order.
    pub federated: Vec<Federated>,
}

impl Metrics {
    /// Series for `programs` (config order: the index of the owner's tables);
    /// `log_lines_dropped` is the output writer's own counter.
    pub fn new(programs: &[Program], log_lines_dropped: Counter) -> Metrics {
        let list: Arc<Vec<ProgramMetrics>> =
            Arc::new(programs.iter().map(ProgramMetrics::new).collect());
        let orphans = Counter::default();
        let mut registry = Registry::default();
        registry.register(
            "selfheal_orphans_reaped",
            "Processes reaped that were no program's leader nor a probe (orphans re-parented to the supervisor)",
            orphans.clone(),
        );
        registry.register(
            "selfheal_log_lines_dropped",
            "Program and supervisor output lines dropped because stdout was stalled",
            log_lines_dropped,
        );
        registry.register(
            "selfheal_build",
            "The running selfheal binary",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(Programs(list.clone())));
        let federated = programs
            .iter()
            .filter_map(|p| {
                Some(Federated {
                    program: p.name.clone(),
                    url: p.metrics.clone()?,
                })
            })
            .collect();
        Metrics {
            registry,
            programs: list,
            orphans,
            federated,
        }
    }

    /// A program's event (its machine already in the state the event left it
    /// in): counts a restart, updates up/ready/start time/last exit code.
    pub fn program_event(&self, index: usize, event: &Event, machine: &Machine) {
        let Some(p) = self.programs.get(index) else {
            return;
        };
        let after_unhealthy = match event {
            Event::Unhealthy { .. } => {
                p.after_unhealthy.store(true, Ordering::Relaxed);
                false
            }
            Event::Exited { .. } | Event::SpawnFailed { .. } => {
                p.after_unhealthy.swap(false, Ordering::Relaxed)
            }
            _ => false,
        };
        if let Some(reason) = restart_reason(event, after_unhealthy) {
            if let Some(counter) = p.restarts.get(reason.index()) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Event::Started { .. } = event {
            p.start_ms
                .store(crate::admin::snapshot::now_ms() as i64, Ordering::Relaxed);
        }
        let up = machine.state.pid().is_some();
        p.up.store(up, Ordering::Relaxed);
        if !up {
            p.start_ms.store(ABSENT, Ordering::Relaxed);
        }
        p.ready.store(machine.is_ready(), Ordering::Relaxed);
        if let Some(exit) = &machine.last_exit {
            p.last_exit_code
                .store(i64::from(exit.code()), Ordering::Relaxed);
        }
    }

    /// A probe result of program `index` that took `duration`.
    pub fn probe(&self, index: usize, ok: bool, duration: Duration) {
        let Some(p) = self.programs.get(index) else {
            return;
        };
        p.probe_duration.observe(duration.as_secs_f64());
        if !ok {
            p.probe_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An orphan was reaped.
    pub fn orphan_reaped(&self) {
        self.orphans.inc();
    }

    /// The supervisor's own series in the OpenMetrics text format, without the
    /// final `# EOF` (the API appends federated pages, then it).
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
    }
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

/// One gauge family: a sample per program for which `value` has one.
fn gauge_family<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    programs: &[ProgramMetrics],
    (name, help, unit): (&str, &str, Option<&Unit>),
    value: impl Fn(&ProgramMetrics) -> Option<N>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for p in programs {
        if let Some(v) = value(p) {
            let labels = [("program", &*p.name)];
            ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for Programs {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let programs = &self.0;
        let flag = |b: &AtomicBool| i64::from(b.load(Ordering::Relaxed));
        gauge_family(
            &mut encoder,
            programs,
            (
                "selfheal_program_up",
                "1 while the program has a live process.",
                None,
            ),
            |p| Some(flag(&p.up)),
        )?;
        gauge_family(
            &mut encoder,
            programs,
            (
                "selfheal_program_ready",
                "1 while the program is running and ready (last probe passed, or no probe).",
                None,
            ),
            |p| Some(flag(&p.ready)),
        )?;
        gauge_family(
            &mut encoder,
            programs,
            (
                "selfheal_program_start_time",
                "Unix time the live process was spawned (absent while there is none).",
                Some(&Unit::Seconds),
            ),
            |p| {
                let ms = p.start_ms.load(Ordering::Relaxed);
                (ms != ABSENT).then(|| ms as f64 / 1000.0)
            },
        )?;
        gauge_family(
            &mut encoder,
            programs,
            (
                "selfheal_program_last_exit_code",
                "Exit code of the last run: code, 128 + signal, 126/127 when it could not be executed (absent before a first exit).",
                None,
            ),
            |p| {
                let code = p.last_exit_code.load(Ordering::Relaxed);
                (code != ABSENT).then_some(code)
            },
        )?;
        let mut family = encoder.encode_descriptor(
            "selfheal_program_restarts",
            "Restarts of the program, by reason (exited, unhealthy, operator, spawn_failed).",
            None,
            MetricType::Counter,
        )?;
        for p in programs.iter() {
            for (reason, count) in RestartReason::ALL.iter().zip(&p.restarts) {
                let labels = [("program", &*p.name), ("reason", reason.label())];
                ConstCounter::new(count.load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "selfheal_probe_duration",
            "Time each health probe took (pass or fail).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for p in programs.iter().filter(|p| p.probed) {
            let labels = [("program", &*p.name)];
            p.probe_duration.encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "selfheal_probe_failures",
            "Failed health probes (start-up failures included).",
            None,
            MetricType::Counter,
        )?;
        for p in programs.iter().filter(|p| p.probed) {
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

    fn scrape(m: &Metrics) -> String {
        let mut out = String::new();
        m.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn a_liveness_stop_counts_as_unhealthy_and_the_next_crash_as_exited() {
        let m = metrics();
        let machine = Machine::new(
            crate::supervisor::state::Policy::of(&Program::new("app", vec![])),
            1,
        );
        let unhealthy = Event::Unhealthy {
            pid: 7,
            failures: 3,
            reason: "x".into(),
        };
        m.program_event(0, &unhealthy, &machine);
        m.program_event(0, &exited(restart()), &machine);
        m.program_event(0, &exited(restart()), &machine);
        m.program_event(1, &exited(Next::Respawn), &machine);
        let text = scrape(&m);
        for line in [
            "selfheal_program_restarts_total{program=\"app\",reason=\"unhealthy\"} 1",
            "selfheal_program_restarts_total{program=\"app\",reason=\"exited\"} 1",
            "selfheal_program_restarts_total{program=\"app\",reason=\"operator\"} 0",
            "selfheal_program_restarts_total{program=\"db\",reason=\"operator\"} 1",
            "selfheal_program_up{program=\"app\"} 0",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        // Neither a start time nor an exit code before there is one.
        assert!(
            !text.contains("selfheal_program_start_time_seconds{"),
            "{text}"
        );
        assert!(!text.contains("selfheal_program_last_exit_code{"), "{text}");
    }

    #[test]
    fn probes_fill_the_histogram_and_count_failures() {
        let m = metrics();
        m.probe(1, true, Duration::from_millis(3));
        m.probe(1, false, Duration::from_millis(700));
        m.probe(9, false, Duration::ZERO); // unknown index: ignored
        m.orphan_reaped();
        let text = scrape(&m);
        for absent in [
            "selfheal_probe_duration_seconds_count{program=\"app\"}",
            "selfheal_probe_failures_total{program=\"app\"}",
        ] {
            assert!(!text.contains(absent), "app has no probe: {text}");
        }
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
