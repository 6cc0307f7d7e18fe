//! A program's environment as `execve` takes it (`NAME=value` C strings),
//! built once for each distinct set of inputs and shared by every spawn with
//! the same ones.
//!
//! Why: building it per spawn (a copy of the supervisor's own variables, the
//! program's `env` laid over them, one `CString` each, freed again after the
//! exec) was 13 % of the supervisor's CPU when starting 1000 programs
//! (docs/benchmarks.md). The inputs are few and compared in full on every
//! look-up, so a cached block is always exactly the one a fresh build would
//! give: the supervisor's own environment never changes, and the user's `HOME`
//! is part of the key.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::hash::{Hash, Hasher};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::failed;
use crate::supervisor::state::Termination;

/// What a program's environment is made of besides the supervisor's own.
pub(super) struct Inputs<'a> {
    /// The program's `env`, laid over the supervisor's variables in order.
    pub env: &'a [(String, String)],
    /// `user =`, whose `HOME`, `USER` and `LOGNAME` the program gets.
    pub user: Option<&'a nix::unistd::User>,
    /// Its listen sockets (only the names are used: `LISTEN_FDS`, `LISTEN_FDNAMES`).
    pub listen: &'a [(OwnedFd, String)],
    /// The state channel's number in the child (`SELFHEAL_STATE_FD`).
    pub state_fd: Option<RawFd>,
}

/// One environment, ready for `execve`.
pub(super) struct Block {
    /// `NAME=value`, in the order the program sees them.
    pub entries: Vec<CString>,
    /// The value of `PATH` in it: where a command without `/` is searched.
    pub path: Option<OsString>,
    /// Bytes held (for the cache's bound).
    bytes: usize,
}

/// Owned copies of a block's inputs, compared in full on every look-up.
struct Key {
    env: Vec<(String, String)>,
    user: Option<(String, PathBuf)>,
    listen: Vec<String>,
    state_fd: Option<RawFd>,
}

impl Key {
    fn of(inputs: &Inputs) -> Key {
        Key {
            env: inputs.env.to_vec(),
            user: inputs.user.map(|u| (u.name.clone(), u.dir.clone())),
            listen: inputs.listen.iter().map(|(_, n)| n.clone()).collect(),
            state_fd: inputs.state_fd,
        }
    }

    fn is(&self, inputs: &Inputs) -> bool {
        self.env == inputs.env
            && self.user.as_ref().map(|(n, d)| (n, d)) == inputs.user.map(|u| (&u.name, &u.dir))
            && self.listen.iter().eq(inputs.listen.iter().map(|(_, n)| n))
            && self.state_fd == inputs.state_fd
    }
}

fn hash(inputs: &Inputs) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    inputs.env.hash(&mut h);
    inputs.user.map(|u| (&u.name, &u.dir)).hash(&mut h);
    for (_, name) in inputs.listen {
        name.hash(&mut h);
    }
    inputs.state_fd.hash(&mut h);
    h.finish()
}

/// The most the cache holds before it is emptied: a supervisor with a large
/// environment and many programs with distinct `env` keeps at most this much.
const CACHE_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Cache {
    blocks: HashMap<u64, Vec<(Key, Arc<Block>)>>,
    bytes: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The environment for `inputs`: from the cache, or built and kept.
///
/// Errors: a name or value with a NUL byte (exit code 126, as a failed exec).
pub(super) fn block(inputs: &Inputs) -> Result<Arc<Block>, Termination> {
    let h = hash(inputs);
    let found = CACHE.with(|c| {
        let c = c.borrow();
        let same = c.blocks.get(&h)?.iter().find(|(k, _)| k.is(inputs))?;
        Some(same.1.clone())
    });
    if let Some(block) = found {
        return Ok(block);
    }
    let block = Arc::new(build(inputs)?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.bytes + block.bytes > CACHE_BYTES {
            *c = Cache::default(); // forgotten at once; rebuilt on demand
        }
        c.bytes += block.bytes;
        c.blocks
            .entry(h)
            .or_default()
            .push((Key::of(inputs), block.clone()));
    });
    Ok(block)
}

/// The supervisor's environment, byte for byte, minus its own `LISTEN_*` and
/// `NOTIFY_SOCKET`; then the user's `HOME`/`USER`/`LOGNAME`, the program's
/// `env`, and the `LISTEN_FDS`/`LISTEN_FDNAMES` of its sockets. A later
/// variable replaces an earlier one of the same name.
fn build(inputs: &Inputs) -> Result<Block, Termination> {
    // The supervisor never changes its own environment, so it is read once.
    static OWN: OnceLock<Vec<(OsString, OsString)>> = OnceLock::new();
    let own = OWN.get_or_init(|| {
        std::env::vars_os()
            .filter(|(k, _)| {
                !k.as_bytes().starts_with(b"LISTEN_")
                    && k != "NOTIFY_SOCKET"
                    && k != crate::statefd::ENV
            })
            .collect()
    });
    let mut env = own.clone();
    let mut set = |k: &str, v: OsString| {
        env.retain(|(key, _)| key != k);
        env.push((k.into(), v));
    };
    if let Some(user) = inputs.user {
        set("HOME", user.dir.clone().into_os_string());
        set("USER", user.name.clone().into());
        set("LOGNAME", user.name.clone().into());
    }
    for (k, v) in inputs.env {
        set(k, v.into());
    }
    if !inputs.listen.is_empty() {
        set("LISTEN_FDS", inputs.listen.len().to_string().into());
        let names: Vec<&str> = inputs.listen.iter().map(|(_, n)| n.as_str()).collect();
        set("LISTEN_FDNAMES", names.join(":").into());
    }
    if let Some(target) = inputs.state_fd {
        set(crate::statefd::ENV, target.to_string().into());
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let mut entries = Vec::with_capacity(env.len());
    let mut bytes = 0;
    for (k, v) in &env {
        let mut entry = Vec::with_capacity(k.len() + 1 + v.len() + 1);
        entry.extend_from_slice(k.as_bytes());
        entry.push(b'=');
        entry.extend_from_slice(v.as_bytes());
        bytes += entry.len() + 1;
        entries.push(CString::new(entry).map_err(|_| nul_in(k))?);
    }
    Ok(Block {
        entries,
        path,
        bytes,
    })
}

fn nul_in(name: &OsStr) -> Termination {
    failed(
        126,
        format!("environment variable {name:?} contains a NUL byte"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(block: &Block) -> Vec<String> {
        block
            .entries
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn same_inputs_share_one_block_and_different_ones_do_not() -> Result<(), Termination> {
        let env = vec![("A".to_string(), "1".to_string())];
        let inputs = |env| Inputs {
            env,
            user: None,
            listen: &[],
            state_fd: None,
        };
        let first = block(&inputs(&env))?;
        let again = block(&inputs(&env))?;
        assert!(Arc::ptr_eq(&first, &again));
        let other_env = vec![("A".to_string(), "2".to_string())];
        let other = block(&inputs(&other_env))?;
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(text(&first).contains(&"A=1".to_string()));
        assert!(text(&other).contains(&"A=2".to_string()));
        let with_state = block(&Inputs {
            state_fd: Some(3),
            ..inputs(&env)
        })?;
        assert!(text(&with_state).contains(&format!("{}=3", crate::statefd::ENV)));
        assert!(!text(&first)
            .iter()
            .any(|e| e.starts_with(crate::statefd::ENV)));
        Ok(())
    }

    #[test]
    fn a_later_variable_replaces_an_earlier_one() -> Result<(), Termination> {
        let env = vec![
            ("PATH".to_string(), "/x".to_string()),
            ("B".to_string(), "1".to_string()),
            ("B".to_string(), "2".to_string()),
        ];
        let b = block(&Inputs {
            env: &env,
            user: None,
            listen: &[],
            state_fd: None,
        })?;
        let text = text(&b);
        assert_eq!(text.iter().filter(|e| e.starts_with("B=")).count(), 1);
        assert!(text.contains(&"B=2".to_string()));
        assert_eq!(b.path.as_deref(), Some(OsStr::new("/x")));
        Ok(())
    }

    #[test]
    fn a_nul_byte_is_an_exec_failure_naming_the_variable() {
        let env = vec![("BAD".to_string(), "a\0b".to_string())];
        let err = block(&Inputs {
            env: &env,
            user: None,
            listen: &[],
            state_fd: None,
        });
        match err {
            Err(Termination::ExecFailed { code: 126, error }) => assert!(error.contains("BAD")),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a NUL byte was accepted"),
        }
    }
}
