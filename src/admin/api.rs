//! The admin API (axum on the supervisor's runtime), served on a unix socket
//! and, with `admin_listen`, on TCP behind [`super::auth`]:
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the live status page ([`super::page`]) |
//! | `GET /status` | the [`Snapshot`] as JSON |
//! | `GET /livez` | 200 while the supervisor's loop runs |
//! | `GET /readyz` | 200 when every program that should run is ready, else 503 with one reason per line |
//! | `GET /health` | `{"ready": bool, "reasons": [..]}` (200 or 503 as `/readyz`) |
//! | `GET /metrics` | Prometheus metrics, OpenMetrics text: the supervisor's own (counters read from shared atomics, gauges from the status snapshot) and the pages of programs with a `metrics` URL ([`super::federation`]) |
//! | `POST /programs/{name}/start\|stop\|restart` | 200 with the new state; 404 unknown program; 503 shutting down |
//! | `POST /programs/{name}/signal?signal=HUP` | the signal to the program's process group(s) |
//! | `POST /programs/{name}/scale?replicas=N` | run N instances |
//! | `POST /reload` | re-read the config and apply the difference: 200 `{"changes": […]}`; 400 with every error (nothing changed) |
//! | `GET /events[?recent=N]` | Server-Sent Events, one per supervisor event (`supervisor::events::Record` as JSON), the last N kept ones first |
//! | `GET /logs?program=A&n=N&since_ms=T&follow=true` | programs' kept output lines as NDJSON, oldest first; `follow` streams new ones |

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::auth;
use super::snapshot::Snapshot;
use crate::supervisor::events::EventLog;
use crate::supervisor::logs::LogBook;
use crate::supervisor::metrics::{encode_federation_up, Metrics};
use crate::supervisor::services::ReloadError;
use crate::supervisor::{AdminError, AdminVerb, Msg};

/// What the API handlers share with the supervisor.
#[derive(Clone)]
pub struct Shared {
    /// Requests to the owner task.
    pub tx: mpsc::UnboundedSender<Msg>,
    /// The event stream (read without asking the owner).
    pub events: Arc<EventLog>,
    /// The programs' kept output (read without asking the owner).
    pub logs: Arc<LogBook>,
    /// The Prometheus metrics (read without asking the owner).
    pub metrics: Arc<Metrics>,
}

type ApiState = Shared;

impl ApiState {
    /// Asks the owner for the current status (built on demand).
    async fn snapshot(&self) -> Option<Snapshot> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Snapshot(reply)).ok()?;
        rx.await.ok()
    }
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(super::page::page))
        .route("/status", get(status))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/events", get(super::stream::events))
        .route("/logs", get(super::stream::logs))
        .route("/metrics", get(metrics_page))
        .route("/programs/{name}/{verb}", post(command))
        .route("/reload", post(reload))
        .with_state(shared)
}

fn gone() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the supervisor is shutting down\n",
    )
        .into_response()
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

pub async fn serve(listener: UnixListener, shared: Shared) {
    let _ = axum::serve(listener, router(shared)).await;
}

/// Binds `admin_listen`, when set, with the [`auth::Auth`] its requests pass.
/// Errors: the address cannot be bound, or a token file is configured but its
/// token was not read (a config from [`crate::config::parse`], which skips the
/// host checks): the API is never served without the token it was given.
pub async fn bind_tcp(
    settings: &crate::config::Settings,
) -> anyhow::Result<Option<(tokio::net::TcpListener, Arc<auth::Auth>)>> {
    let Some(addr) = settings.admin_listen else {
        return Ok(None);
    };
    if settings.admin_token_file.is_some() && settings.admin_token.is_none() {
        anyhow::bail!("the token of admin_token_file was not read");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind {addr}"))?;
    let auth = auth::Auth::new(settings.admin_token.clone(), settings.admin_public.clone());
    Ok(Some((listener, auth)))
}

/// Serves the same [`router`] on TCP (`admin_listen`), every request through
/// [`auth::require`] (bearer token or cookie; `admin_public` routes open).
pub async fn serve_tcp(listener: tokio::net::TcpListener, shared: Shared, auth: Arc<auth::Auth>) {
    let app = router(shared).layer(axum::middleware::from_fn_with_state(auth, auth::require));
    let _ = axum::serve(listener, app).await;
}

/// The OpenMetrics text content type (what Prometheus asks for first).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: the supervisor's series, then each federated page (fetched
/// concurrently, 1 s each; one that fails is left out and marked in
/// `selfheal_federation_up`), then `# EOF`.
async fn metrics_page(State(s): State<ApiState>) -> Response {
    let federated = s.metrics.federated();
    let targets: Vec<_> = federated.iter().map(|f| f.url.clone()).collect();
    // The status for the gauges comes from the owner meanwhile.
    let (pages, status) = tokio::join!(super::federation::fetch_all(&targets), s.snapshot());
    let mut out = String::with_capacity(64 * 1024);
    if s.metrics.encode(&mut out, status.as_ref()).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response();
    }
    for page in pages.iter().flatten() {
        out.push_str(page);
    }
    let up = federated
        .iter()
        .zip(&pages)
        .map(|(f, page)| (f.program.as_str(), page.is_some()));
    if encode_federation_up(&mut out, up).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response();
    }
    out.push_str("# EOF\n");
    ([(axum::http::header::CONTENT_TYPE, OPENMETRICS)], out).into_response()
}

async fn status(State(s): State<ApiState>) -> Response {
    match s.snapshot().await {
        Some(snapshot) => Json(snapshot).into_response(),
        None => gone(),
    }
}

async fn readyz(State(s): State<ApiState>) -> Response {
    let Some(snapshot) = s.snapshot().await else {
        return gone();
    };
    if snapshot.all_ready() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let reasons = snapshot.problems().join("\n");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready:\n{reasons}\n"),
    )
        .into_response()
}

/// The readiness verdict with its reasons, as JSON (`selfheal health --json`).
async fn health(State(s): State<ApiState>) -> Response {
    let Some(snapshot) = s.snapshot().await else {
        return gone();
    };
    let ready = snapshot.all_ready();
    let body = serde_json::json!({ "ready": ready, "reasons": snapshot.problems() });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Query of `POST /programs/{name}/signal?signal=HUP` and `…/scale?replicas=N`.
#[derive(Debug, serde::Deserialize)]
struct VerbQuery {
    signal: Option<String>,
    replicas: Option<u32>,
}

async fn command(
    State(s): State<ApiState>,
    UrlPath((name, verb)): UrlPath<(String, String)>,
    Query(query): Query<VerbQuery>,
) -> Response {
    let bad = |text: String| (StatusCode::BAD_REQUEST, format!("{text}\n")).into_response();
    let verb = match verb.as_str() {
        "start" => AdminVerb::Start,
        "stop" => AdminVerb::Stop,
        "restart" => AdminVerb::Restart,
        "signal" => match query.signal.as_deref().map(crate::cli::parse_signal) {
            Some(Ok(n)) => AdminVerb::Signal(n),
            Some(Err(e)) => return bad(e),
            None => return bad("signal: give ?signal=NAME".into()),
        },
        "scale" => match query.replicas {
            Some(replicas) => return scale(s, name, replicas).await,
            None => return bad("scale: give ?replicas=N".into()),
        },
        _ => {
            return (
                StatusCode::NOT_FOUND,
                format!("unknown action {verb:?} (start, stop, restart, signal, scale)\n"),
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
        Ok(Err(AdminError::ShuttingDown)) | Err(_) => gone(),
    }
}

async fn scale(s: ApiState, name: String, replicas: u32) -> Response {
    if replicas > crate::config::MAX_REPLICAS {
        let text = format!("at most {} replicas\n", crate::config::MAX_REPLICAS);
        return (StatusCode::BAD_REQUEST, text).into_response();
    }
    let (reply, rx) = oneshot::channel();
    let msg = Msg::Scale {
        name,
        replicas,
        reply,
    };
    if s.tx.send(msg).is_err() {
        return gone();
    }
    match rx.await {
        Ok(Ok(text)) => (StatusCode::OK, format!("{text}\n")).into_response(),
        Ok(Err(e @ AdminError::UnknownProgram(_))) => {
            (StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
        }
        Ok(Err(AdminError::ShuttingDown)) | Err(_) => gone(),
    }
}

/// `POST /reload`: 200 with `{"changes": [{program, change, detail?}]}`; 400
/// with every config error (file:line:column) when the config is invalid —
/// then nothing changed; 409 when a new address cannot be bound.
async fn reload(State(s): State<ApiState>) -> Response {
    let (reply, rx) = oneshot::channel();
    if s.tx.send(Msg::Reload(reply)).is_err() {
        return gone();
    }
    match rx.await {
        Ok(Ok(changes)) => Json(serde_json::json!({ "changes": changes })).into_response(),
        Ok(Err(e @ ReloadError::Invalid(_))) => {
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
        Ok(Err(e @ (ReloadError::Bind(_) | ReloadError::NoConfig))) => {
            (StatusCode::CONFLICT, format!("{e}\n")).into_response()
        }
        Ok(Err(ReloadError::ShuttingDown)) | Err(_) => gone(),
    }
}
