//! Orphaned grandchildren are reaped: as a subreaper on a normal host, and as
//! PID 1 in a pid namespace. A negative control shows that the zombie check
//! does see a zombie when nobody reaps.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{temp_dir, wait_for, Proc, BIN};
use crate::sup_util::{children_of, python, script, wait_file, write_config, zombies_of, SOON};

/// A program that leaves an orphan: the middle shell exits at once, its
/// `sleep 0.2` is re-parented; then the program sleeps.
fn orphan_maker(dir: &Path) {
    let d = dir.to_str().unwrap();
    script(
        dir,
        "orphans.sh",
        &format!("#!/bin/sh\nsh -c 'sleep 0.2 & echo $! > {d}/orphan.pid'\nexec sleep infinity\n"),
    );
}

const PROGRAM: &str = r#"[programs.maker]
command = ["@DIR@/orphans.sh"]
restart = "never"
"#;

fn orphan_pid(dir: &Path) -> i32 {
    wait_file(&dir.join("orphan.pid"), SOON)
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `parent` has no zombie child, for at least a few polls in a row.
fn assert_no_zombies_of(parent: i32) {
    wait_for(&format!("no zombie children of {parent}"), SOON, || {
        zombies_of(parent).is_empty().then_some(())
    });
}

#[test]
fn orphan_is_reaped_by_the_subreaper() {
    let dir = temp_dir();
    orphan_maker(dir.path());
    let sup = crate::sup_util::start_in(dir, "", PROGRAM);
    sup.proc.wait_output("(subreaper)", SOON);
    let orphan = orphan_pid(sup.dir.path());
    sup.proc.wait_output(
        &format!("reaped orphan pid {orphan} of maker's process group (exited with code 0)"),
        SOON,
    );
    assert_no_zombies_of(sup.proc.pid());
}

#[test]
fn orphan_is_reaped_as_pid_1() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (unshare --pid)"
    );
    let dir = temp_dir();
    orphan_maker(dir.path());
    let config = write_config(dir.path(), "", PROGRAM);
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", BIN, "--config"])
        .arg(&config);
    let proc = Proc::spawn("selfheal as pid 1", cmd);
    proc.wait_output("as pid 1 (init)", SOON);
    // Pids in the namespace differ from ours; the supervisor is unshare's child.
    let init = wait_for("the namespaced supervisor", SOON, || {
        children_of(proc.pid()).first().copied()
    });
    let orphan = orphan_pid(dir.path());
    proc.wait_output(
        &format!("reaped orphan pid {orphan} of maker's process group (exited with code 0)"),
        SOON,
    );
    assert_no_zombies_of(init);
    drop(proc);
}

/// Negative control: a subreaper that never waits keeps the orphan as a zombie,
/// and the same check sees it.
#[test]
fn zombie_check_sees_a_zombie_when_nobody_reaps() {
    let dir = temp_dir();
    orphan_maker(dir.path());
    let parent = format!(
        r#"import ctypes, subprocess, time
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
p = subprocess.Popen(["{d}/orphans.sh"])
print("started", flush=True)
time.sleep(3600)
"#,
        d = dir.path().display()
    );
    let mut cmd = Command::new(python());
    cmd.args(["-c", &parent]);
    let proc = Proc::spawn("non-reaping parent", cmd);
    proc.wait_output("started", SOON);
    let orphan = orphan_pid(dir.path());
    let zombies = wait_for(
        "the orphan to become a zombie",
        Duration::from_secs(10),
        || {
            let z = zombies_of(proc.pid());
            z.contains(&orphan).then_some(z)
        },
    );
    assert!(zombies.contains(&orphan));
}
