//! `selfheal check` reports every config error with `file:line:col: field:` and
//! exits 2; a valid config prints the start order and exits 0; the supervisor
//! itself exits 2 on a bad config.

use std::path::Path;
use std::process::Command;

use crate::harness::{temp_dir, BIN};

fn run(args: &[&str], config: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run selfheal");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const BAD: &str = r#"[supervisor]
bogus = 1
[programs.a]
command = ["${SELFHEAL_TEST_SURELY_UNSET}"]
restart = "sometimes"
stop_signal = "SIGNOPE"
stop_timeout = "ten seconds"
depends_on = { ghost = "healthy" }
listen = ["127.0.0.1:9000"]
[programs.b]
command = ["sleep", "1"]
colour = "red"
listen = ["127.0.0.1:9000"]
"#;

#[test]
fn check_reports_every_error_with_positions() {
    let dir = temp_dir();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, BAD).unwrap();
    let (code, out) = run(&["check"], &f);
    assert_eq!(code, 2, "{out}");
    let p = f.display();
    for expected in [
        format!("{p}:2:1: supervisor.bogus: unknown field"),
        format!("{p}:4:12: programs.a.command: environment variable SELFHEAL_TEST_SURELY_UNSET is not set"),
        format!("{p}:5:11: programs.a.restart: invalid value \"sometimes\""),
        format!("{p}:6:15: programs.a.stop_signal: invalid stop signal \"SIGNOPE\""),
        format!("{p}:7:16: programs.a.stop_timeout: invalid duration \"ten seconds\""),
        format!("{p}:8:16: programs.a.depends_on.ghost: unknown program \"ghost\""),
        format!("{p}:12:1: programs.b.colour: unknown field"),
        format!("{p}:13:11: programs.b.listen: duplicate listen address 127.0.0.1:9000"),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert!(out.contains("8 errors"), "{out}");
}

#[test]
fn check_reports_a_cycle_with_its_path_and_other_errors() {
    let dir = temp_dir();
    let f = dir.path().join("cycle.toml");
    std::fs::write(
        &f,
        r#"[programs.a]
command = ["sleep", "1"]
depends_on = { b = "started" }
[programs.b]
command = ["sleep", "1"]
depends_on = { a = "healthy" }
stop_timeout = "soon"
"#,
    )
    .unwrap();
    let (code, out) = run(&["check"], &f);
    assert_eq!(code, 2, "{out}");
    let p = f.display();
    assert!(
        out.contains(&format!(
            "{p}:3:16: programs.a.depends_on: dependency cycle: a -> b -> a"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{p}:7:16: programs.b.stop_timeout: invalid duration"
        )),
        "{out}"
    );
}

#[test]
fn check_accepts_a_valid_config_and_prints_the_start_order() {
    let dir = temp_dir();
    let f = dir.path().join("ok.toml");
    std::fs::write(
        &f,
        r#"[programs.web]
command = ["sleep", "1"]
depends_on = { db = "healthy" }
[programs.db]
command = ["sleep", "2"]
health = { tcp = "127.0.0.1:1" }
"#,
    )
    .unwrap();
    let (code, out) = run(&["check"], &f);
    assert_eq!(code, 0, "{out}");
    let db = out.find("1. db").expect(&out);
    let web = out.find("2. web").expect(&out);
    assert!(db < web, "{out}");
}

#[test]
fn supervisor_exits_2_on_a_bad_config() {
    let dir = temp_dir();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, BAD).unwrap();
    let (code, out) = run(&[], &f);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("programs.a.restart"), "{out}");
    let (code, out) = run(&[], &dir.path().join("missing.toml"));
    assert_eq!(code, 2, "{out}");
}
