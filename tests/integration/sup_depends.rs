//! depends_on = "healthy": B does not start before A's probe passes, then it does.

use std::time::Duration;

use crate::harness::{temp_dir, wait_for};
use crate::sup_util::{start_in, wait_file, SOON};

#[test]
fn dependant_waits_for_healthy_dependency() {
    let dir = temp_dir();
    let sup = start_in(
        dir,
        "",
        r#"[programs.b]
command = ["sh", "-c", "echo started > @DIR@/b-started; exec sleep infinity"]
depends_on = { a = "healthy" }
[programs.a]
command = ["sleep", "infinity"]
health = { exec = ["sh", "-c", "echo probe >> @DIR@/probes; test -e @DIR@/ready"], interval = "100ms", timeout = "1s", failures = 1000 }
"#,
    );
    // Several failed probes of A: B must still be waiting, not started.
    wait_for("5 probes of a", SOON, || {
        let n = std::fs::read_to_string(sup.path("probes"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        (n >= 5).then_some(())
    });
    assert_eq!(sup.program("a")["state"], "starting");
    assert_eq!(sup.program("b")["state"], "waiting");
    assert!(!sup.path("b-started").exists(), "{}", sup.output());
    assert!(!sup.output().contains("b started"), "{}", sup.output());

    std::fs::write(sup.path("ready"), "").unwrap();
    wait_file(&sup.path("b-started"), Duration::from_secs(10));
    sup.wait_state("b", "running", SOON);
    let out = sup.output();
    let ready = out.find("selfheal | a ready (pid").expect("a ready line");
    let b = out
        .find("selfheal | b started (pid")
        .expect("b started line");
    assert!(ready < b, "b started before a was ready:\n{out}");
}
