//! Signals in `selfheal -- CMD` (issue 12): every catchable signal the
//! supervisor receives goes to the main program's process group, TERM/INT/QUIT
//! included (the supervisor then waits for the program; it does not stop on its
//! own), `--rewrite FROM:TO` rewrites or drops one, `--stop-timeout` SIGKILLs a
//! program that outlives a stop signal (137), and the program starts with an
//! empty signal mask and no ignored signal whatever the launcher left. As a
//! plain process and as PID 1.
//!
//! On `f85aee4` every one of these fails: `-- CMD` was refused (and the
//! signals TERM/INT/QUIT stopped the supervisor instead of reaching a program).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{temp_dir, wait_for};
use crate::init_util::{both_modes, command, recorded, recorder, Init, Mode};
use crate::sup_util::{python, script, wait_file, SOON};

both_modes!(
    every_signal_reaches_the_program,
    rewrite_term_to_int,
    rewrite_to_zero_drops_the_signal,
    stop_timeout_kills_a_program_that_ignores_term,
    signal_mask_and_dispositions_are_clean,
);

/// The signals the issue lists, each handled by the program (job-control ones
/// too, so the program is not stopped by them), sent in this order.
const SIGNALS: &[(&str, i32)] = &[
    ("TERM", libc::SIGTERM),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("HUP", libc::SIGHUP),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("WINCH", libc::SIGWINCH),
    ("CONT", libc::SIGCONT),
    ("ALRM", libc::SIGALRM),
    ("PWR", libc::SIGPWR),
    ("URG", libc::SIGURG),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("TSTP", libc::SIGTSTP),
];

/// Starts the recorder in `dir` under `selfheal OPTIONS -- recorder.py DIR`
/// and waits until its handlers are in place.
fn start_recorder(mode: Mode, dir: &std::path::Path, options: &[&str]) -> Init {
    let program = dir.join("recorder.py");
    let mut args: Vec<&str> = options.to_vec();
    args.extend(["--", program.to_str().unwrap(), dir.to_str().unwrap()]);
    let init = Init::spawn(mode, &args, None);
    wait_file(&dir.join("ready"), SOON);
    init
}

/// Each signal, sent to the supervisor alone, is recorded by the program, in
/// order; after TERM, INT and QUIT the program still runs and gets the rest,
/// and the supervisor exits with the program's own code.
fn every_signal_reaches_the_program(mode: Mode) {
    let dir = temp_dir();
    let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
    recorder(dir.path(), &names, &names, 42);
    let init = start_recorder(mode, dir.path(), &[]);
    for (i, (name, number)) in SIGNALS.iter().enumerate() {
        init.signal(*number);
        wait_for(&format!("the program to record SIG{name}"), SOON, || {
            (recorded(dir.path()).len() > i).then_some(())
        });
    }
    let done = init.finish(SOON);
    assert_eq!(recorded(dir.path()), names, "each signal once, in order");
    assert_eq!(done.code, Some(42), "the program's own code: {done:?}");
}

/// `--rewrite 15:2`: a TERM to the supervisor reaches the program as INT.
fn rewrite_term_to_int(mode: Mode) {
    let dir = temp_dir();
    recorder(dir.path(), &["TERM", "INT"], &["INT"], 0);
    let init = start_recorder(mode, dir.path(), &["--rewrite", "15:2"]);
    init.signal(libc::SIGTERM);
    let done = init.finish(SOON);
    assert_eq!(recorded(dir.path()), ["INT"]);
    assert_eq!(done.code, Some(0), "{done:?}");
}

/// `--rewrite 10:0`: USR1 is dropped; USR2 after it still arrives.
fn rewrite_to_zero_drops_the_signal(mode: Mode) {
    let dir = temp_dir();
    recorder(dir.path(), &["USR1", "USR2"], &["USR2"], 0);
    let init = start_recorder(mode, dir.path(), &["-v", "--rewrite", "10:0"]);
    init.signal(libc::SIGUSR1);
    init.wait_stderr_count("received SIGUSR1: dropped (--rewrite)", 1, SOON);
    init.signal(libc::SIGUSR2);
    let done = init.finish(SOON);
    assert_eq!(recorded(dir.path()), ["USR2"]);
    assert_eq!(done.code, Some(0), "{done:?}");
}

/// `--stop-timeout 300ms`: a program that survives TERM is SIGKILLed 300 ms
/// after the TERM was forwarded; the exit code says KILL (137).
fn stop_timeout_kills_a_program_that_ignores_term(mode: Mode) {
    let dir = temp_dir();
    recorder(dir.path(), &["TERM"], &["USR2"], 0);
    let init = start_recorder(mode, dir.path(), &["--stop-timeout", "300ms"]);
    let sent = Instant::now();
    init.signal(libc::SIGTERM);
    let done = init.finish(SOON);
    let took = sent.elapsed();
    assert_eq!(recorded(dir.path()), ["TERM"], "TERM reached it first");
    assert_eq!(done.code, Some(137), "{done:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(2300),
        "SIGKILL after --stop-timeout (300ms), took {took:?}"
    );
}

/// A launcher that blocks every signal and ignores every one it can, then
/// execs its arguments (signal state survives exec and fork).
const DIRTY_LAUNCHER: &str = r#"
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
for s in signal.valid_signals():
    try:
        signal.signal(s, signal.SIG_IGN)
    except (OSError, ValueError):
        pass
os.execvp(sys.argv[1], sys.argv[1:])
"#;

/// `cat /proc/self/status` as the main program: SigBlk and SigIgn are all
/// zero even though selfheal itself was started with everything blocked and
/// ignored; and the supervisor still works (it reaps the program: SIGCHLD was
/// ignored by the launcher, and exits with its code).
fn signal_mask_and_dispositions_are_clean(mode: Mode) {
    let dir = temp_dir();
    let launcher = script(
        dir.path(),
        "launcher.py",
        &format!("#!{}\n{DIRTY_LAUNCHER}", python()),
    );
    let inner = command(mode, &["--", "cat", "/proc/self/status"]);
    let mut cmd = Command::new(&launcher);
    cmd.arg(inner.get_program()).args(inner.get_args());
    let done = Init::spawn_cmd(mode, cmd, None).finish(SOON);
    assert_eq!(done.code, Some(0), "{done:?}");
    let status = done.stdout_text();
    for field in ["SigBlk", "SigIgn"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in {status}"))
            .trim();
        assert!(
            value.chars().all(|c| c == '0'),
            "{field} of the main program: {value} (launcher blocked/ignored all)"
        );
    }
    // Negative control: the same launcher does leave a dirty state behind.
    let control = Command::new(&launcher)
        .args(["cat", "/proc/self/status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&control.stdout);
    let blk = text
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .unwrap()
        .trim();
    assert!(
        blk.chars().any(|c| c != '0'),
        "control: the launcher blocks signals: {text}"
    );
}
