//! The two streaming routes of the admin API: `GET /events` (Server-Sent
//! Events) and `GET /logs` (NDJSON, optionally followed). Both read shared,
//! bounded buffers ([`EventLog`], [`LogBook`]) and never ask the owner task
//! for more than a name check, so a slow or stuck client costs the supervisor
//! nothing: it falls behind, loses the oldest items and is told how many.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::{self, error::RecvError};

use super::api::Shared;
use crate::supervisor::events::Record;
use crate::supervisor::logs::Selection;

/// Lines sent by `GET /logs` when neither `n` nor `since_ms` is given.
pub const DEFAULT_TAIL: usize = 100;

/// How often an idle event stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a stream yields next: the kept items first, then live ones.
struct Feed<T> {
    past: VecDeque<Arc<T>>,
    live: Option<broadcast::Receiver<Arc<T>>>,
}

/// One step of a feed.
enum Item<T> {
    One(Arc<T>),
    /// A slow reader lost this many items.
    Skipped(u64),
}

impl<T: Send + Sync + 'static> Feed<T> {
    async fn next(&mut self) -> Option<Item<T>> {
        if let Some(item) = self.past.pop_front() {
            return Some(Item::One(item));
        }
        match self.live.as_mut()?.recv().await {
            Ok(item) => Some(Item::One(item)),
            Err(RecvError::Lagged(n)) => Some(Item::Skipped(n)),
            Err(RecvError::Closed) => None,
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    /// Kept events to send before the live ones.
    #[serde(default)]
    recent: usize,
}

/// `GET /events[?recent=N]`: `id: seq`, `event: kind`, `data: record JSON`.
pub async fn events(
    State(shared): State<Shared>,
    Query(query): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (past, rx) = shared.events.subscribe(query.recent);
    let feed = Feed {
        past: past.into(),
        live: Some(rx),
    };
    let stream = stream::unfold(feed, |mut feed| async move {
        let event = match feed.next().await? {
            Item::One(record) => sse_event(&record),
            Item::Skipped(n) => SseEvent::default()
                .event("skipped")
                .data(format!("{{\"skipped\":{n}}}")),
        };
        Some((Ok(event), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

fn sse_event(record: &Record) -> SseEvent {
    SseEvent::default()
        .id(record.seq.to_string())
        .event(record.kind)
        .data(record.to_json().to_string())
}

/// `GET /logs`: `program` (repeatable), `n`, `since_ms`, `follow`.
pub async fn logs(
    State(shared): State<Shared>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let (selection, follow) = match parse_logs_query(&pairs) {
        Ok(parsed) => parsed,
        Err(text) => return (StatusCode::BAD_REQUEST, format!("{text}\n")).into_response(),
    };
    if let Some(unknown) = unknown_program(&shared, &selection.programs).await {
        let text = format!("no program named {unknown:?}\n");
        return (StatusCode::NOT_FOUND, text).into_response();
    }
    let (past, rx) = shared.logs.read(&selection);
    let feed = Feed {
        past: past.into(),
        live: follow.then_some(rx),
    };
    let stream = stream::unfold((feed, selection), |(mut feed, selection)| async move {
        loop {
            let bytes = match feed.next().await? {
                Item::One(line) if !selection.wants(&line) => continue,
                Item::One(line) => ndjson(&*line),
                Item::Skipped(n) => ndjson(&serde_json::json!({ "skipped": n })),
            };
            return Some((Ok::<_, Infallible>(bytes), (feed, selection)));
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn ndjson<T: serde::Serialize + ?Sized>(value: &T) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// The selection and `follow` from the query pairs; an error names the bad one.
fn parse_logs_query(pairs: &[(String, String)]) -> Result<(Selection, bool), String> {
    let mut selection = Selection::default();
    let mut follow = false;
    for (key, value) in pairs {
        match key.as_str() {
            "program" => selection.programs.push(value.clone()),
            "n" => {
                let n = value
                    .parse()
                    .map_err(|_| format!("n={value:?}: not a count"))?;
                selection.last = Some(n);
            }
            "since_ms" => {
                let t = value
                    .parse()
                    .map_err(|_| format!("since_ms={value:?}: not milliseconds since the epoch"))?;
                selection.since_ms = Some(t);
            }
            "follow" => follow = matches!(value.as_str(), "true" | "1" | ""),
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (program, n, since_ms, follow)"
                ))
            }
        }
    }
    if selection.last.is_none() && selection.since_ms.is_none() {
        selection.last = Some(DEFAULT_TAIL);
    }
    Ok((selection, follow))
}

/// The first name in `names` that is not a program of the supervisor.
async fn unknown_program(shared: &Shared, names: &[String]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let (reply, rx) = tokio::sync::oneshot::channel();
    shared
        .tx
        .send(crate::supervisor::Msg::Snapshot(reply))
        .ok()?;
    let snapshot = rx.await.ok()?;
    names
        .iter()
        .find(|n| {
            !snapshot
                .programs
                .iter()
                .any(|p| &p.name == *n || &p.program == *n)
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_logs_query_defaults_to_a_tail_and_names_a_bad_parameter() {
        let (s, follow) = parse_logs_query(&[]).unwrap();
        assert_eq!(s.last, Some(DEFAULT_TAIL));
        assert!(!follow);
        let q = pairs(&[
            ("program", "a"),
            ("program", "b"),
            ("since_ms", "5"),
            ("follow", "true"),
        ]);
        let (s, follow) = parse_logs_query(&q).unwrap();
        assert_eq!(s.programs, vec!["a", "b"]);
        assert_eq!((s.last, s.since_ms, follow), (None, Some(5), true));
        assert!(parse_logs_query(&pairs(&[("n", "x")]))
            .unwrap_err()
            .contains("n="));
        assert!(parse_logs_query(&pairs(&[("tail", "1")]))
            .unwrap_err()
            .contains("tail"));
    }
}
