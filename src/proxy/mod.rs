//! `selfheal proxy`: the reverse proxy (filled in by the proxy work).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Address to bind when no socket is inherited (LISTEN_FDS).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Upstream address (repeatable).
    #[arg(long, required = true)]
    pub upstream: Vec<String>,
}

pub fn main(_args: ProxyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("selfheal proxy is not built yet")
}
