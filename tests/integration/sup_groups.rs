//! Issue 10, kind 5: a program's stop, restart or crash is over only when its
//! whole process group is gone (pitfall 11), and a suspended program is shown
//! suspended and still stops promptly (SIGCONT after the stop signal).

use crate::common::wait_for;
use crate::harness::{free_port, temp_dir};
use crate::sup_util::{alive, kill, python, script, start_in, wait_file, SOON};

/// A worker in the program's process group that ignores SIGTERM and holds
/// `port`; it appends its pid to `workers` once it listens.
fn worker(dir: &std::path::Path, port: u16) {
    std::fs::write(
        dir.join("worker.py"),
        format!(
            "import os, signal, socket, time\n\
             signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
             s = socket.socket()\n\
             try:\n    s.bind(('127.0.0.1', {port}))\n\
             except OSError as e:\n    print('worker: cannot bind:', e, flush=True)\n    raise SystemExit(98)\n\
             s.listen()\n\
             open('{d}/workers', 'a').write(f'{{os.getpid()}}\\n')\n\
             time.sleep(3600)\n",
            d = dir.display()
        ),
    )
    .unwrap();
}

fn workers(dir: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("workers"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

#[test]
fn a_crash_leaving_a_worker_kills_the_group_before_the_next_start() {
    let dir = temp_dir();
    let port = free_port();
    worker(dir.path(), port);
    let d = dir.path().display().to_string();
    script(
        dir.path(),
        "prog.sh",
        &format!("#!/bin/sh\n{py} {d}/worker.py &\nwhile ! grep -q . {d}/workers 2>/dev/null; do sleep 0.02; done\nsleep 0.3\nexit 1\n", py = python()),
    );
    let sup = start_in(
        dir,
        "",
        "[programs.prog]\ncommand = [\"@DIR@/prog.sh\"]\nstop_timeout = \"300ms\"\nbackoff = { initial = \"0s\", jitter = 0 }\nrestart_limit = { max = 50, window = \"60s\" }\n",
    );
    wait_for("three incarnations' workers", SOON, || {
        (workers(sup.dir.path()).len() >= 3).then_some(())
    });
    let out = sup.output();
    assert!(
        !out.contains("cannot bind"),
        "a worker met the last one's port: {out}"
    );
    assert!(out.contains("processes of its group live on"), "{out}");
    let all = workers(sup.dir.path());
    for old in &all[..all.len() - 1] {
        assert!(
            !alive(*old),
            "worker {old} of a past incarnation lives on: {out}"
        );
    }
}

#[test]
fn an_operator_stop_ends_with_the_whole_group_gone() {
    let dir = temp_dir();
    let port = free_port();
    worker(dir.path(), port);
    let sup = start_in(
        dir,
        "",
        &format!(
            "[programs.prog]\ncommand = [\"sh\", \"-c\", \"{py} @DIR@/worker.py & exec sleep 3600\"]\nstop_timeout = \"500ms\"\n",
            py = python()
        ),
    );
    let worker_pid = wait_for("the worker", SOON, || {
        workers(sup.dir.path()).first().copied()
    });
    let (code, text) = sup.cli(&["stop", "prog"]);
    assert_eq!(code, 0, "{text}");
    sup.wait_state("prog", "stopped", SOON);
    assert!(
        !alive(worker_pid),
        "stopped, yet its worker lives on: {}",
        sup.output()
    );
    // And a start finds its port free.
    let (code, text) = sup.cli(&["start", "prog"]);
    assert_eq!(code, 0, "{text}");
    wait_for("a second worker", SOON, || {
        (workers(sup.dir.path()).len() == 2).then_some(())
    });
    assert!(!sup.output().contains("cannot bind"), "{}", sup.output());
}

#[test]
fn a_suspended_program_is_shown_suspended_and_stops_promptly() {
    let dir = temp_dir();
    let sup = start_in(
        dir,
        "",
        "[programs.sleeper]\ncommand = [\"sleep\", \"3600\"]\nstop_timeout = \"30s\"\n",
    );
    let pid = sup.wait_pid("sleeper");
    kill(pid, libc::SIGSTOP);
    sup.wait_state("sleeper", "suspended", SOON);
    let t0 = std::time::Instant::now();
    let (code, text) = sup.cli(&["stop", "sleeper"]);
    assert_eq!(code, 0, "{text}");
    sup.wait_state("sleeper", "stopped", SOON);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "a stopped (T) process needs SIGCONT to act on SIGTERM, not a 30 s SIGKILL"
    );
    let _ = wait_file;
}
