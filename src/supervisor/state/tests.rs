//! The lifecycle under paused time: each test walks a program through inputs and
//! checks states and actions.

use super::*;
use crate::config::{Backoff, RestartLimit, RestartPolicy};
use tokio::time::advance;

fn policy(restart: RestartPolicy) -> Policy {
    Policy {
        restart,
        backoff: Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.0,
            reset_after: Duration::from_secs(5),
        },
        limit: RestartLimit {
            max: 3,
            window: Duration::from_secs(60),
        },
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(2),
        probe: None,
    }
}

fn spawned(m: &mut Machine, pid: Pid) {
    let now = Instant::now();
    m.step(Input::Spawned { pid }, now);
}

fn exit(code: i32) -> Termination {
    Termination::Exited(code)
}

fn has_spawn(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Spawn))
}

#[tokio::test(start_paused = true)]
async fn waiting_spawns_when_dependencies_are_ready() {
    let mut m = Machine::new(policy(RestartPolicy::OnFailure), 1);
    assert_eq!(m.state, State::Waiting);
    assert!(has_spawn(&m.step(Input::DepsReady, Instant::now())));
    spawned(&mut m, 10);
    assert!(matches!(
        m.state,
        State::Running {
            pid: 10,
            ready: true,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_failures_only() {
    let mut m = Machine::new(policy(RestartPolicy::OnFailure), 1);
    spawned(&mut m, 10);
    let a = m.step(Input::exited(10, exit(1)), Instant::now());
    assert!(has_spawn(&a), "first restart is immediate: {a:?}");
    spawned(&mut m, 11);
    let killed = Termination::Signaled {
        signal: 9,
        core_dumped: false,
    };
    assert!(
        has_spawn(&m.step(Input::exited(11, killed), Instant::now())) || m.deadline().is_some()
    );
    let mut m = Machine::new(policy(RestartPolicy::OnFailure), 1);
    spawned(&mut m, 10);
    let a = m.step(Input::exited(10, exit(0)), Instant::now());
    assert!(!has_spawn(&a));
    assert_eq!(
        m.state,
        State::Exited,
        "a clean exit under on-failure is done"
    );
}

#[tokio::test(start_paused = true)]
async fn always_restarts_clean_exits_and_never_does_not_restart() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    spawned(&mut m, 10);
    assert!(has_spawn(
        &m.step(Input::exited(10, exit(0)), Instant::now())
    ));
    let mut m = Machine::new(policy(RestartPolicy::Never), 1);
    spawned(&mut m, 10);
    assert!(!has_spawn(
        &m.step(Input::exited(10, exit(3)), Instant::now())
    ));
    assert_eq!(
        m.state,
        State::Failed,
        "a crash not restarted is a failure, not a stop"
    );
    assert_eq!(m.failure, Some(Failure::Crashed));
    assert_eq!(m.last_exit, Some(exit(3)));
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_then_resets_after_a_stable_run() {
    let mut p = policy(RestartPolicy::Always);
    p.limit.max = 100;
    let mut m = Machine::new(p, 1);
    let mut delays = Vec::new();
    for pid in 1..=5 {
        spawned(&mut m, pid);
        advance(Duration::from_millis(10)).await;
        m.step(Input::exited(pid, exit(1)), Instant::now());
        delays.push(
            m.deadline()
                .map(|d| d - Instant::now())
                .unwrap_or_default()
                .as_millis(),
        );
        if let Some(until) = m.deadline() {
            tokio::time::advance(until - Instant::now()).await;
        }
        m.step(Input::Deadline, Instant::now());
    }
    assert_eq!(delays, [0, 100, 200, 400, 800]);
    spawned(&mut m, 99);
    advance(Duration::from_secs(6)).await; // longer than reset_after
    let a = m.step(Input::exited(99, exit(1)), Instant::now());
    assert!(has_spawn(&a), "a stable run resets the backoff: {a:?}");
}

#[tokio::test(start_paused = true)]
async fn restart_limit_marks_failed_and_gives_up() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    let mut gave_up = false;
    for pid in 1..=4 {
        spawned(&mut m, pid);
        let a = m.step(Input::exited(pid, exit(1)), Instant::now());
        gave_up = a.contains(&Action::GiveUp);
        if let Some(until) = m.deadline() {
            advance(until - Instant::now()).await;
            m.step(Input::Deadline, Instant::now());
        }
    }
    assert!(gave_up, "the 4th exit exceeds max = 3 restarts");
    assert_eq!(m.state, State::Failed);
    // An operator start begins afresh.
    m.step(Input::Start, Instant::now());
    assert_eq!(m.state, State::Waiting);
}

#[tokio::test(start_paused = true)]
async fn restarts_outside_the_window_do_not_count() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    for pid in 1..=10 {
        spawned(&mut m, pid);
        advance(Duration::from_secs(30)).await;
        let a = m.step(Input::exited(pid, exit(1)), Instant::now());
        assert!(
            !a.contains(&Action::GiveUp),
            "restart {pid} spaced 30s apart"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn probes_make_ready_and_consecutive_failures_stop_then_restart() {
    let mut p = policy(RestartPolicy::OnFailure);
    p.probe = Some((2, Duration::from_secs(1)));
    let mut m = Machine::new(p, 1);
    spawned(&mut m, 7);
    assert!(matches!(m.state, State::Starting { .. }));
    // Failures inside the start period do not count.
    m.step(
        Input::Probe {
            ok: false,
            reason: "refused".into(),
        },
        Instant::now(),
    );
    m.step(
        Input::Probe {
            ok: false,
            reason: "refused".into(),
        },
        Instant::now(),
    );
    assert!(matches!(m.state, State::Starting { .. }));
    m.step(
        Input::Probe {
            ok: true,
            reason: "200".into(),
        },
        Instant::now(),
    );
    assert!(m.is_ready());
    advance(Duration::from_secs(2)).await;
    m.step(
        Input::Probe {
            ok: false,
            reason: "timeout".into(),
        },
        Instant::now(),
    );
    assert!(matches!(m.state, State::Running { ready: false, .. }));
    let a = m.step(
        Input::Probe {
            ok: false,
            reason: "timeout".into(),
        },
        Instant::now(),
    );
    assert!(
        a.contains(&Action::Signal {
            pid: 7,
            signal: Signal::SIGTERM
        }),
        "{a:?}"
    );
    assert!(matches!(
        m.state,
        State::Stopping(Stopping {
            then: AfterStop::Recover,
            ..
        })
    ));
    // It ignores the TERM: SIGKILL at the deadline.
    advance(Duration::from_secs(2)).await;
    let a = m.step(Input::Deadline, Instant::now());
    assert!(
        a.contains(&Action::Signal {
            pid: 7,
            signal: Signal::SIGKILL
        }),
        "{a:?}"
    );
    assert_eq!(m.deadline(), None);
    // A liveness kill is a failure, even under on-failure with a signal exit.
    let a = m.step(
        Input::exited(
            7,
            Termination::Signaled {
                signal: 9,
                core_dumped: false,
            },
        ),
        Instant::now(),
    );
    assert!(has_spawn(&a), "{a:?}");
}

#[tokio::test(start_paused = true)]
async fn operator_stop_and_restart() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    spawned(&mut m, 5);
    m.step(Input::Stop, Instant::now());
    let a = m.step(Input::exited(5, exit(0)), Instant::now());
    assert!(!has_spawn(&a));
    assert_eq!(m.state, State::Stopped);
    m.step(Input::Start, Instant::now());
    assert!(has_spawn(&m.step(Input::DepsReady, Instant::now())));
    spawned(&mut m, 6);
    m.step(Input::Restart, Instant::now());
    let a = m.step(Input::exited(6, exit(0)), Instant::now());
    assert!(has_spawn(&a), "operator restart respawns at once: {a:?}");
}

#[tokio::test(start_paused = true)]
async fn stale_inputs_are_ignored() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    spawned(&mut m, 5);
    let before = m.state.clone();
    assert!(m.step(Input::exited(4, exit(1)), Instant::now()).is_empty());
    assert!(m.step(Input::Deadline, Instant::now()).is_empty());
    assert_eq!(m.state, before);
}

#[tokio::test(start_paused = true)]
async fn exec_failure_is_a_failure_with_backoff() {
    let mut m = Machine::new(policy(RestartPolicy::OnFailure), 1);
    m.step(Input::DepsReady, Instant::now());
    let how = Termination::ExecFailed {
        code: 127,
        error: "/nope: no such file".into(),
    };
    let a = m.step(Input::SpawnFailed(how.clone()), Instant::now());
    assert!(
        matches!(&a[0], Action::Report(Event::SpawnFailed { .. })),
        "{a:?}"
    );
    assert!(!has_spawn(&a), "no hot loop on exec failures");
    assert_eq!(m.deadline(), Some(Instant::now() + EXEC_RETRY_FLOOR));
    let _ = how;
}

#[test]
fn event_lines_read_well() {
    let e = Event::Exited {
        pid: 1,
        how: exit(1),
        ran: Duration::from_millis(12_300),
        next: Next::Restart {
            count: 3,
            window: Duration::from_secs(60),
            delay: Duration::ZERO,
        },
    };
    assert_eq!(
        e.to_string(),
        "exited with code 1 after 12.3s; restart 3 within 60s; next start in 0ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_crash_that_leaves_its_group_waits_for_the_group_before_restarting() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    spawned(&mut m, 10);
    let a = m.step(
        Input::Exited {
            pid: 10,
            how: exit(1),
            left: Leftover::Group,
        },
        Instant::now(),
    );
    assert!(
        !has_spawn(&a),
        "no new incarnation while the old group lives: {a:?}"
    );
    assert!(a.contains(&Action::Signal {
        pid: 10,
        signal: Signal::SIGTERM
    }));
    assert!(a.contains(&Action::Signal {
        pid: 10,
        signal: Signal::SIGCONT
    }));
    assert_eq!(m.state.leader(), None, "the leader is gone");
    assert_eq!(m.state.pid(), Some(10), "the group is still the program's");
    // Rechecked, and SIGKILLed to the group at the stop timeout even though the
    // leader was reaped long ago.
    advance(GROUP_RECHECK).await;
    let a = m.step(Input::Deadline, Instant::now());
    assert_eq!(a, vec![Action::CheckGroup { pgid: 10 }]);
    advance(Duration::from_secs(2)).await;
    let a = m.step(Input::Deadline, Instant::now());
    assert!(
        a.contains(&Action::Signal {
            pid: 10,
            signal: Signal::SIGKILL
        }),
        "{a:?}"
    );
    let a = m.step(Input::GroupGone { pgid: 10 }, Instant::now());
    assert!(
        has_spawn(&a),
        "the restart rule applies once the group is gone: {a:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_operator_stop_ends_only_when_the_group_is_gone() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    spawned(&mut m, 10);
    m.step(Input::Restart, Instant::now());
    let a = m.step(
        Input::Exited {
            pid: 10,
            how: exit(0),
            left: Leftover::Group,
        },
        Instant::now(),
    );
    assert!(!has_spawn(&a), "{a:?}");
    assert!(matches!(m.state, State::Stopping(_)));
    let a = m.step(Input::GroupGone { pgid: 10 }, Instant::now());
    assert!(has_spawn(&a), "{a:?}");
}

/// `pid` exits 1; time passes to the end of its backoff, which then fires.
/// Returns the actions of the exit.
async fn crash_then_wait(m: &mut Machine, pid: Pid) -> Vec<Action> {
    let actions = m.step(Input::exited(pid, exit(1)), Instant::now());
    if let Some(until) = m.deadline() {
        advance(until - Instant::now()).await;
        m.step(Input::Deadline, Instant::now());
    }
    actions
}

#[tokio::test(start_paused = true)]
async fn stable_runs_do_not_count_toward_the_restart_limit() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    for pid in 1..=20 {
        spawned(&mut m, pid);
        advance(Duration::from_secs(5)).await; // ready for reset_after each time
        let a = m.step(Input::exited(pid, exit(137)), Instant::now());
        assert!(!a.contains(&Action::GiveUp), "kill {pid} of a healthy run");
        assert!(has_spawn(&a), "a stable run restarts at once: {a:?}");
    }
    // Unstable runs still count.
    let mut gave_up = false;
    for pid in 30..=34 {
        spawned(&mut m, pid);
        gave_up |= crash_then_wait(&mut m, pid).await.contains(&Action::GiveUp);
    }
    assert!(gave_up);
}

#[tokio::test(start_paused = true)]
async fn a_probed_run_is_stable_only_after_being_ready_for_reset_after() {
    let mut p = policy(RestartPolicy::Always);
    p.probe = Some((3, Duration::from_secs(1)));
    let mut m = Machine::new(p, 1);
    let mut gave_up = false;
    for pid in 1..=5 {
        spawned(&mut m, pid);
        // Alive for 6 s but never ready: not stable.
        advance(Duration::from_secs(6)).await;
        gave_up |= crash_then_wait(&mut m, pid).await.contains(&Action::GiveUp);
    }
    assert!(gave_up);
}

#[tokio::test(start_paused = true)]
async fn a_program_that_daemonizes_fails_plainly() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    spawned(&mut m, 10);
    let a = m.step(
        Input::Exited {
            pid: 10,
            how: exit(0),
            left: Leftover::Daemon(vec![12]),
        },
        Instant::now(),
    );
    assert!(a.contains(&Action::GiveUp));
    assert!(!has_spawn(&a), "no pile of copies: {a:?}");
    assert_eq!(m.state, State::Failed);
    assert_eq!(m.failure, Some(Failure::Daemonized(vec![12])));
    let line = a
        .iter()
        .find_map(|x| match x {
            Action::Report(e @ Event::Daemonized { .. }) => Some(e.to_string()),
            _ => None,
        })
        .unwrap_or_default();
    assert!(line.contains("foreground"), "{line}");
}

#[tokio::test(start_paused = true)]
async fn a_suspended_program_is_shown_suspended_and_not_ready() {
    let mut m = Machine::new(policy(RestartPolicy::Always), 1);
    spawned(&mut m, 10);
    m.step(
        Input::Suspended {
            pid: 10,
            suspended: true,
        },
        Instant::now(),
    );
    assert_eq!(m.state_name(), "suspended");
    assert!(!m.is_ready());
    m.step(
        Input::Suspended {
            pid: 10,
            suspended: false,
        },
        Instant::now(),
    );
    assert_eq!(m.state_name(), "running");
}

/// `Replace` (memory, traffic) takes the liveness path when live: the stop
/// signal, Stopping(recover), then the restart rule; elsewhere it is ignored.
#[tokio::test(start_paused = true)]
async fn replace_stops_a_live_program_to_restart_it_and_is_ignored_otherwise() {
    let mut m = Machine::new(policy(RestartPolicy::OnFailure), 1);
    assert!(m.step(Input::Replace, Instant::now()).is_empty());
    assert_eq!(m.state, State::Waiting);
    spawned(&mut m, 10);
    let actions = m.step(Input::Replace, Instant::now());
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Signal {
            pid: 10,
            signal: Signal::SIGTERM
        }
    )));
    assert!(matches!(
        m.state,
        State::Stopping(Stopping {
            then: AfterStop::Recover,
            ..
        })
    ));
    // Ignored while stopping.
    assert!(m.step(Input::Replace, Instant::now()).is_empty());
    let actions = m.step(Input::exited(10, exit(0)), Instant::now());
    // Counted as a failure: restarted per policy even after code 0.
    assert!(has_spawn(&actions) || matches!(m.state, State::Backoff { .. }));
}
