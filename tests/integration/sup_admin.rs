//! The admin CLI over the unix socket: status (text and JSON), restart, stop, start.

use crate::sup_util::{alive, start, SOON};

#[test]
fn status_restart_stop_start() {
    let sup = start(
        "",
        r#"[programs.alpha]
command = ["sleep", "infinity"]
[programs.beta]
command = ["sleep", "infinity"]
"#,
    );
    let alpha = sup.wait_pid("alpha");
    sup.wait_pid("beta");

    let (code, text) = sup.cli(&["status"]);
    assert_eq!(code, 0, "{text}");
    for needle in ["alpha", "beta", "running", &alpha.to_string()] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
    let json = sup.status();
    assert_eq!(json["supervisor"]["pid"], sup.proc.pid());
    assert_eq!(json["programs"].as_array().unwrap().len(), 2);

    let (code, text) = sup.cli(&["restart", "alpha"]);
    assert_eq!(code, 0, "{text}");
    let restarted = sup.wait_new_pid("alpha", alpha, SOON);
    assert!(!alive(alpha) || crate::sup_util::zombies_of(sup.proc.pid()).contains(&alpha));
    assert_eq!(sup.program("alpha")["restarts"], 1);

    let (code, text) = sup.cli(&["stop", "alpha"]);
    assert_eq!(code, 0, "{text}");
    sup.wait_state("alpha", "stopped", SOON);
    assert!(sup.program("alpha")["pid"].is_null());
    crate::harness::wait_for("old alpha to be gone", SOON, || {
        (!alive(restarted)).then_some(())
    });

    let (code, text) = sup.cli(&["start", "alpha"]);
    assert_eq!(code, 0, "{text}");
    let again = sup.wait_new_pid("alpha", restarted, SOON);
    sup.wait_state("alpha", "running", SOON);
    assert_ne!(again, alpha);

    let (code, text) = sup.cli(&["restart", "nope"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("nope"), "{text}");
}
