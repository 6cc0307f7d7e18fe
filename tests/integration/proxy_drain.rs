//! SIGTERM: the proxy stops accepting, lets the in-flight request finish, exits 0.

use std::time::Duration;

use crate::harness::{get, wait_for};
use crate::proxy_util::{start_proxy, Upstream};

#[test]
fn proxy_drains_in_flight_requests_on_sigterm() {
    let up = Upstream::start();
    let (mut proxy, addr) = start_proxy(&[up.addr()], &[]);
    let a = addr.clone();
    let client = std::thread::spawn(move || get(&a, "/slow?ms=800", &[]));
    wait_for(
        "the slow request to reach the upstream",
        Duration::from_secs(10),
        || (up.count_path("/slow?ms=800") == 1).then_some(()),
    );
    proxy.signal(libc::SIGTERM);
    let r = client.join().unwrap().expect("in-flight request answered");
    assert_eq!(r.status, 200);
    assert_eq!(proxy.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        get(&addr, "/", &[]).is_none(),
        "still accepting after the drain"
    );
}
