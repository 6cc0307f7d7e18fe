//! The stack's policy under paused time, without a single process: every mode ×
//! input pair of the table in `stack.rs`, and the field faults it fixes
//! (duplicate TERMs, give-up then TERM, give-up at the very first start).

use super::*;
use crate::config::{Backoff, RestartLimit, RestartPolicy};
use crate::supervisor::state::{Policy, Termination};
use tokio::time::advance;

fn policy(max: u32) -> Policy {
    Policy {
        restart: RestartPolicy::Always,
        backoff: Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.0,
            reset_after: Duration::from_secs(5),
        },
        limit: RestartLimit {
            max,
            window: Duration::from_secs(60),
        },
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(2),
        probe: None,
    }
}

/// redis ← app (healthy) ← proxy (started); app forwards HUP.
fn demo(give_up: GiveUp) -> Stack {
    let mut redis = Member::new("redis", Machine::new(policy(3), 1), vec![]);
    redis.deps = vec![];
    let mut app = Member::new(
        "app",
        Machine::new(policy(3), 2),
        vec![Signal::SIGHUP as i32],
    );
    app.deps = vec![(0, Condition::Healthy)];
    let mut proxy = Member::new("proxy", Machine::new(policy(3), 3), vec![]);
    proxy.deps = vec![(1, Condition::Started)];
    Stack::new(vec![redis, app, proxy], give_up, Duration::from_secs(20))
}

fn spawns(actions: &[StackAction]) -> Vec<usize> {
    actions
        .iter()
        .filter_map(|a| match a {
            StackAction::Spawn(i) => Some(*i),
            _ => None,
        })
        .collect()
}

fn kills(actions: &[StackAction]) -> Vec<(Target, Signal)> {
    let name = |n: i32| Signal::try_from(n).unwrap_or(Signal::SIGSYS);
    actions
        .iter()
        .filter_map(|a| match a {
            StackAction::Kill { target, signal } => Some((*target, name(*signal))),
            _ => None,
        })
        .collect()
}

fn exit_of(actions: &[StackAction]) -> Option<Exit> {
    actions.iter().find_map(|a| match a {
        StackAction::Exit(e) => Some(*e),
        _ => None,
    })
}

fn has_note(actions: &[StackAction], f: impl Fn(&Note) -> bool) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, StackAction::Note(n) if f(n)))
}

/// Plays the runtime: spawns get pids 100 + index, every spawn result is fed back.
fn run(stack: &mut Stack, actions: Vec<StackAction>) -> Vec<StackAction> {
    let mut all = Vec::new();
    let mut queue: std::collections::VecDeque<_> = actions.into();
    while let Some(action) = queue.pop_front() {
        if let StackAction::Spawn(i) = action {
            let input = Input::Spawned {
                pid: 100 + i as Pid,
            };
            queue.extend(stack.step(StackInput::Program { index: i, input }, Instant::now()));
        }
        all.push(action);
    }
    all
}

fn up(stack: &mut Stack) -> Vec<StackAction> {
    let first = stack.start(Instant::now());
    run(stack, first)
}

fn step(stack: &mut Stack, input: StackInput) -> Vec<StackAction> {
    let actions = stack.step(input, Instant::now());
    run(stack, actions)
}

fn exited(index: usize, how: Termination) -> StackInput {
    StackInput::Program {
        index,
        input: Input::exited(100 + index as Pid, how),
    }
}

/// Feeds the exits of every program that has a process, as the reaper would
/// after the stop signals.
fn all_exit(stack: &mut Stack) -> Vec<StackAction> {
    let mut out = Vec::new();
    for _ in 0..stack.members.len() {
        let live: Vec<(usize, Pid)> = stack
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, m.machine.state.pid()?)))
            .collect();
        for (i, pid) in live {
            let input = Input::exited(
                pid,
                Termination::Signaled {
                    signal: 15,
                    core_dumped: false,
                },
            );
            out.extend(step(stack, StackInput::Program { index: i, input }));
        }
    }
    out
}

const TERM: i32 = Signal::SIGTERM as i32;

#[tokio::test(start_paused = true)]
async fn up_starts_in_dependency_order() {
    let mut s = demo(GiveUp::Exit);
    let a = up(&mut s);
    // redis has no probe: ready at spawn, so app (healthy) and then proxy
    // (started) follow in the same settle cascade.
    assert_eq!(spawns(&a), vec![0, 1, 2]);
    assert!(s.members.iter().all(|m| m.machine.is_ready()));
}

#[tokio::test(start_paused = true)]
async fn dependants_wait_for_a_healthy_dependency() {
    let mut s = demo(GiveUp::Exit);
    if let Some(redis) = s.members.get_mut(0) {
        let mut p = policy(3);
        p.probe = Some((3, Duration::from_secs(1)));
        redis.machine = Machine::new(p, 1);
    }
    let a = up(&mut s);
    assert_eq!(spawns(&a), vec![0], "app waits for redis to be ready");
    let probe = Input::Probe {
        ok: true,
        reason: "PONG".into(),
    };
    let a = step(
        &mut s,
        StackInput::Program {
            index: 0,
            input: probe,
        },
    );
    assert_eq!(spawns(&a), vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_signal_stops_dependants_first_then_exits_clean() {
    let mut s = demo(GiveUp::Exit);
    up(&mut s);
    let a = step(&mut s, StackInput::Signal(TERM));
    assert_eq!(
        kills(&a),
        vec![
            (Target::Group(102), Signal::SIGTERM),
            (Target::Group(102), Signal::SIGCONT)
        ],
        "only the proxy first"
    );
    let a = step(&mut s, exited(2, Termination::Exited(0)));
    assert_eq!(
        kills(&a).first(),
        Some(&(Target::Group(101), Signal::SIGTERM))
    );
    let a = step(&mut s, exited(1, Termination::Exited(0)));
    assert_eq!(
        kills(&a).first(),
        Some(&(Target::Group(100), Signal::SIGTERM))
    );
    let a = step(&mut s, exited(0, Termination::Exited(0)));
    assert!(a.contains(&StackAction::CheckLeftovers));
    let a = step(&mut s, StackInput::Leftovers { any: false });
    assert_eq!(exit_of(&a), Some(Exit::Clean));
    assert_eq!(s.mode, Mode::Done(Exit::Clean));
}

#[tokio::test(start_paused = true)]
async fn two_terms_a_few_ms_apart_do_not_force() {
    let mut s = demo(GiveUp::Exit);
    up(&mut s);
    step(&mut s, StackInput::Signal(TERM));
    advance(Duration::from_millis(5)).await;
    let a = step(&mut s, StackInput::Signal(TERM));
    assert!(kills(&a).is_empty(), "{a:?}");
    assert!(has_note(&a, |n| matches!(n, Note::DuplicateSignal { .. })));
    all_exit(&mut s);
    let a = step(&mut s, StackInput::Leftovers { any: false });
    assert_eq!(exit_of(&a), Some(Exit::Clean));
}

#[tokio::test(start_paused = true)]
async fn a_second_term_after_the_grace_forces() {
    let mut s = demo(GiveUp::Exit);
    up(&mut s);
    step(&mut s, StackInput::Signal(TERM));
    advance(FORCE_GRACE).await;
    let a = step(&mut s, StackInput::Signal(Signal::SIGINT as i32));
    let k = kills(&a);
    assert!(k.contains(&(Target::Group(100), Signal::SIGKILL)), "{k:?}");
    assert!(k.contains(&(Target::Group(102), Signal::SIGKILL)), "{k:?}");
    all_exit(&mut s);
    let a = step(&mut s, StackInput::Leftovers { any: false });
    assert_eq!(exit_of(&a), Some(Exit::Forced));
}

async fn crash_loop(s: &mut Stack, index: usize) -> Vec<StackAction> {
    let mut all = Vec::new();
    for _ in 0..10 {
        let pid = s.members.get(index).and_then(|m| m.machine.state.pid());
        let Some(pid) = pid else { break };
        let input = Input::exited(pid, Termination::Exited(1));
        all.extend(step(s, StackInput::Program { index, input }));
        if let Some(at) = s.members.get(index).and_then(|m| m.machine.deadline()) {
            advance(at.saturating_duration_since(Instant::now())).await;
            all.extend(step(s, StackInput::Deadline));
        }
        if s.is_stopping() {
            break;
        }
    }
    all
}

#[tokio::test(start_paused = true)]
async fn give_up_then_the_first_term_keeps_exit_3_and_does_not_force() {
    let mut s = demo(GiveUp::Exit);
    up(&mut s);
    let a = crash_loop(&mut s, 1).await;
    assert!(has_note(&a, |n| matches!(
        n,
        Note::GaveUp { exiting: true, .. }
    )));
    assert!(s.is_stopping());
    let a = step(&mut s, StackInput::Signal(TERM));
    assert!(
        !kills(&a).iter().any(|(_, sig)| *sig == Signal::SIGKILL),
        "the first signal after a give-up is not a second signal: {a:?}"
    );
    assert!(has_note(&a, |n| matches!(
        n,
        Note::StopSignal { already: true, .. }
    )));
    all_exit(&mut s);
    let a = step(&mut s, StackInput::Leftovers { any: false });
    assert_eq!(exit_of(&a), Some(Exit::GaveUp));
}

#[tokio::test(start_paused = true)]
async fn give_up_at_the_very_first_start_exits_3() {
    let redis = Member::new("redis", Machine::new(policy(0), 1), vec![]);
    let mut app = Member::new("app", Machine::new(policy(0), 2), vec![]);
    app.deps = vec![(0, Condition::Healthy)];
    let mut s = Stack::new(vec![redis, app], GiveUp::Exit, Duration::from_secs(20));
    let first = s.start(Instant::now());
    assert_eq!(spawns(&first), vec![0]);
    let failed = Input::SpawnFailed(Termination::ExecFailed {
        code: 127,
        error: "redis-server: not found".into(),
    });
    let a = step(
        &mut s,
        StackInput::Program {
            index: 0,
            input: failed,
        },
    );
    assert!(a.contains(&StackAction::CheckLeftovers), "{a:?}");
    let a = step(&mut s, StackInput::Leftovers { any: false });
    assert_eq!(exit_of(&a), Some(Exit::GaveUp));
}

#[tokio::test(start_paused = true)]
async fn give_up_with_stay_keeps_the_others_running() {
    let mut s = demo(GiveUp::Stay);
    up(&mut s);
    let a = crash_loop(&mut s, 2).await;
    assert!(has_note(&a, |n| matches!(
        n,
        Note::GaveUp { exiting: false, .. }
    )));
    assert!(!s.is_stopping());
    assert!(s.members.first().is_some_and(|m| m.machine.is_ready()));
}

#[tokio::test(start_paused = true)]
async fn other_signals_go_only_to_programs_that_declare_them() {
    let mut s = demo(GiveUp::Exit);
    up(&mut s);
    let a = step(&mut s, StackInput::Signal(Signal::SIGHUP as i32));
    assert_eq!(kills(&a), vec![(Target::Group(101), Signal::SIGHUP)]);
    for sig in [Signal::SIGUSR1, Signal::SIGALRM, Signal::SIGPWR] {
        let a = step(&mut s, StackInput::Signal(sig as i32));
        assert!(kills(&a).is_empty(), "{sig}: {a:?}");
        assert!(has_note(&a, |n| matches!(n, Note::NotForwarded { .. })));
    }
    let a = step(&mut s, StackInput::Signal(libc::SIGRTMIN() + 3));
    assert!(kills(&a).is_empty());
    assert!(
        !s.is_stopping(),
        "no signal but TERM/INT/QUIT stops the stack"
    );
}

#[tokio::test(start_paused = true)]
async fn the_shutdown_timeout_kills_every_group() {
    let mut s = demo(GiveUp::Exit);
    up(&mut s);
    step(&mut s, StackInput::Signal(TERM));
    advance(Duration::from_secs(20)).await;
    let a = step(&mut s, StackInput::Deadline);
    assert!(has_note(&a, |n| *n == Note::ShutdownTimeout));
    assert!(kills(&a).contains(&(Target::Group(102), Signal::SIGKILL)));
}

#[tokio::test(start_paused = true)]
async fn leftovers_are_swept_term_then_kill() {
    let mut s = demo(GiveUp::Exit);
    up(&mut s);
    step(&mut s, StackInput::Signal(TERM));
    all_exit(&mut s);
    let a = step(&mut s, StackInput::Leftovers { any: true });
    assert_eq!(kills(&a), vec![(Target::Leftovers, Signal::SIGTERM)]);
    assert_eq!(s.next_deadline(), Some(Instant::now() + SWEEP_GRACE));
    let a = step(&mut s, StackInput::Reaped);
    assert_eq!(a, vec![StackAction::CheckLeftovers]);
    advance(SWEEP_GRACE).await;
    let a = step(&mut s, StackInput::Deadline);
    assert_eq!(kills(&a), vec![(Target::Leftovers, Signal::SIGKILL)]);
    let a = step(&mut s, StackInput::Leftovers { any: false });
    assert_eq!(exit_of(&a), Some(Exit::Clean));
}

#[tokio::test(start_paused = true)]
async fn operator_verbs_work_while_up_and_are_refused_while_stopping() {
    let mut s = demo(GiveUp::Exit);
    up(&mut s);
    let a = step(
        &mut s,
        StackInput::Admin {
            index: 2,
            verb: AdminVerb::Stop,
        },
    );
    assert!(kills(&a).contains(&(Target::Group(102), Signal::SIGTERM)));
    step(&mut s, exited(2, Termination::Exited(0)));
    assert_eq!(
        s.members.get(2).map(|m| m.machine.state.clone()),
        Some(State::Stopped)
    );
    let a = step(
        &mut s,
        StackInput::Admin {
            index: 2,
            verb: AdminVerb::Start,
        },
    );
    assert_eq!(spawns(&a), vec![2]);
    step(&mut s, StackInput::Signal(TERM));
    let a = step(
        &mut s,
        StackInput::Admin {
            index: 0,
            verb: AdminVerb::Restart,
        },
    );
    assert!(
        a.is_empty() || !a.iter().any(|x| matches!(x, StackAction::Spawn(_))),
        "{a:?}"
    );
}

/// Every mode × input pair of the table: nothing panics, `Done` ignores all,
/// admin verbs are refused outside `Up`, and only stop signals leave `Up`.
#[tokio::test(start_paused = true)]
async fn every_mode_and_input_pair() {
    let inputs = || {
        vec![
            exited(1, Termination::Exited(1)),
            StackInput::Signal(TERM),
            StackInput::Signal(Signal::SIGHUP as i32),
            StackInput::Admin {
                index: 1,
                verb: AdminVerb::Restart,
            },
            StackInput::Deadline,
            StackInput::Leftovers { any: true },
            StackInput::Leftovers { any: false },
            StackInput::Reaped,
        ]
    };
    type Enter = Box<dyn Fn(&mut Stack)>;
    let modes: Vec<(&str, Enter)> = vec![
        ("up", Box::new(|_| {})),
        (
            "stopping",
            Box::new(|s| drop(step(s, StackInput::Signal(TERM)))),
        ),
        (
            "sweeping",
            Box::new(|s| {
                step(s, StackInput::Signal(TERM));
                all_exit(s);
                step(s, StackInput::Leftovers { any: true });
            }),
        ),
        (
            "done",
            Box::new(|s| {
                step(s, StackInput::Signal(TERM));
                all_exit(s);
                step(s, StackInput::Leftovers { any: false });
            }),
        ),
    ];
    for (name, enter) in &modes {
        for input in inputs() {
            let mut s = demo(GiveUp::Exit);
            up(&mut s);
            enter(&mut s);
            let before = s.mode.clone();
            let a = step(&mut s, input.clone());
            match (&before, &input) {
                (Mode::Done(_), _) => assert!(
                    a.iter()
                        .all(|x| !matches!(x, StackAction::Spawn(_) | StackAction::Exit(_))),
                    "{name} {input:?}: {a:?}"
                ),
                (Mode::Up, StackInput::Signal(sig)) if *sig == TERM => {
                    assert!(s.is_stopping(), "{name} {input:?}")
                }
                (Mode::Up, _) => assert_eq!(s.mode, Mode::Up, "{name} {input:?}"),
                (_, StackInput::Admin { .. }) => assert!(
                    !a.iter().any(|x| matches!(x, StackAction::Spawn(_))),
                    "{name} {input:?}: {a:?}"
                ),
                (Mode::Stopping { .. } | Mode::Sweeping { .. }, _) => {
                    assert!(s.is_stopping(), "{name} {input:?}")
                }
            }
        }
    }
}

/// Replicas, surges, rollouts and scaling (`stack/instances.rs`), played as
/// the runtime would, without a process.
mod instances {
    use super::*;
    use crate::supervisor::stack::{Change, Service};

    fn service(name: &str, replicas: u32, surge: bool, probed: bool) -> Service {
        let mut p = policy(3);
        if probed {
            p.probe = Some((3, Duration::from_secs(1)));
        }
        Service {
            name: Arc::from(name),
            policy: p,
            forward: vec![],
            deps: vec![],
            replicas,
            surge,
        }
    }

    fn stack_of(services: Vec<Service>) -> Stack {
        let mut stack = Stack::new(Vec::new(), GiveUp::Stay, Duration::from_secs(20));
        let changes = services
            .into_iter()
            .map(|service| Change::Add { service, seed: 7 })
            .collect();
        let made = stack.configure(changes, Instant::now());
        assert!(made
            .iter()
            .all(|a| matches!(a, StackAction::NewInstance { .. })));
        up(&mut stack);
        stack
    }

    /// The kills without the SIGCONT that follows every stop signal.
    fn stops(actions: &[StackAction]) -> Vec<(Target, Signal)> {
        let mut out: Vec<_> = kills(actions)
            .into_iter()
            .filter(|(_, s)| *s != Signal::SIGCONT)
            .collect();
        out.sort_by_key(|(t, _)| format!("{t:?}"));
        out
    }

    fn new_instances(actions: &[StackAction]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                StackAction::NewInstance { index, .. } => Some(*index),
                _ => None,
            })
            .collect()
    }

    fn probe_ok(index: usize) -> StackInput {
        StackInput::Program {
            index,
            input: Input::Probe {
                ok: true,
                reason: "ok".into(),
            },
        }
    }

    fn roll(stack: &mut Stack, name: &str) -> Vec<StackAction> {
        let members = stack.live_instances(name);
        let change = Change::Roll {
            service: Arc::from(name),
            members,
        };
        step(stack, StackInput::Apply(vec![change]))
    }

    #[tokio::test(start_paused = true)]
    async fn a_surge_starts_the_next_process_beside_the_old_and_retires_the_old_once_ready() {
        let mut stack = stack_of(vec![service("app", 1, true, true)]);
        step(&mut stack, probe_ok(0));
        assert!(stack.members[0].machine.is_ready());
        let out = roll(&mut stack, "app");
        assert_eq!(new_instances(&out), vec![1]);
        assert_eq!(spawns(&out), vec![1]);
        assert!(kills(&out).is_empty(), "the old one serves on: {out:?}");
        assert_eq!(stack.rollout_state("app"), Some("running"));
        // Ready: the old one gets its stop signal and is retired.
        let out = step(&mut stack, probe_ok(1));
        assert_eq!(stops(&out), vec![(Target::Group(100), Signal::SIGTERM)]);
        assert!(has_note(&out, |n| matches!(n, Note::SurgeDone { .. })));
        assert!(stack.members[0].instance.retiring);
        let out = step(&mut stack, exited(0, Termination::Exited(0)));
        assert!(out.contains(&StackAction::Gone(0)), "{out:?}");
        assert!(
            spawns(&out).is_empty(),
            "a retired process is not restarted"
        );
        assert_eq!(stack.rollout_state("app"), Some("done"));
        assert_eq!(stack.live_instances("app"), vec![1]);
        assert_eq!(stack.members[1].machine.total_restarts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_surge_whose_new_process_dies_before_ready_leaves_the_old_one_serving() {
        let mut stack = stack_of(vec![service("app", 1, true, true)]);
        step(&mut stack, probe_ok(0));
        roll(&mut stack, "app");
        let out = step(&mut stack, exited(1, Termination::Exited(1)));
        assert!(
            kills(&out).iter().all(|(t, _)| *t != Target::Group(100)),
            "{out:?}"
        );
        assert!(has_note(&out, |n| matches!(n, Note::SurgeFailed { .. })));
        assert!(has_note(&out, |n| matches!(n, Note::RolloutFailed { .. })));
        assert_eq!(stack.rollout_state("app"), Some("failed"));
        assert!(!stack.members[0].instance.retiring);
        assert!(stack.members[1].instance.retiring);
        // (It was respawned at once by its restart rule: that process is stopped.)
        if stack.members[1].machine.state.pid().is_some() {
            step(&mut stack, exited(1, Termination::Exited(0)));
        }
        assert!(
            stack.members[1].instance.gone,
            "{:?}",
            stack.members[1].machine.state
        );
        assert_eq!(stack.live_instances("app"), vec![0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_surge_not_ready_in_time_is_abandoned() {
        let mut stack = stack_of(vec![service("app", 1, true, true)]);
        step(&mut stack, probe_ok(0));
        roll(&mut stack, "app");
        assert!(stack.next_deadline().is_some());
        advance(SURGE_TIMEOUT).await;
        let out = step(&mut stack, StackInput::Deadline);
        assert!(has_note(&out, |n| matches!(n, Note::SurgeFailed { .. })));
        assert_eq!(stops(&out), vec![(Target::Group(101), Signal::SIGTERM)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollout_replaces_one_replica_at_a_time() {
        let mut stack = stack_of(vec![service("app", 3, true, true)]);
        for i in 0..3 {
            step(&mut stack, probe_ok(i));
        }
        let names: Vec<&str> = stack.members.iter().map(|m| &*m.name).collect();
        assert_eq!(names, ["app", "app#1", "app#2"]);
        let out = roll(&mut stack, "app");
        assert_eq!(new_instances(&out), vec![3], "one at a time");
        let out = step(&mut stack, probe_ok(3));
        assert_eq!(
            new_instances(&out),
            vec![4],
            "the next once the first is ready"
        );
        assert_eq!(stack.members[4].instance.replica, 1);
        let out = step(&mut stack, probe_ok(4));
        assert_eq!(new_instances(&out), vec![5]);
        let out = step(&mut stack, probe_ok(5));
        assert!(has_note(&out, |n| matches!(n, Note::RolloutDone { .. })));
        assert_eq!(stack.live_instances("app"), vec![3, 4, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_first_restarts_in_place() {
        let mut stack = stack_of(vec![service("worker", 1, false, false)]);
        let out = roll(&mut stack, "worker");
        assert!(new_instances(&out).is_empty());
        assert_eq!(stops(&out), vec![(Target::Group(100), Signal::SIGTERM)]);
        assert_eq!(stack.rollout_state("worker"), Some("running"));
        let out = step(&mut stack, exited(0, Termination::Exited(0)));
        assert_eq!(spawns(&out), vec![0]);
        assert_eq!(
            stack.rollout_state("worker"),
            Some("running"),
            "same pid as before in this play"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn scaling_adds_the_missing_replicas_and_retires_the_highest() {
        let mut stack = stack_of(vec![service("app", 1, true, false)]);
        let scale = |n| {
            StackInput::Apply(vec![Change::Scale {
                service: Arc::from("app"),
                replicas: n,
                seed: 1,
            }])
        };
        let out = step(&mut stack, scale(4));
        assert_eq!(new_instances(&out), vec![1, 2, 3]);
        assert_eq!(spawns(&out), vec![1, 2, 3]);
        let out = step(&mut stack, scale(2));
        assert_eq!(
            stops(&out),
            vec![
                (Target::Group(102), Signal::SIGTERM),
                (Target::Group(103), Signal::SIGTERM)
            ]
        );
        assert_eq!(stack.live_instances("app"), vec![0, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dependency_on_a_replicated_program_is_met_by_any_one_replica() {
        let mut web = service("web", 1, false, false);
        web.deps = vec![(Arc::from("db"), Condition::Healthy)];
        let mut stack = stack_of(vec![service("db", 2, false, true), web]);
        assert!(matches!(stack.members[2].machine.state, State::Waiting));
        let out = step(&mut stack, probe_ok(1));
        assert_eq!(spawns(&out), vec![2], "one ready replica of db is enough");
    }

    #[tokio::test(start_paused = true)]
    async fn removing_a_program_retires_every_instance_and_nothing_restarts_it() {
        let mut stack = stack_of(vec![service("app", 2, true, false)]);
        let out = step(
            &mut stack,
            StackInput::Apply(vec![Change::Remove(Arc::from("app"))]),
        );
        assert_eq!(stops(&out).len(), 2);
        let out = step(&mut stack, exited(0, Termination::Exited(1)));
        assert!(spawns(&out).is_empty());
        assert!(out.contains(&StackAction::Gone(0)));
        assert!(stack.service("app").is_none());
    }
}
