//! Chaos endpoints (only with `--chaos`): `/kill` answers 202 then exits 1, `/hang`
//! answers 202 then the app stops answering, `/leak` grows the resident memory,
//! `/chaos/errors?on=1` makes every other request (probes excepted) answer `500`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::router::AppState;
use super::server::StopReason;

/// Per-call cap of `/leak?mb=N`.
const MAX_LEAK_MB_PER_CALL: usize = 256;

/// Chaos state shared by the handlers.
#[derive(Debug, Default)]
pub struct Chaos {
    hung: AtomicBool,
    /// `/chaos/errors?on=1`: answer 500 to everything but probes and chaos routes.
    errors: AtomicBool,
    leaked: Mutex<Vec<Box<[u8]>>>,
}

impl Chaos {
    pub fn is_hung(&self) -> bool {
        self.hung.load(Ordering::Relaxed)
    }
}

/// Middleware: once `/hang` was called, no request completes any more (liveness
/// probes time out and the supervisor restarts the app).
pub async fn hang_guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if state.chaos.is_hung() {
        std::future::pending::<()>().await;
    }
    let path = req.uri().path();
    let exempt = path == "/livez" || path == "/readyz" || path.starts_with("/chaos/");
    if state.chaos.errors.load(Ordering::Relaxed) && !exempt {
        return (StatusCode::INTERNAL_SERVER_ERROR, "chaos: errors on\n").into_response();
    }
    next.run(req).await
}

#[derive(Debug, serde::Deserialize)]
pub struct ErrorsParams {
    on: Option<u8>,
}

/// `/chaos/errors?on=1` (or `on=0`): every request but the probes (`/livez`,
/// `/readyz`) and the chaos routes answers `500` — alive, yet failing all real
/// traffic, for `traffic_health` to catch.
pub async fn errors(
    State(state): State<Arc<AppState>>,
    Query(params): Query<ErrorsParams>,
) -> Response {
    let on = params.on.unwrap_or(1) != 0;
    tracing::warn!(
        pid = state.instance.pid,
        on,
        "chaos errors: every request answers 500"
    );
    state.chaos.errors.store(on, Ordering::Relaxed);
    (
        StatusCode::ACCEPTED,
        format!("chaos errors {}\n", if on { "on" } else { "off" }),
    )
        .into_response()
}

/// `/kill`: 202 now, exit 1 right after. The shutdown begun here is graceful: the
/// server stops accepting and lets in-flight requests finish, this one included,
/// so the 202 is written before the process exits (a proxy that saw no answer
/// might replay /kill and turn one crash into a crash loop).
pub async fn kill(State(state): State<Arc<AppState>>) -> Response {
    tracing::warn!(
        pid = state.instance.pid,
        "kill received: exiting with code 1"
    );
    state.shutdown.trigger(StopReason::Kill);
    (
        StatusCode::ACCEPTED,
        [("connection", "close")],
        format!(
            "kill received: pid {} exits with code 1 once this answer is sent\n",
            state.instance.pid
        ),
    )
        .into_response()
}

/// `/hang`: 202, then every later request hangs.
pub async fn hang(State(state): State<Arc<AppState>>) -> Response {
    tracing::warn!(
        pid = state.instance.pid,
        "hang received: no request will complete from now on"
    );
    state.chaos.hung.store(true, Ordering::Relaxed);
    (
        StatusCode::ACCEPTED,
        [("connection", "close")],
        format!(
            "hang received: pid {} stops answering now\n",
            state.instance.pid
        ),
    )
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct LeakParams {
    mb: Option<usize>,
}

/// `/leak?mb=N` (default 16, at most 256 per call): allocates and touches N MiB
/// that are never freed, so a memory limit has something to catch.
pub async fn leak(
    State(state): State<Arc<AppState>>,
    Query(params): Query<LeakParams>,
) -> Response {
    let mb = params.mb.unwrap_or(16).min(MAX_LEAK_MB_PER_CALL);
    let block = vec![0xA5u8; mb << 20].into_boxed_slice();
    let total_mb = match state.chaos.leaked.lock() {
        Ok(mut leaked) => {
            leaked.push(block);
            leaked.iter().map(|b| b.len()).sum::<usize>() >> 20
        }
        Err(_poisoned) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "leak store poisoned\n").into_response()
        }
    };
    tracing::warn!(mb, total_mb, "leak: memory grows and is never freed");
    (
        StatusCode::ACCEPTED,
        format!("leaked {mb} MiB (total {total_mb} MiB)\n"),
    )
        .into_response()
}
