//! An exec failure names the real cause (issue 10, item 8 at run time): a
//! script whose `#!` interpreter is missing, one with Windows (CRLF) line
//! endings, a file with no `#!` line, an interpreter that is not executable,
//! a binary whose dynamic loader is missing; with the shell's exit codes
//! (127 not found, 126 cannot run), for programs and for exec probes.

use std::path::Path;
use std::time::Duration;

use crate::harness::{temp_dir, wait_for};
use crate::sup_util::{script, start_in, Sup, SOON};

/// The first "could not start" line of program `name`.
fn failure_line(sup: &Sup, name: &str) -> String {
    let needle = format!(" | {name} could not start");
    wait_for(&format!("{name} to fail to start"), SOON, || {
        sup.output()
            .lines()
            .find(|l| l.starts_with("selfheal") && l.contains(&needle))
            .map(str::to_string)
    })
}

fn exit_code(sup: &Sup, name: &str) -> i64 {
    sup.program(name)["last_exit"]["code"]
        .as_i64()
        .unwrap_or(-1)
}

/// A copy of /bin/true whose PT_INTERP names a loader that does not exist.
fn binary_without_loader(dir: &Path) -> std::path::PathBuf {
    let mut elf = std::fs::read("/bin/true").unwrap();
    let pos = elf
        .windows(4)
        .position(|w| w == b"/lib")
        .expect("an ELF interpreter path in /bin/true");
    elf[pos + 1] = b'X'; // "/lib…" → "/Xib…"
    let path = dir.join("noloader.elf");
    std::fs::write(&path, elf).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// Replaces `path` (which may be running) with `bytes`, mode 0755: a new file
/// renamed over the old one, as a package manager does.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn exec_errors_name_the_real_cause() {
    // Every file starts out fine (a script failing at once, so it restarts):
    // `selfheal check` and the start-up preflight refuse such files up front
    // (sup_config_preflight.rs), so here they turn bad while the supervisor
    // runs, as when a deploy overwrites them — the case only the run-time
    // diagnosis can explain.
    let dir = temp_dir();
    let fine = "#!/bin/sh\nexit 1\n";
    for name in [
        "crlf.sh",
        "nointerp.sh",
        "noshebang",
        "badinterp.sh",
        "noloader",
    ] {
        script(dir.path(), name, fine);
    }
    let interp = script(dir.path(), "interp", "echo\n");
    std::fs::set_permissions(&interp, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    // `always`: a start racing the replacement may run the new text under the
    // old interpreter and exit 0; it must come back to meet the broken file.
    let restart = r#"restart = "always"
restart_limit = { max = 1000, window = "60s" }
backoff = { initial = "50ms", max = "200ms", jitter = 0 }"#;
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.crlf]
command = ["@DIR@/crlf.sh"]
{restart}
[programs.nointerp]
command = ["@DIR@/nointerp.sh"]
{restart}
[programs.noshebang]
command = ["@DIR@/noshebang"]
{restart}
[programs.badinterp]
command = ["@DIR@/badinterp.sh"]
{restart}
[programs.noloader]
command = ["@DIR@/noloader"]
{restart}
[programs.probed]
command = ["sleep", "infinity"]
health = {{ exec = ["@DIR@/crlf.sh"], interval = "200ms", timeout = "2s", failures = 1000 }}
"#
        ),
    );
    let d = sup.dir.path().to_path_buf();
    replace(&d.join("crlf.sh"), b"#!/bin/sh\r\necho hello\r\n");
    replace(&d.join("nointerp.sh"), b"#!/nonexistent/sh\necho hello\n");
    replace(&d.join("noshebang"), b"echo hello\n");
    let bad = format!("#!{}\necho hello\n", interp.display());
    replace(&d.join("badinterp.sh"), bad.as_bytes());
    let elf = binary_without_loader(&d);
    replace(&d.join("noloader"), &std::fs::read(&elf).unwrap());
    let line = failure_line(&sup, "crlf");
    assert!(
        line.contains(r#"interpreter "/bin/sh\r" not found"#) && line.contains("CRLF"),
        "{line}"
    );
    assert_eq!(exit_code(&sup, "crlf"), 127);

    let line = failure_line(&sup, "nointerp");
    assert!(
        line.contains(r#"interpreter "/nonexistent/sh" not found"#),
        "{line}"
    );
    assert_eq!(exit_code(&sup, "nointerp"), 127);

    let line = failure_line(&sup, "noshebang");
    assert!(line.contains("no #! line"), "{line}");
    assert_eq!(exit_code(&sup, "noshebang"), 126);

    let line = failure_line(&sup, "badinterp");
    assert!(line.contains("interp\" is not executable"), "{line}");
    assert_eq!(exit_code(&sup, "badinterp"), 126);

    let line = failure_line(&sup, "noloader");
    assert!(line.contains("dynamic loader \"/Xib"), "{line}");
    assert_eq!(exit_code(&sup, "noloader"), 127);

    // An exec probe gets the same diagnosis in its reason.
    let reason = wait_for("the probe's reason", Duration::from_secs(10), || {
        sup.program("probed")["health"]["reason"]
            .as_str()
            .filter(|r| r.contains("CRLF"))
            .map(str::to_string)
    });
    assert!(reason.contains(r#""/bin/sh\r""#), "{reason}");
}
