//! The image serves: visits counted through the proxy, Docker sees it healthy,
//! selfheal is PID 1 with the three programs as children, under their users,
//! also on a read-only root and with the Kubernetes manifests' capabilities.

use crate::harness::{Container, RunOpts};

/// Two visits through the proxy: `X-Visit-Count` increases.
fn assert_counts(c: &Container) {
    let first = c.wait_serving();
    let n = first
        .visit_count()
        .unwrap_or_else(|| panic!("no X-Visit-Count header in {:?}", first.headers));
    let second = c.get("/").expect("second GET /");
    assert!(
        second.is_success(),
        "second GET / answered {}",
        second.status
    );
    let m = second
        .visit_count()
        .expect("X-Visit-Count on the second answer");
    assert!(m > n, "X-Visit-Count did not increase: {n} then {m}");
}

#[test]
fn counts_visits_through_the_proxy() {
    let c = Container::run("counts", RunOpts::default());
    assert_counts(&c);
}

#[test]
fn docker_reports_healthy() {
    let c = Container::run("healthy", RunOpts::default());
    c.wait_serving();
    c.wait_healthy();
}

#[test]
fn selfheal_is_pid1_and_parent_of_the_programs() {
    let c = Container::run("pid1", RunOpts::default());
    c.wait_serving();

    let cmdline = c.exec(&["sh", "-c", "tr '\\000' ' ' < /proc/1/cmdline"]);
    assert!(
        cmdline
            .split(' ')
            .next()
            .unwrap_or("")
            .ends_with("selfheal"),
        "PID 1 is not selfheal: {cmdline:?}"
    );

    let procs = c.procs();
    let table = procs
        .iter()
        .map(|p| format!("{} {} {} {}", p.pid, p.ppid, p.state, p.cmdline()))
        .collect::<Vec<_>>()
        .join("\n");
    for program in ["redis", "app", "proxy"] {
        assert!(
            procs.iter().any(|p| p.ppid == 1 && p.is_program(program)),
            "{program} is not a child of PID 1:\n{table}"
        );
    }

    // The host's view agrees.
    let top = crate::harness::docker_ok(&["top", &c.name]);
    for needle in ["selfheal", "redis-server", "selfheal app", "selfheal proxy"] {
        assert!(
            top.contains(needle),
            "`docker top` lacks {needle:?}:\n{top}"
        );
    }

    // PID 1 stays root; redis runs as redis, app and proxy as selfheal.
    let uid = |pid: u32| -> String {
        c.exec(&[
            "sh",
            "-c",
            &format!("awk '/^Uid:/ {{ print $2 }}' /proc/{pid}/status"),
        ])
    };
    let users = [("redis", "999"), ("app", "10001"), ("proxy", "10001")];
    assert_eq!(uid(1), "0", "PID 1 should run as root");
    for (program, want) in users {
        let pid = c.program_pid(program).expect("program pid");
        assert_eq!(
            uid(pid),
            want,
            "{program} (pid {pid}) runs as the wrong uid"
        );
    }
}

#[test]
fn runs_with_a_read_only_root() {
    let c = Container::run(
        "readonly",
        RunOpts {
            args: vec!["--read-only".into(), "--tmpfs".into(), "/run".into()],
            ..RunOpts::default()
        },
    );
    assert_counts(&c);
    c.wait_healthy();
}

/// What deploy/kubernetes asks for: all capabilities dropped but SETUID,
/// SETGID and KILL, no privilege escalation, read-only root, /run and /tmp in
/// memory.
#[test]
fn runs_with_the_kubernetes_security_context() {
    let args = [
        "--cap-drop=ALL",
        "--cap-add=SETUID",
        "--cap-add=SETGID",
        "--cap-add=KILL",
        "--security-opt=no-new-privileges",
        "--read-only",
        "--tmpfs=/run",
        "--tmpfs=/tmp",
    ];
    let c = Container::run(
        "k8s-secctx",
        RunOpts {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..RunOpts::default()
        },
    );
    assert_counts(&c);
    c.wait_healthy();
}
