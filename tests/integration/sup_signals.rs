//! Issue 10, kind 6: signals. One notion of "stop requested" (give-up and
//! signals share it), forcing only on a repeat after the grace, and every other
//! catchable signal either forwarded to the programs that declare it or ignored
//! — never the death of the supervisor or of a program that did not ask for it.

use std::time::{Duration, Instant};

use crate::sup_util::{start, SOON};

/// Traps TERM and takes 300 ms to drain, then exits 0.
const DRAINER: &str = r#"[programs.drainer]
command = ["sh", "-c", "trap 'sleep 0.3; exit 0' TERM; echo up; while :; do sleep 0.05; done"]
"#;

#[test]
fn two_terms_a_few_ms_apart_still_drain_and_exit_0() {
    let mut sup = start("", DRAINER);
    sup.proc.wait_output("| up", SOON);
    sup.proc.signal(libc::SIGTERM);
    // The kernel merges a pending repeat: send it once the first was taken.
    sup.proc.wait_output("received SIGTERM: stopping", SOON);
    sup.proc.signal(libc::SIGTERM);
    let code = sup.proc.wait_exit(SOON);
    let out = sup.output();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("again within 1s: ignored"), "{out}");
    assert!(!out.contains("forcing"), "{out}");
}

#[test]
fn a_term_after_a_give_up_keeps_exit_3() {
    let mut sup = start(
        "on_give_up = \"exit\"",
        &format!(
            "{DRAINER}stop_timeout = \"5s\"\n[programs.crasher]\ncommand = [\"sh\", \"-c\", \"exit 1\"]\nrestart_limit = {{ max = 1, window = \"60s\" }}\nbackoff = {{ initial = \"0s\", jitter = 0 }}\n"
        ),
    );
    sup.proc
        .wait_output("crasher failed: stopping everything", SOON);
    sup.proc.signal(libc::SIGTERM);
    let code = sup.proc.wait_exit(SOON);
    let out = sup.output();
    assert_eq!(
        code,
        Some(3),
        "the first TERM after a give-up is not a second one: {out}"
    );
    assert!(!out.contains("forcing"), "{out}");
}

#[test]
fn a_give_up_at_the_very_first_start_exits_3() {
    let mut sup = start(
        "on_give_up = \"exit\"",
        "[programs.missing]\ncommand = [\"/nonexistent/binary\"]\nrestart_limit = { max = 0, window = \"60s\" }\n[programs.other]\ncommand = [\"sleep\", \"3600\"]\ndepends_on = { missing = \"healthy\" }\n",
    );
    let code = sup.proc.wait_exit(SOON);
    assert_eq!(code, Some(3), "{}", sup.output());
}

#[test]
fn stray_signals_kill_neither_the_supervisor_nor_its_programs() {
    let sup = start("", "[programs.sleeper]\ncommand = [\"sleep\", \"3600\"]\n");
    let pid = sup.wait_pid("sleeper");
    let signals = [
        libc::SIGALRM,
        libc::SIGPWR,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGXCPU,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGRTMIN() + 1,
        libc::SIGRTMAX() - 1,
    ];
    for sig in signals {
        sup.proc.signal(sig);
    }
    sup.wait_count("no program declares it", signals.len(), SOON);
    // SIGHUP reloads the (unchanged) config: nothing is touched either.
    sup.proc.signal(libc::SIGHUP);
    sup.wait_count("received SIGHUP: reloading the config", 1, SOON);
    sup.wait_count("reload applied: 0 changed, 1 unchanged", 1, SOON);
    // Still supervising: the admin API answers and the program was not touched.
    assert_eq!(sup.program("sleeper")["pid"], pid, "{}", sup.output());
    assert_eq!(sup.program("sleeper")["restarts"], 0);
}

#[test]
fn hup_goes_only_to_programs_that_declare_it() {
    let sup = start(
        "",
        "[programs.reloader]\ncommand = [\"sh\", \"-c\", \"trap 'echo got HUP' HUP; echo up; while :; do sleep 0.05; done\"]\nforward_signals = [\"HUP\"]\n[programs.plain]\ncommand = [\"sleep\", \"3600\"]\n",
    );
    sup.proc.wait_output("| up", SOON);
    let plain = sup.wait_pid("plain");
    let t0 = Instant::now();
    sup.proc.signal(libc::SIGHUP);
    sup.proc.wait_output("| got HUP", SOON);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(
        sup.output().contains("forwarded to 1 program(s)"),
        "{}",
        sup.output()
    );
    assert_eq!(sup.program("plain")["pid"], plain, "{}", sup.output());
    assert_eq!(sup.program("plain")["restarts"], 0, "{}", sup.output());
}

/// The shipped app and proxy take HUP, USR1 and USR2 without dying (a
/// `docker kill -s HUP`, or a program that declares them, must not crash them).
#[test]
fn the_app_and_the_proxy_survive_hup_usr1_usr2() {
    let redis = crate::harness::Redis::start(crate::harness::temp_dir().path());
    let app = crate::app_util::start_app(&redis.url(), &[]);
    let upstream = crate::proxy_util::Upstream::start();
    let (proxy, addr) = crate::proxy_util::start_proxy(&[upstream.addr()], &[]);
    for sig in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
        app.proc.signal(sig);
        proxy.signal(sig);
    }
    app.proc.wait_output("received SIGUSR2", SOON);
    proxy.wait_output("received SIGUSR2", SOON);
    crate::app_util::assert_live(&app.addr);
    let answer = crate::harness::get(&addr, "/", &[]).map(|r| r.status);
    assert_eq!(answer, Some(200));
    assert!(crate::sup_util::alive(app.proc.pid()) && crate::sup_util::alive(proxy.pid()));
}
