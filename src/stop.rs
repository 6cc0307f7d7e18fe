//! SIGTERM / SIGINT for the programs of the demo stack (app and proxy): the
//! handlers are registered at once, so a signal that arrives right after start-up
//! is not lost, and the returned future resolves with the signal's name.
//!
//! SIGHUP, SIGUSR1 and SIGUSR2 are handled too and ignored (with a log line):
//! their default action would kill the process, and a `docker kill -s HUP` or a
//! supervisor forwarding them must not turn into a crash and a restart.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

pub fn stop_signal() -> std::io::Result<impl Future<Output = &'static str> + Send + 'static> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    Ok(async move {
        loop {
            let ignored = tokio::select! {
                _ = term.recv() => return "SIGTERM",
                _ = int.recv() => return "SIGINT",
                _ = hup.recv() => "SIGHUP",
                _ = usr1.recv() => "SIGUSR1",
                _ = usr2.recv() => "SIGUSR2",
            };
            tracing::info!(
                signal = ignored,
                "received {ignored}: nothing to reload; ignored"
            );
        }
    })
}
