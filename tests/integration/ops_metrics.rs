//! `GET /metrics` on the admin socket, read with a real Prometheus parser
//! (the Python `prometheus_client` package's OpenMetrics parser): the restart
//! counter follows a kill and an operator restart, probe histograms grow,
//! orphans are counted, and through the shipped stack the proxy's request
//! counters appear in the supervisor's one scrape and grow with requests.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{free_port, read_response, temp_dir, wait_for};
use crate::stack_util::{visit, Stack};
use crate::sup_util::{kill, python, script, start_in, SOON};

/// One sample: metric name (with `_total`, `_bucket`… suffix), labels, value.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses an OpenMetrics page with `prometheus_client`'s parser (which
/// refuses anything off the format: a missing or second `# EOF`, interleaved
/// families, a counter without `_total`…). Panics if the package is missing.
const PARSER: &str = r#"
import json, sys
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError as e:
    sys.stderr.write("MISSING prometheus_client: %s\n" % e)
    sys.exit(3)
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

fn parse(page: &str) -> Vec<Sample> {
    let mut child = Command::new(python())
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("python3 output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(3),
        "the Prometheus parser is missing ({stderr}): run ci/install-deps.sh test \
         (apt-get install python3-prometheus-client)"
    );
    assert!(
        out.status.success(),
        "not valid OpenMetrics: {stderr}\n--- page ---\n{page}"
    );
    serde_json::from_slice(&out.stdout).expect("parser JSON")
}

/// `GET /metrics` over the admin socket: (content type, body).
fn scrape(socket: &Path) -> (String, String) {
    let mut stream = UnixStream::connect(socket).expect("connect to the admin socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: selfheal\r\nConnection: close\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut stream).expect("an answer to GET /metrics");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let kind = resp.header("content-type").unwrap_or("").to_string();
    (kind, resp.text())
}

/// The parsed page.
pub fn samples(socket: &Path) -> Vec<Sample> {
    let (kind, page) = scrape(socket);
    assert!(
        kind.starts_with("application/openmetrics-text"),
        "content type {kind:?}"
    );
    assert_eq!(page.matches("# EOF").count(), 1, "{page}");
    assert!(page.ends_with("# EOF\n"), "{page}");
    parse(&page)
}

/// The value of `name` whose labels include every `(key, value)` of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn must(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} among {samples:#?}"))
}

fn restarts(samples: &[Sample], program: &str, reason: &str) -> f64 {
    must(
        samples,
        "selfheal_program_restarts_total",
        &[("program", program), ("reason", reason)],
    )
}

#[test]
fn restarts_probes_and_orphans_are_counted() {
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap().to_string();
    script(
        dir.path(),
        "orphans.sh",
        &format!("#!/bin/sh\nsh -c 'sleep 0.2 & echo $! > {d}/orphan.pid'\nexec sleep infinity\n"),
    );
    let sup = start_in(
        dir,
        "",
        r#"[programs.victim]
command = ["sleep", "infinity"]
restart = "always"
health = { exec = ["true"], interval = "100ms" }
[programs.maker]
command = ["@DIR@/orphans.sh"]
restart = "never"
"#,
    );
    let socket = sup.socket.clone();
    let victim = sup.wait_pid("victim");
    sup.wait_state("victim", "running", SOON);

    let first = samples(&socket);
    assert_eq!(restarts(&first, "victim", "exited"), 0.0);
    assert_eq!(
        must(&first, "selfheal_program_up", &[("program", "victim")]),
        1.0
    );
    assert_eq!(
        must(&first, "selfheal_program_ready", &[("program", "victim")]),
        1.0
    );
    let started = must(
        &first,
        "selfheal_program_start_time_seconds",
        &[("program", "victim")],
    );
    assert!(started > 1.7e9, "start time {started}");
    assert_eq!(
        value(
            &first,
            "selfheal_program_last_exit_code",
            &[("program", "victim")]
        ),
        None,
        "no exit yet"
    );
    assert!(value(&first, "selfheal_build_info", &[]).is_some());
    let probes = |s: &[Sample]| {
        must(
            s,
            "selfheal_probe_duration_seconds_count",
            &[("program", "victim")],
        )
    };
    let probes_before = probes(&first);
    assert!(probes_before >= 1.0, "{probes_before}");

    // Probes run every 100 ms: the histogram keeps growing.
    wait_for("the probe histogram to grow", SOON, || {
        (probes(&samples(&socket)) >= probes_before + 3.0).then_some(())
    });

    // An orphan of maker's process group is reaped and counted.
    wait_for("the orphan to be counted", SOON, || {
        let s = samples(&socket);
        (must(&s, "selfheal_orphans_reaped_total", &[]) >= 1.0).then_some(())
    });

    // A kill: exactly one more restart, reason "exited"; the last exit code is 128 + 9.
    kill(victim, libc::SIGKILL);
    let again = sup.wait_new_pid("victim", victim, SOON);
    let after = wait_for("the restart to be counted", SOON, || {
        let s = samples(&socket);
        (restarts(&s, "victim", "exited") >= 1.0).then_some(s)
    });
    assert_eq!(restarts(&after, "victim", "exited"), 1.0);
    assert_eq!(restarts(&after, "victim", "unhealthy"), 0.0);
    assert_eq!(restarts(&after, "victim", "operator"), 0.0);
    assert_eq!(
        must(
            &after,
            "selfheal_program_last_exit_code",
            &[("program", "victim")]
        ),
        137.0
    );
    assert_eq!(
        must(&after, "selfheal_program_up", &[("program", "victim")]),
        1.0
    );
    assert_eq!(restarts(&after, "maker", "exited"), 0.0);

    // An operator restart counts as "operator", not as a crash.
    let (code, text) = sup.cli(&["restart", "victim"]);
    assert_eq!(code, 0, "{text}");
    sup.wait_new_pid("victim", again, SOON);
    let operator = wait_for("the operator restart to be counted", SOON, || {
        let s = samples(&socket);
        (restarts(&s, "victim", "operator") >= 1.0).then_some(s)
    });
    assert_eq!(restarts(&operator, "victim", "exited"), 1.0);
    assert_eq!(restarts(&operator, "victim", "operator"), 1.0);
}

#[test]
fn a_federated_page_that_cannot_be_fetched_is_marked_and_the_scrape_still_answers() {
    let port = free_port(); // nothing listens there
    let dir = temp_dir();
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.quiet]
command = ["sleep", "infinity"]
metrics = "http://127.0.0.1:{port}/metrics"
"#
        ),
    );
    sup.wait_pid("quiet");
    let s = samples(&sup.socket);
    assert_eq!(
        must(&s, "selfheal_federation_up", &[("program", "quiet")]),
        0.0
    );
    assert_eq!(
        must(&s, "selfheal_program_up", &[("program", "quiet")]),
        1.0
    );
}

#[test]
fn the_proxys_request_counters_are_in_the_supervisors_one_scrape() {
    let stack = Stack::start();
    let socket = stack.socket();
    let code =
        |s: &[Sample], class: &str| value(s, "selfheal_proxy_requests_total", &[("code", class)]);
    // The proxy serves its page once it runs; the first scrape may precede it.
    let before = wait_for("the proxy's page in the scrape", SOON, || {
        let s = samples(&socket);
        (value(&s, "selfheal_federation_up", &[("program", "proxy")]) == Some(1.0)).then_some(s)
    });
    let ok_before = code(&before, "2xx").expect("2xx series");
    assert_eq!(code(&before, "5xx"), Some(0.0));
    let upstream = stack.app.as_str();
    assert_eq!(
        must(
            &before,
            "selfheal_proxy_upstream_up",
            &[("upstream", upstream)]
        ),
        1.0
    );
    // The supervisor's own series are in the same page.
    assert_eq!(
        must(&before, "selfheal_program_up", &[("program", "proxy")]),
        1.0
    );

    for i in 0..5 {
        let resp = visit(&stack.front, &format!("metrics-{i}")).expect("an answer");
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let after = wait_for("five more 2xx answers counted", SOON, || {
        let s = samples(&socket);
        (code(&s, "2xx")? >= ok_before + 5.0).then_some(s)
    });
    assert_eq!(code(&after, "2xx"), Some(ok_before + 5.0));
    let count = must(&after, "selfheal_proxy_request_duration_seconds_count", &[]);
    assert!(count >= ok_before + 5.0, "{count}");
    assert_eq!(must(&after, "selfheal_proxy_requests_shed_total", &[]), 0.0);

    // A surge restart of the proxy (it has `listen`): the new process binds the
    // metrics port beside the old one, the restart counts as "operator", and
    // the scrape still holds a proxy page.
    let (exit, out) = stack.cli(&["restart", "proxy"]);
    assert_eq!(exit, 0, "{out}");
    let surged = wait_for("the surge counted and the proxy's page back", SOON, || {
        let s = samples(&socket);
        (restarts(&s, "proxy", "operator") == 1.0
            && value(&s, "selfheal_federation_up", &[("program", "proxy")]) == Some(1.0)
            && value(&s, "selfheal_program_processes", &[("program", "proxy")]) == Some(1.0))
        .then_some(s)
    });
    assert_eq!(restarts(&surged, "proxy", "exited"), 0.0);
    assert!(code(&surged, "2xx").is_some());
}

#[test]
fn replicas_are_folded_into_their_program() {
    let sup = start_in(
        temp_dir(),
        "",
        r#"[programs.web]
command = ["sleep", "infinity"]
replicas = 2
"#,
    );
    let s = wait_for("both replicas up", SOON, || {
        let s = samples(&sup.socket);
        (value(&s, "selfheal_program_processes", &[("program", "web")]) == Some(2.0)).then_some(s)
    });
    assert_eq!(must(&s, "selfheal_program_up", &[("program", "web")]), 1.0);
    assert_eq!(
        must(&s, "selfheal_program_ready", &[("program", "web")]),
        1.0
    );
    assert_eq!(restarts(&s, "web", "exited"), 0.0);
    let status = sup.status();
    let pid = status["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| p["pid"].as_i64())
        .expect("a replica's pid") as i32;
    kill(pid, libc::SIGKILL);
    let after = wait_for("the replica's restart counted", SOON, || {
        let s = samples(&sup.socket);
        (restarts(&s, "web", "exited") >= 1.0
            && value(&s, "selfheal_program_processes", &[("program", "web")]) == Some(2.0))
        .then_some(s)
    });
    assert_eq!(restarts(&after, "web", "exited"), 1.0);
    assert_eq!(
        must(
            &after,
            "selfheal_program_last_exit_code",
            &[("program", "web")]
        ),
        137.0
    );
}
