//! `user =` takes the user's supplementary groups (`initgroups` semantics,
//! issue 10 item 9); `group =` still overrides the primary group; the
//! parent-death signal survives the switch.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::harness::{temp_dir, wait_for};
use crate::sup_hardening_util::start_cmd;
use crate::sup_util::SOON;

/// A system user and two groups made for one test; removed on drop.
struct Account {
    user: String,
    extra: String,
    primary_override: String,
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

fn gid_of(group: &str) -> u32 {
    nix::unistd::Group::from_name(group)
        .unwrap()
        .unwrap_or_else(|| panic!("no group {group}"))
        .gid
        .as_raw()
}

impl Account {
    fn create() -> Account {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (useradd, groupadd)"
        );
        // Unique per test, also when tests share a process (`cargo test`).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{}x{n}", std::process::id());
        let a = Account {
            user: format!("shuser{tag}"),
            extra: format!("shextra{tag}"),
            primary_override: format!("shother{tag}"),
        };
        run("groupadd", &[&a.extra]);
        run("groupadd", &[&a.primary_override]);
        run(
            "useradd",
            &[
                "--no-create-home",
                "--user-group",
                "--groups",
                &a.extra,
                &a.user,
            ],
        );
        a
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        // userdel refuses while a process of the user lives: the programs die
        // of PR_SET_PDEATHSIG after the supervisor, a moment later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !Command::new("userdel")
            .arg(&self.user)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = Command::new("groupdel").arg(&self.extra).status();
        let _ = Command::new("groupdel")
            .arg(&self.primary_override)
            .status();
        let _ = Command::new("groupdel").arg(&self.user).status();
    }
}

/// What a program reports about itself: parent-death signal, uid, gid,
/// supplementary groups (sorted).
#[derive(Debug, PartialEq)]
struct Identity {
    pdeathsig: i32,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

/// The program: writes its identity to `DIR/NAME`, then sleeps.
fn reporter(dir: &std::path::Path, name: &str) -> String {
    format!(
        r#"["{py}", "-c", "import ctypes, os; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s), 0, 0, 0); open('{d}/{name}.tmp', 'w').write('%d %d %d %s\\n' % (s.value, os.getuid(), os.getgid(), ' '.join(map(str, sorted(os.getgroups()))))); os.rename('{d}/{name}.tmp', '{d}/{name}'); os.execvp('sleep', ['sleep', 'infinity'])"]"#,
        py = crate::sup_util::python(),
        d = dir.display()
    )
}

fn identity(path: &std::path::Path) -> Identity {
    let text = wait_for(&format!("{} to be written", path.display()), SOON, || {
        std::fs::read_to_string(path).ok()
    });
    let numbers: Vec<u32> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    Identity {
        pdeathsig: numbers[0] as i32,
        uid: numbers[1],
        gid: numbers[2],
        groups: numbers[3..].to_vec(),
    }
}

#[test]
fn user_keeps_its_supplementary_groups_and_group_overrides_the_primary() {
    let account = Account::create();
    let user = nix::unistd::User::from_name(&account.user)
        .unwrap()
        .unwrap();
    let (uid, own) = (user.uid.as_raw(), user.gid.as_raw());
    let extra = gid_of(&account.extra);
    let other = gid_of(&account.primary_override);
    let dir = temp_dir();
    // The user must be able to write its report.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let programs = format!(
        "[programs.plain]\ncommand = {plain}\nuser = \"{u}\"\n\
         [programs.regrouped]\ncommand = {regrouped}\nuser = \"{u}\"\ngroup = \"{g}\"\n",
        plain = reporter(&out, "plain"),
        regrouped = reporter(&out, "regrouped"),
        u = account.user,
        g = account.primary_override
    );
    let _sup = start_cmd(dir, "", &programs, |_| {});
    let mut both = vec![own, extra];
    both.sort_unstable();
    assert_eq!(
        identity(&out.join("plain")),
        Identity {
            pdeathsig: libc::SIGKILL,
            uid,
            gid: own,
            groups: both.clone(),
        },
        "user = {:?}: want its own groups ({own}, {extra})",
        account.user
    );
    // group = overrides the primary gid; the user's groups stay.
    assert_eq!(
        identity(&out.join("regrouped")),
        Identity {
            pdeathsig: libc::SIGKILL,
            uid,
            gid: other,
            groups: both,
        }
    );
}

/// A workdir the user cannot enter: the set-up step is named, not misread as
/// the program's own exec error.
#[test]
fn a_workdir_the_user_cannot_enter_is_named() {
    let account = Account::create();
    let dir = temp_dir();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    // Enterable at start (the preflight of `check` would refuse it up front);
    // locked while the program restarts, as a deploy might do.
    let sup = start_cmd(
        dir,
        "",
        &format!(
            "[programs.shut]\ncommand = [\"sh\", \"-c\", \"exit 1\"]\nuser = \"{u}\"\nworkdir = \"@DIR@/locked\"\nrestart_limit = {{ max = 1000, window = \"60s\" }}\nbackoff = {{ initial = \"50ms\", max = \"200ms\", jitter = 0 }}\n",
            u = account.user
        ),
        |_| {},
    );
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let line = wait_for("shut to fail to start", SOON, || {
        sup.output()
            .lines()
            .find(|l| l.contains("shut could not start"))
            .map(str::to_string)
    });
    assert!(
        line.contains(&format!(
            "cannot enter workdir {} as user {}",
            locked.display(),
            account.user
        )) && line.contains("Permission denied"),
        "{line}"
    );
}
