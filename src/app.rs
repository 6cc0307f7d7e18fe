//! `selfheal app`: the demo web app (filled in by the demo-stack work).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct AppArgs {
    /// Address to bind when no socket is inherited (LISTEN_FDS).
    #[arg(long, default_value = "127.0.0.1:8000", env = "SELFHEAL_APP_LISTEN")]
    pub listen: String,
    /// Redis URL.
    #[arg(
        long,
        default_value = "redis://127.0.0.1:6379",
        env = "SELFHEAL_REDIS_URL"
    )]
    pub redis: String,
    /// Enable the chaos endpoints (/kill, /hang).
    #[arg(long, env = "SELFHEAL_CHAOS")]
    pub chaos: bool,
}

pub fn main(_args: AppArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("selfheal app is not built yet")
}
