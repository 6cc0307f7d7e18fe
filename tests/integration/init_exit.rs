//! `selfheal -- CMD` exits with the main program's code (issue 12), as tini
//! and dumb-init do: its exit code as is, 128+n when a signal n killed it, 127
//! when the command does not exist and 126 when it cannot be executed (with
//! the reason on stderr, at once). As a plain process and as PID 1.
//!
//! On `f85aee4` (before `-- CMD` existed) every one of these fails: the
//! supervisor refused the trailing command.

use std::time::Duration;

use crate::init_util::{both_modes, run, sh, Mode};
use crate::sup_util::script;

both_modes!(exit_code_is_the_programs, killed_by_signal_n_is_128_plus_n);
both_modes!(missing_command_is_127, not_executable_is_126);

fn exit_code_is_the_programs(mode: Mode) {
    for code in [0, 1, 7, 255] {
        let done = run(mode, &sh(&format!("exit {code}")), None);
        assert_eq!(done.code, Some(code), "sh -c 'exit {code}': {done:?}");
        assert!(
            done.stderr.is_empty() && done.stdout.is_empty(),
            "the supervisor is silent in `--` mode: {done:?}"
        );
    }
}

fn killed_by_signal_n_is_128_plus_n(mode: Mode) {
    for (name, n) in [
        ("TERM", 15),
        ("HUP", 1),
        ("QUIT", 3),
        ("KILL", 9),
        ("INT", 2),
        ("USR1", 10),
    ] {
        let done = run(mode, &sh(&format!("kill -{name} $$")), None);
        assert_eq!(done.code, Some(128 + n), "killed by SIG{name}: {done:?}");
    }
}

/// Not found: 127, the name on stderr, without delay.
fn missing_command_is_127(mode: Mode) {
    for cmd in ["/nonexistent/program", "no-such-command-on-path"] {
        let done = run(mode, &["--", cmd], None);
        assert_eq!(done.code, Some(127), "{cmd}: {done:?}");
        let err = done.stderr_text();
        assert!(
            err.contains(cmd) && err.contains("no such file"),
            "{cmd}: the reason is said on stderr: {err:?}"
        );
        assert!(
            done.elapsed < Duration::from_secs(3),
            "{cmd}: exits at once, took {:?}",
            done.elapsed
        );
    }
}

/// Not executable (no x bit, or a directory): 126, the reason on stderr.
fn not_executable_is_126(mode: Mode) {
    let dir = crate::harness::temp_dir();
    let plain = script(dir.path(), "plain-file", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    for cmd in [plain.to_str().unwrap(), dir.path().to_str().unwrap()] {
        let done = run(mode, &["--", cmd], None);
        assert_eq!(done.code, Some(126), "{cmd}: {done:?}");
        let err = done.stderr_text();
        assert!(
            err.contains(cmd),
            "{cmd}: the reason is said on stderr: {err:?}"
        );
        assert!(
            done.elapsed < Duration::from_secs(3),
            "{cmd}: exits at once, took {:?}",
            done.elapsed
        );
    }
}
