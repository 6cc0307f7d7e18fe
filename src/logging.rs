//! Logging set-up shared by every subcommand: tracing to stdout, human or JSON.

use crate::cli::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default level (info).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(false)
        // Colours only for a person at a terminal, never into `docker logs` or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match format {
        LogFormat::Human => builder.compact().without_time().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
