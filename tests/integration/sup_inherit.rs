//! A launcher's process state does not reach the supervisor's behaviour or its
//! programs (issue 10, item 4): a launcher that blocks TERM and CHLD, ignores
//! TERM, INT, HUP and CHLD (auto-reaping: statuses would be lost), and leaves
//! descriptors open without close-on-exec (one in the listen-fd range, one
//! above), then execs selfheal. SIGTERM still stops it, a dead program is
//! reaped and restarted, and no program gets the launcher's descriptors. As a
//! child subreaper and as PID 1. Also a stdout left non-blocking.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{temp_dir, wait_for, Proc, BIN};
use crate::sup_hardening_util::{fds_of, wait_child};
use crate::sup_util::{
    alive, children_of, kill, proc_status, python, write_config, zombies_of, SOON,
};

/// Writes the launcher; it execs `selfheal --config CONFIG` (optionally under
/// `unshare` for PID 1) with the bad state in place.
fn launcher(dir: &Path) -> PathBuf {
    let leak = dir.join("leaked-file");
    std::fs::write(&leak, "launcher's secret\n").unwrap();
    let body = format!(
        r#"import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM, signal.SIGCHLD}})
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
    signal.signal(s, signal.SIG_IGN)
fd = os.open("{leak}", os.O_RDONLY)
for n in (5, 40):
    os.dup2(fd, n, inheritable=True)
os.execv(sys.argv[1], sys.argv[1:])
"#,
        leak = leak.display()
    );
    let path = dir.join("launcher.py");
    std::fs::write(&path, body).unwrap();
    path
}

const PROGRAMS: &str = r#"[programs.victim]
command = ["sleep", "infinity"]
backoff = { initial = "0s" }
"#;

fn assert_clean_program(pid: i32, leak: &Path) {
    let fds = fds_of(pid);
    assert!(
        fds.iter().all(|(_, target)| target != leak),
        "the launcher's descriptor reached the program: {fds:?}"
    );
    let numbers: Vec<i32> = fds.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [0, 1, 2], "{fds:?}");
}

/// The launcher's descriptor that sat in the reserved low range (5) is kept
/// open but renumbered above it, so the whole range 3…21 is the supervisor's
/// `/dev/null` and spawning can stage there (`sockets::reserve_low_fds`).
fn assert_low_range_renumbered(supervisor: i32, leak: &Path) {
    let fds = fds_of(supervisor);
    let at = |n: i32| fds.iter().find(|(m, _)| *m == n).map(|(_, t)| t.clone());
    assert_eq!(at(5).as_deref(), Some(Path::new("/dev/null")), "{fds:?}");
    let moved: Vec<i32> = fds
        .iter()
        .filter(|(_, t)| t == leak)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        moved.len() == 2 && moved.iter().all(|n| *n >= 22),
        "the launcher's descriptors should stay open above the reserved range: {fds:?}"
    );
}

#[test]
fn a_launchers_signal_mask_dispositions_and_fds_are_undone() {
    let dir = temp_dir();
    let launcher = launcher(dir.path());
    let config = write_config(dir.path(), "", PROGRAMS);
    let mut cmd = Command::new(python());
    cmd.arg(&launcher).arg(BIN).arg("--config").arg(&config);
    let mut sup = Proc::spawn("selfheal via launcher", cmd);
    sup.wait_output("supervising", SOON);
    let pid = sup.pid();
    // Signals are blocked for a few microseconds around each spawn (see
    // spawn/vfork.rs), so the mask is sampled until it reads empty: a mask
    // kept from the launcher never does.
    wait_for(
        "the supervisor to drop the launcher's signal mask",
        SOON,
        || (proc_status(pid, "SigBlk").as_deref() == Some("0000000000000000")).then_some(()),
    );
    let victim = wait_child(pid, "the victim to run");
    assert_clean_program(victim, &dir.path().join("leaked-file"));
    assert_low_range_renumbered(pid, &dir.path().join("leaked-file"));
    kill(victim, libc::SIGKILL);
    let next = wait_for("the victim to be reaped and restarted", SOON, || {
        children_of(pid).into_iter().find(|p| *p != victim)
    });
    assert!(zombies_of(pid).is_empty(), "zombies: {:?}", zombies_of(pid));
    assert_clean_program(next, &dir.path().join("leaked-file"));
    sup.signal(libc::SIGTERM);
    assert_eq!(sup.wait_exit(SOON), Some(0), "SIGTERM did not stop it");
    assert!(!alive(next));
}

#[test]
fn a_launchers_state_is_undone_in_pid_1_too() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (unshare --pid)"
    );
    let dir = temp_dir();
    let launcher = launcher(dir.path());
    let config = write_config(dir.path(), "", PROGRAMS);
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"])
        .arg(python())
        .arg(&launcher)
        .arg(BIN)
        .arg("--config")
        .arg(&config);
    let mut proc = Proc::spawn("selfheal as pid 1 via launcher", cmd);
    proc.wait_output("as pid 1 (init)", SOON);
    let init = wait_child(proc.pid(), "the namespaced supervisor");
    wait_for(
        "the supervisor to drop the launcher's signal mask",
        SOON,
        || (proc_status(init, "SigBlk").as_deref() == Some("0000000000000000")).then_some(()),
    );
    let victim = wait_child(init, "the victim to run");
    assert_clean_program(victim, &dir.path().join("leaked-file"));
    kill(victim, libc::SIGKILL);
    let next = wait_for("the victim to be reaped and restarted", SOON, || {
        children_of(init).into_iter().find(|p| *p != victim)
    });
    assert!(zombies_of(init).is_empty());
    assert_clean_program(next, &dir.path().join("leaked-file"));
    kill(init, libc::SIGTERM);
    assert_eq!(
        proc.wait_exit(Duration::from_secs(20)),
        Some(0),
        "SIGTERM did not stop the supervisor as PID 1"
    );
}

/// A launcher that leaves stdout non-blocking (`O_NONBLOCK` on the pipe):
/// every write may fail with EAGAIN. No line may vanish silently: each one is
/// either written or counted in a `lines dropped` line.
#[test]
fn a_non_blocking_stdout_loses_no_line_silently() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir();
    let total = 200_000;
    let config = write_config(
        dir.path(),
        "",
        &format!(
            "[programs.count]\ncommand = [\"sh\", \"-c\", \"seq 1 {total}; echo counted; exec sleep infinity\"]\n"
        ),
    );
    let launcher = dir.path().join("nonblocking.py");
    std::fs::write(
        &launcher,
        "import os, sys\nos.set_blocking(1, False)\nos.execv(sys.argv[1], sys.argv[1:])\n",
    )
    .unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    let probe = writer.try_clone().unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(&launcher)
        .arg(BIN)
        .arg("--config")
        .arg(&config)
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    let _sup = crate::sup_hardening_util::Bare::spawn(cmd);
    // Let stdout fill up first, so that writes meet EAGAIN.
    wait_for("the pipe to fill", SOON, || {
        crate::sup_output::pipe_full(&probe).then_some(())
    });
    drop(probe);
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut printed = 0u64;
        let mut dropped = 0u64;
        let mut last = 0u64;
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("count    | ") {
                if n == "counted" {
                    let _ = seen_tx.send((printed, dropped, last));
                    continue;
                }
                let n: u64 = n.parse().unwrap();
                assert!(n > last, "out of order: {n} after {last}");
                last = n;
                printed += 1;
            } else if let Some((n, _)) = line
                .strip_prefix("selfheal | ")
                .and_then(|r| r.split_once(" lines dropped"))
            {
                dropped += n.parse::<u64>().unwrap();
            }
        }
    });
    let (printed, dropped, last) = seen_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the program's last line never arrived");
    assert_eq!(last, total);
    assert_eq!(
        printed + dropped,
        total,
        "{printed} printed + {dropped} reported dropped: lines vanished silently"
    );
}
