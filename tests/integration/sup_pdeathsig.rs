//! SIGKILL of the supervisor on a bare host leaves no child alive
//! (PR_SET_PDEATHSIG), also for a child running as another user.

use std::time::Duration;

use crate::harness::wait_for;
use crate::sup_util::{alive, children_of, proc_status, start, SOON};

#[test]
fn children_die_with_the_supervisor() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (user = \"nobody\")"
    );
    let mut sup = start(
        "",
        r#"[programs.mine]
command = ["sleep", "infinity"]
[programs.theirs]
command = ["sleep", "infinity"]
user = "nobody"
"#,
    );
    let mine = sup.wait_pid("mine");
    let theirs = sup.wait_pid("theirs");
    wait_for("theirs to run as nobody", SOON, || {
        proc_status(theirs, "Uid").filter(|u| u.split_whitespace().all(|id| id == "65534"))
    });
    let kids = children_of(sup.proc.pid());
    assert!(kids.contains(&mine) && kids.contains(&theirs), "{kids:?}");
    sup.proc.signal(libc::SIGKILL);
    assert_eq!(sup.proc.wait_exit(SOON), None);
    wait_for("both children to die", Duration::from_secs(5), || {
        (!alive(mine) && !alive(theirs)).then_some(())
    });
}
