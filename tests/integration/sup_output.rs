//! Programs' output cannot hurt the supervisor (issue 10, items 2 and 3):
//! a line that never ends is cut every 16 KiB with a marked continuation and
//! memory stays flat (also for binary output and `\r`); a stdout nobody reads
//! costs counted, dropped lines, never a frozen PID 1; and when stdout is read,
//! no line is lost, the last ones at exit included.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{temp_dir, wait_for, BIN};
use crate::sup_hardening_util::{status_kb, status_of, status_pid, Bare};
use crate::sup_util::{kill, python, wait_file, write_config, SOON};

/// Longest piece of a line, as documented (Docker's 16 KiB).
const MAX_LINE: usize = 16 * 1024;

/// Starts the supervisor on `programs` with stdout+stderr to `out.log` in its dir.
fn start_to_file(dir: &tempfile::TempDir, programs: &str) -> (Bare, std::path::PathBuf) {
    let config = write_config(dir.path(), "", programs);
    let log = dir.path().join("out.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&config)
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    (Bare::spawn(cmd), log)
}

/// What the supervisor's memory peaked at beyond the pages of its own binary
/// and libraries: `VmHWM − RssFile − RssShmem`, in kB. The peak alone counts
/// the file-backed code pages too, which a debug build has 16 MB of and which
/// grow with the code, not with what children print; the anonymous part is
/// what a flood would fill.
fn peak_memory_kb(pid: i32) -> u64 {
    let file = status_kb(pid, "RssFile") + status_kb(pid, "RssShmem");
    status_kb(pid, "VmHWM").saturating_sub(file)
}

/// The bound for [`peak_memory_kb`] under any flood: the output queue (1 MiB
/// plus a sixteenth), the writer's batch (2 MiB at most), a 1 MiB log ring per
/// program, and the supervisor's own ~4 MB of heap and stacks. Keeping a
/// 20 MB or 100 MB flood would be far beyond it.
const PEAK_MEMORY_KB: u64 = 12 * 1024;

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn a_100mb_line_is_cut_into_marked_pieces_and_memory_stays_flat() {
    let dir = temp_dir();
    let total: usize = 100_000_000;
    let flood = format!(
        "import os, time\nchunk = b'x' * 65536\nleft = {total}\nwhile left:\n    n = min(left, len(chunk))\n    os.write(1, chunk[:n])\n    left -= n\nopen('{d}/done', 'w').write('done\\n')\ntime.sleep(3600)\n",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("flood.py"), flood).unwrap();
    let (sup, log) = start_to_file(
        &dir,
        &format!(
            "[programs.flood]\ncommand = [\"{}\", \"@DIR@/flood.py\"]\n",
            python()
        ),
    );
    wait_file(&dir.path().join("done"), Duration::from_secs(120));
    // The program's write returned: all but 64 KiB (the pipe) is in the
    // supervisor's hands now.
    let peak_at_done = peak_memory_kb(sup.pid());
    assert!(
        peak_at_done < PEAK_MEMORY_KB,
        "memory peaked at {peak_at_done} kB (beyond the binary's pages) once the program wrote 100 MB"
    );
    // Every full piece is out once the program has written everything (the
    // pipe holds at most 64 KiB; the last partial 8448 bytes wait for more).
    let full_pieces = total / MAX_LINE;
    let min_len = (full_pieces * MAX_LINE) as u64;
    wait_for(
        "the pieces to reach the log",
        Duration::from_secs(60),
        || (file_len(&log) >= min_len).then_some(()),
    );
    let peak_kb = peak_memory_kb(sup.pid());
    let rss_kb = status_kb(sup.pid(), "VmRSS");
    eprintln!("supervisor after 100 MB without a newline: peak {peak_kb} kB beyond the binary, VmRSS {rss_kb} kB");
    assert!(peak_kb < PEAK_MEMORY_KB, "memory peaked at {peak_kb} kB");

    let mut pieces = 0;
    let mut xs = 0;
    for line in BufReader::new(std::fs::File::open(&log).unwrap()).split(b'\n') {
        let line = line.unwrap();
        let Some(text) = line.strip_prefix(b"flood    | ") else {
            continue;
        };
        let body = text
            .strip_suffix("…".as_bytes())
            .unwrap_or_else(|| panic!("piece without the continuation mark: {} bytes", text.len()));
        assert_eq!(body.len(), MAX_LINE, "a piece is not 16 KiB");
        assert!(body.iter().all(|&b| b == b'x'));
        pieces += 1;
        xs += body.len();
    }
    assert_eq!(pieces, full_pieces, "{xs} bytes of x in pieces");
}

#[test]
fn binary_output_and_carriage_returns_keep_lines_bounded_and_memory_flat() {
    let dir = temp_dir();
    let (sup, log) = start_to_file(
        &dir,
        r#"[programs.noise]
command = ["sh", "-c", "head -c 20000000 /dev/urandom; echo; echo noise-done; exec sleep infinity"]
[programs.spinner]
command = ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do printf '%s\r' \"$i\"; i=$((i+1)); done; echo; echo spinner-done; exec sleep infinity"]
"#,
    );
    wait_for("both programs to finish", Duration::from_secs(120), || {
        let text = std::fs::read(&log).ok()?;
        let text = String::from_utf8_lossy(&text);
        (text.contains("noise-done") && text.contains("spinner-done")).then_some(())
    });
    let peak_kb = peak_memory_kb(sup.pid());
    assert!(peak_kb < PEAK_MEMORY_KB, "memory peaked at {peak_kb} kB");
    let bytes = std::fs::read(&log).unwrap();
    // A 16 KiB piece of binary is at most 3× longer as text (U+FFFD per byte).
    let longest = bytes.split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(longest <= 3 * MAX_LINE + 64, "a line of {longest} bytes");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("\r19999\n"),
        "the spinner's \\r output is kept"
    );
}

/// Whether a write to the pipe would block now (`poll` on a write end).
pub fn pipe_full(writer: &std::io::PipeWriter) -> bool {
    let mut pollfd = libc::pollfd {
        fd: writer.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll(2) on one pollfd on this stack frame, zero timeout.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    ready == 0
}

/// A supervisor whose stdout is a pipe nobody reads, with a chatty program and
/// a quiet one; returns it once the pipe is full.
fn start_stalled(dir: &tempfile::TempDir) -> (Bare, std::io::PipeReader) {
    let config = write_config(
        dir.path(),
        "",
        r#"[programs.chatty]
command = ["yes", "a chatty program writes this line again and again"]
[programs.quiet]
command = ["sleep", "infinity"]
health = { exec = ["true"], interval = "100ms", timeout = "2s", failures = 3 }
"#,
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let mut cmd = Command::new(BIN);
    let probe = writer.try_clone().unwrap();
    cmd.arg("--config")
        .arg(&config)
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    let sup = Bare::spawn(cmd);
    wait_for("the supervisor's stdout pipe to fill", SOON, || {
        pipe_full(&probe).then_some(())
    });
    (sup, reader)
}

#[test]
fn a_stdout_nobody_reads_never_freezes_the_supervisor() {
    let dir = temp_dir();
    let socket = dir.path().join("admin.sock");
    let (mut sup, reader) = start_stalled(&dir);
    // The admin API answers although every write to stdout would block, for
    // as long as the stall lasts (2 s here: well past the writer's 0.5 s
    // stall threshold, so program lines are being dropped by the end).
    let stall = Instant::now();
    let mut quiet = 0;
    while stall.elapsed() < Duration::from_secs(2) {
        quiet = status_pid(&socket, "quiet", Duration::from_secs(5))
            .expect("`selfheal status` did not answer within 5 s while stdout was stalled");
    }
    // Reaping and restarting go on.
    kill(quiet, libc::SIGKILL);
    let restarted = wait_for("quiet to be restarted", SOON, || {
        status_pid(&socket, "quiet", Duration::from_secs(5)).filter(|p| *p != quiet)
    });
    assert_ne!(restarted, quiet);
    // Probing goes on: the new incarnation's exec probe passes.
    wait_for("the restarted quiet to be ready", SOON, || {
        status_of(&socket, "quiet", Duration::from_secs(5))
            .filter(|p| p["pid"] == restarted && p["ready"] == true)
    });
    // No zombie stays: an exec probe (`true`, every 100 ms) may be caught in
    // the instant between its exit and the reaper, so what is checked is that
    // each one seen is reaped soon after.
    for zombie in crate::sup_util::zombies_of(sup.pid()) {
        let comm = std::fs::read_to_string(format!("/proc/{zombie}/comm")).unwrap_or_default();
        wait_for(
            &format!("zombie {zombie} ({}) to be reaped", comm.trim()),
            SOON,
            || (!crate::sup_util::zombies_of(sup.pid()).contains(&zombie)).then_some(()),
        );
    }

    // Once stdout is read again, the gap is reported with its size.
    let found = Arc::new(Mutex::new(None));
    let sink = found.clone();
    std::thread::spawn(move || {
        // Lines are scanned as they come; the chatty ones are not kept.
        let mut lines = BufReader::with_capacity(1 << 16, reader);
        let mut line = Vec::new();
        while lines.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line);
            if let Some(rest) = text.split_once("selfheal | ").map(|(_, r)| r) {
                if let Some((n, _)) = rest.split_once(" lines dropped") {
                    *sink.lock().unwrap() = n.parse::<u64>().ok();
                }
            }
            line.clear();
        }
    });
    let dropped: u64 = wait_for("a `lines dropped` line", SOON, || *found.lock().unwrap());
    assert!(dropped > 0);
    let peak_kb = peak_memory_kb(sup.pid());
    assert!(
        peak_kb < PEAK_MEMORY_KB,
        "memory peaked at {peak_kb} kB (beyond the binary's pages) under a flood"
    );
    kill(sup.pid(), libc::SIGTERM);
    assert!(sup.exited_within(SOON).is_some(), "no exit after SIGTERM");
}

#[test]
fn sigterm_stops_the_supervisor_while_nobody_reads_its_stdout() {
    let dir = temp_dir();
    let (mut sup, _reader) = start_stalled(&dir);
    let started = Instant::now();
    kill(sup.pid(), libc::SIGTERM);
    let status = sup
        .exited_within(Duration::from_secs(10))
        .expect("SIGTERM did not stop a supervisor whose stdout is not read");
    eprintln!("exited {status:?} {:?} after SIGTERM", started.elapsed());
    assert_eq!(status.code(), Some(0));
}

/// Programs that only speak at exit (more of them: more chances to see the race).
const TAILS: [&str; 4] = ["tail1", "tail2", "tail3", "tail4"];
const LAST_WORDS: &str = r#"["sh", "-c", "trap 'seq 1 3000 | sed s/^/bye-/; exit 0' TERM; echo up; while :; do sleep 1; done"]"#;

#[test]
fn no_line_is_lost_when_stdout_is_read_even_the_last_ones_at_exit() {
    let dir = temp_dir();
    let config = write_config(
        dir.path(),
        "",
        &(r#"[programs.counter]
command = ["sh", "-c", "trap 'seq 1 3000 | sed s/^/bye-/; exit 0' TERM; seq 1 100000; echo counted; while :; do sleep 1; done"]
"#
        .to_string()
            + &TAILS
                .iter()
                .map(|name| format!("[programs.{name}]\ncommand = {LAST_WORDS}\n"))
                .collect::<String>()),
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&config)
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    let mut sup = Bare::spawn(cmd);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let pump = std::thread::spawn(move || {
        let mut reader = reader;
        let mut chunk = vec![0u8; 1 << 16];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    wait_for("the counter to finish counting", SOON, || {
        let seen = seen.lock().unwrap();
        let text = String::from_utf8_lossy(&seen);
        (text.contains("counter  | counted\n")
            && TAILS
                .iter()
                .all(|name| text.contains(&format!("{name:<8} | up\n"))))
        .then_some(())
    });
    // Stop: each program's trap prints 3000 more lines on its way out, and the
    // supervisor may see the exits before it has read those lines.
    kill(sup.pid(), libc::SIGTERM);
    assert!(sup.exited_within(SOON).is_some());
    pump.join().unwrap();
    let seen = seen.lock().unwrap();
    let text = String::from_utf8_lossy(&seen);
    let numbers: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("counter  | "))
        .collect();
    let expected: Vec<String> = (1..=100_000).map(|i| i.to_string()).collect();
    assert_eq!(&numbers[..100_000], &expected[..]);
    assert_eq!(numbers[100_000], "counted");
    let byes: Vec<&str> = numbers
        .iter()
        .filter(|l| l.starts_with("bye-"))
        .copied()
        .collect();
    assert_eq!(byes.len(), 3000, "lines printed at exit lost");
    for name in TAILS {
        let prefix = format!("{name:<8} | bye-");
        let byes = text.lines().filter(|l| l.starts_with(&prefix)).count();
        assert_eq!(byes, 3000, "{name}: lines printed at exit lost");
    }
    assert!(
        !text.contains("lines dropped"),
        "lines dropped while stdout was read"
    );
}
