//! The environment is bytes (issue 10, item 1): variables that are not UTF-8
//! (value or name), a PATH entry that is not UTF-8, an empty environment, a
//! non-UTF-8 cwd, config path and argv: none of them stops the supervisor, and
//! programs and exec probes get every variable unchanged. A non-UTF-8 value
//! used in the config via `${VAR}` is a clear config error.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use crate::harness::{temp_dir, wait_for, BIN};
use crate::sup_hardening_util::{environ_of, start_cmd};
use crate::sup_util::{script, wait_file, SOON};

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

#[test]
fn non_utf8_variables_reach_programs_and_exec_probes_unchanged() {
    let sup = start_cmd(
        temp_dir(),
        "",
        r#"[programs.show]
command = ['sh', '-c', 'printf %s "$ODD" > @DIR@/odd.tmp && mv @DIR@/odd.tmp @DIR@/odd; exec sleep infinity']
health = { exec = ['sh', '-c', 'test "$ODD" = "$(printf "caf\351")"'], interval = "200ms", timeout = "2s", failures = 2 }
[programs.raw]
command = ["sleep", "infinity"]
"#,
        |cmd| {
            cmd.env("ODD", os(b"caf\xe9"))
                .env(os(b"N\xffAME"), "v")
                .env("HOME", os(b"/home/\xfe"));
        },
    );
    sup.wait_pid("show");
    let odd = wait_for("the program to write $ODD", SOON, || {
        std::fs::read(sup.path("odd")).ok()
    });
    assert_eq!(odd, b"caf\xe9");
    // A shell drops variables whose names are not identifiers; `sleep` keeps all.
    let env = environ_of(sup.wait_pid("raw"));
    for entry in [&b"ODD=caf\xe9"[..], b"N\xffAME=v", b"HOME=/home/\xfe"] {
        assert!(
            env.iter().any(|e| e == entry),
            "{:?} missing from the program's environment",
            String::from_utf8_lossy(entry)
        );
    }
    // The exec probe saw the same bytes: it passes, so the program is ready.
    wait_for("the exec probe to pass", SOON, || {
        (sup.program("show")["ready"] == true).then_some(())
    });
    assert!(!sup.output().contains("panicked"), "{}", sup.output());
}

#[test]
fn a_non_utf8_path_entry_finds_the_program() {
    let dir = temp_dir();
    let bin = dir.path().join(os(b"bin\xff"));
    std::fs::create_dir(&bin).unwrap();
    script(
        &bin,
        "hello-prog",
        &format!(
            "#!/bin/sh\necho ran > {}/ran\nexec sleep infinity\n",
            dir.path().display()
        ),
    );
    let mut path = bin.as_os_str().to_os_string();
    path.push(":/usr/bin:/bin");
    let sup = start_cmd(
        dir,
        "",
        "[programs.hello]\ncommand = [\"hello-prog\"]\n",
        |cmd| {
            cmd.env("PATH", &path);
        },
    );
    assert_eq!(wait_file(&sup.path("ran"), SOON), "ran\n");
    assert_eq!(sup.program("hello")["state"], "running");
}

#[test]
fn an_empty_environment_runs_programs_and_probes() {
    let sup = start_cmd(
        temp_dir(),
        "",
        r#"[programs.plain]
command = ["sleep", "infinity"]
health = { exec = ["true"], interval = "200ms", timeout = "2s", failures = 2 }
"#,
        |cmd| {
            cmd.env_clear();
        },
    );
    let pid = sup.wait_pid("plain");
    wait_for("the exec probe to pass", SOON, || {
        (sup.program("plain")["ready"] == true).then_some(())
    });
    // Nothing but the runtime dir the harness gives every supervisor under test.
    let environ: Vec<String> = environ_of(pid)
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .filter(|e| !e.starts_with("SELFHEAL_RUNTIME_DIR="))
        .collect();
    assert!(environ.is_empty(), "{environ:?}");
}

#[test]
fn a_non_utf8_value_used_in_the_config_is_a_clear_error() {
    let dir = temp_dir();
    let config = crate::sup_util::write_config(
        dir.path(),
        "",
        "[programs.echo]\ncommand = [\"echo\", \"${ODD}\"]\n",
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env("ODD", os(b"caf\xe9"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("environment variable ODD is not valid UTF-8"),
        "{text}"
    );
    assert!(text.contains("config.toml:"), "no position: {text}");
}

#[test]
fn non_utf8_cwd_config_path_and_arguments_do_not_panic() {
    let dir = temp_dir();
    let odd = dir.path().join(os(b"d\xff"));
    std::fs::create_dir(&odd).unwrap();
    let config = crate::sup_util::write_config(
        dir.path(),
        "",
        "[programs.where]\ncommand = [\"sh\", \"-c\", \"pwd > @DIR@/cwd; exec sleep infinity\"]\n",
    );
    let moved = odd.join("config.toml");
    std::fs::rename(&config, &moved).unwrap();
    let sup = start_cmd(dir, "", "", |cmd| {
        // Replaces the --config written by start_cmd with the non-UTF-8 path.
        let mut fresh = Command::new(BIN);
        fresh.arg("--config").arg("config.toml").current_dir(&odd);
        *cmd = fresh;
    });
    let cwd = wait_for("the program to write its cwd", SOON, || {
        std::fs::read(sup.path("cwd"))
            .ok()
            .filter(|c| c.ends_with(b"\n"))
    });
    assert_eq!(cwd, [odd.as_os_str().as_bytes(), b"\n"].concat());

    // Arguments and option values that are not UTF-8: a usage error, never a panic.
    for (args, env) in [
        (vec![os(b"\xff")], None),
        (vec![os(b"--log-format"), os(b"\xff")], None),
        (vec![os(b"--config"), os(b"/nonexistent/\xff.toml")], None),
        (vec![], Some(("SELFHEAL_LOG_FORMAT", os(b"\xff")))),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(1..=3)),
            "{args:?}: {:?} {text}",
            out.status
        );
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
}
