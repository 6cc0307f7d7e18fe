//! Where a running supervisor says its admin socket is, so that `selfheal
//! status` finds it from any directory without flags.
//!
//! At start the supervisor writes the absolute path of its admin socket, one
//! line, to `RUNTIME_DIR/current` (written to a temporary file, then renamed:
//! a reader never sees half a path). At exit it removes that file only if it
//! still names its own socket (a later supervisor may have taken it over; the
//! check and the removal are two steps, so a takeover in between is lost, which
//! costs one fallback to the default path, never a wrong answer). A supervisor
//! killed by SIGKILL leaves the file behind: the CLI then finds no socket there
//! and says which file named it.
//!
//! `RUNTIME_DIR` is `$SELFHEAL_RUNTIME_DIR`, else `/run/selfheal` for root,
//! else `$XDG_RUNTIME_DIR/selfheal`, else `/tmp/selfheal-$UID`. The CLI trusts
//! the file only in a directory owned by root or by itself that no one else may
//! write to (a shared `/tmp` must not let another user point it elsewhere).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The environment variable that overrides the runtime directory.
pub const RUNTIME_DIR_ENV: &str = "SELFHEAL_RUNTIME_DIR";

/// The directory holding `current` (see the module doc for the order).
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(RUNTIME_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/selfheal");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("selfheal"),
        None => PathBuf::from(format!("/tmp/selfheal-{uid}")),
    }
}

/// `RUNTIME_DIR/current`.
pub fn current_file() -> PathBuf {
    runtime_dir().join("current")
}

/// One supervisor's advertisement, to be [withdrawn](Advertised::withdraw) at exit.
#[derive(Debug)]
pub struct Advertised {
    file: PathBuf,
    socket: PathBuf,
}

/// Writes the absolute path of `socket` to `RUNTIME_DIR/current`, atomically.
/// Errors are for a note: advertising is a convenience, never a reason to stop.
pub fn advertise(socket: &Path) -> Result<Advertised, String> {
    let socket = std::path::absolute(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let dir = runtime_dir();
    let file = dir.join("current");
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "cannot advertise the admin socket in {}: {what}: {e}",
            file.display()
        )
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(|e| fail("create the directory", e))?;
    trusted_dir(&dir).map_err(|why| format!("not advertising the admin socket: {why}"))?;
    let temp = dir.join(format!(".current.{}", std::process::id()));
    let mut line = socket.as_os_str().as_bytes().to_vec();
    line.push(b'\n');
    let written = std::fs::File::create(&temp).and_then(|mut f| f.write_all(&line));
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, &file)) {
        let _ = std::fs::remove_file(&temp);
        return Err(fail("write", e));
    }
    Ok(Advertised { file, socket })
}

impl Advertised {
    /// Removes the file if it still names this supervisor's socket.
    pub fn withdraw(self) {
        if read_path(&self.file).is_some_and(|p| p == self.socket) {
            let _ = std::fs::remove_file(&self.file);
        }
    }
}

/// The socket the running supervisor advertises: `Ok(None)` when nothing is
/// advertised, `Err` with the reason when the file is not to be trusted.
pub fn advertised() -> Result<Option<PathBuf>, String> {
    let dir = runtime_dir();
    if !dir.join("current").exists() {
        return Ok(None);
    }
    trusted_dir(&dir)?;
    Ok(read_path(&dir.join("current")))
}

fn read_path(file: &Path) -> Option<PathBuf> {
    let mut bytes = std::fs::read(file).ok()?;
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    (!bytes.is_empty()).then(|| PathBuf::from(OsString::from_vec(bytes)))
}

/// The directory is owned by root or by us and writable by its owner alone.
fn trusted_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to root or uid {me}",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} may be written by others (mode {:o})",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertise_then_withdraw_only_our_own() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("current");
        let ours = Advertised {
            file: file.clone(),
            socket: PathBuf::from("/a/admin.sock"),
        };
        std::fs::write(&file, "/b/admin.sock\n").unwrap();
        ours.withdraw();
        assert_eq!(read_path(&file), Some(PathBuf::from("/b/admin.sock")));
        let theirs = Advertised {
            file: file.clone(),
            socket: PathBuf::from("/b/admin.sock"),
        };
        theirs.withdraw();
        assert!(!file.exists());
    }
}
