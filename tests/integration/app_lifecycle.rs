//! Start-up and shutdown of `selfheal app`: SIGTERM drains in-flight requests and
//! exits 0; an inherited socket (LISTEN_FDS=1, fd 3) is served instead of binding.

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use crate::app_util::{app_command, count_of, crash, get_within, start_app, visit};
use crate::harness::{free_port, temp_dir, Proc, Redis};

#[test]
fn sigterm_drains_in_flight_request_then_exits_0() {
    let dir = temp_dir();
    let mut redis = Redis::start(dir.path());
    let mut app = start_app(&redis.url(), &["--redis-timeout", "1500ms"]);
    count_of(&visit(&app.addr, None).expect("answer"));

    // A request kept in flight: Redis is down, so it retries until its deadline.
    crash(&mut redis.proc);
    std::thread::scope(|s| {
        let pending = s.spawn(|| visit(&app.addr, Some("in-flight")));
        app.proc
            .wait_output("redis attempt failed", Duration::from_secs(5));
        app.proc.signal(libc::SIGTERM);
        app.proc.wait_output("stopping", Duration::from_secs(5));
        let resp = pending
            .join()
            .expect("thread")
            .expect("the in-flight request is answered");
        assert_eq!(resp.status, 503, "{}", resp.text());
    });
    assert_eq!(app.proc.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn sigterm_when_idle_exits_0_promptly() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let mut app = start_app(&redis.url(), &[]);
    count_of(&visit(&app.addr, None).expect("answer"));
    app.proc.signal(libc::SIGTERM);
    assert_eq!(app.proc.wait_exit(Duration::from_secs(3)), Some(0));
}

#[test]
fn serves_on_an_inherited_socket() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let inherited = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = inherited.local_addr().expect("addr").to_string();
    let fd = inherited.as_raw_fd();
    // --listen names another port: it must stay unbound.
    let other = format!("127.0.0.1:{}", free_port());

    let mut cmd = app_command(&redis.url(), &other, &[]);
    cmd.env("LISTEN_FDS", "1")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES");
    // SAFETY: only dup2/fcntl (async-signal-safe) between fork and exec; `fd` stays
    // open in the parent until after spawn.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let app = Proc::spawn("selfheal app (inherited)", cmd);
    drop(inherited); // the child holds the socket now
    app.wait_output("serving on", Duration::from_secs(10));
    assert!(
        app.output()
            .contains(&format!("serving on {addr} (inherited)")),
        "{}",
        app.output()
    );

    count_of(&visit(&addr, None).expect("answer on the inherited socket"));
    assert_eq!(
        get_within(&addr, "/livez", Duration::from_secs(5))
            .expect("answer")
            .status,
        200
    );
    assert!(
        std::net::TcpStream::connect(&other).is_err(),
        "--listen must not be bound"
    );
}
