//! Host checks of a parsed config: can each program actually start here?
//!
//! Parsing (`read`, `graph`) is pure; everything that asks the filesystem or the
//! user database lives here, so that `selfheal check` and the supervisor's
//! start-up find a program that cannot run *before* it is spawned, all at once
//! and with the position of the field to fix.
//!
//! Each finding is an error or a warning ([`Severity`]). A warning is a problem
//! that may be gone by the time the program runs, because it depends on what is
//! installed or mounted rather than on the config:
//!
//! | finding | severity |
//! |---|---|
//! | `command[0]` / `health.exec[0]` / a `#!` interpreter (or `#!/usr/bin/env NAME`'s NAME) not found | warning (a later image layer may install it) |
//! | `workdir` does not exist | warning (a volume may be mounted there at run time) |
//! | `user` / `group` does not exist | warning (a later layer may create it) |
//! | an executable that is neither ELF nor a `#!` script | warning (binfmt_misc may run it) |
//! | `command[0]` / interpreter is a directory or lacks execute permission | error |
//! | a `#!` line ending in CR, behind a byte-order mark, or naming no interpreter | error |
//! | `workdir` is not a directory, or not searchable by the program's user | error |
//! | more descriptors needed than `RLIMIT_NOFILE` allows | error |
//!
//! Permissions are judged as the kernel would for the identity the program runs
//! as: the program's `user` (with its groups, as `initgroups(3)` gives them)
//! when the supervisor is root, else the checking process itself. POSIX ACLs and
//! capabilities beyond root's are not modelled.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Gid, Uid};

use super::diag::{Diagnostics, Severity};
use super::model::{AdminToken, Probe, Program, Settings};
use super::read::{key_text, Span, Spans};
use crate::supervisor::exec_error::shebang_interpreter;

/// The search path when neither the program's `env` nor the supervisor's
/// environment sets `PATH` (the same default as `spawn`, and as glibc's `execvp`
/// without `_CS_PATH` games).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Bytes the kernel reads for a `#!` line (`BINPRM_BUF_SIZE`, Linux ≥ 5.1).
const SHEBANG_MAX: usize = 256;

/// Descriptors the supervisor keeps besides the per-program ones: stdio (3), the
/// reserved low range for listen hand-over and spawn staging
/// (`sockets::LOW_FDS_END`), and a margin for the runtime (epoll, eventfd,
/// signals), the admin socket and its clients, and the pipes open while one
/// child is being spawned.
const BASE_DESCRIPTORS: u64 = crate::supervisor::sockets::LOW_FDS_END as u64 + 24;

/// What the checks need to know about the host besides its filesystem.
#[derive(Debug, Clone)]
pub struct Host {
    /// `PATH` of the supervisor's environment (`None`: unset).
    pub path_var: Option<OsString>,
    /// Whether the supervisor runs as root, so that `user` / `group` take effect.
    pub root: bool,
    /// Soft `RLIMIT_NOFILE`, which the supervisor and its children run under
    /// (`None`: unlimited or unknown).
    pub nofile: Option<u64>,
}

impl Host {
    /// This process: its `PATH`, effective uid and descriptor limit.
    pub fn current() -> Host {
        let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, _)| soft)
            .filter(|&soft| soft != nix::sys::resource::RLIM_INFINITY);
        Host {
            path_var: std::env::var_os("PATH"),
            root: Uid::effective().is_root(),
            nofile,
        }
    }
}

/// Checks every program that could be read, reporting into `diags`.
pub fn check(programs: &[(Program, Spans)], host: &Host, diags: &mut Diagnostics) {
    let mut memo = Memo::default();
    for (program, spans) in programs {
        check_program(program, spans, host, &mut memo, diags);
    }
    check_descriptors(programs, host, diags);
}

/// Reads `admin_token_file` into [`Settings::admin_token`], trimmed of
/// surrounding blanks (a trailing newline is usual). An unreadable or empty
/// file, or one holding more than a token, is an error at the key's value: the
/// supervisor must not serve the TCP admin API with a token it cannot check.
pub fn admin_token(settings: &mut Settings, span: Span, diags: &mut Diagnostics) {
    let Some(path) = &settings.admin_token_file else {
        return;
    };
    let field = "supervisor.admin_token_file";
    match std::fs::read_to_string(path) {
        Ok(text) => match AdminToken::new(text.trim()) {
            Ok(token) => settings.admin_token = Some(token),
            Err(why) => diags.error(span, field, format!("{}: {why}", path.display())),
        },
        Err(e) => diags.error(span, field, format!("cannot read {}: {e}", path.display())),
    }
}

/// Answers already found, so that a thousand programs running the same
/// command as the same user cost one look-up each (the supervisor's start-up
/// waits for these checks).
#[derive(Default)]
struct Memo {
    identities: HashMap<IdentityKey, (Who, Vec<FieldFinding>)>,
    executables: HashMap<ExecutableKey, Option<Finding>>,
}

/// A finding about the `user` or the `group` field (its key).
type FieldFinding = (&'static str, Finding);

/// `user`, `group`.
type IdentityKey = (Option<String>, Option<String>);

/// Command name, `PATH`, workdir, uid and gids (`None`: the supervisor's own).
type ExecutableKey = (
    String,
    Option<OsString>,
    Option<PathBuf>,
    Option<(u32, Vec<u32>)>,
);

/// One finding, before it is given a position.
#[derive(Clone)]
struct Finding {
    severity: Severity,
    message: String,
}

fn error(message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        message,
    }
}

fn warning(message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        message,
    }
}

/// The identity permissions are judged for.
#[derive(Clone)]
enum Who {
    /// The checking process itself (`access(2)`).
    Supervisor,
    /// A user the supervisor switches to: uid and every group it will have.
    User { uid: Uid, gids: Vec<Gid> },
}

impl Memo {
    /// Who `p` runs as, and what is wrong with its `user` / `group`.
    fn identity(&mut self, p: &Program, host: &Host) -> (Who, Vec<FieldFinding>) {
        self.identities
            .entry((p.user.clone(), p.group.clone()))
            .or_insert_with(|| {
                let mut findings = Vec::new();
                let who = identity(p, host, &mut |key, f| findings.push((key, f)));
                (who, findings)
            })
            .clone()
    }

    /// [`executable_problem`], remembered.
    fn executable(
        &mut self,
        name: &str,
        path_var: Option<OsString>,
        base: Option<&Path>,
        who: &Who,
    ) -> Option<Finding> {
        let ids = match who {
            Who::Supervisor => None,
            Who::User { uid, gids } => {
                Some((uid.as_raw(), gids.iter().map(|g| g.as_raw()).collect()))
            }
        };
        let key = (name.to_string(), path_var, base.map(Path::to_path_buf), ids);
        if let Some(known) = self.executables.get(&key) {
            return known.clone();
        }
        let found = executable_problem(name, key.1.as_deref(), base, who);
        self.executables.insert(key, found.clone());
        found
    }
}

fn check_program(
    p: &Program,
    spans: &Spans,
    host: &Host,
    memo: &mut Memo,
    diags: &mut Diagnostics,
) {
    let field = |key: &str| format!("programs.{}.{key}", key_text(&p.name));
    let mut report = |span: &Span, key: &str, f: Finding| {
        diags.push(f.severity, span.clone(), &field(key), f.message)
    };
    let (who, findings) = memo.identity(p, host);
    for (key, f) in findings {
        let span = if key == "user" {
            &spans.user
        } else {
            &spans.group
        };
        report(span, key, f);
    }
    let mut workdir_ok = true;
    if let Some(dir) = &p.workdir {
        if let Some(f) = workdir_problem(dir, &who) {
            workdir_ok = false;
            report(&spans.workdir, "workdir", f);
        }
    }
    // A relative name is taken from the workdir; if that is unusable, the
    // workdir finding already says why the command cannot start.
    let relative = |name: &str| name.contains('/') && !name.starts_with('/');
    if let (Some(name), Some(span)) = (p.command.first(), &spans.command) {
        if workdir_ok || !relative(name) {
            let base = p.workdir.as_deref().filter(|_| workdir_ok);
            if let Some(f) = memo.executable(name, program_path(p, host), base, &who) {
                report(span, "command", f);
            }
        }
    }
    let probe = p.health.as_ref().and_then(|h| match &h.probe {
        Probe::Exec(argv) => argv.first(),
        _ => None,
    });
    if let (Some(name), Some(span)) = (probe, &spans.probe_command) {
        // Probes run as the supervisor, in its directory and environment.
        let path_var = host.path_var.clone();
        if let Some(f) = memo.executable(name, path_var, None, &Who::Supervisor) {
            report(span, "health.exec", f);
        }
    }
}

/// The `PATH` a program's command is searched in: its own `env`'s, else the
/// supervisor's (as `spawn` builds the child's environment).
fn program_path(p: &Program, host: &Host) -> Option<OsString> {
    p.env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| OsString::from(v))
        .or_else(|| host.path_var.clone())
}

/// Who the program runs as, with a warning for a `user` or `group` that does
/// not exist (yet). `user` only takes effect when the supervisor is root.
fn identity(p: &Program, host: &Host, report: &mut dyn FnMut(&'static str, Finding)) -> Who {
    let mut who = Who::Supervisor;
    if let Some(name) = &p.user {
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) if host.root => {
                let gids = CString::new(name.as_bytes())
                    .ok()
                    .and_then(|c| nix::unistd::getgrouplist(&c, user.gid).ok())
                    .unwrap_or_else(|| vec![user.gid]);
                who = Who::User {
                    uid: user.uid,
                    gids,
                };
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => report(
                "user",
                warning(format!(
                    "no user {name:?} on this host (yet): the program cannot start until it exists"
                )),
            ),
        }
    }
    if let Some(name) = &p.group {
        match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => {
                if let Who::User { gids, .. } = &mut who {
                    // `group =` replaces the primary group.
                    gids.insert(0, group.gid);
                }
            }
            Ok(None) | Err(_) => report(
                "group",
                warning(format!(
                    "no group {name:?} on this host (yet): the program cannot start until it exists"
                )),
            ),
        }
    }
    who
}

/// A `workdir` that is missing (warning), not a directory, or not searchable.
fn workdir_problem(dir: &Path, who: &Who) -> Option<Finding> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(warning(format!(
                "directory {} does not exist (yet): the program cannot start until it does",
                dir.display()
            )))
        }
        Err(e) => return Some(error(format!("directory {}: {e}", dir.display()))),
    };
    if !meta.is_dir() {
        return Some(error(format!("{} is not a directory", dir.display())));
    }
    if !permitted(dir, &meta, who, AccessFlags::X_OK) {
        return Some(error(format!(
            "directory {} is not searchable (no execute permission{})",
            dir.display(),
            who.suffix()
        )));
    }
    None
}

impl Who {
    fn suffix(&self) -> String {
        match self {
            Who::Supervisor => String::new(),
            Who::User { uid, .. } => format!(" for uid {uid}"),
        }
    }
}

/// Resolves `name` as `spawn` does (with a `/`: as given, relative to `workdir`;
/// else along `path_var`) and judges the file it finds, then its `#!` line.
fn executable_problem(
    name: &str,
    path_var: Option<&OsStr>,
    workdir: Option<&Path>,
    who: &Who,
) -> Option<Finding> {
    let path = if name.contains('/') {
        match workdir {
            Some(dir) if !name.starts_with('/') => dir.join(name),
            _ => PathBuf::from(name),
        }
    } else {
        let search = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
        return match search_path(name, search, who) {
            Ok(found) => file_problem(&found, search, workdir, who),
            Err(near) => Some(not_found_in_path(name, search, near)),
        };
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Some(error(format!("{} is a directory", path.display()))),
        // execve runs regular files only (EACCES otherwise).
        Ok(meta) if !meta.is_file() => Some(error(format!(
            "{} is not a regular file (a device, FIFO or socket cannot be run)",
            path.display()
        ))),
        Ok(meta) if !permitted(&path, &meta, who, AccessFlags::X_OK) => Some(error(format!(
            "{} is not executable (mode {:o}{}; chmod +x it)",
            path.display(),
            meta.permissions().mode() & 0o7777,
            who.suffix()
        ))),
        Ok(_) => file_problem(
            &path,
            path_var.unwrap_or(OsStr::new(DEFAULT_PATH)),
            workdir,
            who,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(warning(format!(
            "{} does not exist (yet): the program cannot start until it does",
            path.display()
        ))),
        Err(e) => Some(error(format!("{}: {e}", path.display()))),
    }
}

/// The first executable regular file named `name` along `search`, or the first
/// non-executable match (a directory or a file without `x`) to explain the miss.
fn search_path(name: &str, search: &OsStr, who: &Who) -> Result<PathBuf, Option<PathBuf>> {
    let mut near = None;
    for dir in search.as_bytes().split(|&b| b == b':') {
        if dir.is_empty() {
            continue; // an empty entry is the cwd for a shell, but not for spawn
        }
        let candidate = Path::new(OsStr::from_bytes(dir)).join(name);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && permitted(&candidate, &meta, who, AccessFlags::X_OK) {
                return Ok(candidate);
            }
            near.get_or_insert(candidate);
        }
    }
    Err(near)
}

fn not_found_in_path(name: &str, search: &OsStr, near: Option<PathBuf>) -> Finding {
    match near {
        Some(path) if path.is_dir() => error(format!(
            "{name:?} is not an executable in PATH: {} is a directory",
            path.display()
        )),
        Some(path) => error(format!(
            "{name:?} is not an executable in PATH: {} lacks execute permission",
            path.display()
        )),
        None => warning(format!(
            "{name:?} not found in PATH ({}) (yet): the program cannot start until it is installed",
            search.to_string_lossy()
        )),
    }
}

/// Judges an executable regular file by its first bytes: ELF, a sound `#!`
/// script whose interpreter exists, or something execve will refuse.
fn file_problem(path: &Path, search: &OsStr, workdir: Option<&Path>, who: &Who) -> Option<Finding> {
    let mut head = Vec::with_capacity(SHEBANG_MAX);
    // Non-blocking: should the file have become a FIFO since it was judged a
    // regular file, reading it must not hang the supervisor's start-up.
    let read = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| f.take(SHEBANG_MAX as u64).read_to_end(&mut head));
    if read.is_err() {
        return None; // execute-only files are fine to run; nothing to inspect
    }
    if head.starts_with(b"\x7fELF") {
        return None;
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    if let Some(problem) = shebang_problem(first_line) {
        return Some(error(format!("{}: {problem}", path.display())));
    }
    let Some(interpreter) = shebang_interpreter(first_line) else {
        return Some(warning(format!(
            "{} is neither an ELF binary nor a script with a #! line: execve will refuse it \
             (exec format error) unless binfmt_misc handles it",
            path.display()
        )));
    };
    // The kernel resolves a relative interpreter from the process's directory.
    let interpreter = Path::new(OsStr::from_bytes(interpreter));
    let full = match workdir {
        Some(dir) if interpreter.is_relative() => dir.join(interpreter),
        _ => interpreter.to_path_buf(),
    };
    let script = path.display();
    match std::fs::metadata(&full) {
        Ok(meta) if !meta.is_file() => Some(error(format!(
            "{script}: its interpreter {} is not a regular file",
            full.display()
        ))),
        Ok(meta) if !permitted(&full, &meta, who, AccessFlags::X_OK) => Some(error(format!(
            "{script}: its interpreter {} is not executable{}",
            full.display(),
            who.suffix()
        ))),
        Ok(_) => env_target_problem(first_line, search, who).map(|f| Finding {
            message: format!("{script}: {}", f.message),
            ..f
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(warning(format!(
            "{script}: its interpreter {} does not exist (yet): the program cannot start \
             until it is installed",
            full.display()
        ))),
        Err(e) => Some(error(format!(
            "{script}: its interpreter {}: {e}",
            full.display()
        ))),
    }
}

/// What is wrong with a script's first line (without its `\n`) that makes
/// `execve` fail although the file is executable, or `None` when the line is
/// sound or is not a `#!` line at all.
///
/// The kernel (`fs/binfmt_script.c`) takes the bytes after `#!`, skips spaces
/// and tabs, and uses the next word as the interpreter path, so a CR left by a
/// Windows editor becomes part of the interpreter's name (`/bin/sh\r`: "no such
/// file", naming a file that seems to exist), and a UTF-8 byte-order mark before
/// `#!` hides the line altogether (exec format error).
pub fn shebang_problem(first_line: &[u8]) -> Option<String> {
    if let Some(rest) = first_line.strip_prefix(b"\xef\xbb\xbf") {
        if rest.starts_with(b"#!") {
            return Some(
                "a UTF-8 byte-order mark precedes #!, so the kernel does not see the #! line \
                 (save the file without BOM)"
                    .to_string(),
            );
        }
    }
    let rest = first_line.strip_prefix(b"#!")?;
    if rest.ends_with(b"\r") {
        let interpreter = shebang_interpreter(first_line).unwrap_or(b"");
        return Some(format!(
            "the #! line ends with a carriage return (Windows line endings), so the kernel \
             looks for an interpreter named {:?} (convert the file with dos2unix)",
            String::from_utf8_lossy(interpreter)
        ));
    }
    if shebang_interpreter(first_line).is_none() {
        return Some("the #! line names no interpreter".to_string());
    }
    None
}

/// For `#!/usr/bin/env NAME`, the common way to find an interpreter along
/// `PATH`: a warning when NAME is not found there (env then fails with 127).
/// Lines with options (`env -S …`) are left alone.
fn env_target_problem(first_line: &[u8], search: &OsStr, who: &Who) -> Option<Finding> {
    let interpreter = shebang_interpreter(first_line)?;
    if Path::new(OsStr::from_bytes(interpreter)).file_name() != Some(OsStr::new("env")) {
        return None;
    }
    let rest = first_line.strip_prefix(b"#!")?;
    let after = rest.get(
        rest.windows(interpreter.len())
            .position(|w| w == interpreter)?
            + interpreter.len()..,
    )?;
    let name = std::str::from_utf8(after).ok()?.trim_matches([' ', '\t']);
    if name.is_empty() || name.starts_with('-') || name.contains([' ', '\t', '/']) {
        return None;
    }
    match search_path(name, search, who) {
        Ok(_) => None,
        Err(near) => {
            let f = not_found_in_path(name, search, near);
            Some(Finding {
                message: format!("#!{}: {}", String::from_utf8_lossy(rest).trim(), f.message),
                ..f
            })
        }
    }
}

/// Whether `who` may do `what` (only X_OK and R_OK are used) on `path`, whose
/// metadata is `meta`, including search permission on every directory above it.
fn permitted(path: &Path, meta: &Metadata, who: &Who, what: AccessFlags) -> bool {
    match who {
        Who::Supervisor => nix::unistd::access(path, what).is_ok(),
        Who::User { uid, gids } => {
            let ancestors_ok = std::fs::canonicalize(path).is_ok_and(|full| {
                full.ancestors().skip(1).all(|dir| {
                    std::fs::metadata(dir)
                        .is_ok_and(|m| mode_allows(&m, *uid, gids, AccessFlags::X_OK))
                })
            });
            ancestors_ok && mode_allows(meta, *uid, gids, what)
        }
    }
}

/// The owner / group / other permission bits that apply to `uid` with `gids`;
/// root may execute anything with at least one execute bit (or a directory).
fn mode_allows(meta: &Metadata, uid: Uid, gids: &[Gid], what: AccessFlags) -> bool {
    let mode = meta.mode();
    let bit = if what.contains(AccessFlags::X_OK) {
        0o1
    } else {
        0o4
    };
    if uid.is_root() {
        return bit == 0o4 || meta.is_dir() || mode & 0o111 != 0;
    }
    let shift = if meta.uid() == uid.as_raw() {
        6
    } else if gids.iter().any(|g| g.as_raw() == meta.gid()) {
        3
    } else {
        0
    };
    (mode >> shift) & bit != 0
}

/// The supervisor holds an output pipe and a pidfd per process (each replica;
/// plus a probe's socket or pipe while it runs) and every listen socket for
/// the life of the stack; a child gets its sockets from fd 3 under the same
/// limit. Reports the first program at which the total passes the soft
/// `RLIMIT_NOFILE`.
fn check_descriptors(programs: &[(Program, Spans)], host: &Host, diags: &mut Diagnostics) {
    let Some(limit) = host.nofile else {
        return;
    };
    let mut need = BASE_DESCRIPTORS;
    for (p, spans) in programs {
        need += 2 * u64::from(p.replicas.max(1)) + u64::from(p.health.is_some());
        let own = p.listen.len() as u64;
        // A child receives its sockets at fd 3 … 3 + n − 1.
        if 3 + own > limit {
            let span = spans.listen.first().unwrap_or(&spans.key);
            diags.error(
                span.clone(),
                &format!("programs.{}.listen", key_text(&p.name)),
                format!(
                    "{own} listen addresses need fd 3 to {} in the program, \
                     but RLIMIT_NOFILE is {limit}",
                    own + 2
                ),
            );
        }
        for (i, span) in spans.listen.iter().enumerate() {
            need += 1;
            if need > limit {
                diags.error(
                    span.clone(),
                    &format!("programs.{}.listen", key_text(&p.name)),
                    format!(
                        "listen address {} brings the supervisor's descriptors to {need}, \
                         over RLIMIT_NOFILE ({limit}); raise it (ulimit -n, docker --ulimit nofile=)",
                        p.listen.get(i).map_or(String::new(), |a| a.to_string())
                    ),
                );
                return;
            }
        }
        if need > limit {
            diags.error(
                spans.key.clone(),
                &format!("programs.{}", key_text(&p.name)),
                format!(
                    "this program brings the supervisor's descriptors to {need}, over \
                     RLIMIT_NOFILE ({limit}); raise it (ulimit -n, docker --ulimit nofile=)"
                ),
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        assert_eq!(shebang_problem(b"#!/bin/sh"), None);
        assert_eq!(shebang_problem(b"#! /usr/bin/env python3 -u"), None);
        assert_eq!(shebang_problem(b"\x7fELF\x02"), None);
        assert_eq!(shebang_problem(b"echo hi"), None);
        assert_eq!(shebang_problem(b""), None);
        let crlf = shebang_problem(b"#!/bin/sh\r").unwrap_or_default();
        assert!(crlf.contains("carriage return"), "{crlf}");
        assert!(crlf.contains(r#""/bin/sh\r""#), "{crlf}");
        let crlf_arg = shebang_problem(b"#!/usr/bin/env bash\r").unwrap_or_default();
        assert!(crlf_arg.contains("carriage return"), "{crlf_arg}");
        let bom = shebang_problem(b"\xef\xbb\xbf#!/bin/sh").unwrap_or_default();
        assert!(bom.contains("byte-order mark"), "{bom}");
        let empty = shebang_problem(b"#!   ").unwrap_or_default();
        assert!(empty.contains("no interpreter"), "{empty}");
    }

    #[test]
    fn env_shebangs_look_their_target_up_in_path() {
        let search = OsStr::new("/usr/bin:/bin");
        let who = Who::Supervisor;
        assert!(env_target_problem(b"#!/usr/bin/env sh", search, &who).is_none());
        assert!(env_target_problem(b"#!/usr/bin/env -S sh -e", search, &who).is_none());
        assert!(env_target_problem(b"#!/bin/sh", search, &who).is_none());
        let missing = env_target_problem(b"#!/usr/bin/env  selfheal-nope ", search, &who)
            .map(|f| (f.severity, f.message));
        assert!(
            matches!(&missing, Some((Severity::Warning, m)) if m.starts_with("#!/usr/bin/env  selfheal-nope: \"selfheal-nope\" not found in PATH")),
            "{missing:?}"
        );
    }

    #[test]
    fn interpreter_is_the_first_word() {
        assert_eq!(shebang_interpreter(b"#!/bin/sh -e"), Some(&b"/bin/sh"[..]));
        assert_eq!(shebang_interpreter(b"#! \t/bin/sh"), Some(&b"/bin/sh"[..]));
        assert_eq!(shebang_interpreter(b"#!"), None);
        assert_eq!(shebang_interpreter(b"/bin/sh"), None);
    }

    #[test]
    fn mode_bits_follow_owner_then_group_then_other() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("f");
        std::fs::write(&file, "")?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o701))?;
        let meta = std::fs::metadata(&file)?;
        let owner = Uid::from_raw(meta.uid());
        let other = Uid::from_raw(meta.uid().wrapping_add(12345));
        let x = AccessFlags::X_OK;
        assert!(mode_allows(&meta, owner, &[], x));
        assert!(mode_allows(&meta, other, &[], x));
        // Group bits (0) apply before other bits (1) to a member of the group.
        assert!(!mode_allows(&meta, other, &[Gid::from_raw(meta.gid())], x));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        let meta = std::fs::metadata(&file)?;
        assert!(!mode_allows(&meta, Uid::from_raw(0), &[], x));
        Ok(())
    }
}
