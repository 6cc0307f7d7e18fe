//! `selfheal logs` and `selfheal events`: the CLI clients of `GET /logs` and
//! `GET /events`, printing `name | line` with names aligned.

use std::process::Command;

use crate::cli_util::cli;
use crate::harness::{wait_for, Proc, BIN};
use crate::sup_util::{start, SOON};

const PROGRAMS: &str = r#"[programs.app]
command = ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; while [ ! -e @DIR@/go ]; do sleep 0.02; done; echo after go; exec sleep 3600"]
[programs.longer_name]
command = ["sh", "-c", "echo hi; exec sleep 3600"]
"#;

/// `selfheal ARGS --socket SOCK` running in the background.
fn background(sup: &crate::sup_util::Sup, label: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--socket").arg(&sup.socket);
    Proc::spawn(label, cmd)
}

#[test]
fn logs_tail_since_timestamps_json_and_follow() {
    let sup = start("", PROGRAMS);
    sup.proc.wait_output("| line 5", SOON);
    sup.proc.wait_output("longer_name | hi", SOON);

    let out = cli(&sup, &["logs"]);
    assert_eq!(out.code, 0, "{out}");
    for line in [
        "app         | line 1",
        "app         | line 5",
        "longer_name | hi",
    ] {
        assert!(out.stdout.lines().any(|l| l == line), "{line:?} in\n{out}");
    }
    let out = cli(&sup, &["logs", "-n", "2", "app"]);
    assert_eq!(out.stdout, "app | line 4\napp | line 5\n", "{out}");

    let out = cli(&sup, &["logs", "-n", "1", "--timestamps", "longer_name"]);
    let (ts, rest) = out.stdout.split_once(' ').expect("a timestamp");
    assert_eq!(rest, "longer_name | hi\n", "{out}");
    humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("{ts:?}: {e}"));

    let out = cli(&sup, &["logs", "--json", "-n", "1", "app"]);
    let json: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert_eq!(json["program"], "app");
    assert_eq!(json["line"], "line 5");

    // --since a moment from now: only what comes after.
    let out = cli(&sup, &["logs", "--since", "0s", "app"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.is_empty(), "{out}");

    // -f sees a line printed after it started.
    let follow = background(&sup, "logs -f", &["logs", "-f", "-n", "1", "app"]);
    follow.wait_output("app | line 5", SOON);
    std::fs::write(sup.path("go"), "").unwrap();
    follow.wait_output("app | after go", SOON);

    let out = cli(&sup, &["logs", "nope"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("no program named \"nope\""), "{out}");
}

#[test]
fn events_show_a_restart_live_and_past_ones_on_request() {
    let sup = start("", "[programs.app]\ncommand = [\"sleep\", \"infinity\"]\n");
    sup.wait_state("app", "running", SOON);
    let live = background(&sup, "events", &["events"]);
    // The stream is open once the CLI read the names; a restart comes after.
    wait_for("the events stream to be open", SOON, || {
        let out = cli(&sup, &["restart", "--no-wait", "app"]);
        assert_eq!(out.code, 0, "{out}");
        live.output()
            .contains("app      | started (pid ")
            .then_some(())
    });
    live.wait_output("app      | stopping (pid ", SOON);

    let out = {
        let mut cmd = Command::new(BIN);
        cmd.args(["events", "--json", "--recent", "3", "--socket"])
            .arg(&sup.socket);
        Proc::spawn("events --recent", cmd)
    };
    let lines = wait_for("3 past events", SOON, || {
        let text = out.output();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (lines.len() >= 3).then_some(lines)
    });
    for event in &lines {
        assert!(
            event["seq"].is_u64() && event["kind"].is_string(),
            "{event}"
        );
    }
}
