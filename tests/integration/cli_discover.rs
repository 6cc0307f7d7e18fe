//! Finding the supervisor from any directory: the running supervisor advertises
//! its socket in `SELFHEAL_RUNTIME_DIR/current`; the CLI, run elsewhere with no
//! flag, no socket or config variable, reads it.

use std::process::Command;

use crate::cli_util::{bare, run};
use crate::harness::{temp_dir, Proc, BIN};
use crate::sup_util::{write_config, SOON};

#[test]
fn a_cli_in_another_directory_finds_the_advertised_socket() {
    let dir = temp_dir();
    let runtime = temp_dir();
    let elsewhere = temp_dir();
    let config = write_config(
        dir.path(),
        "",
        "[programs.found_me]\ncommand = [\"sleep\", \"infinity\"]\n",
    );
    let socket = dir.path().join("admin.sock");
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&config)
        .env("SELFHEAL_RUNTIME_DIR", runtime.path());
    let mut sup = Proc::spawn("selfheal", cmd);
    sup.wait_output("supervising", SOON);
    let current = runtime.path().join("current");
    assert_eq!(
        std::fs::read_to_string(&current).expect("the advertisement"),
        format!("{}\n", socket.display())
    );

    let status = || {
        let mut cmd = bare(&["status"]);
        cmd.current_dir(elsewhere.path())
            .env("SELFHEAL_RUNTIME_DIR", runtime.path());
        run(cmd)
    };
    let out = crate::harness::wait_for("found_me to run", SOON, || {
        let out = status();
        (out.code == 0).then_some(out)
    });
    assert!(out.stdout.contains("found_me"), "{out}");

    // At exit the supervisor withdraws it; the CLI then says what it tried.
    sup.signal(libc::SIGTERM);
    assert_eq!(sup.wait_exit(SOON), Some(0), "{}", sup.output());
    assert!(
        !current.exists(),
        "the advertisement outlived the supervisor"
    );
    let out = status();
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "no --config, SELFHEAL_CONFIG or ./supervisor.toml, nothing advertised in {}",
            current.display()
        )),
        "{out}"
    );
}

#[test]
fn a_local_supervisor_toml_comes_before_the_advertisement() {
    let dir = temp_dir();
    let runtime = temp_dir();
    write_config(dir.path(), "", "[programs.a]\ncommand = [\"true\"]\n");
    std::fs::rename(
        dir.path().join("config.toml"),
        dir.path().join("supervisor.toml"),
    )
    .unwrap();
    std::fs::write(
        runtime.path().join("current"),
        "/nonexistent/advertised.sock\n",
    )
    .unwrap();
    let mut cmd = bare(&["status"]);
    cmd.current_dir(dir.path())
        .env("SELFHEAL_RUNTIME_DIR", runtime.path());
    let out = run(cmd);
    assert_eq!(out.code, 4, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "no supervisor is serving {}/admin.sock",
            dir.path().display()
        )) && out.stderr.contains("the admin_socket of supervisor.toml"),
        "{out}"
    );
}
