//! The admin API's streams over the real unix socket: `GET /events` (SSE) sees
//! a kill, the restart and readiness in order; `GET /logs` gives the last N
//! lines, honours `since_ms`, follows new lines and stays within its ring;
//! `--log-format json` carries typed events and embeds a program's JSON lines.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{selfheal, wait_for};
use crate::sup_util::{kill, start, write_config, SOON};

/// Sends `GET path` as HTTP/1.0 (so the answer is close-delimited, never
/// chunked) and returns the status code and a reader at the start of the body.
fn admin_get(socket: &Path, path: &str) -> (u16, BufReader<UnixStream>) {
    let mut stream = UnixStream::connect(socket).expect("connect to the admin socket");
    stream
        .set_read_timeout(Some(SOON))
        .expect("set a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: selfheal\r\n\r\n").expect("send the request");
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("read the status line");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status:?}"));
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a header");
        if line == "\r\n" || line.is_empty() {
            return (code, reader);
        }
    }
}

/// The whole (finite) body as JSON lines.
fn ndjson(socket: &Path, path: &str) -> (u16, Vec<serde_json::Value>) {
    let (code, mut reader) = admin_get(socket, path);
    let mut body = String::new();
    reader.read_to_string(&mut body).expect("read the body");
    if code != 200 {
        return (code, vec![serde_json::json!({ "error": body })]);
    }
    let lines = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    (code, lines)
}

/// Reads server-sent events until `done` says stop or `timeout` passes;
/// returns each event's `data` as JSON.
fn read_events(
    reader: &mut BufReader<UnixStream>,
    timeout: Duration,
    mut done: impl FnMut(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline && !done(&seen) {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(data) = line.strip_prefix("data:") {
            let value = serde_json::from_str(data.trim()).expect("event data is JSON");
            seen.push(value);
        }
    }
    seen
}

fn kinds_of(events: &[serde_json::Value], program: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["program"] == program)
        .filter_map(|e| e["kind"].as_str().map(String::from))
        .collect()
}

#[test]
fn the_event_stream_shows_a_kill_the_backoff_and_the_ready_again() {
    let sup = start(
        "",
        r#"[programs.svc]
command = ["sleep", "infinity"]
restart = "always"
backoff = { initial = "200ms", reset_after = "1h" }
health = { exec = ["true"], interval = "100ms", timeout = "1s" }
"#,
    );
    sup.wait_state("svc", "running", SOON);
    wait_for("svc to be ready", SOON, || {
        sup.program("svc")["ready"].as_bool().filter(|r| *r)
    });
    // The kept events replay what already happened.
    let (code, mut past) = admin_get(&sup.socket, "/events?recent=50");
    assert_eq!(code, 200);
    let early = read_events(&mut past, SOON, |seen| {
        kinds_of(seen, "svc").contains(&"ready".to_string())
    });
    let kinds = kinds_of(&early, "svc");
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("started"),
        "{early:?}"
    );
    assert!(kinds.contains(&"ready".into()), "{early:?}");

    let (code, mut live) = admin_get(&sup.socket, "/events");
    assert_eq!(code, 200);
    let pid = sup.wait_pid("svc");
    kill(pid, libc::SIGKILL);
    let events = read_events(&mut live, SOON, |seen| {
        let kinds = kinds_of(seen, "svc");
        kinds
            .iter()
            .skip_while(|k| *k != "exited")
            .any(|k| k == "ready")
    });
    let kinds = kinds_of(&events, "svc");
    let from_exit: Vec<&str> = kinds
        .iter()
        .map(String::as_str)
        .skip_while(|k| *k != "exited")
        .collect();
    assert_eq!(
        from_exit,
        ["exited", "backoff", "started", "ready"],
        "{events:#?}"
    );
    let exited = events
        .iter()
        .find(|e| e["kind"] == "exited")
        .expect("an exited event");
    assert_eq!(exited["pid"], pid);
    assert_eq!(exited["signal"], "SIGKILL");
    assert_eq!(exited["code"], 128 + 9);
    assert_eq!(exited["next"], "restart");
    assert!(
        exited["delay_ms"].as_u64().is_some_and(|d| d >= 100),
        "{exited}"
    );
    let backoff = events
        .iter()
        .find(|e| e["kind"] == "backoff")
        .expect("a backoff event");
    assert_eq!(backoff["delay_ms"], exited["delay_ms"]);
    assert!(backoff["until"]
        .as_str()
        .is_some_and(|t| humantime::parse_rfc3339(t).is_ok()));
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn logs_give_the_last_lines_honour_since_and_follow_new_ones() {
    let sup = start(
        "",
        r#"[programs.talker]
command = ["sh", "-c", "for i in $(seq 1 50); do echo line$i; done; echo incarnation-$$$$; exec sleep infinity"]
restart = "always"
[programs.quiet]
command = ["sleep", "infinity"]
"#,
    );
    let first = sup.wait_pid("talker");
    sup.proc.wait_output(&format!("incarnation-{first}"), SOON);

    let (code, lines) = ndjson(&sup.socket, "/logs?program=talker&n=5");
    assert_eq!(code, 200, "{lines:?}");
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["line"].as_str()).collect();
    let expected = format!("incarnation-{first}");
    assert_eq!(
        texts,
        ["line47", "line48", "line49", "line50", expected.as_str()]
    );
    assert!(lines.iter().all(|l| l["program"] == "talker"));
    assert!(lines
        .iter()
        .all(|l| l["ts"].as_str().is_some_and(|t| t.ends_with('Z'))));

    let future = lines[0]["ts_ms"].as_u64().unwrap() + 3_600_000;
    let (_, none) = ndjson(&sup.socket, &format!("/logs?since_ms={future}"));
    assert!(none.is_empty(), "{none:?}");
    let (code, _) = ndjson(&sup.socket, "/logs?program=nobody");
    assert_eq!(code, 404);
    let (code, _) = ndjson(&sup.socket, "/logs?tail=3");
    assert_eq!(code, 400);

    // Follow: a line printed after the request started arrives on the stream.
    let (code, mut follow) = admin_get(&sup.socket, "/logs?program=talker&n=0&follow=true");
    assert_eq!(code, 200);
    kill(first, libc::SIGKILL);
    let second = sup.wait_new_pid("talker", first, SOON);
    let wanted = format!("incarnation-{second}");
    let deadline = Instant::now() + SOON;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if follow.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let value: serde_json::Value = serde_json::from_str(&line).expect("an NDJSON line");
        got.push(value["line"].as_str().unwrap_or_default().to_string());
        if got.last() == Some(&wanted) {
            break;
        }
    }
    assert_eq!(got.last(), Some(&wanted), "{got:?}");
    assert_eq!(got.first().map(String::as_str), Some("line1"), "{got:?}");
}

#[test]
fn a_flood_of_10_mb_stays_within_the_ring_and_the_supervisor_memory_stays_flat() {
    let sup = start(
        r#"log_ring = "64KiB""#,
        r#"[programs.flood]
command = ["sh", "-c", "yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -n 150000; echo end-of-flood; exec sleep infinity"]
"#,
    );
    sup.wait_pid("flood");
    wait_for("the flood to end", Duration::from_secs(60), || {
        let (_, lines) = ndjson(&sup.socket, "/logs?program=flood&n=1");
        lines
            .last()
            .and_then(|l| l["line"].as_str())
            .filter(|l| *l == "end-of-flood")
            .map(|_| ())
    });
    let (_, lines) = ndjson(&sup.socket, "/logs?program=flood&n=1000000");
    let bytes: usize = lines
        .iter()
        .map(|l| l["line"].as_str().map_or(0, str::len))
        .sum();
    assert!(bytes <= 64 * 1024, "{bytes} bytes kept");
    assert!(lines.len() > 100, "only {} lines kept", lines.len());
    let hwm = crate::sup_util::proc_status(sup.proc.pid(), "VmHWM").unwrap_or_default();
    let kib: u64 = hwm
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        kib < 40 * 1024,
        "supervisor peak RSS {hwm} after 10 MB of output"
    );
}

#[test]
fn json_lines_carry_typed_events_and_embed_a_programs_json() {
    let dir = crate::harness::temp_dir();
    let config = write_config(
        dir.path(),
        "",
        r#"[programs.js]
command = ["sh", "-c", "echo '{\"level\":\"info\",\"msg\":\"hello\"}'; echo 'plain {'; exec sleep infinity"]
"#,
    );
    let proc = selfheal(
        "selfheal",
        &["--config", config.to_str().unwrap(), "--log-format", "json"],
    );
    proc.wait_output("\"msg\":\"hello\"", SOON);
    proc.wait_output("plain {", SOON);
    let text = proc.output();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let embedded = lines
        .iter()
        .find(|l| l["kind"] == "output" && l["json"]["msg"] == "hello")
        .unwrap_or_else(|| panic!("no embedded JSON line in:\n{text}"));
    assert_eq!(embedded["program"], "js");
    assert_eq!(embedded["json"]["level"], "info");
    assert!(embedded.get("message").is_none());
    let plain = lines
        .iter()
        .find(|l| l["message"] == "plain {")
        .expect("a plain line stays a message");
    assert!(plain.get("json").is_none());
    let started = lines
        .iter()
        .find(|l| l["kind"] == "event" && l["event"] == "started")
        .unwrap_or_else(|| panic!("no started event in:\n{text}"));
    assert_eq!(started["program"], "js");
    assert!(started["pid"].as_i64().is_some_and(|p| p > 1));
    for line in &lines {
        let ts = line["ts"]
            .as_str()
            .unwrap_or_else(|| panic!("no ts: {line}"));
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
    }
}

#[test]
fn a_log_file_gets_the_programs_lines_and_rotates_by_size() {
    let sup = start(
        "",
        r#"[programs.writer]
command = ["sh", "-c", "for i in $(seq 1 400); do echo line-$i-of-the-writer; done; echo done-writing; exec sleep infinity"]
log_file = { path = "@DIR@/logs/writer.log", max_size = "4KiB", keep = 2 }
"#,
    );
    let path = sup.dir.path().join("logs/writer.log");
    wait_for("the last line in the log file", SOON, || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.contains("done-writing\n"))
    });
    let current = std::fs::read_to_string(&path).unwrap();
    assert!(current.len() <= 4096 + 64, "{} bytes", current.len());
    assert!(
        !current.contains("writer |"),
        "lines are written as printed"
    );
    let older = std::fs::read_to_string(sup.dir.path().join("logs/writer.log.1")).unwrap();
    assert!(older.lines().all(|l| l.starts_with("line-")), "{older}");
    assert!(sup.dir.path().join("logs/writer.log.2").exists());
    assert!(!sup.dir.path().join("logs/writer.log.3").exists());
}
