//! The supervisor (being built).
pub mod backoff;
pub mod state;
use std::process::ExitCode;
pub fn main(_args: crate::cli::RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
