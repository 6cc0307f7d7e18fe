//! Property tests of the config reader: no input makes it panic, and every
//! diagnostic points at a real position (1-based line and column) of the input.
//!
//! Three sources of input: raw bytes (read as the file would be, lossily),
//! arbitrary strings, and structurally plausible `supervisor.toml` documents with
//! random keys and values (valid and not), optionally cut or spliced so the
//! syntax-error paths run too. The plausible documents also go through the host
//! checks ([`super::parse_checked`]) with paths from a small fixed set.
//!
//! Bounded for CI: `CASES` cases per property (15 s of CPU for all four in a
//! debug build); `PROPTEST_CASES=100000` hunts longer.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, FileFailurePersistence};

use super::read::PROGRAM_KEYS;
use super::{parse, parse_checked, ConfigError, Diagnostic, Host};

const CASES: u32 = 2000;

fn lookup(name: &str) -> Option<std::ffi::OsString> {
    match name {
        "SELFHEAL" => Some("/usr/bin/selfheal".into()),
        "HOME" => Some("/root".into()),
        "EMPTY" => Some(std::ffi::OsString::new()),
        "NUL" => Some("a\0b".into()),
        _ => None,
    }
}

/// Asserts that every diagnostic is within `source`.
fn assert_positions(source: &str, diagnostics: &[Diagnostic]) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = source.split('\n').collect();
    for d in diagnostics {
        prop_assert!(
            d.line >= 1 && d.line <= lines.len(),
            "line {} outside 1..={}: {d:?}",
            d.line,
            lines.len()
        );
        let width = lines.get(d.line - 1).map_or(0, |l| l.chars().count());
        prop_assert!(
            d.column >= 1 && d.column <= width + 1,
            "column {} outside 1..={}: {d:?}",
            d.column,
            width + 1
        );
        prop_assert!(!d.field.contains('\n') && !d.field.contains('\0'), "{d:?}");
    }
    Ok(())
}

/// Parses `source` (pure, then with host checks) and checks the outcome.
fn check(source: &str, host: Option<&Host>) -> Result<(), TestCaseError> {
    let path = Path::new("fuzz.toml");
    let result = match host {
        Some(host) => parse_checked(source, path, &lookup, host),
        None => parse(source, path, &lookup),
    };
    match result {
        Ok(config) => {
            assert_positions(source, &config.warnings)?;
            prop_assert!(config.warnings.iter().all(|d| !d.is_error()));
            // Start order: every program after the programs it depends on.
            for (i, p) in config.programs.iter().enumerate() {
                for dep in &p.depends_on {
                    let j = config.programs.iter().position(|q| q.name == dep.name);
                    prop_assert!(j.is_some_and(|j| j < i), "{} before {}", p.name, dep.name);
                }
            }
        }
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            prop_assert!(diagnostics.iter().any(Diagnostic::is_error));
            assert_positions(source, &diagnostics)?;
            // Displaying them must not panic either.
            let _ = ConfigError::Invalid {
                path: path.into(),
                diagnostics,
            }
            .to_string();
        }
        Err(e) => prop_assert!(false, "unexpected error kind: {e}"),
    }
    Ok(())
}

/// A TOML string literal of `text` (basic string, escaped).
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Words that mean something to the reader, and some that do not.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("always".to_string()),
        Just("on-failure".to_string()),
        Just("never".to_string()),
        Just("exit".to_string()),
        Just("stay".to_string()),
        Just("healthy".to_string()),
        Just("started".to_string()),
        Just("SIGTERM".to_string()),
        Just("INT".to_string()),
        Just("KILL".to_string()),
        "[0-9]{1,6}(ns|us|ms|s|m|h|d|y|years)?",
        "[0-9]{20,30}s",
        "(127\\.0\\.0\\.1|0\\.0\\.0\\.0|\\[::1\\]|localhost|999\\.1\\.1\\.1):[0-9]{0,6}",
        "(http|redis)://127\\.0\\.0\\.1:[0-9]{1,6}(/[a-z]{0,4})?",
        Just("/bin/sh".to_string()),
        Just("/nonexistent/x".to_string()),
        Just("/tmp".to_string()),
        Just("/etc/passwd".to_string()),
        Just("/dev/null".to_string()),
        Just("sleep".to_string()),
        Just("nobody".to_string()),
        Just("root".to_string()),
        "\\$\\{[A-Z_]{0,8}(:-[a-z${}]{0,6})?\\}",
        "\\$\\$?[{}A-Z]{0,3}",
        "\\PC{0,12}",
        ".{0,6}[\\x00\\r\\n\\x{feff}].{0,3}",
    ]
}

/// A TOML value: strings, numbers, booleans, arrays, inline tables.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        6 => word().prop_map(|w| quoted(&w)),
        2 => "-?[1-9][0-9]{0,3}|0",
        1 => "-?[0-9_]{1,22}|(0x|0o|0b)[0-9a-f_]{1,8}",
        1 => "-?[0-9]{1,4}\\.[0-9]{1,4}(e-?[0-9]{1,3})?",
        1 => prop_oneof![Just("inf"), Just("-nan"), Just("true"), Just("1979-05-27")]
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::btree_map(key(), inner, 0..5).prop_map(|kv| inline_table(&kv)),
        ]
    })
}

fn inline_table(kv: &std::collections::BTreeMap<String, String>) -> String {
    let fields: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", fields.join(", "))
}

/// A key: one the reader knows, a program name, or anything (quoted).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(&[
            "command", "env", "workdir", "user", "group", "restart", "backoff",
            "restart_limit", "stop_signal", "stop_timeout", "depends_on", "health",
            "listen", "initial", "max", "multiplier", "jitter", "reset_after", "window",
            "http", "tcp", "redis", "exec", "interval", "timeout", "failures",
            "start_period", "shutdown_timeout", "on_give_up", "admin_socket", "admin_listen",
            "admin_token_file", "admin_public", "PATH",
        ][..])
        .prop_map(str::to_string),
        2 => name(),
        1 => "\\PC{0,6}".prop_map(|k| quoted(&k)),
    ]
}

/// Program names from a small pool, so that dependencies find each other.
fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_string)
}

const NAMES: &[&str] = &["a", "b", "c", "web", "db", "x-1", "y_2"];

/// A string value drawn from `choices` (valid ones), at times from [`word`].
fn one_of(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        19 => prop::sample::select(choices).prop_map(quoted),
        1 => word().prop_map(|w| quoted(&w)),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    one_of(&["0s", "10ms", "1s", "30s", "2m", "1h"])
}

/// A number literal matching `valid` mostly, at times out of any range.
fn number(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        19 => valid,
        1 => prop::sample::select(&["-1", "0", "1.5", "99999999999", "1e400", "nan"][..])
            .prop_map(str::to_string),
    ]
}

fn strings(
    item: impl Strategy<Value = String>,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = String> {
    prop::collection::vec(item, len).prop_map(|v| format!("[{}]", v.join(", ")))
}

/// An inline table of the given optional fields, each a (key, strategy).
fn table_of(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> impl Strategy<Value = String> {
    let parts: Vec<_> = fields
        .into_iter()
        .map(|(k, v)| prop::option::weighted(0.5, v).prop_map(move |v| v.map(|v| (k, v))))
        .collect();
    parts.prop_map(|kv| {
        let fields: Vec<String> = kv
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        format!("{{ {} }}", fields.join(", "))
    })
}

/// The value of a known program field: mostly of the right shape, at times anything.
fn field_value(key: &'static str) -> BoxedStrategy<String> {
    let shaped: BoxedStrategy<String> = match key {
        "command" => strings(
            one_of(&["sleep", "infinity", "/bin/sh", "/nonexistent/x", "${SELFHEAL}", "/tmp", "/dev/null"]),
            1..4,
        )
        .boxed(),
        "env" => prop::collection::btree_map(
            prop_oneof![
                3 => "[A-Z_]{1,6}",
                1 => "\\PC{0,4}".prop_map(|k| quoted(&k)),
            ],
            prop_oneof![19 => word().prop_map(|w| quoted(&w)), 1 => value()],
            0..4,
        )
        .prop_map(|kv| inline_table(&kv))
        .boxed(),
        "workdir" => one_of(&["/tmp", "/nonexistent", "/etc/passwd", "", "relative"]).boxed(),
        "user" | "group" => one_of(&["root", "nobody", "selfheal-none", ""]).boxed(),
        "restart" => one_of(&["always", "on-failure", "never"]).boxed(),
        "backoff" => table_of(vec![
            ("initial", duration().boxed()),
            ("max", duration().boxed()),
            ("multiplier", number("[1-9](\\.[0-9])?").boxed()),
            ("jitter", number("0\\.[0-9]{1,2}").boxed()),
            ("reset_after", duration().boxed()),
        ])
        .boxed(),
        "restart_limit" => table_of(vec![
            ("max", number("[0-9]{1,3}").boxed()),
            ("window", duration().boxed()),
        ])
        .boxed(),
        "stop_signal" => one_of(&["TERM", "SIGINT", "hup", "SIGUSR1"]).boxed(),
        "stop_timeout" => duration().boxed(),
        "depends_on" => prop::collection::btree_map(name(), one_of(&["started", "healthy"]), 0..2)
            .prop_map(|kv| inline_table(&kv))
            .boxed(),
        "health" => (
            prop_oneof![
                Just("http").prop_map(|k| format!("{k} = {}", quoted("http://127.0.0.1:8000/livez"))),
                Just("tcp").prop_map(|k| format!("{k} = {}", quoted("127.0.0.1:1"))),
                Just("redis").prop_map(|k| format!("{k} = {}", quoted("redis://127.0.0.1:6379"))),
                strings(one_of(&["true", "/bin/false", "/nonexistent/x"]), 1..3)
                    .prop_map(|argv| format!("exec = {argv}")),
            ],
            table_of(vec![
                ("interval", duration().boxed()),
                ("timeout", duration().boxed()),
                ("failures", number("[1-9]").boxed()),
                ("start_period", duration().boxed()),
            ]),
        )
            .prop_map(|(probe, rest)| rest.replacen("{ ", &format!("{{ {probe}, "), 1))
            .boxed(),
        _ => prop_oneof![
            9 => strings(
                prop_oneof![
                    9 => "127\\.0\\.0\\.1:[1-9][0-9]{0,4}".prop_map(|a| quoted(&a)),
                    1 => one_of(&["[::1]:9000", "localhost:80", "0.0.0.0:0", "nope"]),
                ],
                0..4,
            ),
            1 => (14u16..20).prop_map(|n| {
                let addrs: Vec<String> = (0..n).map(|i| format!("\"127.0.0.1:{}\"", 40000 + i)).collect();
                format!("[{}]", addrs.join(", "))
            }),
        ]
        .boxed(),
    };
    prop_oneof![39 => shaped, 1 => value()].boxed()
}

/// One `[programs.NAME]` table (or, at times, a misplaced or misnamed one).
fn program(name: String) -> impl Strategy<Value = String> {
    let fields: Vec<_> = PROGRAM_KEYS
        .iter()
        .map(|&k| {
            let p = match k {
                "command" => 0.98,
                "depends_on" => 0.2,
                _ => 0.3,
            };
            prop::option::weighted(p, field_value(k)).prop_map(move |v| v.map(|v| (k, v)))
        })
        .collect();
    (
        prop_oneof![9 => Just("programs."), 1 => Just("")],
        prop_oneof![19 => Just(name), 1 => "\\PC{0,5}".prop_map(|n| quoted(&n))],
        fields,
        prop::option::weighted(0.03, (key(), value())),
    )
        .prop_map(|(prefix, name, fields, extra)| {
            let mut out = format!("[{prefix}{name}]\n");
            for (k, v) in fields.into_iter().flatten() {
                out.push_str(&format!("{k} = {v}\n"));
            }
            if let Some((k, v)) = extra {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out
        })
}

/// A whole document, sometimes cut short or with a few bytes spliced in.
fn document() -> impl Strategy<Value = String> {
    let supervisor = table_of(vec![
        ("shutdown_timeout", duration().boxed()),
        ("on_give_up", one_of(&["exit", "stay"]).boxed()),
        (
            "admin_socket",
            one_of(&["/tmp/a.sock", "${HOME}/s"]).boxed(),
        ),
        (
            "admin_listen",
            one_of(&["127.0.0.1:9100", "0.0.0.0:9100", "[::1]:0", "localhost:1"]).boxed(),
        ),
        (
            "admin_token_file",
            one_of(&["/nonexistent/token", "/etc/hostname", ""]).boxed(),
        ),
        (
            "admin_public",
            one_of(&["metrics", "livez", "readyz"])
                .prop_map(|r| format!("[{r}]"))
                .boxed(),
        ),
    ])
    .prop_map(|t| {
        // The inline table's fields, one per line, under a [supervisor] header.
        let body = t
            .trim_start_matches('{')
            .trim_end_matches('}')
            .replace(", ", "\n");
        format!("[supervisor]\n{}\n", body.trim())
    });
    // Distinct names in random order (a repeated table is only a syntax error).
    let programs =
        (Just(NAMES.to_vec()).prop_shuffle(), 0..=NAMES.len()).prop_flat_map(|(names, n)| {
            names
                .into_iter()
                .take(n)
                .map(|name| program(name.to_string()))
                .collect::<Vec<_>>()
        });
    let doc = (prop::option::of(supervisor), programs)
        .prop_map(|(s, programs)| s.unwrap_or_default() + &programs.concat());
    (doc, any::<u16>(), "\\PC{0,3}|[\\[\\]{}=\"',\n]", 0u8..8).prop_map(|(doc, at, splice, how)| {
        let mut cut = usize::from(at) % (doc.len() + 1);
        while !doc.is_char_boundary(cut) {
            cut -= 1;
        }
        match how {
            0 => doc[..cut].to_string(),
            1 => format!("{}{splice}{}", &doc[..cut], &doc[cut..]),
            _ => doc,
        }
    })
}

/// `CASES`, or `PROPTEST_CASES` from the environment for a longer hunt.
fn runner() -> RunnerConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    RunnerConfig {
        cases,
        // Found failures become named regression tests in `tests.rs`.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..RunnerConfig::default()
    }
}

proptest! {
    #![proptest_config(runner())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes), None)?;
    }

    #[test]
    fn arbitrary_strings_never_panic(text in "\\PC{0,200}|[\\[\\]{}=\"'.,#\n a-z0-9\\\\]{0,200}") {
        check(&text, None)?;
    }

    #[test]
    fn plausible_documents_never_panic(doc in document()) {
        check(&doc, None)?;
    }

    #[test]
    fn plausible_documents_pass_the_host_checks_without_panic(
        doc in document(),
        root in any::<bool>(),
        nofile in prop::option::of(0u64..80),
    ) {
        let host = Host {
            path_var: Some("/usr/bin:/bin".into()),
            root,
            nofile,
        };
        check(&doc, Some(&host))?;
    }
}
