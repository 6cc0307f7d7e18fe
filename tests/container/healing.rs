//! Healing inside the container: the chaos endpoint and `kill -9` of each
//! program under load, and orphans reaped by PID 1.

use std::time::Duration;

use crate::harness::{wait_for, Container, Load, RunOpts};

const LOAD_THREADS: usize = 2;

#[test]
fn kill_endpoint_under_load_loses_no_request() {
    let c = Container::run("chaos-kill", RunOpts::default());
    c.wait_serving();
    let app_before = c.program_pid("app").expect("app is running");

    let load = Load::start(c.addr(), LOAD_THREADS);
    load.wait_more_ok(20, Duration::from_secs(30));

    let answer = c
        .get("/kill")
        .expect("GET /kill answers before the app exits");
    assert!(
        answer.is_success(),
        "GET /kill answered {} (chaos is on in the shipped config)",
        answer.status
    );
    wait_for(
        "the supervisor to log `app exited with code 1`",
        Duration::from_secs(30),
        || c.logs().contains("app exited with code 1").then_some(()),
    );
    wait_for("a new app process", Duration::from_secs(30), || {
        c.program_pid("app").filter(|&pid| pid != app_before)
    });
    load.wait_more_ok(20, Duration::from_secs(30));
    let report = load.finish();

    assert_eq!(
        report.failed, 0,
        "requests failed while the app restarted ({} ok): {:?}",
        report.ok, report.errors
    );
    assert!(c.is_running(), "the container stopped");
    assert_eq!(c.restart_count(), 0, "Docker restarted the container");
}

/// `kill -9` redis, then the app, then the proxy, under load: each comes
/// back, and the counter in Redis equals the 2xx answers — no acknowledged
/// visit lost, none counted twice.
#[test]
fn kill_9_of_each_program_under_load_keeps_the_count_exact() {
    let c = Container::run("kill9", RunOpts::default());
    c.wait_serving(); // counted: one visit
    let mut ok = 1;
    let mut lost_in_flight = 0;

    for program in ["redis", "app", "proxy"] {
        let before = c.program_pid(program).expect("program is running");
        let load = Load::start(c.addr(), LOAD_THREADS);
        load.wait_more_ok(20, Duration::from_secs(30));

        // The shell's kill: the image has no procps.
        c.exec(&["sh", "-c", &format!("kill -9 {before}")]);
        let after = wait_for(
            &format!("{program} to come back after kill -9 of pid {before}"),
            Duration::from_secs(30),
            || c.program_pid(program).filter(|&pid| pid != before),
        );
        load.wait_more_ok(20, Duration::from_secs(30));
        let report = load.finish();
        eprintln!(
            "{program}: pid {before} -> {after}; {} ok, {} failed",
            report.ok, report.failed
        );

        // Only a request in flight on the proxy itself may die with it (at
        // most one per client); the app's and Redis' deaths are invisible.
        let allowed = if program == "proxy" {
            LOAD_THREADS as u64
        } else {
            0
        };
        assert!(
            report.failed <= allowed,
            "{} requests failed around kill -9 of {program} (allowed {allowed}): {:?}",
            report.failed,
            report.errors
        );
        ok += report.ok;
        lost_in_flight += report.failed;
    }

    let counter = c.counter();
    // A request whose proxy died after the app counted it has no 2xx but a count.
    assert!(
        counter >= ok && counter <= ok + lost_in_flight,
        "selfheal:visits = {counter}, 2xx answers = {ok}, failed in flight = {lost_in_flight}"
    );
    assert_eq!(c.restart_count(), 0, "Docker restarted the container");
}

/// Orphans: each `docker exec`'d shell exits at once; its background
/// `sleep 1` is reparented to PID 1 and becomes a zombie when it ends unless
/// PID 1 reaps it. Returns their pids, checked to be children of PID 1.
fn make_orphans(c: &Container, n: usize) -> Vec<u32> {
    let pids: Vec<u32> = (0..n)
        .map(|_| {
            let out = c.exec(&["sh", "-c", "sleep 1 </dev/null >/dev/null 2>&1 & echo $!"]);
            out.trim().parse().expect("pid of the orphan")
        })
        .collect();
    for &pid in &pids {
        let ppid = c.exec(&[
            "sh",
            "-c",
            &format!("awk '{{ print $4 }}' /proc/{pid}/stat 2>/dev/null || true"),
        ]);
        // If the sleep already ended and was reaped (slow exec), ppid is empty.
        if !ppid.is_empty() {
            assert_eq!(ppid, "1", "orphan {pid} was not reparented to PID 1");
        }
    }
    pids
}

#[test]
fn orphans_are_reaped_by_pid1() {
    let c = Container::run("orphans", RunOpts::default());
    c.wait_serving();
    let pids = make_orphans(&c, 3);
    wait_for(
        "the orphans to be reaped (no /proc entry, not even a zombie)",
        Duration::from_secs(10),
        || {
            let procs = c.procs();
            (!procs.iter().any(|p| pids.contains(&p.pid))).then_some(())
        },
    );
    let zombies: Vec<_> = c
        .procs()
        .into_iter()
        .filter(|p| p.state == 'Z')
        .map(|p| format!("{} ({}) ppid {}", p.pid, p.comm, p.ppid))
        .collect();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
}

/// Negative control for the test above: under a PID 1 that never reaps
/// (`sleep infinity`), the same orphans are seen as zombies of PID 1.
#[test]
fn a_non_reaping_pid1_leaves_zombies_the_check_sees() {
    let c = Container::run(
        "zombies-control",
        RunOpts {
            args: vec!["--entrypoint".into(), "sleep".into()],
            cmd: vec!["infinity"],
            ..RunOpts::default()
        },
    );
    let pids = make_orphans(&c, 2);
    wait_for(
        "the orphans to become zombies of PID 1",
        Duration::from_secs(10),
        || {
            let procs = c.procs();
            pids.iter()
                .all(|pid| {
                    procs
                        .iter()
                        .any(|p| p.pid == *pid && p.state == 'Z' && p.ppid == 1)
                })
                .then_some(())
        },
    );
}
