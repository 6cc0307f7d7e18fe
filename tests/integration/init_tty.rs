//! A terminal in `selfheal -- CMD` (issue 12): under a pseudo-terminal the
//! main program runs in the terminal's foreground process group, so `tty`
//! names the terminal, `read` gets a line typed at it, and Ctrl-C (`\x03`)
//! interrupts it: the supervisor exits with 130, as with tini. As a plain
//! process (the session leader) and as PID 1 (under `unshare`).
//!
//! A Python helper owns the pty: it starts the command as a session leader with
//! the pty as controlling terminal and stdio, then plays a script of
//! `expect TEXT` (read until TEXT appears, with a deadline) and `send TEXT`
//! steps, waits for the exit and prints a JSON report. No fixed sleeps.
//!
//! On `f85aee4` these fail: `-- CMD` was refused; a config program had no
//! terminal at all (stdin /dev/null, output through a pipe).

use std::process::Command;

use crate::harness::temp_dir;
use crate::init_util::{both_modes, command, Mode};
use crate::sup_util::{python, script};

both_modes!(
    tty_names_the_terminal,
    read_gets_a_typed_line,
    ctrl_c_interrupts_with_130,
);

/// The pty driver: `pty.py STEPS_JSON ARGV…`; prints one JSON object with
/// `pty` (slave path), `exit` (exit code, or -signal), `transcript`, `error`.
const PTY_DRIVER: &str = r#"
import fcntl, json, os, select, sys, termios, time

steps = json.loads(sys.argv[1])
argv = sys.argv[2:]
master, slave = os.openpty()
name = os.ttyname(slave)
pid = os.fork()
if pid == 0:
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    os.execvp(argv[0], argv)
os.close(slave)
out = b""
report = {"pty": name}

def finish(error=None):
    if error:
        report["error"] = error
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    report["transcript"] = out.decode("utf-8", "replace")
    print(json.dumps(report), flush=True)
    sys.exit(0)

def pump(timeout):
    global out
    r, _, _ = select.select([master], [], [], timeout)
    if not r:
        return True
    try:
        chunk = os.read(master, 4096)
    except OSError:  # EIO: no process has the terminal open any more
        chunk = b""
    out += chunk
    return bool(chunk)

for kind, text in steps:
    text = text.replace("@PTY@", name)
    if kind == "send":
        os.write(master, text.encode())
        continue
    deadline = time.monotonic() + 15
    while text.encode() not in out:
        left = deadline - time.monotonic()
        if left <= 0 or not pump(left):
            finish("did not see %r" % text)

deadline = time.monotonic() + 15
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        while pump(0.05):
            pass
        report["exit"] = os.waitstatus_to_exitcode(status)
        finish()
    if time.monotonic() > deadline:
        finish("no exit within 15 s")
    pump(0.05)
"#;

/// What the driver reported.
struct Report {
    pty: String,
    exit: Option<i64>,
    transcript: String,
    error: Option<String>,
}

/// Runs `selfheal ARGS` in `mode` on a fresh pty, playing `steps`.
fn on_pty(mode: Mode, args: &[&str], steps: &[(&str, &str)]) -> Report {
    let dir = temp_dir();
    let driver = script(
        dir.path(),
        "pty.py",
        &format!("#!{}\n{PTY_DRIVER}", python()),
    );
    let inner = command(mode, args);
    let out = Command::new(driver)
        .arg(serde_json::to_string(steps).unwrap())
        .arg(inner.get_program())
        .args(inner.get_args())
        .output()
        .expect("run the pty driver");
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "pty driver: {e}: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Report {
        pty: json["pty"].as_str().unwrap_or_default().to_string(),
        exit: json["exit"].as_i64(),
        transcript: json["transcript"].as_str().unwrap_or_default().to_string(),
        error: json["error"].as_str().map(str::to_string),
    }
}

impl Report {
    fn assert_ok(&self, exit: i64) {
        assert_eq!(
            (self.error.as_deref(), self.exit),
            (None, Some(exit)),
            "pty {}; transcript: {:?}",
            self.pty,
            self.transcript
        );
    }
}

/// `tty` prints the pty's own path (not "not a tty"), and the program's
/// process group is the terminal's foreground group (`/proc/self/stat` fields
/// 5 `pgrp` and 8 `tpgid` are equal).
fn tty_names_the_terminal(mode: Mode) {
    let check = "tty; read -r _ _ _ _ pgrp _ _ tpgid _ < /proc/$$/stat; \
                 if [ \"$pgrp\" = \"$tpgid\" ]; then echo foreground; else echo \"background $pgrp $tpgid\"; fi";
    let report = on_pty(
        mode,
        &["--", "/bin/sh", "-c", check],
        &[("expect", "@PTY@\r\nforeground\r\n")],
    );
    report.assert_ok(0);
    assert!(report.pty.starts_with("/dev/pts/"), "{}", report.pty);
}

/// `read` in the main program gets the line typed at the terminal.
fn read_gets_a_typed_line(mode: Mode) {
    let report = on_pty(
        mode,
        &[
            "--",
            "/bin/sh",
            "-c",
            "echo prompt; read line; echo \"got:$line\"; exit 3",
        ],
        &[
            ("expect", "prompt\r\n"),
            ("send", "hello there\n"),
            ("expect", "got:hello there"),
        ],
    );
    report.assert_ok(3);
}

/// Ctrl-C at the terminal interrupts the main program (`sleep 100`, which
/// has no handler): SIGINT from the terminal to its foreground group, so the
/// supervisor exits with 128 + 2.
fn ctrl_c_interrupts_with_130(mode: Mode) {
    let report = on_pty(
        mode,
        &["--", "/bin/sh", "-c", "echo sleeping; exec sleep 100"],
        &[("expect", "sleeping\r\n"), ("send", "\x03")],
    );
    report.assert_ok(130);
}
