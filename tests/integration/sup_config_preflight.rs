//! Configs that cannot start on this host are caught before anything is
//! spawned: `selfheal check` (and the supervisor's start-up) reports every
//! problem at once with `file:line:column: field:`, exit 2. Problems that may
//! be fixed before the program runs (a binary, interpreter, workdir, user or
//! group that does not exist yet) are warnings: exit 0, or 2 with `--strict`,
//! and the supervisor still starts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::harness::{selfheal, temp_dir, BIN};
use crate::sup_util::{script, SOON};

/// Runs `selfheal ARGS --config CONFIG` (through `sh` when `ulimit` is given,
/// to run it under that descriptor limit); returns the exit code and output.
fn run(args: &[&str], config: &Path, ulimit: Option<u32>) -> (i32, String) {
    let mut cmd = match ulimit {
        Some(n) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let out = cmd
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run selfheal");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `file:line:column` of the first occurrence of `needle` in `text`.
fn at(file: &Path, text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the config"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{}:{line}:{column}", file.display())
}

/// Fixtures: scripts with every kind of broken start, a file, a locked dir and
/// a directory standing where PATH would find a command.
fn fixtures(dir: &Path) {
    script(dir, "crlf.sh", "#!/bin/sh\r\necho hi\r\n");
    script(dir, "bom.sh", "\u{feff}#!/bin/sh\necho hi\n");
    script(
        dir,
        "no-interpreter.sh",
        "#!/nonexistent/interpreter\necho\n",
    );
    script(dir, "no-format", "echo this has no #! line\n");
    script(
        dir,
        "env-missing.sh",
        "#!/usr/bin/env selfheal-no-such-interpreter\necho\n",
    );
    let plain = script(dir, "plain.sh", "#!/bin/sh\necho\n");
    std::fs::set_permissions(plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(dir.join("a-file"), "").expect("write");
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    std::fs::create_dir_all(dir.join("bin/tool")).expect("mkdir");
    // With execute bits, so only its type is wrong (and reading it would block).
    nix::unistd::mkfifo(
        &dir.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    )
    .expect("mkfifo");
}

/// Every problem once; `(needle, field, message)` per expected diagnostic, the
/// needle being the text its position points at.
const ALL: &str = r#"[supervisor]
admin_socket = "@DIR@/admin.sock"
[programs.missing]
command = ["@DIR@/not-there", "--flag"]
[programs.plain]
command = ["@DIR@/plain.sh"]
[programs.crlf]
command = ["@DIR@/crlf.sh"]
[programs.bom]
command = ["@DIR@/bom.sh"]
[programs.interp]
command = ["@DIR@/no-interpreter.sh"]
[programs.env-interp]
command = ["@DIR@/env-missing.sh"]
[programs.format]
command = ["@DIR@/no-format"]
[programs.dir]
command = ["@DIR@/bin"]
[programs.fifo]
command = ["@DIR@/fifo"]
[programs.pathdir]
command = ["tool"]
env = { PATH = "@DIR@/bin" }
[programs.wd-file]
command = ["sleep", "1"]
workdir = "@DIR@/a-file"
[programs.wd-missing]
command = ["sleep", "1"]
workdir = "@DIR@/no-such-dir"
[programs.wd-locked]
command = ["sleep", "1"]
workdir = "@DIR@/locked"
user = "nobody"
[programs.env]
command = ["sleep", "1"]
env = { "A=B" = "1", "" = "2", "NUL\u0000KEY" = "3", VALUE = "v\u0000" }
[programs.argv]
command = ["sleep", "1", "x\u0000y"]
[programs.ids]
command = ["sleep", "1"]
user = "selfheal-no-such-user"
group = "selfheal-no-such-group"
[programs.probe]
command = ["sleep", "1"]
health = { exec = ["selfheal-no-such-probe"] }
[programs.sockets]
command = ["sleep", "1"]
listen = ["127.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003", "127.0.0.1:30004", "127.0.0.1:30005", "127.0.0.1:30006", "127.0.0.1:30007", "127.0.0.1:30008", "127.0.0.1:30009", "127.0.0.1:30010", "127.0.0.1:30011", "127.0.0.1:30012", "127.0.0.1:30013", "127.0.0.1:30014", "127.0.0.1:30015", "127.0.0.1:30016", "127.0.0.1:30017"]
"#;

const ALL_EXPECTED: &[(&str, &str, &str)] = &[
    (
        "\"@DIR@/not-there\"",
        "warning: programs.missing.command",
        "not-there does not exist (yet)",
    ),
    (
        "\"@DIR@/plain.sh\"",
        "programs.plain.command",
        "plain.sh is not executable (mode 644",
    ),
    (
        "\"@DIR@/crlf.sh\"",
        "programs.crlf.command",
        "carriage return (Windows line endings), so the kernel looks for an interpreter named \"/bin/sh\\r\"",
    ),
    ("\"@DIR@/bom.sh\"", "programs.bom.command", "byte-order mark"),
    (
        "\"@DIR@/no-interpreter.sh\"",
        "warning: programs.interp.command",
        "its interpreter /nonexistent/interpreter does not exist (yet)",
    ),
    (
        "\"@DIR@/env-missing.sh\"",
        "warning: programs.env-interp.command",
        "env-missing.sh: #!/usr/bin/env selfheal-no-such-interpreter: \"selfheal-no-such-interpreter\" not found in PATH",
    ),
    (
        "\"@DIR@/no-format\"",
        "warning: programs.format.command",
        "neither an ELF binary nor a script with a #! line",
    ),
    ("\"@DIR@/bin\"", "programs.dir.command", "bin is a directory"),
    (
        "\"@DIR@/fifo\"",
        "programs.fifo.command",
        "fifo is not a regular file",
    ),
    (
        "\"tool\"",
        "programs.pathdir.command",
        "\"tool\" is not an executable in PATH: ",
    ),
    (
        "\"@DIR@/a-file\"",
        "programs.wd-file.workdir",
        "a-file is not a directory",
    ),
    (
        "\"@DIR@/no-such-dir\"",
        "warning: programs.wd-missing.workdir",
        "no-such-dir does not exist (yet)",
    ),
    (
        "\"@DIR@/locked\"",
        "programs.wd-locked.workdir",
        "locked is not searchable",
    ),
    (
        "\"A=B\"",
        "programs.env.env.\"A=B\"",
        "cannot contain '='",
    ),
    (
        "\"\" = \"2\"",
        "programs.env.env.\"\"",
        "needs a name",
    ),
    (
        "\"NUL\\u0000KEY\"",
        "programs.env.env.\"NUL\\0KEY\"",
        "cannot contain a NUL byte",
    ),
    ("\"v\\u0000\"", "programs.env.env.VALUE", "NUL byte"),
    ("\"x\\u0000y\"", "programs.argv.command", "NUL byte"),
    (
        "\"selfheal-no-such-user\"",
        "warning: programs.ids.user",
        "no user \"selfheal-no-such-user\"",
    ),
    (
        "\"selfheal-no-such-group\"",
        "warning: programs.ids.group",
        "no group \"selfheal-no-such-group\"",
    ),
    (
        "\"selfheal-no-such-probe\"",
        "warning: programs.probe.health.exec",
        "\"selfheal-no-such-probe\" not found in PATH",
    ),
    (
        "[\"127.0.0.1:30001\"",
        "programs.sockets.listen",
        "17 listen addresses; a program can inherit at most 16",
    ),
];

fn expect_all(out: &str, config: &Path, text: &str, dir: &str) {
    for (needle, field, message) in ALL_EXPECTED {
        let position = at(config, text, &needle.replace("@DIR@", dir));
        let message = message.replace("@DIR@", dir);
        let prefix = format!("{position}: {field}: ");
        let found = out
            .lines()
            .any(|l| l.trim_start().starts_with(&prefix) && l.contains(&message));
        assert!(found, "missing {prefix}…{message}… in:\n{out}");
    }
    let errors = ALL_EXPECTED
        .iter()
        .filter(|(_, f, _)| !f.starts_with("warning"))
        .count();
    let warnings = ALL_EXPECTED.len() - errors;
    assert!(
        out.contains(&format!("{errors} errors and {warnings} warnings")),
        "{out}"
    );
}

#[test]
fn check_reports_every_host_problem_at_once_with_positions() {
    let dir = temp_dir();
    fixtures(dir.path());
    let d = dir.path().to_str().expect("utf-8 temp dir");
    let text = ALL.replace("@DIR@", d);
    let config = dir.path().join("all.toml");
    std::fs::write(&config, &text).expect("write");

    let (code, out) = run(&["check"], &config, None);
    assert_eq!(code, 2, "{out}");
    expect_all(&out, &config, &text, d);

    // The supervisor refuses the same config before spawning anything.
    let (code, out) = run(&[], &config, None);
    assert_eq!(code, 2, "{out}");
    expect_all(&out, &config, &text, d);
}

#[test]
fn listen_sockets_beyond_the_descriptor_limit_are_an_error() {
    let dir = temp_dir();
    let addrs = |first: u16| {
        (first..first + 16)
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "[supervisor]\nadmin_socket = \"{}/admin.sock\"\n\
         [programs.a]\ncommand = [\"sleep\", \"1\"]\nlisten = [{}]\n\
         [programs.b]\ncommand = [\"sleep\", \"1\"]\nlisten = [{}]\n",
        dir.path().display(),
        addrs(31000),
        addrs(32000)
    );
    let config = dir.path().join("fds.toml");
    std::fs::write(&config, &text).expect("write");
    // Plenty of descriptors: valid.
    let (code, out) = run(&["check"], &config, Some(1024));
    assert_eq!(code, 0, "{out}");
    // 64: 46 for the supervisor itself (its reserved range ends at 22, plus
    // 24), 2 + 16 for a (output pipe, pidfd, sockets), 2 for b, then b's
    // first socket brings it to 67.
    let (code, out) = run(&["check"], &config, Some(64));
    assert_eq!(code, 2, "{out}");
    let position = at(&config, &text, "\"127.0.0.1:32000\"");
    assert!(
        out.contains(&format!(
            "{position}: programs.b.listen: listen address 127.0.0.1:32000 brings the \
             supervisor's descriptors to 67, over RLIMIT_NOFILE (64)"
        )),
        "{out}"
    );
    let (code, out) = run(&[], &config, Some(64));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("over RLIMIT_NOFILE (64)"), "{out}");
}

/// One warning kind: the program's lines, the needle its position points at,
/// the field and a piece of the message.
struct Warned {
    program: &'static str,
    needle: &'static str,
    field: &'static str,
    message: &'static str,
}

const WARNINGS: &[Warned] = &[
    Warned {
        program: "command = [\"@DIR@/not-there\"]",
        needle: "\"@DIR@/not-there\"",
        field: "programs.p.command",
        message: "does not exist (yet)",
    },
    Warned {
        program: "command = [\"selfheal-no-such-binary\"]",
        needle: "\"selfheal-no-such-binary\"",
        field: "programs.p.command",
        message: "not found in PATH",
    },
    Warned {
        program: "command = [\"@DIR@/no-interpreter.sh\"]",
        needle: "\"@DIR@/no-interpreter.sh\"",
        field: "programs.p.command",
        message: "its interpreter /nonexistent/interpreter does not exist (yet)",
    },
    Warned {
        program: "command = [\"@DIR@/env-missing.sh\"]",
        needle: "\"@DIR@/env-missing.sh\"",
        field: "programs.p.command",
        message: "#!/usr/bin/env selfheal-no-such-interpreter: \"selfheal-no-such-interpreter\" not found in PATH",
    },
    Warned {
        program: "command = [\"@DIR@/no-format\"]",
        needle: "\"@DIR@/no-format\"",
        field: "programs.p.command",
        message: "neither an ELF binary nor a script",
    },
    Warned {
        program: "command = [\"sleep\", \"1\"]\nworkdir = \"@DIR@/no-such-dir\"",
        needle: "\"@DIR@/no-such-dir\"",
        field: "programs.p.workdir",
        message: "does not exist (yet)",
    },
    Warned {
        program: "command = [\"sleep\", \"1\"]\nuser = \"selfheal-no-such-user\"",
        needle: "\"selfheal-no-such-user\"",
        field: "programs.p.user",
        message: "no user",
    },
    Warned {
        program: "command = [\"sleep\", \"1\"]\ngroup = \"selfheal-no-such-group\"",
        needle: "\"selfheal-no-such-group\"",
        field: "programs.p.group",
        message: "no group",
    },
    Warned {
        program: "command = [\"sleep\", \"1\"]\nhealth = { exec = [\"selfheal-no-such-probe\"] }",
        needle: "\"selfheal-no-such-probe\"",
        field: "programs.p.health.exec",
        message: "not found in PATH",
    },
];

#[test]
fn each_warning_alone_passes_check_and_fails_it_under_strict() {
    for w in WARNINGS {
        let dir = temp_dir();
        fixtures(dir.path());
        let d = dir.path().to_str().expect("utf-8 temp dir");
        let text = format!(
            "[supervisor]\nadmin_socket = \"{d}/admin.sock\"\n[programs.p]\n{}\n",
            w.program.replace("@DIR@", d)
        );
        let config = dir.path().join("warn.toml");
        std::fs::write(&config, &text).expect("write");
        let expected = format!(
            "{}: warning: {}: ",
            at(&config, &text, &w.needle.replace("@DIR@", d)),
            w.field
        );
        let has_warning = |out: &str| {
            out.lines()
                .any(|l| l.trim_start().starts_with(&expected) && l.contains(w.message))
        };

        let (code, out) = run(&["check"], &config, None);
        assert_eq!(code, 0, "{}:\n{out}", w.program);
        assert!(
            has_warning(&out),
            "missing {expected}…{} in:\n{out}",
            w.message
        );
        assert!(out.contains("1 warning in the configuration"), "{out}");
        assert!(out.contains("ok, 1 programs"), "{out}");

        let (code, out) = run(&["check", "--strict"], &config, None);
        assert_eq!(code, 2, "{}:\n{out}", w.program);
        assert!(
            has_warning(&out),
            "missing {expected}…{} in:\n{out}",
            w.message
        );
        assert!(!out.contains("ok, 1 programs"), "{out}");
    }
}

#[test]
fn the_supervisor_starts_despite_warnings_and_prints_them() {
    let dir = temp_dir();
    let d = dir.path().to_str().expect("utf-8 temp dir");
    let text = format!(
        "[supervisor]\nadmin_socket = \"{d}/admin.sock\"\n\
         [programs.ghost]\ncommand = [\"{d}/not-there\"]\nrestart = \"never\"\n\
         [programs.ok]\ncommand = [\"sleep\", \"infinity\"]\n"
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, &text).expect("write");
    let sup = selfheal("selfheal", &["--config", config.to_str().expect("utf-8")]);
    sup.wait_output("supervising", SOON);
    let position = at(&config, &text, &format!("\"{d}/not-there\""));
    sup.wait_output(
        &format!("{position}: warning: programs.ghost.command: {d}/not-there does not exist"),
        SOON,
    );
    sup.wait_output("ok started", SOON);
}
