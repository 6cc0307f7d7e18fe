//! SIGTERM: dependants stopped first, exit 0; a stubborn child is SIGKILLed
//! after stop_timeout; a second SIGTERM forces (exit 4).

use std::time::{Duration, Instant};

use crate::harness::wait_for;
use crate::sup_util::{alive, start, SOON};

fn trapping(name: &str) -> String {
    format!(
        r#"[programs.{name}]
command = ["sh", "-c", "trap 'echo {name} >> @DIR@/order; exit 0' TERM; echo {name} >> @DIR@/up; while :; do sleep 0.05; done"]
"#
    )
}

#[test]
fn sigterm_stops_dependants_first_and_exits_0() {
    let programs = format!(
        "{}depends_on = {{ b = \"started\" }}\n{}depends_on = {{ a = \"started\" }}\n{}",
        trapping("c"),
        trapping("b"),
        trapping("a")
    );
    let mut sup = start("", &programs);
    wait_for("all three to trap TERM", SOON, || {
        let up = std::fs::read_to_string(sup.path("up")).unwrap_or_default();
        (up.lines().count() == 3).then_some(())
    });
    sup.proc.signal(libc::SIGTERM);
    let code = sup.proc.wait_exit(SOON);
    assert_eq!(code, Some(0), "{}", sup.output());
    let order = std::fs::read_to_string(sup.path("order")).unwrap();
    assert_eq!(order, "c\nb\na\n", "{}", sup.output());
    assert!(sup
        .output()
        .contains("all programs stopped; exiting with code 0"));
}

const STUBBORN: &str = r#"[programs.stubborn]
command = ["sh", "-c", "trap 'echo ignored >> @DIR@/term' TERM; echo up > @DIR@/up; while :; do sleep 0.05; done"]
"#;

#[test]
fn stubborn_child_is_killed_after_stop_timeout() {
    let mut sup = start("", &format!("{STUBBORN}stop_timeout = \"500ms\"\n"));
    let pid = sup.wait_pid("stubborn");
    crate::sup_util::wait_file(&sup.path("up"), SOON);
    // A repeat within the grace is a duplicate (a wrapper and Docker both
    // sending TERM); only one after it forces.
    std::thread::sleep(selfheal::supervisor::stack::FORCE_GRACE + Duration::from_millis(200));
    let t0 = Instant::now();
    sup.proc.signal(libc::SIGTERM);
    let code = sup.proc.wait_exit(SOON);
    let took = t0.elapsed();
    let out = sup.output();
    assert_eq!(code, Some(0), "{out}");
    assert!(took >= Duration::from_millis(500), "{took:?}\n{out}");
    assert!(
        out.contains(&format!(
            "stubborn did not stop within 500ms (pid {pid}): sent SIGKILL"
        )),
        "{out}"
    );
    assert!(sup.path("term").exists(), "the TERM trap never ran");
    assert!(!alive(pid));
}

#[test]
fn second_sigterm_forces_exit_4() {
    let mut sup = start("", &format!("{STUBBORN}stop_timeout = \"60s\"\n"));
    let pid = sup.wait_pid("stubborn");
    crate::sup_util::wait_file(&sup.path("up"), SOON);
    sup.proc.signal(libc::SIGTERM);
    sup.proc
        .wait_output(&format!("stubborn stopping (pid {pid}) with SIGTERM"), SOON);
    // A repeat within the grace is a duplicate (a wrapper and Docker both
    // sending TERM); only one after it forces.
    let grace = selfheal::supervisor::stack::FORCE_GRACE;
    std::thread::sleep(grace + Duration::from_millis(200));
    let t0 = Instant::now();
    sup.proc.signal(libc::SIGTERM);
    let code = sup.proc.wait_exit(SOON);
    let out = sup.output();
    assert_eq!(code, Some(4), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{out}");
    assert!(out.contains("received SIGTERM again: forcing"), "{out}");
    assert!(!alive(pid));
}
