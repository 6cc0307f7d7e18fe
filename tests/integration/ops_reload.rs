//! Changing the running stack without dropping a request: reload (unchanged,
//! added, removed, invalid, SIGHUP), the zero-downtime restart, replicas,
//! rolling restarts and scaling — each under a steady stream of requests
//! through the proxy of the shipped stack, counting failures and latency.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::{get, temp_dir, wait_for};
use crate::stack_util::{shipped_config, Ports, Stack};
use crate::sup_util::{kill, SOON};

/// What one request of the load saw.
#[derive(Debug, Clone)]
struct Shot {
    status: u16,
    took: Duration,
    pid: Option<u64>,
}

/// A steady stream of keyed GETs through the proxy (one every `every`).
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<JoinHandle<Vec<Shot>>>,
}

impl Load {
    fn start(front: &str, every: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count, front) = (stop.clone(), sent.clone(), front.to_string());
        let thread = std::thread::spawn(move || {
            let mut shots = Vec::new();
            let mut next = Instant::now();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let id = format!("load-{}-{n}", std::process::id());
                let started = Instant::now();
                let headers = [
                    ("X-Request-Id", id.as_str()),
                    ("Accept", "application/json"),
                ];
                let answer = get(&front, "/", &headers);
                let took = started.elapsed();
                let status = answer.as_ref().map_or(0, |r| r.status);
                let pid = answer
                    .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
                    .and_then(|v| v["instance"]["pid"].as_u64());
                shots.push(Shot { status, took, pid });
                count.fetch_add(1, Ordering::Relaxed);
                next += every;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait); // pacing the load, not waiting for a condition
                }
            }
            shots
        });
        Load {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Waits until `n` more requests have been answered.
    fn wait_more(&self, n: usize) {
        let target = self.sent.load(Ordering::Relaxed) + n;
        wait_for(&format!("{n} more requests"), SOON, || {
            (self.sent.load(Ordering::Relaxed) >= target).then_some(())
        });
    }

    /// Stops the load; asserts no request failed and none took longer than
    /// `slowest`; returns what it saw.
    fn finish(mut self, slowest: Duration) -> Vec<Shot> {
        self.stop.store(true, Ordering::Relaxed);
        let shots = self
            .thread
            .take()
            .map(|t| t.join().expect("load thread"))
            .unwrap_or_default();
        let failed: Vec<&Shot> = shots.iter().filter(|s| s.status != 200).collect();
        assert!(
            failed.is_empty(),
            "{} of {} requests failed: {failed:?}",
            failed.len(),
            shots.len()
        );
        let max = shots.iter().map(|s| s.took).max().unwrap_or_default();
        assert!(max <= slowest, "slowest request {max:?} > {slowest:?}");
        assert!(shots.len() > 20, "only {} requests sent", shots.len());
        shots
    }
}

/// The shipped config copied into `dir`, with `edit` applied to its text.
fn edited_config(dir: &Path, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(shipped_config()).expect("read supervisor.toml");
    let path = dir.join("supervisor.toml");
    std::fs::write(&path, edit(&text)).expect("write the edited config");
    path
}

/// The stack from an edited copy of the shipped config (the copy is what
/// `reload` re-reads).
fn stack_with(edit: impl Fn(&str) -> String) -> (Stack, PathBuf) {
    let dir = temp_dir();
    let config = edited_config(dir.path(), edit);
    let stack = Stack::start_from(&config, dir, Ports::free(), &[]);
    (stack, config)
}

/// name → pid of every instance.
fn pids(stack: &Stack) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = stack.status()["programs"]
        .as_array()
        .expect("programs")
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["pid"].as_i64()?)))
        .collect();
    out.sort();
    out
}

fn cli_all(stack: &Stack, args: &[&str]) -> (i32, String) {
    crate::sup_util::cli_at(&stack.socket(), args)
}

/// The shipped stack with `replicas = 3` for the app.
fn three_app_replicas() -> (Stack, PathBuf) {
    stack_with(|t| {
        t.replace(
            r#"replicas = "${SELFHEAL_APP_REPLICAS:-1}""#,
            "replicas = 3",
        )
    })
}

/// Waits until `program` has `n` instances, all running and ready, none retiring.
fn wait_instances(stack: &Stack, program: &str, n: usize) -> Vec<i64> {
    wait_for(&format!("{n} ready instances of {program}"), SOON, || {
        let status = stack.status();
        let all: Vec<&serde_json::Value> = status["programs"]
            .as_array()?
            .iter()
            .filter(|p| p["program"] == program)
            .collect();
        let ready = all
            .iter()
            .all(|p| p["ready"] == true && p["retiring"] == false);
        let pids: Vec<i64> = all.iter().filter_map(|p| p["pid"].as_i64()).collect();
        (ready && all.len() == n && pids.len() == n).then_some(pids)
    })
}

const ADDED: &str = "\n[programs.extra]\ncommand = [\"sleep\", \"infinity\"]\n";

#[test]
fn reload_touches_nothing_unchanged_adds_and_removes_and_refuses_an_invalid_config() {
    let (stack, config) = stack_with(|t| t.to_string());
    let before = pids(&stack);
    let (code, text) = cli_all(&stack, &["reload"]);
    assert_eq!(code, 0, "{text}");
    for program in ["redis", "app", "proxy"] {
        assert!(text.contains(&format!("{program}: unchanged")), "{text}");
    }
    assert_eq!(pids(&stack), before, "an unchanged reload touched a pid");

    // Adding a program starts only it.
    let shipped = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{shipped}{ADDED}")).unwrap();
    let (code, text) = cli_all(&stack, &["reload"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("extra: added"), "{text}");
    wait_instances(&stack, "extra", 1);
    let with_extra = pids(&stack);
    for (name, pid) in &before {
        assert!(
            with_extra.contains(&(name.clone(), *pid)),
            "{name} was touched"
        );
    }

    // An invalid config changes nothing and says why, with line and column.
    std::fs::write(
        &config,
        format!("{shipped}{ADDED}restart = \"sometimes\"\nbogus = 1\n"),
    )
    .unwrap();
    let (code, text) = cli_all(&stack, &["reload"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("supervisor.toml:"), "{text}");
    assert!(
        text.contains("restart") && text.contains("bogus"),
        "both errors at once: {text}"
    );
    assert_eq!(
        pids(&stack),
        with_extra,
        "an invalid config changed something"
    );

    // Removing it stops it, and it leaves the status.
    std::fs::write(&config, &shipped).unwrap();
    let extra_pid = with_extra.iter().find(|(n, _)| n == "extra").unwrap().1;
    let (code, text) = cli_all(&stack, &["reload"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("extra: removed"), "{text}");
    wait_for("extra to leave the status", SOON, || {
        pids(&stack).iter().all(|(n, _)| n != "extra").then_some(())
    });
    assert!(!crate::sup_util::alive(extra_pid as i32));
    assert_eq!(pids(&stack), before);
}

#[test]
fn sighup_reloads_and_kills_no_program() {
    let (stack, config) = stack_with(|t| t.to_string());
    let before = pids(&stack);
    let shipped = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{shipped}{ADDED}")).unwrap();
    kill(stack.proc.pid(), libc::SIGHUP);
    wait_instances(&stack, "extra", 1);
    stack
        .proc
        .wait_output("received SIGHUP: reloading the config", SOON);
    let after = pids(&stack);
    for (name, pid) in &before {
        assert!(
            after.contains(&(name.clone(), *pid)),
            "{name} was touched by SIGHUP"
        );
    }
}

#[test]
fn restart_of_the_app_under_load_fails_no_request() {
    let (stack, _) = stack_with(|t| t.to_string());
    let old = wait_instances(&stack, "app", 1);
    let load = Load::start(&stack.front, Duration::from_millis(5));
    load.wait_more(50);
    let (code, text) = cli_all(&stack, &["restart", "app"]);
    assert_eq!(code, 0, "{text}");
    // `restart` returned once the new process was ready: it is there now.
    let app: Vec<serde_json::Value> = stack.status()["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "app" && p["retiring"] == false)
        .cloned()
        .collect();
    assert_eq!(app.len(), 1, "{app:?}");
    assert_eq!(app[0]["ready"], true, "{app:?}");
    let new = vec![app[0]["pid"].as_i64().unwrap()];
    assert_ne!(new, old);
    load.wait_more(50);
    let shots = load.finish(Duration::from_millis(100));
    let served: std::collections::BTreeSet<u64> = shots.iter().filter_map(|s| s.pid).collect();
    assert!(served.contains(&(old[0] as u64)), "{served:?}");
    assert!(served.contains(&(new[0] as u64)), "{served:?}");
    assert!(!crate::sup_util::alive(old[0] as i32));
}

#[test]
fn three_replicas_answer_and_a_killed_one_costs_no_request() {
    let (stack, _) = three_app_replicas();
    let pids = wait_instances(&stack, "app", 3);
    let names: Vec<String> = pids_names(&stack, "app");
    assert_eq!(names, ["app#0", "app#1", "app#2"]);
    let load = Load::start(&stack.front, Duration::from_millis(5));
    // The kernel spreads connections over the processes accepting on the
    // shared socket: concurrent connections reach every replica.
    wait_for("answers from three distinct app processes", SOON, || {
        let seen = concurrent_pids(&stack.app, 4, 30);
        (seen.len() == 3).then_some(())
    });
    kill(pids[1] as i32, libc::SIGKILL);
    wait_for("app#1 to be replaced", SOON, || {
        let now = wait_instances(&stack, "app", 3);
        (!now.contains(&pids[1])).then_some(())
    });
    load.wait_more(50);
    load.finish(Duration::from_millis(500));
}

/// The app pids that answered `per_thread` requests on fresh connections
/// from each of `threads` threads at once.
fn concurrent_pids(
    addr: &str,
    threads: usize,
    per_thread: usize,
) -> std::collections::BTreeSet<u64> {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                (0..per_thread)
                    .filter_map(|i| {
                        let id = format!("spread-{t}-{i}");
                        let headers = [
                            ("X-Request-Id", id.as_str()),
                            ("Accept", "application/json"),
                        ];
                        let r = get(&addr, "/", &headers)?;
                        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
                        v["instance"]["pid"].as_u64()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect()
}

fn pids_names(stack: &Stack, program: &str) -> Vec<String> {
    let mut names: Vec<String> = stack.status()["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["program"] == program)
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

#[test]
fn a_rolling_restart_and_scaling_under_load_fail_no_request() {
    let (stack, _) = three_app_replicas();
    let old = wait_instances(&stack, "app", 3);
    let load = Load::start(&stack.front, Duration::from_millis(5));
    let (code, text) = cli_all(&stack, &["restart", "app"]);
    assert_eq!(code, 0, "{text}");
    let new = wait_for("every replica replaced", Duration::from_secs(30), || {
        let now = wait_instances(&stack, "app", 3);
        now.iter().all(|p| !old.contains(p)).then_some(now)
    });
    assert_eq!(new.len(), 3);
    stack.proc.wait_output("app: restart done", SOON);

    let (code, text) = cli_all(&stack, &["scale", "app", "1"]);
    assert_eq!(code, 0, "{text}");
    wait_instances(&stack, "app", 1);
    let (code, text) = cli_all(&stack, &["scale", "app", "4"]);
    assert_eq!(code, 0, "{text}");
    wait_instances(&stack, "app", 4);
    assert_eq!(
        pids_names(&stack, "app"),
        ["app#0", "app#1", "app#2", "app#3"]
    );
    load.finish(Duration::from_millis(100));
}

#[test]
fn signal_reaches_one_programs_group_only() {
    let (stack, _) = stack_with(|t| {
        format!(
            "{t}\n[programs.listener]\ncommand = [\"sh\", \"-c\", \"trap 'echo got-usr1' USR1; while :; do sleep 0.05; done\"]\n"
        )
    });
    wait_instances(&stack, "listener", 1);
    let before = pids(&stack);
    let (code, text) = cli_all(&stack, &["signal", "listener", "USR1"]);
    assert_eq!(code, 0, "{text}");
    stack.proc.wait_output("got-usr1", SOON);
    assert_eq!(pids(&stack), before);
    let (code, text) = cli_all(&stack, &["signal", "nobody", "USR1"]);
    assert_ne!(code, 0, "{text}");
}

#[test]
fn each_replica_gets_its_number_in_its_command_and_environment() {
    let sup = crate::sup_util::start(
        "",
        r#"[programs.worker]
command = ["sh", "-c", "echo replica-${SELFHEAL_REPLICA}-env-$SELFHEAL_REPLICA-$TAG; exec sleep infinity"]
env = { TAG = "tag${SELFHEAL_REPLICA}" }
replicas = 3
"#,
    );
    for i in 0..3 {
        sup.proc
            .wait_output(&format!("replica-{i}-env-{i}-tag{i}"), SOON);
    }
    let (code, text) = sup.cli(&["scale", "worker", "4"]);
    assert_eq!(code, 0, "{text}");
    sup.proc.wait_output("replica-3-env-3-tag3", SOON);
    // `logs worker` is every instance's output; `-n 1` the last line of each.
    let (code, text) = sup.cli(&["logs", "worker", "-n", "1"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("replica-")).count(),
        4,
        "{text}"
    );
    // One instance by name, in the CLI too (`#` is not a URL fragment).
    let one = sup.program("worker#2")["pid"].as_i64().unwrap();
    let (code, text) = sup.cli(&["restart", "worker#2"]);
    assert_eq!(code, 0, "{text}");
    assert_ne!(sup.program("worker#2")["pid"].as_i64().unwrap(), one);
}

/// A surge's new process that takes a while to listen is ready when it
/// listens, not a probe interval later (a pass answered by the old process is
/// dropped and the probe goes back to its fast start-up schedule).
#[test]
fn a_slow_starting_surge_is_ready_when_it_listens_not_a_probe_interval_later() {
    let port = crate::harness::free_port();
    let sup = crate::sup_util::start(
        "",
        &format!(
            r#"[programs.web]
command = ["sh", "-c", "sleep 0.3; exec {bin} app --listen 127.0.0.1:{port} --redis redis://127.0.0.1:1"]
listen = ["127.0.0.1:{port}"]
health = {{ http = "http://127.0.0.1:{port}/livez", interval = "10s", timeout = "1s" }}
"#,
            bin = crate::harness::BIN
        ),
    );
    wait_for("web ready", SOON, || {
        (sup.program("web")["ready"] == true).then_some(())
    });
    let started = Instant::now();
    let (code, text) = sup.cli(&["restart", "web"]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{text}");
    assert!(
        took < Duration::from_secs(3),
        "restart took {took:?} (probe interval 10 s)"
    );
    assert!(
        took >= Duration::from_millis(300),
        "ready before it could listen: {took:?}"
    );
}

/// A server that accepts without epoll (Python's socketserver polls) is not
/// seen accepting in /proc: its surge still completes, after a second.
#[test]
fn a_surge_of_a_server_without_epoll_completes() {
    let port = crate::harness::free_port();
    let server = r#"import socket, socketserver, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a): pass
s = socketserver.TCPServer(('127.0.0.1', 0), H, bind_and_activate=False)
s.socket = socket.socket(fileno=3)
s.serve_forever()
"#;
    let dir = crate::harness::temp_dir();
    std::fs::write(dir.path().join("server.py"), server).unwrap();
    let sup = crate::sup_util::start_in(
        dir,
        "",
        &format!(
            r#"[programs.web]
command = ["{python}", "@DIR@/server.py"]
listen = ["127.0.0.1:{port}"]
health = {{ http = "http://127.0.0.1:{port}/", interval = "200ms", timeout = "1s" }}
"#,
            python = crate::sup_util::python()
        ),
    );
    let old = sup.wait_pid("web");
    wait_for("web ready", SOON, || {
        (sup.program("web")["ready"] == true).then_some(())
    });
    let (code, text) = sup.cli(&["restart", "web"]);
    assert_eq!(code, 0, "{text}");
    let new = sup.wait_pid("web");
    assert_ne!(new, old, "{text}");
}

/// A removed program's held socket is closed once its process is gone (a
/// connection is refused, the port can be bound again), and adding it back is
/// an addition.
#[test]
fn a_removed_program_releases_its_socket_and_comes_back_as_added() {
    let port = crate::harness::free_port();
    let listener = format!(
        "\n[programs.held]\ncommand = [\"sleep\", \"infinity\"]\nlisten = [\"127.0.0.1:{port}\"]\n"
    );
    let dir = crate::harness::temp_dir();
    let sup = crate::sup_util::start_in(dir, "", &listener);
    sup.wait_pid("held");
    let config = sup.config.clone();
    let with = std::fs::read_to_string(&config).unwrap();
    let without = with.replace(
        &listener,
        "\n[programs.other]\ncommand = [\"sleep\", \"infinity\"]\n",
    );
    std::fs::write(&config, &without).unwrap();
    let (code, text) = sup.cli(&["reload"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("held: removed"), "{text}");
    wait_for("the removed program's socket to close", SOON, || {
        std::net::TcpListener::bind(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
    let (_, again) = sup.cli(&["reload"]);
    assert!(
        !again.contains("held"),
        "a removed program is forgotten: {again}"
    );
    std::fs::write(&config, &with).unwrap();
    let (code, text) = sup.cli(&["reload"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("held: added"), "{text}");
}

/// A surge's new process without a probe must stay up a second before the
/// old one is stopped: one that cannot start never costs the serving one.
#[test]
fn a_probeless_surge_that_cannot_start_leaves_the_old_process_serving() {
    let port = crate::harness::free_port();
    let dir = crate::harness::temp_dir();
    let marker = dir.path().join("broken");
    let sup = crate::sup_util::start_in(
        dir,
        "",
        &format!(
            r#"[programs.web]
command = ["sh", "-c", "test -e {marker} && exit 2; exec sleep infinity"]
listen = ["127.0.0.1:{port}"]
"#,
            marker = marker.display()
        ),
    );
    let old = sup.wait_pid("web");
    std::fs::write(&marker, "").unwrap();
    let (code, text) = sup.cli(&["restart", "web"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        crate::sup_util::alive(old),
        "the old process was stopped: {text}"
    );
    assert_eq!(sup.wait_pid("web"), old);
}
