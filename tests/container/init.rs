//! The image as a drop-in container init (issue 12): `docker run IMAGE -- CMD`
//! runs CMD alone (the image's SELFHEAL_CONFIG is not read), with its exit
//! code, its stdin and its unprefixed stdout/stderr, and `docker stop` ends a
//! `sleep infinity` at once with 143 (TERM forwarded to it).
//!
//! On `f85aee4` all of these fail: the image's `selfheal -- CMD` was refused.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{docker_ok, image, preflight, Container, RunOpts};

/// `docker run --rm` of the image with `args` after it; a name and the test
/// label so that an interrupted run's leftover is removed by ci/container-test.sh.
fn run_rm(test: &str, extra: &[&str], args: &[&str]) -> Command {
    preflight();
    let name = format!("selfheal-ct-{test}-{}", std::process::id());
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--name", &name])
        .args(["--label", "selfheal-container-test=1"])
        .args(extra)
        .arg(image())
        .args(args);
    cmd
}

#[test]
fn exit_code_and_output_are_the_commands() {
    let out = run_rm(
        "init-exit",
        &[],
        &["--", "sh", "-c", "printf out; printf err >&2; exit 7"],
    )
    .stdin(Stdio::null())
    .output()
    .expect("docker run");
    assert_eq!(
        out.status.code(),
        Some(7),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out", "stdout as is");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err", "stderr as is");
}

#[test]
fn stdin_reaches_the_command() {
    let payload: Vec<u8> = (0..=255u8).cycle().take(256 * 1024).collect();
    let mut child = run_rm("init-stdin", &["-i"], &["--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker run -i");
    let mut stdin = child.stdin.take().expect("stdin pipe");
    let input = payload.clone();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&input).expect("write stdin");
    });
    let out = child.wait_with_output().expect("docker run -i");
    writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == payload,
        "stdout: {} bytes in, {} out",
        payload.len(),
        out.stdout.len()
    );
}

#[test]
fn docker_stop_ends_sleep_infinity_with_143_at_once() {
    let c = Container::run(
        "init-stop",
        RunOpts {
            cmd: vec!["--", "sleep", "infinity"],
            no_volume: true,
            ..RunOpts::default()
        },
    );
    crate::harness::wait_for("sleep infinity to run", Duration::from_secs(30), || {
        c.procs()
            .iter()
            .any(|p| p.comm == "sleep" && p.ppid == 1)
            .then_some(())
    });
    let started = Instant::now();
    docker_ok(&["stop", "-t", "10", &c.name]);
    let took = started.elapsed();
    eprintln!("docker stop of `selfheal -- sleep infinity` took {took:?}");
    assert_eq!(c.exit_code(), 143, "128 + SIGTERM: {}", c.logs());
    assert!(
        took < Duration::from_secs(3),
        "docker stop took {took:?} (Docker's SIGKILL comes at 10 s)"
    );
    assert!(c.logs().is_empty(), "silent supervisor: {:?}", c.logs());
}
