//! Logging set-up shared by every subcommand: tracing to stdout, human or JSON.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default level (info).
pub fn init(format: LogFormat) {
    install(format, std::io::stdout);
}

/// Like [`init`], but each line is handed to a writer thread, so that a
/// stalled stdout never blocks the thread that logs (the proxy's event loops):
/// past 128 000 waiting lines new ones are dropped (tracing-appender's lossy
/// mode). Keep the guard until exit: dropping it writes what is left,
/// waiting at most a second.
pub fn init_non_blocking(format: LogFormat) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    install(format, writer);
    guard
}

fn install<W>(format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        // Colours only for a person at a terminal, never into `docker logs` or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match format {
        LogFormat::Human => builder.compact().without_time().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
