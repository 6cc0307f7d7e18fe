//! The admin API (axum on the supervisor's runtime), served on a unix socket:
//!
//! | route | answer |
//! |---|---|
//! | `GET /status` | the [`Snapshot`] as JSON |
//! | `GET /livez` | 200 while the supervisor's loop runs |
//! | `GET /readyz` | 200 when every program that should run is ready, else 503 with the ones that are not |
//! | `POST /programs/{name}/start\|stop\|restart` | 200 with the new state; 404 unknown program; 503 shutting down |

use std::path::Path;

use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, watch};

use super::snapshot::Snapshot;
use crate::supervisor::{AdminError, AdminVerb, Msg};

#[derive(Clone)]
struct ApiState {
    snapshot: watch::Receiver<Snapshot>,
    tx: mpsc::UnboundedSender<Msg>,
}

pub fn router(snapshot: watch::Receiver<Snapshot>, tx: mpsc::UnboundedSender<Msg>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/programs/{name}/{verb}", post(command))
        .with_state(ApiState { snapshot, tx })
}

/// Binds the socket: creates its directory, replaces a stale socket file, and
/// refuses to steal the socket of a supervisor that is still running.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another supervisor is serving {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

pub async fn serve(
    listener: UnixListener,
    snapshot: watch::Receiver<Snapshot>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let _ = axum::serve(listener, router(snapshot, tx)).await;
}

async fn status(State(s): State<ApiState>) -> Json<Snapshot> {
    Json(s.snapshot.borrow().clone().with_uptimes())
}

async fn readyz(State(s): State<ApiState>) -> Response {
    let snapshot = s.snapshot.borrow().clone();
    if snapshot.all_ready() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let waiting: Vec<String> = snapshot
        .programs
        .iter()
        .filter(|p| !p.ready && p.state != "stopped")
        .map(|p| format!("{} {}", p.name, p.state))
        .collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {}\n", waiting.join(", ")),
    )
        .into_response()
}

async fn command(
    State(s): State<ApiState>,
    UrlPath((name, verb)): UrlPath<(String, String)>,
) -> Response {
    let verb = match verb.as_str() {
        "start" => AdminVerb::Start,
        "stop" => AdminVerb::Stop,
        "restart" => AdminVerb::Restart,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                format!("unknown action {verb:?} (start, stop, restart)\n"),
            )
                .into_response()
        }
    };
    let (reply, rx) = oneshot::channel();
    if s.tx.send(Msg::Admin { verb, name, reply }).is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the supervisor is shutting down\n",
        )
            .into_response();
    }
    match rx.await {
        Ok(Ok(text)) => (StatusCode::OK, format!("{text}\n")).into_response(),
        Ok(Err(e @ AdminError::UnknownProgram(_))) => {
            (StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
        }
        Ok(Err(AdminError::ShuttingDown)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the supervisor is shutting down\n",
        )
            .into_response(),
    }
}
