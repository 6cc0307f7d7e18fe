//! `selfheal --config sidecars.toml -- CMD` (issue 12): the config's programs
//! are sidecars — started first, CMD starts only once every sidecar is ready,
//! they are stopped after CMD exits, and the exit code is CMD's; a sidecar
//! that gives up with `on_give_up = "exit"` ends everything with 3; `main =
//! true` in a config alone means the same as `-- CMD`; and in `-- CMD` mode
//! the image's `SELFHEAL_CONFIG` is not read (only an explicit `--config`).
//! As a plain process and as PID 1.
//!
//! On `f85aee4` these fail: `-- CMD` was refused, `main` was an unknown
//! config field, and a one-program config never exited with its code.

use std::path::Path;

use crate::harness::{temp_dir, wait_for};
use crate::init_util::{both_modes, command, host_pid, Init, Mode};
use crate::sup_util::{alive, python, script, wait_file, write_config, SOON};

both_modes!(
    sidecars_are_ready_before_cmd_and_stopped_after,
    a_sidecar_giving_up_ends_everything_with_3,
    main_true_in_a_config_alone,
    selfheal_config_env_is_ignored_with_cmd,
);

/// A sidecar that writes its pid to `DIR/side.pid` and, on TERM, appends
/// `term` to `DIR/side.events` and exits 0.
fn sidecar(dir: &Path) {
    script(
        dir,
        "side.py",
        &format!(
            r#"#!{}
import os, signal, sys
d = sys.argv[1]
def on_term(sig, frame):
    open(os.path.join(d, "side.events"), "a").write("term\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(os.path.join(d, "side.tmp"), "w").write("%d\n" % os.getpid())
os.rename(os.path.join(d, "side.tmp"), os.path.join(d, "side.pid"))
while True:
    signal.pause()
"#,
            python()
        ),
    );
}

/// Ready once it wrote its pid and the test created `DIR/ready`; every probe
/// appends to `DIR/probes`.
const SIDECAR: &str = r#"[programs.side]
command = ["@DIR@/side.py", "@DIR@"]
health = { exec = ["sh", "-c", "echo probe >> @DIR@/probes; test -e @DIR@/side.pid && test -e @DIR@/ready"], interval = "50ms", timeout = "2s", failures = 1000 }
"#;

/// CMD checks, when it runs, that the sidecar is ready and alive and was not
/// stopped yet; it records that it ran and exits 5.
const CMD_CHECKS: &str = "test -e @DIR@/ready || exit 90; \
     kill -0 \"$(cat @DIR@/side.pid)\" || exit 91; \
     test -e @DIR@/side.events && exit 92; \
     echo ran > @DIR@/cmd.ran; exit 5";

fn sidecars_are_ready_before_cmd_and_stopped_after(mode: Mode) {
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap();
    sidecar(dir.path());
    let config = write_config(dir.path(), "", SIDECAR);
    let cmd = CMD_CHECKS.replace("@DIR@", d);
    let init = Init::spawn(
        mode,
        &[
            "--config",
            config.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            &cmd,
        ],
        None,
    );
    let side = wait_file(&dir.path().join("side.pid"), SOON);
    let side = host_pid(mode, init.supervisor_pid(), side.trim().parse().unwrap());
    // Three failing probes: the sidecar runs, is not ready, and CMD waits.
    wait_for("3 failing probes of the sidecar", SOON, || {
        let probes = std::fs::read_to_string(dir.path().join("probes")).unwrap_or_default();
        (probes.lines().count() >= 3).then_some(())
    });
    assert!(
        !dir.path().join("cmd.ran").exists(),
        "CMD started before the sidecar was ready"
    );
    std::fs::write(dir.path().join("ready"), "").unwrap();
    let done = init.finish(SOON);
    assert_eq!(done.code, Some(5), "CMD's code: {}", done.stdout_text());
    assert!(dir.path().join("cmd.ran").exists());
    let events = std::fs::read_to_string(dir.path().join("side.events")).unwrap_or_default();
    assert_eq!(events, "term\n", "the sidecar was stopped (once) after CMD");
    assert!(!alive(side), "the sidecar is gone");
}

/// A sidecar that exits 1 once `DIR/crash` exists, over its restart limit
/// while CMD runs: the supervisor stops CMD too and exits 3.
fn a_sidecar_giving_up_ends_everything_with_3(mode: Mode) {
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap();
    script(
        dir.path(),
        "crashy.sh",
        &format!(
            "#!/bin/sh\ntest -e {d}/crash && exit 1\necho $$ > {d}/side.pid\nexec sleep 1000\n"
        ),
    );
    let config = write_config(
        dir.path(),
        "on_give_up = \"exit\"",
        r#"[programs.side]
command = ["@DIR@/crashy.sh"]
restart = "on-failure"
backoff = { initial = "0s", max = "100ms" }
restart_limit = { max = 1, window = "60s" }
health = { exec = ["true"], interval = "50ms", timeout = "2s", failures = 3 }
"#,
    );
    let main = format!("echo $$ > {d}/main.pid; exec sleep 1000");
    let init = Init::spawn(
        mode,
        &[
            "--config",
            config.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            &main,
        ],
        None,
    );
    let supervisor = init.supervisor_pid();
    let main_ns: i32 = wait_file(&dir.path().join("main.pid"), SOON)
        .trim()
        .parse()
        .unwrap();
    let main_pid = host_pid(mode, supervisor, main_ns);
    let side_ns: i32 = wait_file(&dir.path().join("side.pid"), SOON)
        .trim()
        .parse()
        .unwrap();
    let side = host_pid(mode, supervisor, side_ns);
    std::fs::write(dir.path().join("crash"), "").unwrap();
    crate::sup_util::kill(side, libc::SIGKILL);
    let done = init.finish(SOON);
    assert_eq!(done.code, Some(3), "give-up: {}", done.stdout_text());
    assert!(!alive(main_pid), "the main program was stopped too");
}

/// `main = true` on one program of a config run alone: its code is the exit
/// code, after the sidecar it depends on was ready; the sidecar is stopped.
fn main_true_in_a_config_alone(mode: Mode) {
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap();
    sidecar(dir.path());
    std::fs::write(dir.path().join("ready"), "").unwrap();
    let config = write_config(
        dir.path(),
        "",
        &format!(
            "{SIDECAR}\n[programs.job]\ncommand = [\"/bin/sh\", \"-c\", {cmd:?}]\nmain = true\n\
             depends_on = {{ side = \"healthy\" }}\n",
            cmd = CMD_CHECKS.replace("@DIR@", d)
        ),
    );
    let done = Init::spawn(mode, &["--config", config.to_str().unwrap()], None).finish(SOON);
    assert_eq!(done.code, Some(5), "{}", done.stdout_text());
    let events = std::fs::read_to_string(dir.path().join("side.events")).unwrap_or_default();
    assert_eq!(
        events, "term\n",
        "the sidecar was stopped after the main program"
    );
}

/// A config whose program writes `DIR/marker`: with SELFHEAL_CONFIG pointing at
/// it, `selfheal -- CMD` (and `selfheal run -- CMD`) runs CMD alone and prints
/// nothing; the same config given as `--config` does start it (control).
fn selfheal_config_env_is_ignored_with_cmd(mode: Mode) {
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap();
    let config = write_config(
        dir.path(),
        "",
        r#"[programs.marker]
command = ["/bin/sh", "-c", "echo > @DIR@/marker; exec sleep 1000"]
health = { exec = ["test", "-e", "@DIR@/marker"], interval = "50ms", timeout = "2s", failures = 1000 }
"#,
    );
    let cmd = format!("test -e {d}/marker && exit 1; exit 4");
    for prefix in [&[][..], &["run"][..]] {
        let mut args: Vec<&str> = prefix.to_vec();
        args.extend(["--", "/bin/sh", "-c", &cmd]);
        let mut command = command(mode, &args);
        command.env("SELFHEAL_CONFIG", &config);
        let done = Init::spawn_cmd(mode, command, None).finish(SOON);
        assert_eq!(
            done.code,
            Some(4),
            "{args:?}: the config was loaded: {done:?}"
        );
        assert!(!dir.path().join("marker").exists(), "{args:?}: marker ran");
        assert!(done.stdout.is_empty() && done.stderr.is_empty(), "{done:?}");
    }
    // Control: an explicit --config is read, and the marker runs first.
    let control = format!("test -e {d}/marker && exit 4; exit 1");
    let mut command = command(
        mode,
        &[
            "--config",
            config.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            &control,
        ],
    );
    command.env("SELFHEAL_CONFIG", "/nonexistent.toml");
    let done = Init::spawn_cmd(mode, command, None).finish(SOON);
    assert_eq!(done.code, Some(4), "control: {}", done.stdout_text());
}
