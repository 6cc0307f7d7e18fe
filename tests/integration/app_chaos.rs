//! Chaos endpoints: `/kill` answers 202 and then exits 1; `/hang` answers 202 and
//! then the app stops answering (liveness catches it); both 404 without `--chaos`.

use std::time::Duration;

use crate::app_util::{app_command, assert_live, count_of, get_within, start_app, visit};
use crate::harness::{free_port, get, temp_dir, Proc, Redis};

#[test]
fn kill_answers_202_then_exits_with_code_1() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    // Several rounds: the 202 must win the race against the exit every time.
    for round in 0..3 {
        let mut app = start_app(&redis.url(), &["--chaos"]);
        count_of(&visit(&app.addr, None).expect("answer"));
        let method = if round % 2 == 0 { "GET" } else { "POST" };
        let req = format!(
            "{method} /kill HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" // keep-alive on purpose
        );
        let resp = crate::harness::raw_request(&app.addr, req.as_bytes(), Duration::from_secs(5))
            .expect("the 202 must reach the client before the exit");
        assert_eq!(resp.status, 202, "{}", resp.text());
        assert!(resp.text().contains("exits with code 1"), "{}", resp.text());
        assert_eq!(app.proc.wait_exit(Duration::from_secs(5)), Some(1));
        app.proc
            .wait_output("kill received: exiting with code 1", Duration::from_secs(5));
    }
}

#[test]
fn hang_answers_202_then_livez_stops_answering() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let app = start_app(&redis.url(), &["--chaos"]);
    assert_live(&app.addr);

    let resp = get(&app.addr, "/hang", &[]).expect("answer");
    assert_eq!(resp.status, 202);
    assert!(
        get_within(&app.addr, "/livez", Duration::from_millis(700)).is_none(),
        "livez answered"
    );
    assert!(
        get_within(&app.addr, "/", Duration::from_millis(700)).is_none(),
        "/ answered"
    );
    app.proc
        .wait_output("hang received", Duration::from_secs(5));
}

#[test]
fn chaos_routes_are_404_without_the_flag() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    let mut app = start_app(&redis.url(), &[]);
    for path in ["/kill", "/hang", "/leak"] {
        for method in ["GET", "POST"] {
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            );
            let resp =
                crate::harness::raw_request(&app.addr, req.as_bytes(), Duration::from_secs(5))
                    .expect("answer");
            assert_eq!(resp.status, 404, "{method} {path}");
        }
    }
    // Still alive and counting.
    assert!(app.proc.child.try_wait().expect("try_wait").is_none());
    count_of(&visit(&app.addr, None).expect("answer"));
    assert_live(&app.addr);
}

#[test]
fn chaos_is_switched_by_the_environment_variable() {
    let dir = temp_dir();
    let redis = Redis::start(dir.path());
    for (value, expected) in [("1", 202), ("0", 404), ("true", 202), ("off", 404)] {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = app_command(&redis.url(), &addr, &[]);
        cmd.env("SELFHEAL_CHAOS", value);
        let app = Proc::spawn(&format!("selfheal app SELFHEAL_CHAOS={value}"), cmd);
        app.wait_output("serving on", Duration::from_secs(10));
        let resp = get(&addr, "/hang", &[]).expect("answer");
        assert_eq!(resp.status, expected, "SELFHEAL_CHAOS={value}");
    }
}
