//! `supervisor.toml` (being built).
use std::process::ExitCode;
pub fn check_main(_args: &crate::cli::ConfigArg) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
