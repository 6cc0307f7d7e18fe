use super::*;
use std::path::Path;
use std::time::Duration;

fn env(name: &str) -> Option<std::ffi::OsString> {
    match name {
        "SELFHEAL" => Some("/usr/bin/selfheal".into()),
        "DATA" => Some("/srv".into()),
        _ => None,
    }
}

fn parse_ok(src: &str) -> Config {
    match parse(src, Path::new("t.toml"), &env) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn parse_err(src: &str) -> Vec<Diagnostic> {
    match parse(src, Path::new("t.toml"), &env) {
        Ok(_) => panic!("expected errors"),
        Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn full_program_is_read_with_expansion_and_start_order() {
    let c = parse_ok(
        r#"
[supervisor]
shutdown_timeout = "5s"
on_give_up = "stay"
admin_socket = "${DATA}/admin.sock"

[programs.proxy]
command = ["${SELFHEAL}", "proxy"]
depends_on = { app = "healthy" }
listen = ["0.0.0.0:8080"]
restart = "always"

[programs.app]
command = ["${SELFHEAL}", "app"]
env = { A = "1" }
depends_on = { redis = "started" }
backoff = { initial = "0s", max = "2s", multiplier = 3, jitter = 0.5, reset_after = "1s" }
restart_limit = { max = 4, window = "10s" }
stop_signal = "INT"
stop_timeout = "250ms"
health = { http = "http://127.0.0.1:8000/livez", interval = "1s", timeout = "200ms", failures = 2, start_period = "3s" }

[programs.redis]
command = ["redis-server", "--dir", "${NOPE:-/data}"]
health = { redis = "redis://127.0.0.1:6379" }
"#,
    );
    let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["redis", "app", "proxy"]);
    assert_eq!(c.supervisor.on_give_up, GiveUp::Stay);
    assert_eq!(c.supervisor.admin_socket, Path::new("/srv/admin.sock"));
    let app = &c.programs[1];
    assert_eq!(app.command, ["/usr/bin/selfheal", "app"]);
    assert_eq!(app.backoff.multiplier, 3.0);
    assert_eq!(app.restart_limit.max, 4);
    assert_eq!(app.stop_signal, nix::sys::signal::Signal::SIGINT);
    let health = app.health.as_ref().unwrap();
    assert_eq!(
        health.probe,
        Probe::Http {
            authority: "127.0.0.1:8000".into(),
            path: "/livez".into()
        }
    );
    assert_eq!(health.failures, 2);
    assert_eq!(c.programs[0].command[2], "/data");
}

#[test]
fn every_error_is_reported_at_once_with_positions() {
    let d = parse_err(
        r#"[supervisor]
bogus = 1
[programs.a]
command = ["x"]
restart = "sometimes"
stop_signal = "SIGNOPE"
stop_timeout = "ten seconds"
depends_on = { ghost = "healthy" }
listen = ["127.0.0.1:9000"]
[programs.b]
command = ["y"]
colour = "red"
listen = ["127.0.0.1:9000"]
"#,
    );
    let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
    assert!(fields.contains(&"supervisor.bogus"), "{d:?}");
    assert!(fields.contains(&"programs.a.restart"), "{d:?}");
    assert!(fields.contains(&"programs.a.stop_signal"), "{d:?}");
    assert!(fields.contains(&"programs.a.stop_timeout"), "{d:?}");
    assert!(fields.contains(&"programs.b.colour"), "{d:?}");
    let bogus = d.iter().find(|d| d.field == "supervisor.bogus").unwrap();
    assert_eq!((bogus.line, bogus.column), (2, 1));
    let restart = d.iter().find(|d| d.field == "programs.a.restart").unwrap();
    assert_eq!((restart.line, restart.column), (5, 11));
}

#[test]
fn graph_errors_unknown_dependency_and_duplicate_listen() {
    let d = parse_err(
        r#"[programs.a]
command = ["x"]
depends_on = { ghost = "healthy" }
listen = ["127.0.0.1:9000"]
[programs.b]
command = ["y"]
listen = ["127.0.0.1:9000"]
"#,
    );
    assert!(
        d.iter()
            .any(|d| d.field == "programs.a.depends_on.ghost" && d.line == 3),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|d| d.field == "programs.b.listen" && d.message.contains("duplicate")),
        "{d:?}"
    );
}

#[test]
fn cycles_are_named() {
    let d = parse_err(
        r#"[programs.a]
command = ["x"]
depends_on = { b = "started" }
[programs.b]
command = ["y"]
depends_on = { a = "healthy" }
[programs.c]
command = ["z"]
"#,
    );
    assert!(
        d.iter()
            .any(|d| d.message.contains("dependency cycle: a -> b -> a")),
        "{d:?}"
    );
}

#[test]
fn health_needs_exactly_one_probe_and_unset_variables_are_errors() {
    let d = parse_err(
        r#"[programs.a]
command = ["${UNSET_VAR}"]
health = { tcp = "127.0.0.1:1", http = "http://127.0.0.1:1/" }
[programs.b]
command = ["b"]
health = { interval = "1s" }
"#,
    );
    assert!(
        d.iter()
            .any(|d| d.field == "programs.a.command" && d.message.contains("UNSET_VAR")),
        "{d:?}"
    );
    assert!(d.iter().any(|d| d.field == "programs.a.health"), "{d:?}");
    assert!(d.iter().any(|d| d.field == "programs.b.health"), "{d:?}");
}

#[test]
fn syntax_errors_have_positions() {
    let d = parse_err("[programs.a]\ncommand = [\"x\"\n");
    assert_eq!(d[0].field, "(syntax)");
    assert_eq!(d[0].line, 2);
}

#[test]
fn a_cycle_is_reported_beside_an_unknown_dependency() {
    let d = parse_err(
        r#"[programs.a]
command = ["x"]
depends_on = { b = "started", ghost = "started" }
[programs.b]
command = ["y"]
depends_on = { a = "healthy" }
"#,
    );
    assert!(
        d.iter().any(|d| d.message.contains("unknown program")),
        "{d:?}"
    );
    assert!(
        d.iter().any(|d| d.message.contains("dependency cycle")),
        "{d:?}"
    );
}

#[test]
fn absurd_durations_are_refused_before_they_can_overflow_a_deadline() {
    let d = parse_err(
        r#"[programs.a]
command = ["x"]
stop_timeout = "500000000years"
"#,
    );
    assert!(
        d.iter().any(|d| d.field == "programs.a.stop_timeout"),
        "{d:?}"
    );
}

#[test]
fn env_names_and_nul_bytes_that_no_exec_can_carry_are_errors() {
    let d = parse_err(
        r#"[programs.a]
command = ["x", "a\u0000b"]
env = { "A=B" = "1", "" = "2", OK = "v\u0000" }
workdir = "/tmp\u0000"
"#,
    );
    let at = |field: &str| {
        d.iter()
            .find(|d| d.field == field)
            .map(|d| (d.line, d.column))
    };
    assert_eq!(at("programs.a.command"), Some((2, 17)), "{d:?}");
    assert_eq!(at("programs.a.env.\"A=B\""), Some((3, 9)), "{d:?}");
    assert_eq!(at("programs.a.env.\"\""), Some((3, 22)), "{d:?}");
    assert_eq!(at("programs.a.env.OK"), Some((3, 37)), "{d:?}");
    assert_eq!(at("programs.a.workdir"), Some((4, 11)), "{d:?}");
}

#[test]
fn parsing_asks_the_host_nothing() {
    // A user, a binary and a workdir that exist nowhere: parsing is pure, so
    // they pass here; the host checks are `preflight`'s.
    let c = parse_ok(
        r#"[programs.a]
command = ["/nonexistent/x"]
workdir = "/nonexistent"
user = "selfheal-no-such-user"
"#,
    );
    assert!(c.warnings.is_empty());
}

#[test]
fn more_listen_addresses_than_a_child_can_inherit_are_an_error() {
    let addrs: Vec<String> = (1..=17).map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let d = parse_err(&format!(
        "[programs.a]\ncommand = [\"x\"]\nlisten = [{}]\n",
        addrs.join(", ")
    ));
    assert!(
        d.iter().any(|d| d.field == "programs.a.listen"
            && (d.line, d.column) == (3, 10)
            && d.message.contains("at most 16")),
        "{d:?}"
    );
}

#[test]
fn programs_sharing_a_command_each_get_their_findings() {
    // The host checks remember answers per command and user; every program
    // still gets the finding at its own position.
    let host = Host {
        path_var: Some("/usr/bin:/bin".into()),
        root: false,
        nofile: None,
    };
    let src = r#"[programs.a]
command = ["selfheal-no-such-binary"]
user = "selfheal-no-such-user"
[programs.b]
command = ["selfheal-no-such-binary"]
user = "selfheal-no-such-user"
"#;
    let c = match parse_checked(src, Path::new("t.toml"), &env, &host) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    };
    let at: Vec<(usize, &str)> = c
        .warnings
        .iter()
        .map(|d| (d.line, d.field.as_str()))
        .collect();
    assert_eq!(
        at,
        [
            (2, "programs.a.command"),
            (3, "programs.a.user"),
            (5, "programs.b.command"),
            (6, "programs.b.user")
        ],
        "{:?}",
        c.warnings
    );
}

#[test]
fn start_order_puts_the_earliest_ready_program_first() {
    let c = parse_ok(
        r#"[programs.a]
command = ["x"]
depends_on = { d = "started" }
[programs.b]
command = ["x"]
[programs.c]
command = ["x"]
depends_on = { a = "started", b = "healthy" }
[programs.d]
command = ["x"]
[programs.e]
command = ["x"]
"#,
    );
    let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["b", "d", "a", "c", "e"]);
}

#[test]
fn a_main_program_runs_once_unless_its_restart_is_given() {
    let c = parse_ok(
        r#"
[programs.job]
command = ["job"]
main = true

[programs.side]
command = ["side"]
"#,
    );
    assert!(c.programs[0].main);
    assert_eq!(c.programs[0].restart, RestartPolicy::Never);
    assert_eq!(c.programs[1].restart, RestartPolicy::OnFailure);
    let c = parse_ok("[programs.job]\ncommand = [\"job\"]\nmain = true\nrestart = \"always\"\n");
    assert_eq!(c.programs[0].restart, RestartPolicy::Always);
}

#[test]
fn upstreams_name_programs_with_positions_for_each_problem() {
    let c = parse_ok(
        r#"[programs.app]
command = ["x"]
[programs.proxy]
command = ["y"]
upstreams = ["app"]
"#,
    );
    let proxy = c.programs.iter().find(|p| p.name == "proxy").unwrap();
    assert_eq!(proxy.upstreams, ["app"]);
    let d = parse_err(
        r#"[programs.app]
command = ["x"]
[programs.proxy]
command = ["y"]
upstreams = ["app", "ghost", "proxy", "app"]
"#,
    );
    let found: Vec<(usize, usize, &str)> = d
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert!(
        found
            .iter()
            .any(|(l, c, m)| (*l, *c) == (5, 21) && m.starts_with("unknown program \"ghost\"")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(l, c, m)| (*l, *c) == (5, 30) && m.contains("cannot front itself")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(l, c, m)| (*l, *c) == (5, 39) && m.contains("listed twice")),
        "{found:?}"
    );
    let d = parse_err("[programs.p]\ncommand = [\"y\"]\nupstreams = \"app\"\n");
    assert!(
        d.iter()
            .any(|d| d.field == "programs.p.upstreams" && d.line == 3),
        "{d:?}"
    );
}

#[test]
fn max_memory_is_a_size_above_zero() {
    let c = parse_ok("[programs.a]\ncommand = [\"x\"]\nmax_memory = \"256MiB\"\n");
    assert_eq!(c.programs[0].max_memory, Some(256 << 20));
    for bad in ["\"0\"", "\"lots\"", "-1"] {
        let d = parse_err(&format!(
            "[programs.a]\ncommand = [\"x\"]\nmax_memory = {bad}\n"
        ));
        assert!(
            d.iter()
                .any(|d| d.field == "programs.a.max_memory" && (d.line, d.column) == (3, 14)),
            "{bad}: {d:?}"
        );
    }
}

#[test]
fn traffic_health_has_defaults_and_checked_fields() {
    let c = parse_ok("[programs.a]\ncommand = [\"x\"]\ntraffic_health = { errors = 5 }\n");
    let h = c.programs[0].traffic_health.unwrap();
    assert_eq!(
        (h.errors, h.window, h.ratio),
        (5, Duration::from_secs(10), 0.5)
    );
    let d = parse_err(
        "[programs.a]\ncommand = [\"x\"]\ntraffic_health = { errors = 0, window = \"0s\", ratio = 2.0, other = 1 }\n",
    );
    for field in ["errors", "window", "ratio", "other"] {
        assert!(
            d.iter()
                .any(|d| d.field == format!("programs.a.traffic_health.{field}") && d.line == 3),
            "{field}: {d:?}"
        );
    }
}

#[test]
fn admin_listen_needs_a_token_off_loopback() {
    let prog = "[programs.a]\ncommand = [\"true\"]\n";
    let c = parse_ok(&format!(
        "[supervisor]\nadmin_listen = \"127.0.0.1:9100\"\nadmin_public = [\"metrics\", \"readyz\", \"metrics\"]\n{prog}"
    ));
    assert_eq!(
        c.supervisor.admin_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    assert_eq!(
        c.supervisor.admin_public,
        [PublicRoute::Metrics, PublicRoute::Readyz]
    );
    assert!(c.supervisor.admin_token.is_none());
    let c = parse_ok(&format!(
        "[supervisor]\nadmin_listen = \"0.0.0.0:9100\"\nadmin_token_file = \"/run/secrets/t\"\n{prog}"
    ));
    assert_eq!(
        c.supervisor.admin_token_file.as_deref(),
        Some(Path::new("/run/secrets/t"))
    );
    // Parsing is pure: the token is read by the host checks only.
    assert!(c.supervisor.admin_token.is_none());

    let d = parse_err(&format!(
        "[supervisor]\n  admin_listen = \"0.0.0.0:9100\"\nadmin_public = [\"status\"]\n{prog}"
    ));
    assert_eq!((d[0].line, d[0].column), (2, 3), "{d:?}");
    assert_eq!(d[0].field, "supervisor.admin_listen");
    assert!(d[0].message.contains("not a loopback address"), "{d:?}");
    assert_eq!((d[1].line, d[1].column), (3, 17), "{d:?}");
    assert!(d[1].message.contains("unknown route \"status\""), "{d:?}");
    let d = parse_err(&format!("[supervisor]\nadmin_listen = \"nowhere\"\n{prog}"));
    assert!(d[0].message.contains("invalid address"), "{d:?}");
}

#[test]
fn admin_token_file_is_read_by_the_host_checks() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::current();
    let check = |token: Option<&str>| {
        let file = dir.path().join("token");
        let _ = std::fs::remove_file(&file);
        if let Some(t) = token {
            std::fs::write(&file, t).unwrap();
        }
        let src = format!(
            "[supervisor]\nadmin_listen = \"[::]:9100\"\nadmin_token_file = \"{}\"\n[programs.a]\ncommand = [\"/bin/true\"]\n",
            file.display()
        );
        parse_checked(&src, Path::new("t.toml"), &env, &host)
    };
    let c = check(Some("  abc123==\n")).unwrap();
    assert_eq!(
        c.supervisor.admin_token.as_ref().map(|t| t.expose()),
        Some("abc123==")
    );
    for (content, needle) in [
        (None, "cannot read"),
        (Some("\n"), "empty"),
        (Some("two words"), "letters, digits"),
    ] {
        match check(content) {
            Err(ConfigError::Invalid { diagnostics, .. }) => {
                let d = &diagnostics[0];
                assert_eq!((d.line, d.column), (3, 20), "{diagnostics:?}");
                assert_eq!(d.field, "supervisor.admin_token_file");
                assert!(d.message.contains(needle), "{diagnostics:?}");
            }
            other => panic!("expected an error for {content:?}, got {other:?}"),
        }
    }
}

#[test]
fn a_metrics_url_is_read_and_a_bad_one_is_reported_where_it_is() {
    let c = parse_ok(
        r#"[programs.proxy]
command = ["p"]
metrics = "http://127.0.0.1:9101/metrics"
[programs.app]
command = ["a"]
"#,
    );
    let proxy = c.programs.iter().find(|p| p.name == "proxy").unwrap();
    assert_eq!(
        proxy.metrics,
        Some(MetricsUrl {
            authority: "127.0.0.1:9101".into(),
            path: "/metrics".into()
        })
    );
    let app = c.programs.iter().find(|p| p.name == "app").unwrap();
    assert_eq!(app.metrics, None);

    let d = parse_err("[programs.a]\ncommand = [\"a\"]\nmetrics = \"https://x:1/\"\n");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].field.as_str(), d[0].line), ("programs.a.metrics", 3));
    assert!(d[0].message.contains("http://HOST:PORT/PATH"), "{d:?}");
}
