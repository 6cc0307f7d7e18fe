//! Children start with a clean signal state: nothing blocked, nothing ignored,
//! although the supervisor itself has handlers installed.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::harness::{temp_dir, wait_for, Proc, BIN};
use crate::sup_util::{proc_status, start, write_config, SOON};

#[test]
fn child_has_no_blocked_or_ignored_signals() {
    let sup = start(
        "",
        r#"[programs.plain]
command = ["sleep", "infinity"]
[programs.ignoring]
command = ["sh", "-c", "trap '' INT; exec sleep infinity"]
"#,
    );
    let plain = sup.wait_pid("plain");
    let ignoring = sup.wait_pid("ignoring");
    // The supervisor catches signals (so there is state it could leak).
    let caught = proc_status(sup.proc.pid(), "SigCgt").unwrap();
    assert_ne!(
        u64::from_str_radix(&caught, 16).unwrap(),
        0,
        "SigCgt {caught}"
    );
    // Wait until both children have exec'd (not the pre-exec fork image).
    wait_for("children to exec sleep", SOON, || {
        let comm =
            |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        (comm(plain).trim() == "sleep" && comm(ignoring).trim() == "sleep").then_some(())
    });
    let zeros = "0000000000000000";
    let context = format!(
        "supervisor SigIgn {:?}",
        proc_status(sup.proc.pid(), "SigIgn")
    );
    assert_eq!(proc_status(plain, "SigBlk").unwrap(), zeros, "{context}");
    assert_eq!(proc_status(plain, "SigIgn").unwrap(), zeros, "{context}");
    // Negative control: the reader does see an ignored signal (SIGINT = bit 1).
    let ign = proc_status(ignoring, "SigIgn").unwrap();
    assert_eq!(
        u64::from_str_radix(&ign, 16).unwrap() & 0b10,
        0b10,
        "SigIgn {ign}"
    );
}

/// Sets `sig` to SIG_IGN with the raw syscall (glibc refuses 32 and 33).
fn ignore_raw(sig: i32) -> std::io::Result<()> {
    // Kernel `struct sigaction`: handler, flags, restorer, mask (8 bytes).
    let action: [u64; 4] = [1 /* SIG_IGN */, 0, 0, 0];
    // SAFETY: rt_sigaction with a valid 32-byte struct and sigsetsize 8.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            action.as_ptr(),
            std::ptr::null::<u64>(),
            8,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whatever the supervisor inherited (here: ignored 32, 33, 34 and 64, as a
/// container runtime or test runner may leave them), its children start clean.
#[test]
fn inherited_ignored_signals_are_not_passed_on() {
    let dir = temp_dir();
    let config = write_config(
        dir.path(),
        "",
        "[programs.p]\ncommand = [\"sleep\", \"infinity\"]\n",
    );
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&config);
    // SAFETY: only the rt_sigaction syscall runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [32, 33, 34, 64] {
                ignore_raw(sig)?;
            }
            Ok(())
        });
    }
    let sup = Proc::spawn("selfheal", cmd);
    let ign = wait_for("the supervisor to start", SOON, || {
        proc_status(sup.pid(), "SigIgn")
    });
    let ign = u64::from_str_radix(&ign, 16).unwrap();
    // Not 33: glibc takes it (SIGSETXID) in the supervisor once it has a
    // second thread (its stdout writer); the child still gets it reset.
    let rt = (1u64 << 31) | (1 << 33) | (1 << 63);
    assert_eq!(
        ign & rt,
        rt,
        "precondition: the supervisor inherited them ({ign:x})"
    );
    sup.wait_output("p started (pid", SOON);
    let pid: i32 = wait_for("p's pid", SOON, || {
        let out = sup.output();
        let (_, rest) = out.split_once("p started (pid ")?;
        rest.split(')').next()?.parse().ok()
    });
    wait_for("p to exec sleep", SOON, || {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        (comm.trim() == "sleep").then_some(())
    });
    assert_eq!(proc_status(pid, "SigIgn").unwrap(), "0000000000000000");
    assert_eq!(proc_status(pid, "SigBlk").unwrap(), "0000000000000000");
}
