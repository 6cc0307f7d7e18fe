//! The live status page (`GET /`) in a real headless Chromium, driven over the
//! DevTools protocol by tests/browser/page_test.py: logged in over TCP with the
//! token (`/?token=` → cookie), it lists every program, shows reasons as text
//! (never markup), and, without a reload, shows the restart after the app's pid
//! is SIGKILLed: a new pid, the restart count one higher and the `exited` event.
//! A missing Chromium or websocket-client fails the test (`make deps`).
//!
//! `SELFHEAL_SCREENSHOT=docs/status-page.png` keeps the screenshot there
//! (the README's picture); otherwise it goes to the test's temp dir.

use std::path::Path;
use std::process::Command;

use crate::harness::{free_port, temp_dir};
use crate::sup_util::{python, start_in, SOON};

const TOKEN: &str = "page-test-token";

const PROGRAMS: &str = r#"[programs.app]
command = ["sleep", "infinity"]
restart = "always"
health = { exec = ["true"], interval = "1s" }

[programs.worker]
command = ["sleep", "infinity"]
depends_on = { app = "healthy" }

[programs.broken]
command = ["@DIR@/<i>missing</i>"]
restart = "never"
"#;

/// The browser, or a loud failure (never a skip).
fn chromium() -> &'static str {
    let path = "/usr/bin/chromium";
    assert!(
        Path::new(path).exists(),
        "{path} is missing: the status-page test needs a real browser (make deps: apt-get install chromium)"
    );
    path
}

/// Runs tests/browser/page_test.py with `args`.
fn page_test(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/page_test.py");
    Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("run tests/browser/page_test.py")
}

#[test]
fn page_lists_programs_and_shows_a_kill_live() {
    let chromium = chromium();
    let dir = temp_dir();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let port = free_port();
    let sup = start_in(
        dir,
        &format!(
            "admin_listen = \"127.0.0.1:{port}\"\nadmin_token_file = \"@DIR@/token\"\non_give_up = \"stay\""
        ),
        PROGRAMS,
    );
    sup.wait_pid("app");
    sup.wait_pid("worker");
    sup.wait_state("broken", "failed", SOON);

    let shot = match std::env::var_os("SELFHEAL_SCREENSHOT") {
        Some(path) => Path::new(env!("CARGO_MANIFEST_DIR")).join(path),
        None => sup.path("status-page.png"),
    };
    let out = page_test(&[
        "--url",
        &format!("http://127.0.0.1:{port}/?token={TOKEN}"),
        "--expect",
        "app,worker,broken",
        "--kill",
        "app",
        "--expect-text",
        "<i>missing</i>",
        "--mode",
        "live",
        "--chromium",
        chromium,
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "page_test.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let report: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report from page_test.py:\n{stdout}\n{stderr}"));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["restarts"], 1, "{report}");
    // What the page showed is what the supervisor says.
    let app = sup.program("app");
    assert_eq!(app["restarts"], 1, "{app}");
    assert_eq!(app["pid"], report["new_pid"], "{report} vs {app}");
    assert_ne!(report["old_pid"], report["new_pid"]);
    eprintln!("page_test.py: {report}");

    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a suspiciously small screenshot");
}

/// Negative control: the browser check fails (and kills nothing) when the page
/// does not show what it expects.
#[test]
fn the_browser_check_can_fail() {
    let chromium = chromium();
    let port = free_port();
    let sup = start_in(
        temp_dir(),
        &format!("admin_listen = \"127.0.0.1:{port}\""),
        "[programs.app]\ncommand = [\"sleep\", \"infinity\"]\n",
    );
    let pid = sup.wait_pid("app");
    let shot = sup.path("never.png");
    let out = page_test(&[
        "--url",
        &format!("http://127.0.0.1:{port}/"),
        "--expect",
        "app,ghost",
        "--kill",
        "app",
        "--timeout",
        "3",
        "--chromium",
        chromium,
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("timed out after 3"), "{stderr}");
    assert!(stderr.contains("ghost"), "{stderr}");
    assert_eq!(sup.program("app")["pid"], pid);
    assert!(!shot.exists());
}
