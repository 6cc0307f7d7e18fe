//! Why `execve` failed, in words that name the real cause.
//!
//! The kernel's errno is often misleading: `ENOENT` ("No such file") comes
//! back for a script that exists when its `#!` interpreter does not — the
//! classic case being a script saved with Windows line endings, whose
//! interpreter is `/bin/sh\r` — and for a binary whose dynamic loader is
//! missing (built against another libc). [`diagnose`] looks at the file to
//! tell these apart (see execve(2), ERRORS; the kernel's `binfmt_script`
//! splits the `#!` line at the first space or tab, so a `\r` is part of the
//! interpreter's name).
//!
//! Exit codes follow the shell (POSIX `sh`, "Exit Status"): 127 when something
//! is not found, 126 when it is found but cannot be run.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes of the file read to look for a `#!` line or an ELF header.
const HEAD: usize = 4096;

/// The outcome of [`diagnose`]: an exit code (126/127) and a message that
/// starts with the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub code: i32,
    pub message: String,
}

/// Explains why `execve(path)` failed with `errno`. Reads at most the first
/// 4 KiB of `path` (and checks its interpreter's existence); never fails.
pub fn diagnose(path: &Path, errno: i32) -> Diagnosis {
    let shown = path.display();
    let head = read_head(path);
    let found = |message: String| Diagnosis { code: 126, message };
    let not_found = |message: String| Diagnosis { code: 127, message };
    match errno {
        libc::ENOENT if !path.exists() => not_found(format!("{shown}: no such file")),
        libc::ENOENT => match head.as_deref().map(kind) {
            Some(Kind::Script(interpreter)) if interpreter.ends_with(b"\r") => not_found(format!(
                "{shown}: interpreter {} not found: the script has Windows (CRLF) line endings \
                 (convert it with `dos2unix` or `sed -i 's/\\r$//'`)",
                quoted(&interpreter)
            )),
            Some(Kind::Script(interpreter)) => not_found(format!(
                "{shown}: interpreter {} not found (named on its #! line)",
                quoted(&interpreter)
            )),
            Some(Kind::Elf(Some(loader))) => not_found(format!(
                "{shown}: its dynamic loader {} is missing (built for another libc or machine?)",
                quoted(&loader)
            )),
            Some(Kind::Elf(None)) => not_found(format!(
                "{shown}: its dynamic loader is missing (built for another libc or machine?)"
            )),
            Some(Kind::Empty | Kind::Other) | None => {
                not_found(format!("{shown}: no such file or directory"))
            }
        },
        libc::EACCES if path.is_dir() => found(format!("{shown}: is a directory")),
        libc::EACCES => match head.as_deref().map(kind) {
            Some(Kind::Script(interpreter)) if !executable(&interpreter) => found(format!(
                "{shown}: interpreter {} is not executable",
                quoted(&interpreter)
            )),
            _ => found(format!(
                "{shown}: permission denied: not executable (no execute bit, a noexec mount, \
                 or a directory on its path that cannot be searched)"
            )),
        },
        libc::ENOEXEC => match head.as_deref().map(kind) {
            Some(Kind::Empty) => found(format!("{shown}: empty file, nothing to run")),
            Some(Kind::Script(interpreter)) => found(format!(
                "{shown}: interpreter {} is not a binary (a script cannot be an interpreter \
                 of another script here)",
                quoted(&interpreter)
            )),
            Some(Kind::Elf(_)) => found(format!(
                "{shown}: binary for another machine or a damaged file (exec format error)"
            )),
            Some(Kind::Other) | None => found(format!(
                "{shown}: no #! line and not a binary for this machine (exec format error); \
                 add e.g. `#!/bin/sh` as its first line"
            )),
        },
        libc::ETXTBSY => found(format!("{shown}: file is being written (text file busy)")),
        libc::E2BIG => found(format!("{shown}: argument list and environment too long")),
        libc::ELOOP => found(format!(
            "{shown}: too many symbolic links or nested interpreters"
        )),
        other => found(format!(
            "{shown}: {}",
            std::io::Error::from_raw_os_error(other)
        )),
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Empty,
    /// `#!` and the interpreter path as the kernel reads it.
    Script(Vec<u8>),
    /// An ELF file and its `PT_INTERP` (dynamic loader), when found in the head.
    Elf(Option<Vec<u8>>),
    Other,
}

fn kind(head: &[u8]) -> Kind {
    if head.is_empty() {
        return Kind::Empty;
    }
    if head.starts_with(b"#!") {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        return Kind::Script(shebang_interpreter(line).unwrap_or_default().to_vec());
    }
    if head.starts_with(b"\x7fELF") {
        return Kind::Elf(elf_interpreter(head));
    }
    Kind::Other
}

/// The interpreter a `#!` line names, as the kernel reads it: the first word
/// after `#!` (blanks before it skipped), up to a space or tab; `None` when the
/// line is no `#!` line or names nothing. Shared with `selfheal check`'s
/// preflight, so both read a script the same way.
pub fn shebang_interpreter(first_line: &[u8]) -> Option<&[u8]> {
    let rest = first_line.strip_prefix(b"#!")?;
    let start = rest.iter().position(|&b| b != b' ' && b != b'\t')?;
    let word = rest.get(start..)?;
    let end = word
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(word.len());
    word.get(..end).filter(|w| !w.is_empty())
}

/// The `PT_INTERP` path of a 64-bit little-endian ELF, if within `head`.
fn elf_interpreter(head: &[u8]) -> Option<Vec<u8>> {
    const ELFCLASS64: u8 = 2;
    const ELFDATA2LSB: u8 = 1;
    const PT_INTERP: u32 = 3;
    if head.get(4) != Some(&ELFCLASS64) || head.get(5) != Some(&ELFDATA2LSB) {
        return None;
    }
    let u16_at = |at: usize| {
        Some(u16::from_le_bytes(
            head.get(at..at.checked_add(2)?)?.try_into().ok()?,
        ))
    };
    let u32_at = |at: usize| {
        Some(u32::from_le_bytes(
            head.get(at..at.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let u64_at = |at: usize| {
        let v = u64::from_le_bytes(head.get(at..at.checked_add(8)?)?.try_into().ok()?);
        usize::try_from(v).ok()
    };
    let phoff = u64_at(0x20)?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    (0..phnum).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(ph)? != PT_INTERP {
            return None;
        }
        let offset = u64_at(ph.checked_add(8)?)?;
        let size = u64_at(ph.checked_add(32)?)?;
        let bytes = head.get(offset..offset.checked_add(size)?)?;
        Some(bytes.strip_suffix(b"\0").unwrap_or(bytes).to_vec())
    })
}

fn read_head(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut head = Vec::with_capacity(HEAD);
    file.take(HEAD as u64).read_to_end(&mut head).ok()?;
    Some(head)
}

fn executable(path: &[u8]) -> bool {
    let path = Path::new(std::ffi::OsStr::from_bytes(path));
    path.is_file() && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// A path as the user should read it: quoted, with `\r` and other control or
/// non-UTF-8 bytes escaped (`"/bin/sh\r"`).
fn quoted(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, body: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn enoent_names_the_missing_interpreter_or_the_crlf() {
        let dir = tempfile::tempdir().unwrap();
        let crlf = file(dir.path(), "crlf", b"#!/bin/sh\r\necho hi\r\n", 0o755);
        let d = diagnose(&crlf, libc::ENOENT);
        assert_eq!(d.code, 127);
        assert!(d.message.contains(r#""/bin/sh\r""#), "{}", d.message);
        assert!(d.message.contains("CRLF"), "{}", d.message);
        let missing = file(dir.path(), "m", b"#! /nonexistent/sh -e\n", 0o755);
        let d = diagnose(&missing, libc::ENOENT);
        assert!(
            d.message
                .contains(r#"interpreter "/nonexistent/sh" not found"#),
            "{}",
            d.message
        );
        let d = diagnose(&dir.path().join("nope"), libc::ENOENT);
        assert_eq!((d.code, d.message.ends_with("no such file")), (127, true));
    }

    #[test]
    fn enoent_of_an_elf_names_its_loader() {
        let d = diagnose(Path::new("/bin/sh"), libc::ENOENT);
        assert!(d.message.contains("dynamic loader"), "{}", d.message);
        assert!(d.message.contains("ld-"), "{}", d.message);
    }

    #[test]
    fn eacces_and_enoexec_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let plain = file(dir.path(), "plain", b"echo hi\n", 0o644);
        let d = diagnose(&plain, libc::EACCES);
        assert_eq!(d.code, 126);
        assert!(d.message.contains("not executable"), "{}", d.message);
        let d = diagnose(&plain, libc::ENOEXEC);
        assert!(d.message.contains("no #! line"), "{}", d.message);
        let empty = file(dir.path(), "empty", b"", 0o755);
        assert!(diagnose(&empty, libc::ENOEXEC)
            .message
            .contains("empty file"));
        let interp = file(dir.path(), "interp", b"echo\n", 0o644);
        let script = file(
            dir.path(),
            "script",
            format!("#!{}\n", interp.display()).as_bytes(),
            0o755,
        );
        let d = diagnose(&script, libc::EACCES);
        assert!(d.message.contains("is not executable"), "{}", d.message);
        assert!(diagnose(dir.path(), libc::EACCES)
            .message
            .contains("is a directory"));
    }
}
