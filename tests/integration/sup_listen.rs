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
