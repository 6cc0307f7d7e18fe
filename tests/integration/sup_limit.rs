//! restart_limit exceeded → failed; `on_give_up = "exit"` stops the stack and
//! exits 3, `"stay"` keeps the supervisor up with the program `failed`.

use std::time::Duration;

use crate::sup_util::{alive, start, SOON};

const CRASHER: &str = r#"[programs.a]
command = ["sh", "-c", "exit 1"]
backoff = { initial = "0s", max = "0s" }
restart_limit = { max = 2, window = "60s" }
[programs.b]
command = ["sleep", "infinity"]
"#;

#[test]
fn give_up_exit_stops_everything_with_code_3() {
    let mut sup = start("on_give_up = \"exit\"", CRASHER);
    // From the log: the supervisor may have given up before the API is asked.
    let b = sup.wait_started_pid("b");
    let code = sup.proc.wait_exit(SOON);
    let out = sup.output();
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("a exited with code 1 after")
            && out.contains("more than 2 restarts within 60s: giving up"),
        "{out}"
    );
    assert_eq!(sup.count("selfheal | a started"), 3, "{out}");
    assert!(
        out.contains("all programs stopped; exiting with code 3"),
        "{out}"
    );
    assert!(!alive(b), "b (pid {b}) survived the supervisor");
}

#[test]
fn give_up_stay_keeps_running_and_reports_failed() {
    let sup = start("on_give_up = \"stay\"", CRASHER);
    sup.proc.wait_output("giving up", SOON);
    sup.wait_state("a", "failed", SOON);
    let a = sup.program("a");
    assert!(a["pid"].is_null(), "{a}");
    assert_eq!(a["restarts"], 2, "{a}");
    assert_eq!(sup.program("b")["state"], "running");
    let mut proc = sup;
    assert!(
        proc.proc.child.try_wait().unwrap().is_none(),
        "supervisor exited: {}",
        proc.output()
    );
    // `start` brings a failed program back, and says that it fails again.
    let (code, text) = proc.cli(&["start", "a"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("a: failed: exited with code"), "{text}");
    proc.wait_count("giving up", 2, SOON);
    proc.wait_state("a", "failed", Duration::from_secs(5));
    proc.proc.signal(libc::SIGTERM);
    assert_eq!(proc.proc.wait_exit(SOON), Some(0), "{}", proc.output());
}
