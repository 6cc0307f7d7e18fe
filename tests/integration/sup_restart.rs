//! Crash → restart, per restart policy: `always` restarts exit 0 too,
//! `on-failure` restarts non-zero exits and signal deaths but not exit 0,
//! `never` restarts nothing.

use crate::sup_util::{start, SOON};

const FAST: &str = r#"backoff = { initial = "0s", max = "100ms", jitter = 0 }
restart_limit = { max = 1000, window = "60s" }"#;

#[test]
fn always_restarts_a_clean_exit() {
    let sup = start(
        "",
        &format!(
            "[programs.a]\ncommand = [\"sh\", \"-c\", \"echo run; exit 0\"]\nrestart = \"always\"\n{FAST}\n"
        ),
    );
    sup.wait_count("selfheal | a exited with code 0", 3, SOON);
    let out = sup.output();
    assert!(out.contains("a exited with code 0 after"), "{out}");
    assert!(
        out.contains("; restart 2 within 60s; next start in"),
        "{out}"
    );
    assert!(sup.count("selfheal | a started (pid") >= 3, "{out}");
}

#[test]
fn on_failure_restarts_non_zero_and_signal_deaths_but_not_exit_0() {
    let sup = start(
        "",
        &format!(
            r#"[programs.clean]
command = ["sh", "-c", "exit 0"]
restart = "on-failure"
{FAST}
[programs.code]
command = ["sh", "-c", "exit 3"]
restart = "on-failure"
{FAST}
[programs.sig]
command = ["sh", "-c", "kill -KILL $$$$"]
restart = "on-failure"
{FAST}
"#
        ),
    );
    sup.wait_count("selfheal | code exited with code 3", 3, SOON);
    sup.wait_count("selfheal | sig was killed by SIGKILL", 3, SOON);
    sup.proc
        .wait_output("selfheal | clean exited with code 0 after", SOON);
    let out = sup.output();
    assert!(
        out.contains("clean exited with code 0") && out.contains("restart policy says no restart"),
        "{out}"
    );
    assert!(out.contains("sig was killed by SIGKILL after"), "{out}");
    // Many restarts of the others happened since: `clean` never ran again.
    assert_eq!(sup.count("selfheal | clean started"), 1, "{out}");
    // Ended well and not to be restarted: `exited`, which is not an operator stop.
    assert_eq!(sup.program("clean")["state"], "exited");
}

#[test]
fn never_does_not_restart() {
    let sup = start(
        "",
        &format!(
            r#"[programs.once]
command = ["sh", "-c", "exit 3"]
restart = "never"
[programs.witness]
command = ["sh", "-c", "sleep 0.1; exit 1"]
restart = "always"
{FAST}
"#
        ),
    );
    sup.proc
        .wait_output("selfheal | once exited with code 3", SOON);
    // The witness restarting several times bounds the window we watched.
    sup.wait_count("selfheal | witness started", 5, SOON);
    let out = sup.output();
    assert!(
        out.contains("once exited with code 3 after")
            && out.contains("restart policy says no restart"),
        "{out}"
    );
    assert_eq!(sup.count("selfheal | once started"), 1, "{out}");
    let once = sup.program("once");
    // A crash not restarted is a failure, not an operator stop.
    assert_eq!(once["state"], "failed", "{once}");
    assert!(once["pid"].is_null(), "{once}");
    assert_eq!(once["last_exit"]["code"], 3, "{once}");
}
