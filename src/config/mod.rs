//! `supervisor.toml` → validated [`Config`].
//!
//! - [`model`]: the validated types the supervisor works with.
//! - `read`: the spanned TOML tree read field by field, every error collected.
//! - `graph`: unknown dependencies, cycles, duplicate listen addresses, start order.
//! - `expand`: `${VAR}` / `${VAR:-default}` / `${SELFHEAL}`.
//! - [`preflight`]: the host checks (executables, `#!` lines, workdirs, users,
//!   descriptor limits) that decide whether a program can start here.
//! - `diag`: diagnostics (errors and warnings) with file, line, column and field.
//!
//! Parsing ([`parse`]) is pure; [`load`] adds the host checks.

mod diag;
mod expand;
pub use expand::REPLICA_PLACEHOLDER;
mod graph;
pub mod model;
pub mod preflight;
mod read;

use std::path::Path;
use std::process::ExitCode;

pub use diag::{ConfigError, Diagnostic, Severity};
pub use model::*;
pub use preflight::Host;
pub use read::signal_named;

use crate::exit::Exit;

/// Reads and validates a config file, expanding variables from the process
/// environment, and runs the [`preflight`] checks against this host. Errors
/// of both kinds come back together; warnings are in [`Config::warnings`].
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = read_file(path)?;
    build(&source, path, &expand::process_env, Some(&Host::current()))
}

/// Reads and validates a config file without asking the host anything, for
/// callers that only need a setting (the CLI looking for the admin socket).
pub fn load_unchecked(path: &Path) -> Result<Config, ConfigError> {
    let source = read_file(path)?;
    parse(&source, path, &expand::process_env)
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Validates `source` (the text of `path`) with `lookup` for `${VAR}`; pure.
pub fn parse(
    source: &str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Config, ConfigError> {
    build(source, path, lookup, None)
}

/// [`parse`], then the [`preflight`] checks against `host`.
pub fn parse_checked(
    source: &str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    host: &Host,
) -> Result<Config, ConfigError> {
    build(source, path, lookup, Some(host))
}

fn build(
    source: &str,
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    host: Option<&Host>,
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
    let mut config = None;
    if syntax_errors.is_empty() {
        let mut document = reader.document(root.get_ref());
        if let Some(host) = host {
            preflight::check(&document.programs, host, &mut reader.diags);
            if let Some(settings) = document.supervisor.as_mut() {
                let span = document.settings_spans.admin_token_file.clone();
                preflight::admin_token(settings, span, &mut reader.diags);
            }
        }
        let programs = graph::order(&mut reader, document.programs);
        if let (Some(supervisor), Some(programs)) = (document.supervisor, programs) {
            config = Some(Config {
                path: path.to_path_buf(),
                supervisor,
                programs,
                warnings: Vec::new(),
            });
        }
    }
    let has_errors = reader.diags.has_errors();
    let diagnostics = reader.diags.into_vec();
    match config {
        Some(mut config) if !has_errors => {
            config.warnings = diagnostics;
            Ok(config)
        }
        _ => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            diagnostics,
        }),
    }
}

/// `selfheal check`: prints every error and warning; exit 2 on any error (or,
/// with `--strict`, any warning), else prints the resolved start order, exit 0.
pub fn check_main(args: &crate::cli::CheckArgs) -> anyhow::Result<ExitCode> {
    let path = args.config.resolve();
    match load(&path) {
        Ok(config) if args.strict && !config.warnings.is_empty() => {
            eprintln!(
                "{}: {} in the configuration (errors under --strict):",
                path.display(),
                diag::plural(config.warnings.len(), "warning")
            );
            for w in &config.warnings {
                eprintln!("  {}", w.display(&path));
            }
            Ok(Exit::Config.into())
        }
        Ok(config) => {
            if !config.warnings.is_empty() {
                eprintln!(
                    "{}: {} in the configuration (the programs concerned fail at start \
                     until they are fixed):",
                    path.display(),
                    diag::plural(config.warnings.len(), "warning")
                );
                for w in &config.warnings {
                    eprintln!("  {}", w.display(&path));
                }
            }
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
mod proptests;
#[cfg(test)]
mod tests;
