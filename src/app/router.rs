//! Routes and handlers: `/` counts a visit, `/livez` and `/readyz` for probes, the
//! chaos routes only when enabled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{extract::State, Json, Router};
use serde_json::json;

use super::chaos::{self, Chaos};
use super::counter::{Counter, StoreError};
use super::server::Shutdown;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_VISIT_COUNT: HeaderName = HeaderName::from_static("x-visit-count");

/// Longest accepted `X-Request-Id`.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// How long `/readyz` waits for Redis.
const READY_TIMEOUT: Duration = Duration::from_millis(500);

/// Which process answered.
#[derive(Debug, Clone)]
pub struct Instance {
    pub pid: u32,
    /// RFC 3339, seconds.
    pub started_at: String,
    /// Start time in microseconds since the epoch (part of generated request ids).
    started_micros: u128,
}

impl Instance {
    pub fn current() -> Instance {
        let now = SystemTime::now();
        Instance {
            pid: std::process::id(),
            started_at: humantime::format_rfc3339_seconds(now).to_string(),
            started_micros: now
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0),
        }
    }
}

/// Everything the handlers share.
pub struct AppState {
    pub counter: Counter,
    pub chaos: Chaos,
    pub chaos_enabled: bool,
    pub instance: Instance,
    pub shutdown: Shutdown,
    next_id: AtomicU64,
}

impl AppState {
    pub fn new(counter: Counter, chaos_enabled: bool, shutdown: Shutdown) -> AppState {
        AppState {
            counter,
            chaos: Chaos::default(),
            chaos_enabled,
            instance: Instance::current(),
            shutdown,
            next_id: AtomicU64::new(0),
        }
    }

    /// A request id unique across restarts: start time, pid, sequence.
    fn generate_request_id(&self) -> String {
        let seq = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:x}-{:x}-{:x}",
            self.instance.started_micros, self.instance.pid, seq
        )
    }
}

/// The app's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/", get(index))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz));
    if state.chaos_enabled {
        router = router
            .route("/kill", get(chaos::kill).post(chaos::kill))
            .route("/hang", get(chaos::hang).post(chaos::hang))
            .route("/leak", get(chaos::leak).post(chaos::leak))
            .route("/chaos/errors", get(chaos::errors).post(chaos::errors));
    }
    router
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            chaos::hang_guard,
        ))
        .with_state(state)
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.counter.ping(READY_TIMEOUT).await {
        Ok(()) => "ready\n".into_response(),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(json!({"error": "redis unavailable", "detail": err.to_string()})),
        )
            .into_response(),
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

/// Why a request id from the client is refused.
#[derive(Debug, thiserror::Error)]
#[error("X-Request-Id must be 1 to {MAX_REQUEST_ID_LEN} visible ASCII characters")]
pub struct BadRequestId;

/// The request id of this request: the client's (validated), or a new one.
fn request_id(state: &AppState, headers: &HeaderMap) -> Result<String, BadRequestId> {
    match headers.get(&X_REQUEST_ID) {
        None => Ok(state.generate_request_id()),
        Some(value) => {
            let bytes = value.as_bytes();
            let valid = !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_LEN
                && bytes.iter().all(|b| b.is_ascii_graphic());
            if !valid {
                return Err(BadRequestId);
            }
            // Visible ASCII only, checked above.
            String::from_utf8(bytes.to_vec()).map_err(|_| BadRequestId)
        }
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("application/json"))
}

/// `GET /`: count the visit once per request id, answer with the count.
async fn index(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let rid = match request_id(&state, &headers) {
        Ok(rid) => rid,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": err.to_string()})),
            )
                .into_response()
        }
    };
    // Validated (visible ASCII), so this cannot fail; fall back defensively anyway.
    let rid_header = HeaderValue::from_str(&rid).unwrap_or(HeaderValue::from_static("invalid"));
    let visit = match state.counter.visit(&rid).await {
        Ok(visit) => visit,
        Err(err) => {
            let (status, error) = match &err {
                StoreError::Unavailable { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable")
                }
                StoreError::Redis(_) => (StatusCode::INTERNAL_SERVER_ERROR, "redis error"),
            };
            tracing::warn!(request_id = %rid, cause = %err, "visit not counted");
            let mut response = (
                status,
                Json(json!({"error": error, "detail": err.to_string(), "request_id": rid})),
            )
                .into_response();
            let h = response.headers_mut();
            h.insert(X_REQUEST_ID, rid_header);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            return response;
        }
    };
    let message = if visit.count == 1 {
        "Hello from selfheal! This page has been visited 1 time.".to_string()
    } else {
        format!(
            "Hello from selfheal! This page has been visited {} times.",
            visit.count
        )
    };
    let mut response = if wants_json(&headers) {
        Json(json!({
            "count": visit.count,
            "request_id": rid,
            "replayed": visit.replayed,
            "instance": {"pid": state.instance.pid, "started_at": state.instance.started_at},
            "message": message,
        }))
        .into_response()
    } else {
        format!(
            "{message}\nrequest {rid} answered by pid {} (started {}){}\n",
            state.instance.pid,
            state.instance.started_at,
            if visit.replayed {
                ", counted before: not counted again"
            } else {
                ""
            },
        )
        .into_response()
    };
    let h = response.headers_mut();
    h.insert(X_VISIT_COUNT, HeaderValue::from(visit.count));
    h.insert(X_REQUEST_ID, rid_header);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::server::StopReason;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// Nothing listens on port 1: connections are refused at once.
    const NO_REDIS: &str = "redis://127.0.0.1:1";

    fn state(chaos: bool, redis_timeout: Duration) -> Arc<AppState> {
        let counter = Counter::new(NO_REDIS, redis_timeout).expect("valid redis url");
        Arc::new(AppState::new(counter, chaos, Shutdown::default()))
    }

    async fn call(state: &Arc<AppState>, method: &str, uri: &str) -> Response {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        router(state.clone())
            .oneshot(req)
            .await
            .expect("infallible")
    }

    async fn body(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn livez_answers_without_redis() {
        let s = state(false, Duration::from_millis(100));
        let resp = call(&s, "GET", "/livez").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(body(resp).await, "ok\n");
    }

    #[tokio::test]
    async fn chaos_routes_are_404_without_the_flag() {
        let s = state(false, Duration::from_millis(100));
        for path in ["/kill", "/hang", "/leak", "/chaos/errors"] {
            for method in ["GET", "POST"] {
                let resp = call(&s, method, path).await;
                assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
            }
        }
        assert_eq!(s.shutdown.reason(), None);
        assert!(!s.chaos.is_hung());
    }

    #[tokio::test]
    async fn unknown_path_is_404() {
        let s = state(true, Duration::from_millis(100));
        assert_eq!(
            call(&s, "GET", "/nope").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn kill_answers_202_and_asks_for_exit_code_1() {
        let s = state(true, Duration::from_millis(100));
        let resp = call(&s, "POST", "/kill").await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert!(body(resp).await.contains("exits with code 1"));
        assert_eq!(s.shutdown.reason(), Some(StopReason::Kill));
        assert_eq!(StopReason::Kill.exit_code(), 1);
    }

    #[tokio::test]
    async fn hang_answers_202_then_nothing_completes() {
        let s = state(true, Duration::from_millis(100));
        assert_eq!(
            call(&s, "GET", "/hang").await.status(),
            StatusCode::ACCEPTED
        );
        for path in ["/livez", "/", "/readyz"] {
            let later = tokio::time::timeout(Duration::from_millis(200), call(&s, "GET", path));
            assert!(later.await.is_err(), "{path} answered after /hang");
        }
    }

    #[tokio::test]
    async fn chaos_errors_answer_500_but_probes_and_switch_it_off() {
        let s = state(true, Duration::from_millis(100));
        let resp = call(&s, "GET", "/chaos/errors?on=1").await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        for path in ["/", "/nothing-here"] {
            assert_eq!(
                call(&s, "GET", path).await.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{path}"
            );
        }
        assert_eq!(call(&s, "GET", "/livez").await.status(), StatusCode::OK);
        let resp = call(&s, "GET", "/chaos/errors?on=0").await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert_eq!(
            call(&s, "GET", "/nothing-here").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn leak_grows_and_reports_total() {
        let s = state(true, Duration::from_millis(100));
        let resp = call(&s, "GET", "/leak?mb=1").await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert!(body(resp).await.contains("total 1 MiB"));
        let resp = call(&s, "GET", "/leak?mb=2").await;
        assert!(body(resp).await.contains("total 3 MiB"));
    }

    #[tokio::test]
    async fn redis_down_gives_503_with_retry_after_at_the_deadline() {
        let s = state(false, Duration::from_millis(300));
        let started = std::time::Instant::now();
        let resp = call(&s, "GET", "/").await;
        let took = started.elapsed();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert!(resp.headers().contains_key(&X_REQUEST_ID));
        assert!(!resp.headers().contains_key(&X_VISIT_COUNT));
        assert!(
            took >= Duration::from_millis(300),
            "gave up early: {took:?}"
        );
        assert!(
            took < Duration::from_millis(1300),
            "deadline overrun: {took:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&body(resp).await).expect("json");
        assert_eq!(json["error"], "redis unavailable");
    }

    #[tokio::test]
    async fn readyz_is_503_when_redis_is_down() {
        let s = state(false, Duration::from_millis(100));
        let resp = call(&s, "GET", "/readyz").await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn invalid_request_id_is_400() {
        let s = state(false, Duration::from_millis(100));
        for bad in ["", "has space", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            let req = Request::builder()
                .uri("/")
                .header("x-request-id", bad)
                .body(Body::empty())
                .expect("request");
            let resp = router(s.clone()).oneshot(req).await.expect("infallible");
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn generated_request_ids_are_distinct_and_valid() {
        let s = state(false, Duration::from_millis(100));
        let a = s.generate_request_id();
        let b = s.generate_request_id();
        assert_ne!(a, b);
        assert!(a.len() <= MAX_REQUEST_ID_LEN && a.bytes().all(|c| c.is_ascii_graphic()));
    }

    #[test]
    fn json_is_chosen_by_accept() {
        let mut h = HeaderMap::new();
        assert!(!wants_json(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, Application/JSON;q=0.9"),
        );
        assert!(wants_json(&h));
    }
}
