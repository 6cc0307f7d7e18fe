//! stdio in `selfheal -- CMD` (issue 12): stdin, stdout and stderr are the
//! supervisor's own, handed to the main program as they are — bytes piped in
//! arrive byte for byte (binary, no line splitting), and what the program
//! writes comes out unprefixed, byte for byte, on the same stream. As a plain
//! process and as PID 1.
//!
//! On `f85aee4` these fail: `-- CMD` was refused, and a config program's
//! stdin was /dev/null and its output prefixed (`name | …`) line by line.

use crate::init_util::{both_modes, run, sh, Mode};

both_modes!(
    stdin_reaches_the_program_byte_for_byte,
    stdout_is_the_programs_unprefixed,
    stderr_is_the_programs_unprefixed,
);

/// 1 MiB of every byte value in a scrambled order, with lines longer than the
/// 16 KiB split of captured output, NULs, CRs, and no final newline.
fn binary_payload() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    let mut bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    // A 64 KiB run without any newline, then a lone byte at the very end.
    bytes[1000..1000 + 65536].fill(b'x');
    bytes.push(0xff);
    bytes
}

/// `printf … | selfheal -- cat`: what cat read is what was piped in.
fn stdin_reaches_the_program_byte_for_byte(mode: Mode) {
    let dir = crate::harness::temp_dir();
    let copy = dir.path().join("copy");
    let payload = binary_payload();
    let done = run(
        mode,
        &sh(&format!("cat > {}", copy.display())),
        Some(payload.clone()),
    );
    assert_eq!(done.code, Some(0), "{done:?}");
    let got = std::fs::read(&copy).unwrap();
    assert!(
        got == payload,
        "stdin: {} bytes piped in, {} read",
        payload.len(),
        got.len()
    );
}

/// `selfheal -- cat`: stdout is exactly cat's output; stderr is empty.
fn stdout_is_the_programs_unprefixed(mode: Mode) {
    let payload = binary_payload();
    let done = run(mode, &["--", "cat"], Some(payload.clone()));
    assert_eq!(
        done.code,
        Some(0),
        "exit {:?}: {}",
        done.code,
        done.stderr_text()
    );
    assert!(
        done.stdout == payload,
        "stdout: {} bytes in, {} out",
        payload.len(),
        done.stdout.len()
    );
    assert!(done.stderr.is_empty(), "stderr: {}", done.stderr_text());
}

/// `selfheal -- sh -c 'cat >&2'`: stderr is exactly the output; stdout empty.
fn stderr_is_the_programs_unprefixed(mode: Mode) {
    let payload = binary_payload();
    let done = run(mode, &sh("cat >&2"), Some(payload.clone()));
    assert_eq!(done.code, Some(0), "exit {:?}", done.code);
    assert!(
        done.stderr == payload,
        "stderr: {} bytes in, {} out",
        payload.len(),
        done.stderr.len()
    );
    assert!(done.stdout.is_empty(), "stdout: {}", done.stdout_text());
}
