//! Spawning a child: own process group, clean signal state, `PR_SET_PDEATHSIG`,
//! dropped privileges, inherited listen sockets from fd 3 with `LISTEN_FDS`,
//! `LISTEN_FDNAMES` and a correct `LISTEN_PID`, output captured through one pipe.
//!
//! Everything the child needs is prepared before `fork` ([`ExecImage`]): between
//! fork and exec only async-signal-safe calls run (no allocation, no locks), and
//! the child finishes with its own `execve` so that `LISTEN_PID` can be written
//! into a pre-allocated environment slot once the child knows its pid.
//! std's `Command` still does the rest (stdio, process group) and reports an
//! exec error back through its close-on-exec pipe; [`exec_error::diagnose`]
//! turns that errno into the real cause.
//!
//! The environment is bytes: the supervisor's own variables are passed on as
//! they are (`vars_os`), whether or not they are UTF-8.
//!
//! `user =` has `initgroups(3)` semantics, as `login`, `su` and `runuser` do: the
//! supplementary groups are the user's groups from the group database (so
//! `user = "postgres"` keeps `ssl-cert`), the primary group is the user's
//! unless `group =` names another, and the user's primary group stays among
//! the supplementary ones. The group list is read before `fork`; the child only
//! makes the `setgroups`/`setgid`/`setuid` system calls.

use std::ffi::{CString, OsStr};
use std::io::PipeReader;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

mod environ;
mod vfork;

use super::exec_error;
use super::state::{Pid, Termination};

/// First descriptor number of inherited sockets (the systemd convention).
const FIRST_LISTEN_FD: RawFd = 3;
const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run and how.
pub struct Spec<'a> {
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub workdir: Option<&'a Path>,
    pub user: Option<&'a str>,
    pub group: Option<&'a str>,
    /// Sockets handed over as fd 3, 4, … with their names.
    pub listen: &'a [(OwnedFd, String)],
    /// The state channel's child end, handed over as the descriptor after the
    /// listen sockets and named by `SELFHEAL_STATE_FD`.
    pub state_fd: Option<RawFd>,
    /// Where its stdin, stdout and stderr go.
    pub stdio: ChildStdio,
    /// Make its process group the terminal's foreground group (when stdin is a
    /// terminal), so shells, `read` and Ctrl-C work as without a supervisor.
    pub foreground: bool,
    /// The signal it gets when the supervisor dies (`PR_SET_PDEATHSIG`).
    pub death_signal: i32,
    /// Hand back a pidfd ([`Child::pidfd`]) where the kernel has them
    /// ([`super::reaper::pidfds_supported`]), for [`super::reaper::Leaders::watch`].
    pub pidfd: bool,
}

impl<'a> Spec<'a> {
    /// `argv` with nothing else: no environment of its own, no workdir, user
    /// or sockets, all three streams `/dev/null`, SIGKILL when the supervisor
    /// dies, no pidfd (an exec probe; tests build on it).
    pub fn plain(argv: &'a [String]) -> Spec<'a> {
        Spec {
            argv,
            env: &[],
            workdir: None,
            user: None,
            group: None,
            listen: &[],
            state_fd: None,
            stdio: ChildStdio::Null,
            foreground: false,
            death_signal: libc::SIGKILL,
            pidfd: false,
        }
    }
}

/// The child's standard streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStdio {
    /// stdin `/dev/null`; stdout and stderr through one pipe (read by [`super::logs::pump`]).
    Capture,
    /// stdin, stdout and stderr are the supervisor's own (the main program).
    Inherit,
    /// All three `/dev/null` (exec probes).
    Null,
}

pub struct Child {
    pub pid: Pid,
    pub output: Option<PipeReader>,
    /// Its pidfd, when [`Spec::pidfd`] asked for one and the kernel has them.
    pub pidfd: Option<OwnedFd>,
}

/// Spawns `spec`. Any failure before the program runs is an
/// [`Termination::ExecFailed`] with a message naming the cause.
pub fn spawn(spec: &Spec) -> Result<Child, Termination> {
    let identity = Identity::of(spec)?;
    // (the supervisor's end, its number in the child)
    let state_fd = spec.state_fd.map(|fd| (fd, state_fd_target(spec)));
    let env = environ::block(&environ::Inputs {
        env: spec.env,
        user: identity.user.as_ref(),
        listen: spec.listen,
        state_fd: state_fd.map(|(_, target)| target),
    })?;
    if let Some(dir) = spec.workdir {
        if !dir.is_dir() {
            return Err(failed(
                127,
                format!("workdir {}: no such directory", dir.display()),
            ));
        }
    }
    let path_var = env.path.as_deref().unwrap_or(OsStr::new(DEFAULT_PATH));
    let program = resolve_program(
        spec.argv.first().map_or("", String::as_str),
        path_var,
        spec.workdir,
    )?;
    let listen_fds: Vec<RawFd> = spec.listen.iter().map(|(fd, _)| fd.as_raw_fd()).collect();
    let mut image = ExecImage::new(&program, spec.argv, env, listen_fds)?;
    image.state_fd = state_fd;
    image.credentials = identity.credentials;
    image.workdir = spec.workdir.map(|d| cstring(d.as_os_str())).transpose()?;

    image.foreground = spec.foreground;
    image.death_signal = spec.death_signal;
    let std_fds = StdFds::for_(spec.stdio)?;
    let pidfd = spec.pidfd && super::reaper::pidfds_supported();
    let result = vfork::spawn(&mut image, std_fds.raw(), dev_null()?, pidfd);
    let output = std_fds.into_output(); // closes the parent's copy of the write end
    match result {
        Ok((pid, pidfd)) => Ok(Child { pid, output, pidfd }),
        Err(e) => Err(child_error(
            &e,
            &program,
            spec.workdir,
            identity.user.as_ref().map(|u| u.name.as_str()),
        )),
    }
}

/// Who the program runs as: the resolved `user` (for its environment) and
/// the credentials the child takes (only when the supervisor is root).
struct Identity {
    user: Option<nix::unistd::User>,
    credentials: Credentials,
}

impl Identity {
    fn of(spec: &Spec) -> Result<Identity, Termination> {
        let root = nix::unistd::geteuid().is_root();
        let user = spec.user.map(resolve_user).transpose()?;
        let mut credentials = match &user {
            Some(user) if root => Credentials::of_user(user)?,
            _ => Credentials::default(),
        };
        if let Some(name) = spec.group {
            let group = nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| failed(127, format!("no such group {name:?}")))?;
            if root {
                credentials.gid = Some(group.gid.as_raw());
            }
        }
        Ok(Identity { user, credentials })
    }
}

/// The number the state channel gets in the child: right after the listen sockets.
fn state_fd_target(spec: &Spec) -> RawFd {
    FIRST_LISTEN_FD + spec.listen.len() as RawFd
}

/// The descriptors a child gets as 0, 1, 2, held open until it has exec'd.
struct StdFds {
    stdin: Option<RawFd>,
    /// `/dev/null`, when the output is not captured.
    out: Option<RawFd>,
    /// The output pipe (both 1 and 2).
    pipe: Option<(PipeReader, OwnedFd)>,
}

impl StdFds {
    fn for_(stdio: ChildStdio) -> Result<StdFds, Termination> {
        Ok(match stdio {
            ChildStdio::Capture => {
                let (reader, writer) =
                    std::io::pipe().map_err(|e| failed(126, format!("pipe: {e}")))?;
                StdFds {
                    stdin: Some(dev_null()?),
                    out: None,
                    pipe: Some((reader, writer.into())),
                }
            }
            ChildStdio::Inherit => StdFds {
                stdin: None,
                out: None,
                pipe: None,
            },
            ChildStdio::Null => StdFds {
                stdin: Some(dev_null()?),
                out: Some(dev_null()?),
                pipe: None,
            },
        })
    }

    fn raw(&self) -> [Option<RawFd>; 3] {
        let out = self
            .pipe
            .as_ref()
            .map(|(_, writer)| writer.as_raw_fd())
            .or(self.out);
        [self.stdin, out, out]
    }

    /// The read end; the parent's copy of the write end is closed here.
    fn into_output(self) -> Option<PipeReader> {
        self.pipe.map(|(reader, _writer)| reader)
    }
}

/// `/dev/null`, opened once (read-write, close-on-exec) for every child's
/// stdin and unread output: one `open` less per spawn.
fn dev_null() -> Result<RawFd, Termination> {
    static NULL: OnceLock<std::fs::File> = OnceLock::new();
    if let Some(file) = NULL.get() {
        return Ok(file.as_raw_fd());
    }
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| failed(126, format!("/dev/null: {e}")))?;
    Ok(NULL.get_or_init(|| file).as_raw_fd())
}

/// The child's error as the operator should read it: a failed set-up step
/// (see [`Step`]) or the diagnosed `execve` failure.
fn child_error(
    e: &std::io::Error,
    program: &Path,
    workdir: Option<&Path>,
    user: Option<&str>,
) -> Termination {
    let Some(raw) = e.raw_os_error() else {
        return failed(126, format!("{}: {e}", program.display()));
    };
    if let Some((step, errno)) = Step::decode(raw) {
        let errno = std::io::Error::from_raw_os_error(errno);
        let who = user.map_or(String::new(), |u| format!(" as user {u}"));
        let what = match step {
            Step::Credentials => format!("cannot switch to the configured user/group: {errno}"),
            Step::Workdir => format!(
                "cannot enter workdir {}{who}: {errno}",
                workdir.map_or(String::new(), |d| d.display().to_string())
            ),
            Step::Setup => format!("cannot prepare the child process: {errno}"),
        };
        return failed(126, what);
    }
    let on_disk = match workdir {
        Some(dir) if program.is_relative() => dir.join(program),
        _ => program.to_path_buf(),
    };
    let diagnosis = exec_error::diagnose(&on_disk, raw);
    failed(diagnosis.code, diagnosis.message)
}

fn failed(code: i32, error: String) -> Termination {
    Termination::ExecFailed { code, error }
}

fn resolve_user(name: &str) -> Result<nix::unistd::User, Termination> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| failed(127, format!("no such user {name:?}")))
}

/// Finds the executable: names with a `/` as given (relative to `workdir`),
/// others along `PATH`. Checked here so the error is precise and no fork is wasted.
fn resolve_program(
    name: &str,
    path_var: &OsStr,
    workdir: Option<&Path>,
) -> Result<PathBuf, Termination> {
    if name.is_empty() {
        return Err(failed(127, "empty command".to_string()));
    }
    let executable =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    if name.contains('/') {
        let full = match workdir {
            Some(dir) if !name.starts_with('/') => dir.join(name),
            _ => PathBuf::from(name),
        };
        return match (full.exists(), executable(&full)) {
            (false, _) => Err(failed(127, format!("{name}: no such file"))),
            (true, false) => Err(failed(126, format!("{name}: not executable"))),
            (true, true) => Ok(PathBuf::from(name)),
        };
    }
    if let Some(found) = path_cache::lookup(name, path_var) {
        return Ok(found);
    }
    let found = path_var
        .as_bytes()
        .split(|&b| b == b':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(OsStr::from_bytes(d)).join(name))
        .find(|p| executable(p))
        .ok_or_else(|| failed(127, format!("{name}: no such file (searched PATH)")))?;
    path_cache::remember(name, path_var, &found);
    Ok(found)
}

/// PATH searches remembered for a moment, like a shell's `hash` table but
/// forgotten after [`path_cache::KEEP`]: starting 1000 programs searched PATH
/// 1000 times (an `access` per directory; 14 % of the supervisor's start-up
/// CPU), while a binary installed or removed later is still found (or missed)
/// at the next spawn after that.
mod path_cache {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::ffi::{OsStr, OsString};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    /// How long a search result is reused.
    pub const KEEP: Duration = Duration::from_secs(1);

    struct Cache {
        since: Instant,
        found: HashMap<(String, OsString), PathBuf>,
    }

    thread_local! {
        static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
    }

    /// The path found for `name` along `path_var` within the last [`KEEP`].
    pub fn lookup(name: &str, path_var: &OsStr) -> Option<PathBuf> {
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.as_ref().is_some_and(|c| c.since.elapsed() > KEEP) {
                *cache = None; // everything is forgotten at once
            }
            let key = (name.to_string(), path_var.to_os_string());
            cache.as_ref()?.found.get(&key).cloned()
        })
    }

    pub fn remember(name: &str, path_var: &OsStr, found: &Path) {
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let cache = cache.get_or_insert_with(|| Cache {
                since: Instant::now(),
                found: HashMap::new(),
            });
            let key = (name.to_string(), path_var.to_os_string());
            cache.found.insert(key, found.to_path_buf());
        })
    }
}

/// Credentials the child takes before exec; `None` leaves that one unchanged.
#[derive(Debug, Default)]
struct Credentials {
    /// Supplementary groups (`initgroups` semantics).
    groups: Option<Vec<libc::gid_t>>,
    gid: Option<libc::gid_t>,
    uid: Option<libc::uid_t>,
}

impl Credentials {
    /// `user`'s uid, primary gid and group list (`getgrouplist(3)`, which
    /// always includes the primary gid), read now, before any fork.
    fn of_user(user: &nix::unistd::User) -> Result<Credentials, Termination> {
        let name = cstring(OsStr::new(&user.name))?;
        let groups = nix::unistd::getgrouplist(&name, user.gid).map_err(|e| {
            failed(
                126,
                format!("cannot read the groups of user {:?}: {e}", user.name),
            )
        })?;
        Ok(Credentials {
            groups: Some(groups.iter().map(|g| g.as_raw()).collect()),
            gid: Some(user.gid.as_raw()),
            uid: Some(user.uid.as_raw()),
        })
    }
}

/// A set-up step in the child that failed before `execve`. Its errno reaches
/// the parent through std's exec-error pipe, which carries one `i32`; the step
/// is encoded in the bits above any errno ([`Step::encode`]), so the parent can
/// say "cannot enter workdir" instead of misreading the errno as the program's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Setup = 1,
    Credentials = 2,
    Workdir = 3,
}

/// Errnos are below 4096 (the kernel's `MAX_ERRNO`); steps live above.
const STEP_SHIFT: u32 = 16;

impl Step {
    /// The errno of the current thread, tagged with this step.
    fn error(self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.errno())
    }

    /// As [`Step::error`], as a raw number.
    fn errno(self) -> i32 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        ((self as i32) << STEP_SHIFT) | errno
    }

    /// `(step, errno)` if `raw` was made by [`Step::error`].
    fn decode(raw: i32) -> Option<(Step, i32)> {
        let errno = raw & ((1 << STEP_SHIFT) - 1);
        let step = match raw >> STEP_SHIFT {
            1 => Step::Setup,
            2 => Step::Credentials,
            3 => Step::Workdir,
            _ => return None,
        };
        Some((step, errno))
    }
}

fn cstring(s: &OsStr) -> Result<CString, Termination> {
    CString::new(s.as_bytes()).map_err(|_| failed(126, format!("{s:?} contains a NUL byte")))
}

/// argv and envp as C arrays, built before fork; the `LISTEN_PID` slot is filled
/// in by the child.
struct ExecImage {
    path: CString,
    _argv: Vec<CString>,
    /// Owns the strings `envp` points into.
    _env: Arc<environ::Block>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// `LISTEN_PID=` followed by room for the digits and a NUL; owned here.
    listen_pid: Option<*mut u8>,
    listen_fds: Vec<RawFd>,
    /// `(source, target)` of the state channel.
    state_fd: Option<(RawFd, RawFd)>,
    credentials: Credentials,
    /// Entered after the credentials change, so the program's user must be
    /// able to enter it (as with std's `current_dir` and `runuser`).
    workdir: Option<CString>,
    /// Take the terminal's foreground (see [`Spec::foreground`]).
    foreground: bool,
    death_signal: i32,
}

const LISTEN_PID_LEN: usize = 32;

/// The kernel's highest signal number (`_NSIG - 1`; glibc's SIGRTMAX is the same).
const KERNEL_SIGRTMAX: libc::c_int = 64;

/// The kernel's `struct sigaction` (handler, flags, restorer, 64-bit mask). All
/// zeros is `SIG_DFL`, no flags, empty mask, whatever the architecture's order.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

// SAFETY: the raw pointers point into buffers the image owns or shares (the
// CStrings in `_argv` and `_env`, the boxed `listen_pid` slot), which live as
// long as it. Only the `listen_pid` slot, the image's own, is ever written, in
// the child while the parent waits (CLONE_VFORK).
unsafe impl Send for ExecImage {}
// SAFETY: as above; the parent never reads or writes through the pointers.
unsafe impl Sync for ExecImage {}

impl ExecImage {
    fn new(
        path: &Path,
        argv: &[String],
        env: Arc<environ::Block>,
        listen_fds: Vec<RawFd>,
    ) -> Result<Self, Termination> {
        let cstr = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| failed(126, "an argument contains a NUL byte".into()))
        };
        let path = cstr(path.as_os_str().as_bytes())?;
        let strings = argv
            .iter()
            .map(|arg| cstr(arg.as_bytes()))
            .collect::<Result<Vec<CString>, Termination>>()?;
        let mut argv_ptrs: Vec<*const libc::c_char> = Vec::with_capacity(strings.len() + 1);
        argv_ptrs.extend(strings.iter().map(|s| s.as_ptr()));
        argv_ptrs.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = Vec::with_capacity(env.entries.len() + 2);
        envp.extend(env.entries.iter().map(|s| s.as_ptr()));
        let listen_pid = (!listen_fds.is_empty()).then(|| {
            let mut slot = Box::new([0u8; LISTEN_PID_LEN]);
            if let Some(head) = slot.get_mut(..LISTEN_PID_PREFIX.len()) {
                head.copy_from_slice(LISTEN_PID_PREFIX);
            }
            let raw = Box::into_raw(slot) as *mut u8;
            envp.push(raw as *const libc::c_char);
            raw
        });
        envp.push(std::ptr::null());
        Ok(ExecImage {
            path,
            _argv: strings,
            _env: env,
            argv: argv_ptrs,
            envp,
            listen_pid,
            listen_fds,
            state_fd: None,
            credentials: Credentials::default(),
            workdir: None,
            foreground: false,
            death_signal: libc::SIGKILL,
        })
    }

    /// Runs in the child between fork and exec. Returns only on failure.
    fn exec_in_child(&mut self, parent: libc::pid_t) -> std::io::Result<()> {
        // SAFETY: every call below is async-signal-safe and works on memory owned
        // by `self`, prepared before the fork.
        unsafe {
            // The terminal's foreground goes to our new process group (std made
            // it with setpgid before this closure). From a background group,
            // tcsetpgrp would raise SIGTTOU, so it is blocked here; the mask is
            // emptied below. No terminal (ENOTTY) is fine: nothing to take.
            if self.foreground && libc::isatty(libc::STDIN_FILENO) == 1 {
                let mut ttou: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut ttou);
                libc::sigaddset(&mut ttou, libc::SIGTTOU);
                libc::pthread_sigmask(libc::SIG_BLOCK, &ttou, std::ptr::null_mut());
                libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
            }
            // Default dispositions (an ignored signal stays ignored across exec)
            // and an empty mask: the child starts as if from a clean shell. The
            // raw syscall, because glibc's signal() refuses its reserved 32 and
            // 33, which a container runtime or test runner may have left ignored;
            // up to and including SIGRTMAX.
            let default_action = KernelSigaction::default();
            for sig in 1..=KERNEL_SIGRTMAX {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        &default_action as *const KernelSigaction,
                        std::ptr::null_mut::<KernelSigaction>(),
                        std::mem::size_of::<u64>(),
                    );
                }
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // Groups first, while still root; then gid; uid last.
            let creds = &self.credentials;
            if let Some(groups) = &creds.groups {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                    return Err(Step::Credentials.error());
                }
            }
            if let Some(gid) = creds.gid {
                if libc::setgid(gid) != 0 {
                    return Err(Step::Credentials.error());
                }
            }
            if let Some(uid) = creds.uid {
                if libc::setuid(uid) != 0 {
                    return Err(Step::Credentials.error());
                }
            }
            if let Some(dir) = &self.workdir {
                if libc::chdir(dir.as_ptr()) != 0 {
                    return Err(Step::Workdir.error());
                }
            }
            // Die with the supervisor. Set after the uid/gid change, which
            // would clear it; then make sure the parent did not die already.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                self.death_signal as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(Step::Setup.error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(
                    ((Step::Setup as i32) << STEP_SHIFT) | libc::ESRCH,
                ));
            }
            for (i, &fd) in self.listen_fds.iter().enumerate() {
                let target = FIRST_LISTEN_FD + i as RawFd;
                if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                } else if libc::dup2(fd, target) < 0 {
                    return Err(Step::Setup.error());
                }
            }
            if let Some((fd, target)) = self.state_fd {
                if fd == target {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                } else if libc::dup2(fd, target) < 0 {
                    return Err(Step::Setup.error());
                }
            }
            if let Some(slot) = self.listen_pid {
                write_decimal(slot.add(LISTEN_PID_PREFIX.len()), libc::getpid() as u32);
            }
            libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
        }
        Err(std::io::Error::last_os_error())
    }
}

impl Drop for ExecImage {
    fn drop(&mut self) {
        if let Some(raw) = self.listen_pid.take() {
            // SAFETY: `raw` came from Box::into_raw of a [u8; LISTEN_PID_LEN] in `new`
            // and is freed exactly once, here.
            drop(unsafe { Box::from_raw(raw as *mut [u8; LISTEN_PID_LEN]) });
        }
    }
}

/// Writes `n` in decimal plus a NUL at `out` (room for 11 bytes needed).
///
/// # Safety
/// `out` must be valid for 11 bytes of writes.
unsafe fn write_decimal(out: *mut u8, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    // A u32 has at most 10 digits, so `get_mut` never fails; checked
    // access keeps the no-panic rule without allocating (async-signal-safe).
    while let Some(digit) = digits.get_mut(len) {
        *digit = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, digit) in digits.iter().take(len).rev().enumerate() {
        // SAFETY: i < 10 and the caller guarantees 11 writable bytes.
        unsafe { *out.add(i) = *digit };
    }
    // SAFETY: len ≤ 10, within the 11 bytes.
    unsafe { *out.add(len) = 0 };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_slot_is_written_with_nul() {
        let mut buf = [0xffu8; 11];
        // SAFETY: buf has 11 bytes.
        unsafe { write_decimal(buf.as_mut_ptr(), 4_294_967_295) };
        assert_eq!(&buf, b"4294967295\0");
        // SAFETY: as above.
        unsafe { write_decimal(buf.as_mut_ptr(), 7) };
        assert_eq!(&buf[..2], b"7\0");
    }

    #[test]
    fn program_resolution_explains_failures() -> std::io::Result<()> {
        let err = resolve_program(
            "definitely-not-a-program",
            OsStr::new("/usr/bin:/bin"),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(err, Termination::ExecFailed { code: 127, .. }),
            "{err:?}"
        );
        let dir = tempfile::tempdir()?;
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\n")?;
        let err =
            resolve_program(&plain.to_string_lossy(), OsStr::new(DEFAULT_PATH), None).unwrap_err();
        assert!(
            matches!(err, Termination::ExecFailed { code: 126, .. }),
            "{err:?}"
        );
        assert!(resolve_program("sh", OsStr::new(DEFAULT_PATH), None).is_ok());
        Ok(())
    }
}
