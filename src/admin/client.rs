//! CLI side of the admin API (being built).
use std::process::ExitCode;
pub fn status_main(_args: &crate::cli::StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
pub fn command_main(_verb: &str, _args: &crate::cli::ProgramArg) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
