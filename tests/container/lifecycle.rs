//! The container's life under Docker: clean stop on SIGTERM and SIGINT with
//! the data surviving a restart, and crash-loop escalation (exit code 3) that
//! Docker's restart policy picks up.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::harness::{docker_ok, wait_for, Container, RunOpts};

/// `docker stop` waits this long before SIGKILL; the supervisor must be done
/// well before.
const STOP_TIMEOUT_SECS: u64 = 10;

/// Visits twice, returns the last `X-Visit-Count`.
fn visit(c: &Container) -> u64 {
    c.wait_serving();
    let r = c.get("/").expect("GET /");
    assert!(r.is_success(), "GET / answered {}", r.status);
    r.visit_count().expect("X-Visit-Count")
}

/// Stops the container with `stop` (which must return once it is down),
/// checks a clean and quick exit, starts it again on the same volume and
/// checks the counter continues.
fn stop_start(test: &str, stop: impl Fn(&Container)) {
    let c = Container::run(test, RunOpts::default());
    let before = visit(&c);

    let started = Instant::now();
    stop(&c);
    c.wait_exited(Duration::from_secs(STOP_TIMEOUT_SECS + 5));
    let took = started.elapsed();
    assert_eq!(c.exit_code(), 0, "the supervisor did not exit cleanly");
    assert!(
        took < Duration::from_secs(STOP_TIMEOUT_SECS - 2),
        "stopping took {took:?}: Docker probably had to SIGKILL"
    );
    assert_eq!(c.inspect("{{.State.OOMKilled}}"), "false");

    docker_ok(&["start", &c.name]);
    let after = visit(&c);
    assert!(
        after > before,
        "the counter did not continue across the restart: {before} then {after}"
    );
}

#[test]
fn docker_stop_is_clean_and_the_count_survives() {
    stop_start("stop", |c| {
        docker_ok(&["stop", "-t", &STOP_TIMEOUT_SECS.to_string(), &c.name]);
    });
}

#[test]
fn sigint_is_clean_and_the_count_survives() {
    stop_start("sigint", |c| {
        docker_ok(&["kill", "-s", "INT", &c.name]);
    });
}

/// A config whose only program fails at once, always restarted, at most 3
/// restarts a minute, then the supervisor gives up and exits. Only the fields
/// this needs (names as in DESIGN.md §4 and the shipped supervisor.toml).
const CRASH_LOOP_CONFIG: &str = r#"
[supervisor]
on_give_up = "exit"

[programs.crasher]
command = ["false"]
restart = "always"
restart_limit = { max = 3, window = "60s" }
"#;

fn crash_loop_config() -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .prefix("selfheal-crash-loop-")
        .suffix(".toml")
        .tempfile()
        .expect("temp config");
    file.write_all(CRASH_LOOP_CONFIG.as_bytes())
        .expect("write temp config");
    file.flush().expect("flush temp config");
    // Readable for the container's root even under a restrictive umask.
    std::fs::set_permissions(
        file.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod temp config");
    file
}

fn mount(config: &tempfile::NamedTempFile) -> Vec<String> {
    vec![
        "-v".into(),
        format!(
            "{}:/etc/selfheal/supervisor.toml:ro",
            config.path().display()
        ),
    ]
}

#[test]
fn crash_loop_beyond_the_restart_limit_exits_with_3() {
    let config = crash_loop_config();
    let c = Container::run(
        "crash-loop",
        RunOpts {
            args: mount(&config),
            ..RunOpts::default()
        },
    );
    c.wait_exited(Duration::from_secs(90));
    assert_eq!(
        c.exit_code(),
        3,
        "a supervisor that gives up exits with code 3"
    );
    assert!(
        c.logs().contains("crasher"),
        "the logs do not mention the failing program"
    );
}

#[test]
fn docker_restarts_a_container_whose_supervisor_gave_up() {
    let config = crash_loop_config();
    let mut args = mount(&config);
    args.extend(["--restart".into(), "on-failure:2".into()]);
    let c = Container::run(
        "crash-restart",
        RunOpts {
            args,
            ..RunOpts::default()
        },
    );
    wait_for(
        "Docker to restart the container (RestartCount > 0)",
        Duration::from_secs(120),
        || (c.restart_count() > 0).then_some(()),
    );
    // on-failure:2 gives up after two restarts; the last exit is the supervisor's 3.
    wait_for(
        "Docker to stop restarting after on-failure:2",
        Duration::from_secs(240),
        || {
            (c.restart_count() == 2
                && !c.is_running()
                && c.inspect("{{.State.Restarting}}") == "false")
                .then_some(())
        },
    );
    assert_eq!(c.exit_code(), 3);
}
