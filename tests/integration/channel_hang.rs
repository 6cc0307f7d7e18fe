//! Replay after a hang: when the supervisor replaces a hung app (liveness),
//! the proxy replays the keyed GETs in flight to it on the next incarnation,
//! so a steady stream of them sees no failure.

use std::time::{Duration, Instant};

use crate::channel_memory::Stream;
use crate::harness::{get, wait_for};
use crate::stack_util::Stack;

#[test]
fn keyed_gets_in_flight_to_a_hung_app_are_replayed_on_the_next_one() {
    let stack = Stack::start();
    let before = stack.pid_of("app").expect("app pid");
    let stream = Stream::start(&stack.front);
    std::thread::sleep(Duration::from_millis(200)); // some traffic before
    let hung = Instant::now();
    let resp = get(&stack.app, "/hang", &[]).expect("hang answered");
    assert_eq!(resp.status, 202);
    wait_for("a new app incarnation", Duration::from_secs(15), || {
        stack.pid_of("app").filter(|p| *p != before)
    });
    let replaced = hung.elapsed();
    stack.wait_ready(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300)); // some traffic after
    let (failed, slowest, total) = stream.finish();
    println!("replaced {replaced:?} after the hang; {total} requests, slowest {slowest:?}");
    assert!(failed.is_empty(), "failed: {failed:?}");
    // Shipped: probe interval 1 s × 3 failures, stop_timeout 5 s, + 100 ms.
    let bound = Duration::from_millis(3 * 1000 + 5000 + 100);
    assert!(slowest <= bound, "slowest {slowest:?} > {bound:?}");
    // The restart cost counts the replay.
    let cost = wait_for(
        "the restart cost with the replay",
        Duration::from_secs(5),
        || {
            let status = stack.status();
            let app = status["programs"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "app")?
                .clone();
            let cost = app["last_restart"].clone();
            (cost["replayed"].as_u64()? >= 1).then_some(cost)
        },
    );
    println!("last_restart: {cost}");
}
