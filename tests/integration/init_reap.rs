//! Reaping in `selfheal -- CMD` (issue 12): orphans re-parented to the
//! supervisor (PID 1, or a child subreaper) are reaped — 500 double-forked
//! ones leave no zombie — and when the main program exits, the rest of its
//! process group gets SIGTERM, then SIGKILL after `--grace`, so a background
//! child that ignores TERM cannot keep the supervisor from exiting with the
//! main program's code. As a plain process and as PID 1.
//!
//! On `f85aee4` these fail: `-- CMD` was refused.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{temp_dir, wait_for};
use crate::init_util::{both_modes, host_pid, Init, Mode};
use crate::sup_util::{alive, python, script, wait_file, zombies_of, SOON};

both_modes!(
    five_hundred_orphans_leave_no_zombie,
    a_child_ignoring_term_does_not_hold_the_exit,
);

const ORPHANS: usize = 500;

/// The main program: makes [`ORPHANS`] double-forked orphans (the middle
/// process is waited for, the grandchild is left to the supervisor), writes
/// `DIR/made`, waits for SIGUSR1, exits 7.
fn orphan_maker(dir: &Path) -> String {
    let body = format!(
        r#"#!{python}
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
for _ in range({ORPHANS}):
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.waitpid(middle, 0)
open(os.path.join(sys.argv[1], "made"), "w").write("made\n")
signal.sigwait({{signal.SIGUSR1}})
sys.exit(7)
"#,
        python = python()
    );
    script(dir, "orphans.py", &body)
        .to_str()
        .unwrap()
        .to_string()
}

/// Every orphan is reaped (the verbose log names 500 of them), no zombie whose
/// parent is the supervisor is left, and the supervisor still exits with the
/// main program's code.
fn five_hundred_orphans_leave_no_zombie(mode: Mode) {
    let dir = temp_dir();
    let maker = orphan_maker(dir.path());
    let d = dir.path().to_str().unwrap();
    let init = Init::spawn(mode, &["-v", "--", &maker, d], None);
    let supervisor = init.supervisor_pid();
    wait_file(&dir.path().join("made"), SOON);
    init.wait_stderr_count("reaped orphan pid ", ORPHANS, SOON);
    wait_for(
        &format!("no zombie children of the supervisor ({supervisor})"),
        SOON,
        || zombies_of(supervisor).is_empty().then_some(()),
    );
    init.signal(libc::SIGUSR1);
    let done = init.finish(SOON);
    assert_eq!(done.code, Some(7), "the main program's code");
    let reaped = done.stderr_text().matches("reaped orphan pid ").count();
    assert_eq!(reaped, ORPHANS, "each orphan reaped once");
}

/// The main program: forks a background child in its own process group that
/// ignores TERM (and USR1) and runs `sleep 1000` (it writes its pid to
/// `DIR/bg` first); on SIGUSR1 the main program exits 6.
fn leaves_a_stubborn_child(dir: &Path) -> String {
    let body = format!(
        r#"#!{python}
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    d = sys.argv[1]
    open(os.path.join(d, "bg.tmp"), "w").write("%d\n" % os.getpid())
    os.rename(os.path.join(d, "bg.tmp"), os.path.join(d, "bg"))
    os.execvp("sleep", ["sleep", "1000"])
signal.sigwait({{signal.SIGUSR1}})
sys.exit(6)
"#,
        python = python()
    );
    script(dir, "stubborn.py", &body)
        .to_str()
        .unwrap()
        .to_string()
}

/// After the main program exits, its TERM-ignoring child is SIGKILLed once
/// `--grace` (default 500ms, or as given) has passed, and the supervisor exits
/// with the main code within grace + 1 s.
fn a_child_ignoring_term_does_not_hold_the_exit(mode: Mode) {
    for (option, grace) in [
        (None, Duration::from_millis(500)),
        (Some("200ms"), Duration::from_millis(200)),
    ] {
        let dir = temp_dir();
        let main = leaves_a_stubborn_child(dir.path());
        let d = dir.path().to_str().unwrap();
        let mut args = vec!["--", main.as_str(), d];
        if let Some(g) = option {
            args.splice(0..0, ["--grace", g]);
        }
        let init = Init::spawn(mode, &args, None);
        let supervisor = init.supervisor_pid();
        let ns_pid: i32 = wait_file(&dir.path().join("bg"), SOON)
            .trim()
            .parse()
            .unwrap();
        let child = host_pid(mode, supervisor, ns_pid);
        assert!(alive(child), "the background child runs");
        let sent = Instant::now();
        init.signal(libc::SIGUSR1);
        let done = init.finish(SOON);
        let took = sent.elapsed();
        assert_eq!(done.code, Some(6), "the main program's code ({option:?})");
        assert!(
            took >= grace && took < grace + Duration::from_secs(1),
            "exit after the grace ({grace:?}) for the TERM-ignoring child, within 1 s more: took {took:?}"
        );
        assert!(!alive(child), "the background child is gone at the exit");
    }
}
