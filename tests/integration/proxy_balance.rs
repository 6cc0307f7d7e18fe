//! Two upstreams share the load; one that stops accepting is ejected (clients see
//! nothing) and re-admitted by the active check once it listens again.

use std::time::Duration;

use crate::harness::{get, wait_for};
use crate::proxy_util::{start_proxy, Upstream};

#[test]
fn proxy_balances_ejects_and_readmits() {
    let a = Upstream::start();
    let b = Upstream::start();
    let b_port = b.port;
    let (proxy, addr) = start_proxy(&[a.addr(), b.addr()], &["--workers", "1"]);
    for i in 0..10 {
        assert_eq!(
            get(&addr, &format!("/r{i}"), &[]).expect("response").status,
            200
        );
    }
    assert!(
        a.seen().len() >= 3 && b.seen().len() >= 3,
        "unbalanced: a={} b={}",
        a.seen().len(),
        b.seen().len()
    );

    b.stop();
    drop(b);
    for i in 0..10 {
        let r = get(&addr, &format!("/down{i}"), &[]).expect("response while b is down");
        assert_eq!(r.status, 200);
    }
    proxy.wait_output("upstream ejected", Duration::from_secs(5));
    let a_before = a.seen().len();
    for i in 0..6 {
        assert_eq!(
            get(&addr, &format!("/only-a{i}"), &[])
                .expect("response")
                .status,
            200
        );
    }
    assert_eq!(
        a.seen().len(),
        a_before + 6,
        "an ejected upstream was still picked"
    );

    let b = Upstream::start_on(b_port);
    proxy.wait_output("upstream re-admitted", Duration::from_secs(5));
    wait_for("traffic to reach b again", Duration::from_secs(10), || {
        assert_eq!(get(&addr, "/back", &[]).expect("response").status, 200);
        (b.count_path("/back") > 0).then_some(())
    });
}
