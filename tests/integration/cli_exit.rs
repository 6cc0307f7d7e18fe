//! Every documented exit code of the CLI: 0 ok, 1 failed (also a timeout),
//! 2 usage or config, 3 `status` with a program not running and ready,
//! 4 supervisor unreachable (no socket, refused, permission denied).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::cli_util::{at, bare, cli, run};
use crate::harness::{free_port, temp_dir, BIN};
use crate::sup_util::{python, start, SOON};

#[test]
fn ok_failed_usage_and_not_all_running() {
    let port = free_port();
    let sup = start(
        "",
        &format!(
            r#"[programs.a]
command = ["sleep", "infinity"]
[programs.slow]
command = ["{py}", "-c", "import socket, time; time.sleep(3); s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(3600)"]
health = {{ tcp = "127.0.0.1:{port}" }}
"#,
            py = python()
        ),
    );
    sup.wait_state("a", "running", SOON);
    sup.wait_state("slow", "running", SOON);

    // 0: all running and ready.
    let out = cli(&sup, &["status"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.is_empty(), "{out}");
    let out = cli(&sup, &["health"]);
    assert_eq!(out.code, 0, "{out}");

    // 1: the wait timed out (the new `slow` needs 3 s to listen).
    let out = cli(&sup, &["restart", "--timeout", "300ms", "slow"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains(
            "timed out after 300ms: slow is starting (starting: no probe has passed yet)"
        ),
        "{out}"
    );
    // 3: `status` prints the table all the same; `health` says 1.
    let out = cli(&sup, &["status"]);
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stdout.contains("slow") && out.stdout.contains("starting"),
        "{out}"
    );
    let out = cli(&sup, &["status", "--json"]);
    assert_eq!(out.code, 3, "{out}");
    serde_json::from_str::<serde_json::Value>(&out.stdout).expect("JSON on stdout");
    let out = cli(&sup, &["health"]);
    assert_eq!(out.code, 1, "{out}");

    // 2: usage (clap), a program the supervisor does not know, an unreadable config.
    let out = cli(&sup, &["status", "--bogus"]);
    assert_eq!(out.code, 2, "{out}");
    let out = cli(&sup, &["restart", "nope"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("no program named \"nope\""), "{out}");
    let out = run(bare(&["status", "--config", "/nonexistent/selfheal.toml"]));
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("/nonexistent/selfheal.toml"), "{out}");
}

#[test]
fn unreachable_is_4_and_says_why() {
    let dir = temp_dir();
    // No socket at all.
    let missing = dir.path().join("admin.sock");
    for args in [&["status"][..], &["health"], &["restart", "x"], &["logs"]] {
        let out = at(&missing, args);
        assert_eq!(out.code, 4, "{args:?}: {out}");
        assert!(
            out.stderr.contains(&format!(
                "no supervisor is serving {} (is it running? tried: --socket)",
                missing.display()
            )),
            "{out}"
        );
    }
    // A socket file nobody listens on (a supervisor killed by SIGKILL leaves one).
    drop(std::os::unix::net::UnixListener::bind(&missing).expect("bind"));
    let out = at(&missing, &["status"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(out.stderr.contains("no supervisor is serving"), "{out}");
    // Found through the environment, which the message names.
    let mut cmd = bare(&["status"]);
    cmd.env("SELFHEAL_ADMIN_SOCKET", &missing);
    let out = run(cmd);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr
            .contains("tried: no --socket, SELFHEAL_ADMIN_SOCKET"),
        "{out}"
    );
}

#[test]
fn permission_denied_is_4_and_names_who_may_connect() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs the CLI as nobody against root's socket: it needs root"
    );
    let sup = start("", "[programs.a]\ncommand = [\"sleep\", \"infinity\"]\n");
    sup.wait_state("a", "running", SOON);
    // The temp dir is searchable, the socket itself is root's 0600.
    std::fs::set_permissions(sup.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        BIN,
        "status",
        "--socket",
    ])
    .arg(&sup.socket)
    .env_remove("SELFHEAL_CONFIG")
    .env("SELFHEAL_RUNTIME_DIR", sup.dir.path());
    let out = run(cmd);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "permission denied on {}: run as root or as the socket's owner (root)",
            sup.socket.display()
        )),
        "{out}"
    );
    assert!(!out.stderr.contains("is it running"), "{out}");
    // With the group let in, the advice names the group.
    std::fs::set_permissions(&sup.socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    let out = run({
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "health",
            "--socket",
        ])
        .arg(&sup.socket);
        cmd
    });
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr
            .contains("run as root or as a member of the socket's group (root)"),
        "{out}"
    );
}
