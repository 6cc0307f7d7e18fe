//! SIGTERM / SIGINT for the programs of the demo stack (app and proxy): the
//! handlers are registered at once, so a signal that arrives right after start-up
//! is not lost, and the returned future resolves with the signal's name.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

pub fn stop_signal() -> std::io::Result<impl Future<Output = &'static str> + Send + 'static> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
