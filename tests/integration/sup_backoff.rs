//! Backoff: delays grow 0ms, 100ms, 200ms, … up to `max`, and a run longer than
//! `reset_after` starts the sequence again.

use std::time::Duration;

use crate::harness::{temp_dir, wait_for};
use crate::sup_util::{next_start_delays, script, start_in};

#[test]
fn delays_grow_exponentially_up_to_max() {
    let dir = temp_dir();
    let sup = start_in(
        dir,
        "",
        r#"[programs.a]
command = ["sh", "-c", "exit 1"]
backoff = { initial = "0s", max = "2s", multiplier = 2, jitter = 0 }
restart_limit = { max = 100, window = "60s" }
"#,
    );
    let delays = wait_for("8 restarts of a", Duration::from_secs(30), || {
        let d = next_start_delays(&sup.output(), "a");
        (d.len() >= 8).then_some(d)
    });
    assert_eq!(
        delays[..8],
        ["0ms", "100ms", "200ms", "400ms", "800ms", "1.6s", "2s", "2s"],
        "{}",
        sup.output()
    );
}

#[test]
fn a_long_run_resets_the_backoff() {
    let dir = temp_dir();
    let d = dir.path().to_str().unwrap().to_string();
    // The 4th run lasts longer than reset_after; all others crash at once.
    script(
        dir.path(),
        "crash.sh",
        &format!(
            "#!/bin/sh\nn=$(cat {d}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > {d}/n\n\
             [ \"$n\" = 4 ] && sleep 2.3\nexit 1\n"
        ),
    );
    let sup = start_in(
        dir,
        "",
        r#"[programs.a]
command = ["@DIR@/crash.sh"]
backoff = { initial = "0s", max = "2s", multiplier = 2, jitter = 0, reset_after = "2s" }
restart_limit = { max = 100, window = "60s" }
"#,
    );
    let delays = wait_for("6 restarts of a", Duration::from_secs(30), || {
        let d = next_start_delays(&sup.output(), "a");
        (d.len() >= 6).then_some(d)
    });
    assert_eq!(
        delays[..6],
        ["0ms", "100ms", "200ms", "0ms", "100ms", "200ms"],
        "{}",
        sup.output()
    );
}
