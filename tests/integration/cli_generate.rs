//! `selfheal completions SHELL` and `selfheal man`, generated from clap.

use crate::cli_util::{bare, run};
use crate::harness::temp_dir;

#[test]
fn completions_are_scripts_the_shell_accepts() {
    let dir = temp_dir();
    for shell in ["bash", "zsh", "fish"] {
        let out = run(bare(&["completions", shell]));
        assert_eq!(out.code, 0, "{shell}: {out}");
        assert!(out.stdout.len() > 500, "{shell}: {out}");
        for word in ["restart", "no-wait", "timeout", "logs"] {
            assert!(out.stdout.contains(word), "{shell}: {word} missing");
        }
        let file = dir.path().join(format!("selfheal.{shell}"));
        std::fs::write(&file, &out.stdout).unwrap();
        if shell == "bash" {
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .expect("bash is needed to check the bash completions");
            assert!(
                check.status.success(),
                "bash -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let out = run(bare(&["completions", "tcsh"]));
    assert_eq!(out.code, 2, "{out}");
}

#[test]
fn man_prints_a_roff_page_and_writes_one_per_command() {
    let out = run(bare(&["man"]));
    assert_eq!(out.code, 0, "{out}");
    // clap_mangen opens with the portable definition of the quote string,
    // then the title header.
    let first = out
        .stdout
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_default();
    assert!(
        first.starts_with(".TH selfheal 1"),
        "{first:?}\n{}",
        out.stdout
    );
    assert!(out.stdout.contains(".SH SUBCOMMANDS"), "{}", out.stdout);

    let dir = temp_dir();
    let out = run(bare(&["man", "--out", dir.path().to_str().unwrap()]));
    assert_eq!(out.code, 0, "{out}");
    for page in [
        "selfheal.1",
        "selfheal-status.1",
        "selfheal-restart.1",
        "selfheal-logs.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page}: {text}");
    }
    let restart = std::fs::read_to_string(dir.path().join("selfheal-restart.1")).unwrap();
    assert!(restart.contains("no\\-wait"), "{restart}");
}
