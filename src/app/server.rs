//! Serving: accept on the given listener until a shutdown is triggered (signal or
//! `/kill`), then stop accepting and let in-flight requests finish, bounded.

use std::future::IntoFuture;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

/// Why the app stops; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGTERM / SIGINT: a clean stop, exit 0.
    Signal(&'static str),
    /// The chaos endpoint `/kill`: exit 1 once its 202 is sent.
    Kill,
}

impl StopReason {
    pub fn exit_code(self) -> u8 {
        match self {
            StopReason::Signal(_) => 0,
            StopReason::Kill => 1,
        }
    }
}

/// A shared, one-shot shutdown trigger; the first reason wins.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl Shutdown {
    pub fn trigger(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }
}

/// How long in-flight requests may take to finish once a shutdown began.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// After SIGTERM / SIGINT.
    pub on_signal: Duration,
    /// After `/kill` (its own 202 is the request that matters).
    pub on_kill: Duration,
}

/// Serves `router` on `listener` until `shutdown` fires, then drains (bounded).
/// Returns why it stopped.
pub async fn run(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: Shutdown,
    drain: Drain,
) -> std::io::Result<StopReason> {
    let listener = StopAware {
        inner: listener,
        shutdown: shutdown.clone(),
    }
    .tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "TCP_NODELAY not set");
        }
    });
    let signal = shutdown.clone();
    let serve = axum::serve(listener, router)
        .with_graceful_shutdown(async move { signal.triggered().await })
        .into_future();
    tokio::pin!(serve);
    tokio::select! {
        result = &mut serve => result?,
        () = shutdown.triggered() => {
            // Graceful shutdown has begun: the accept loop stops, each connection
            // finishes its in-flight request (the /kill 202 included) and closes.
            let limit = match shutdown.reason() {
                Some(StopReason::Kill) => drain.on_kill,
                _ => drain.on_signal,
            };
            tracing::info!(limit_ms = limit.as_millis() as u64, "draining in-flight requests");
            match tokio::time::timeout(limit, &mut serve).await {
                Ok(result) => result?,
                Err(_elapsed) => tracing::warn!(
                    limit_ms = limit.as_millis() as u64,
                    "drain deadline reached; abandoning the requests still in flight"
                ),
            }
        }
    }
    Ok(shutdown.reason().unwrap_or(StopReason::Signal("none")))
}

/// A listener that stops accepting the moment a shutdown is triggered.
///
/// axum's graceful shutdown races `accept` against the signal with an unbiased
/// `select!`: a connection queued right after `/kill` answered could still be
/// accepted by the dying process and then closed unanswered. Here a triggered
/// shutdown always wins, so such a connection stays in the (supervisor-held)
/// socket's backlog for the next incarnation.
struct StopAware {
    inner: tokio::net::TcpListener,
    shutdown: Shutdown,
}

impl axum::serve::Listener for StopAware {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.triggered() => std::future::pending::<()>().await,
                accepted = self.inner.accept() => match accepted {
                    Ok(conn) => return conn,
                    Err(err) => {
                        // Resource exhaustion (EMFILE…) must not spin the loop.
                        tracing::warn!(%err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Registers SIGTERM and SIGINT handlers now (so a signal arriving right after
/// start-up is not lost) and returns the future that triggers `shutdown` on the
/// first of them.
pub fn forward_signals(
    shutdown: Shutdown,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let stop = crate::stop::stop_signal()?;
    Ok(async move {
        let name = stop.await;
        tracing::info!(
            signal = name,
            "stopping: no new connections, finishing in-flight requests"
        );
        shutdown.trigger(StopReason::Signal(name));
    })
}
