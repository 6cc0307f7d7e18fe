//! A `listen` socket is bound by the supervisor and handed to every incarnation
//! as fd 3 (LISTEN_FDS=1, LISTEN_PID=its pid): a connection made while the
//! program is down is accepted and served by the next incarnation.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{free_port, temp_dir};
use crate::sup_util::{kill, python, script, start_in, SOON};

fn ask(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connection refused");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"hi\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn socket_stays_open_across_a_restart() {
    let dir = temp_dir();
    let port = free_port();
    script(
        dir.path(),
        "server.py",
        r#"import os, socket
fds = os.environ.get("LISTEN_FDS")
mine = os.environ.get("LISTEN_PID") == str(os.getpid())
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    c.recv(100)
    c.sendall(("pid %d fds %s listen_pid %s\n" % (os.getpid(), fds, "ok" if mine else "WRONG")).encode())
    c.close()
"#,
    );
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.srv]
command = ["{py}", "@DIR@/server.py"]
listen = ["127.0.0.1:{port}"]
restart = "always"
backoff = {{ initial = "700ms", max = "700ms", jitter = 0 }}
"#,
            py = python()
        ),
    );
    let first = sup.wait_pid("srv");
    assert_eq!(ask(port), format!("pid {first} fds 1 listen_pid ok\n"));

    kill(first, libc::SIGKILL);
    sup.proc.wait_output("srv was killed by SIGKILL", SOON);
    // Down for 700ms now: the connection must be accepted, not refused.
    let reply = ask(port);
    let second = sup.wait_pid("srv");
    assert_ne!(second, first);
    assert_eq!(reply, format!("pid {second} fds 1 listen_pid ok\n"));
    let out = sup.output();
    let killed = out.find("srv was killed by SIGKILL").unwrap();
    assert!(
        !out[..killed].contains(&format!("started (pid {second})")),
        "{out}"
    );
}

/// Spawning stages a child's descriptors in the supervisor's reserved low
/// range and the child copies only that range (`spawn/vfork.rs`): each
/// program still gets exactly its stdio, its listen sockets on 3 … and its
/// state channel after them, nothing else; and after every spawn, respawn
/// included, the supervisor's range holds `/dev/null` again, so no program's
/// pipe or socket stays open through it.
#[test]
fn a_program_gets_exactly_its_descriptors_and_the_reserved_range_is_restored() {
    use crate::sup_hardening_util::fds_of;
    let dir = temp_dir();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let sup = start_in(
        dir,
        "",
        &format!(
            r#"[programs.app]
command = ["sleep", "infinity"]
listen = ["127.0.0.1:{p1}", "127.0.0.1:{p2}"]
backoff = {{ initial = "0s" }}

[programs.front]
command = ["sleep", "infinity"]
listen = ["127.0.0.1:{p3}"]
upstreams = ["app"]
backoff = {{ initial = "0s" }}
"#
        ),
    );
    let supervisor = sup.proc.pid();
    let kinds = |pid: i32| -> Vec<(i32, String)> {
        let mut fds: Vec<(i32, String)> = fds_of(pid)
            .into_iter()
            .map(|(n, target)| {
                let t = target.display().to_string();
                let kind = t.split(':').next().unwrap_or_default().to_string();
                (n, kind)
            })
            .collect();
        fds.sort();
        fds
    };
    let expect_range_restored = || {
        let fds = kinds(supervisor);
        let range: Vec<&(i32, String)> = fds.iter().filter(|(n, _)| (3..22).contains(n)).collect();
        assert_eq!(
            range.len(),
            19,
            "the reserved range 3…21 is not all there: {fds:?}"
        );
        assert!(
            range.iter().all(|(_, kind)| kind == "/dev/null"),
            "a program's descriptor stayed in the supervisor's reserved range: {fds:?}"
        );
    };
    for round in 0..3 {
        let app = sup.wait_pid("app");
        let front = sup.wait_pid("front");
        let stdio = |kind: &str| {
            vec![
                (0, "/dev/null".to_string()),
                (1, kind.to_string()),
                (2, kind.to_string()),
            ]
        };
        let mut want = stdio("pipe");
        want.extend([(3, "socket".to_string()), (4, "socket".to_string())]);
        assert_eq!(kinds(app), want, "app, round {round}");
        let mut want = stdio("pipe");
        want.extend([(3, "socket".to_string()), (4, "socket".to_string())]);
        assert_eq!(
            kinds(front),
            want,
            "front (listen socket, state channel), round {round}"
        );
        expect_range_restored();
        kill(app, libc::SIGKILL);
        kill(front, libc::SIGKILL);
        crate::harness::wait_for("both to be respawned", SOON, || {
            let (a, f) = (sup.wait_pid("app"), sup.wait_pid("front"));
            (a != app && f != front).then_some(())
        });
    }
    expect_range_restored();
}

/// Started with stdin, stdout and stderr closed (`exec 0<&- 1>&- 2>&-`), the
/// supervisor still owns the whole reserved range 3…21 (a closed standard
/// stream must not take one of its numbers and leave the last one free for
/// something that spawning would then overwrite), and a program still gets
/// exactly its descriptors.
#[test]
fn closed_standard_streams_do_not_shift_the_reserved_range() {
    use crate::harness::{wait_for, Proc, BIN};
    use crate::sup_hardening_util::{fds_of, wait_child};
    use crate::sup_util::write_config;
    let dir = temp_dir();
    let port = free_port();
    let config = write_config(
        dir.path(),
        "",
        &format!("[programs.srv]\ncommand = [\"sleep\", \"infinity\"]\nlisten = [\"127.0.0.1:{port}\"]\n"),
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "exec 0<&- 1>&- 2>&- \"$@\"", "sh", BIN, "--config"])
        .arg(&config);
    let mut sup = Proc::spawn("selfheal with closed stdio", cmd);
    let pid = sup.pid();
    let program = wait_child(pid, "the program to run");
    wait_for("the program to exec", SOON, || {
        let comm = std::fs::read_to_string(format!("/proc/{program}/comm")).ok()?;
        (comm.trim() == "sleep").then_some(())
    });
    let fds = fds_of(pid);
    for n in 3..22 {
        let target = fds.iter().find(|(m, _)| *m == n).map(|(_, t)| t.clone());
        assert_eq!(
            target.as_deref(),
            Some(std::path::Path::new("/dev/null")),
            "fd {n} of the supervisor: {fds:?}"
        );
    }
    let mut numbers: Vec<i32> = fds_of(program).into_iter().map(|(n, _)| n).collect();
    numbers.sort();
    assert_eq!(numbers, [0, 1, 2, 3], "the program's descriptors");
    sup.signal(libc::SIGTERM);
    assert_eq!(sup.wait_exit(SOON), Some(0));
}
