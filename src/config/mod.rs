//! `supervisor.toml` → validated [`Config`].
//!
//! - [`model`]: the validated types the supervisor works with.
//! - `read`: the spanned TOML tree read field by field, every error collected.
//! - `graph`: unknown dependencies, cycles, duplicate listen addresses, start order.
//! - `expand`: `${VAR}` / `${VAR:-default}` / `${SELFHEAL}`.
//! - `diag`: diagnostics with file, line, column and field.

mod diag;
mod expand;
mod graph;
pub mod model;
mod read;

use std::path::Path;
use std::process::ExitCode;

pub use diag::{ConfigError, Diagnostic};
pub use model::*;

use crate::exit::Exit;

/// Reads and validates a config file, expanding variables from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&source, path, &expand::process_env)
}

/// Validates `source` (the text of `path`) with `lookup` for `${VAR}`.
pub fn parse(
    source: &str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Config, ConfigError> {
    let mut reader = read::Reader::new(source, lookup);
    let (root, syntax_errors) = toml::de::DeTable::parse_recoverable(source);
    for err in &syntax_errors {
        reader.diags.error(
            err.span().unwrap_or(0..0),
            "(syntax)",
            err.message().trim().to_string(),
        );
    }
    let config = if syntax_errors.is_empty() {
        reader.document(root.get_ref(), path.to_path_buf())
    } else {
        None
    };
    match config {
        Some(config) if reader.diags.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            diagnostics: reader.diags.into_vec(),
        }),
    }
}

/// `selfheal check`: prints every error (exit 2) or the resolved start order (exit 0).
pub fn check_main(args: &crate::cli::ConfigArg) -> anyhow::Result<ExitCode> {
    let path = args.resolve();
    match load(&path) {
        Ok(config) => {
            println!(
                "{}: ok, {} programs; start order:",
                path.display(),
                config.programs.len()
            );
            for (i, p) in config.programs.iter().enumerate() {
                let deps: Vec<String> = p
                    .depends_on
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {}",
                            d.name,
                            if d.condition == Condition::Healthy {
                                "healthy"
                            } else {
                                "started"
                            }
                        )
                    })
                    .collect();
                let after = if deps.is_empty() {
                    String::new()
                } else {
                    format!("  (after {})", deps.join(", "))
                };
                println!("  {}. {}: {}{after}", i + 1, p.name, p.command.join(" "));
            }
            Ok(Exit::Clean.into())
        }
        Err(err) => {
            eprint!("{err}");
            if matches!(err, ConfigError::Read { .. }) {
                eprintln!();
            }
            Ok(Exit::Config.into())
        }
    }
}

#[cfg(test)]
mod tests;
