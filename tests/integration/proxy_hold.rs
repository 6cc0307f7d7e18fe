//! A request arriving while no upstream listens is held, not refused, and
//! succeeds once an upstream appears.

use std::time::Duration;

use crate::harness::{free_port, get, wait_for};
use crate::proxy_util::{start_proxy, Upstream};

#[test]
fn proxy_holds_a_request_until_an_upstream_appears() {
    let port = free_port();
    let (proxy, addr) = start_proxy(&[format!("127.0.0.1:{port}")], &["--hold-timeout", "10s"]);
    let client = std::thread::spawn(move || get(&addr, "/held", &[]));
    // The proxy has tried (and failed) to connect at least once before we bind.
    proxy.wait_output("upstream ejected", Duration::from_secs(10));
    let up = Upstream::start_on(port);
    let r = client.join().unwrap().expect("held request answered");
    assert_eq!(r.status, 200);
    wait_for("one delivery", Duration::from_secs(5), || {
        (up.count_path("/held") == 1).then_some(())
    });
}
