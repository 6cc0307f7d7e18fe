//! `${VAR}` / `${VAR:-default}` expansion from the environment; `$$` is a literal `$`.
//! `${SELFHEAL}` is the path of the running binary, so the app and the proxy can be
//! written `["${SELFHEAL}", "app"]`. `${SELFHEAL_REPLICA}` is left as it is: the
//! supervisor puts each process's replica number there when it starts it
//! ([`REPLICA_PLACEHOLDER`]).
//!
//! The environment is bytes, the config is text: a variable whose value is not
//! UTF-8 cannot be put into a config string without changing it, so expanding
//! it is a config error that names the variable (never a lossy substitution,
//! never a panic). Such a variable is still passed to programs unchanged.

use std::ffi::OsString;

/// Kept in a program's `command` and `env` values by the config reader and
/// replaced by the replica number (0, 1, …) at each spawn.
pub const REPLICA_PLACEHOLDER: &str = "${SELFHEAL_REPLICA}";

/// Expands `text`; the error names the first variable that is unset (and has
/// no default) or whose value is not UTF-8. `lookup` gives a variable's raw value.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<OsString>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end =
                closing_brace(body).ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in {text:?}"));
            }
            if name == "SELFHEAL_REPLICA" && default.is_none() {
                out.push_str(REPLICA_PLACEHOLDER); // per process, at spawn
                rest = &body[end + 1..];
                continue;
            }
            let value = match lookup(name).map(OsString::into_string) {
                Some(Ok(value)) => Some(value),
                Some(Err(raw)) => {
                    return Err(format!(
                        "environment variable {name} is not valid UTF-8 ({raw:?}); \
                         a config value must be text"
                    ))
                }
                None => None,
            };
            match (
                value.filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(&expand(default, lookup)?),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (use ${{{name}:-default}})"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing a `${`, skipping nested `${…}` (in defaults).
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The process environment (raw bytes) plus `SELFHEAL` = this binary.
pub fn process_env(name: &str) -> Option<OsString> {
    if name == "SELFHEAL" {
        if let Some(value) = std::env::var_os("SELFHEAL") {
            return Some(value);
        }
        return std::env::current_exe().ok().map(|p| p.into_os_string());
    }
    std::env::var_os(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<OsString> {
        use std::os::unix::ffi::OsStringExt;
        match name {
            "HOME" => Some("/root".into()),
            "EMPTY" => Some(OsString::new()),
            "LATIN1" => Some(OsString::from_vec(b"caf\xe9".to_vec())),
            _ => None,
        }
    }

    #[test]
    fn the_replica_number_is_left_for_the_spawn() {
        let none = |_: &str| None;
        assert_eq!(
            expand("127.0.0.1:800${SELFHEAL_REPLICA}", &none).unwrap(),
            "127.0.0.1:800${SELFHEAL_REPLICA}"
        );
    }

    #[test]
    fn expands_variables_defaults_and_escapes() {
        assert_eq!(expand("${HOME}/x", &env).unwrap(), "/root/x");
        assert_eq!(expand("${NOPE:-/data}", &env).unwrap(), "/data");
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand("a$$b $x", &env).unwrap(), "a$b $x");
        assert!(expand("${NOPE}", &env)
            .unwrap_err()
            .contains("NOPE is not set"));
        assert!(expand("${HOME", &env).is_err());
        assert_eq!(expand("${NOPE:-a${HOME}b}/c", &env).unwrap(), "a/rootb/c");
        assert_eq!(expand("${HOME:-a${NOPE}b}", &env).unwrap(), "/root");
        assert!(expand("${A-B}", &env).is_err());
        let err = expand("/data/${LATIN1}", &env).unwrap_err();
        assert!(err.contains("LATIN1 is not valid UTF-8"), "{err}");
        assert!(err.contains(r"caf\xE9"), "{err}");
        // Not expanded, not looked at.
        assert_eq!(expand("${HOME:-${LATIN1}}", &env).unwrap(), "/root");
    }
}
