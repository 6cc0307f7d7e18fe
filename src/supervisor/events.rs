//! Every supervisor event as one typed record: the same value makes the human
//! line, the JSON line, the `GET /events` stream (Server-Sent Events) and the
//! recent-events list of the status page.
//!
//! A [`Record`] is built from a program's [`state::Event`] or the supervisor's
//! [`Note`] ([`Record::of_event`], [`Record::of_note`]); its `kind` and fields
//! come from those types, its `message` is their `Display`. The [`EventLog`]
//! numbers records, keeps the last [`KEPT`] and broadcasts each one to live
//! subscribers. Publishing never waits: a subscriber that falls more than
//! [`CHANNEL`] records behind loses the oldest ones and is told how many.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::notes::Note;
use super::state::{self, Event, Next, Termination};

/// Records kept for late subscribers (`GET /events?recent=N`, the page).
pub const KEPT: usize = 256;

/// Records a live subscriber may fall behind before it loses some.
pub const CHANNEL: usize = 1024;

/// One event, as every consumer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// 1, 2, 3 … in publication order (the SSE `id`).
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-30T03:22:33.123Z`.
    pub ts: String,
    /// Milliseconds since the Unix epoch (the same instant as `ts`).
    pub ts_ms: u64,
    /// The program it is about; `None` for the supervisor itself.
    pub program: Option<Arc<str>>,
    /// Machine-readable kind: `started`, `ready`, `exited`, … (see [`Event::kind`]).
    pub kind: &'static str,
    /// The human line (without the program's name).
    pub message: String,
    /// Kind-specific fields (`pid`, `code`, `signal`, `delay_ms`, …).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
    /// The message already names the program (the supervisor's notes): the
    /// human line does not put the name before it again.
    #[serde(skip)]
    pub named: bool,
}

impl Record {
    /// A program's event.
    pub fn of_event(program: &Arc<str>, event: &Event) -> Record {
        Record::new(
            Some(program.clone()),
            event.kind(),
            event.to_string(),
            event.fields(),
        )
    }

    /// The `backoff` record that follows an exit or a failed spawn when the
    /// program will be started again after a delay: `delay_ms` and `until`
    /// (RFC 3339). Only on the event stream: the human line of the exit
    /// already says it.
    pub fn backoff_after(program: &Arc<str>, event: &Event) -> Option<Record> {
        let (Event::Exited { next, .. } | Event::SpawnFailed { next, .. }) = event else {
            return None;
        };
        let Next::Restart { count, delay, .. } = next else {
            return None;
        };
        let until = SystemTime::now() + *delay;
        let fields = json!({
            "delay_ms": delay.as_millis() as u64, "until": rfc3339(until), "restarts": count,
        });
        Some(Record::new(
            Some(program.clone()),
            "backoff",
            format!("backoff: next start in {}", state::human(*delay)),
            self::fields(fields),
        ))
    }

    /// A supervisor event; `program` when it is about one.
    pub fn of_note(note: &Note) -> Record {
        let mut record = Record::new(note.program(), note.kind(), note.to_string(), note.fields());
        record.named = true;
        record
    }

    /// A supervisor line that has no kind of its own (`kind = "note"`).
    pub fn text(program: Option<Arc<str>>, message: String) -> Record {
        Record::new(program, "note", message, Map::new())
    }

    /// A record of a kind defined outside this module (e.g. `restart_cost`).
    pub fn typed(
        program: Option<Arc<str>>,
        kind: &'static str,
        message: String,
        fields: Map<String, Value>,
    ) -> Record {
        Record::new(program, kind, message, fields)
    }

    fn new(
        program: Option<Arc<str>>,
        kind: &'static str,
        message: String,
        fields: Map<String, Value>,
    ) -> Record {
        let now = SystemTime::now();
        Record {
            seq: 0,
            ts: rfc3339(now),
            ts_ms: epoch_ms(now),
            program,
            kind,
            message,
            fields,
            named: false,
        }
    }

    /// The record as one JSON object (its fields flattened in).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// `2026-11-30T03:22:33.123Z`: the one timestamp format of every JSON line.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The numbered, kept and broadcast records. Shared (`Arc`) by the owner task,
/// which publishes, and the admin API, which subscribes.
pub struct EventLog {
    inner: Mutex<Inner>,
}

struct Inner {
    seq: u64,
    recent: VecDeque<Arc<Record>>,
    tx: broadcast::Sender<Arc<Record>>,
}

impl Default for EventLog {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(CHANNEL);
        EventLog {
            inner: Mutex::new(Inner {
                seq: 0,
                recent: VecDeque::new(),
                tx,
            }),
        }
    }
}

impl EventLog {
    /// Numbers `record`, keeps it and sends it to every live subscriber.
    pub fn publish(&self, mut record: Record) -> Arc<Record> {
        let Ok(mut inner) = self.inner.lock() else {
            return Arc::new(record);
        };
        inner.seq += 1;
        record.seq = inner.seq;
        let record = Arc::new(record);
        if inner.recent.len() == KEPT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(record.clone());
        let _ = inner.tx.send(record.clone()); // no subscriber: nothing to do
        record
    }

    /// The last `recent` kept records (oldest first) and a receiver of every
    /// later one, with no gap and no repeat between the two.
    pub fn subscribe(&self, recent: usize) -> (Vec<Arc<Record>>, broadcast::Receiver<Arc<Record>>) {
        match self.inner.lock() {
            Ok(inner) => {
                let skip = inner.recent.len().saturating_sub(recent);
                let past = inner.recent.iter().skip(skip).cloned().collect();
                (past, inner.tx.subscribe())
            }
            Err(poisoned) => {
                let inner = poisoned.into_inner();
                (Vec::new(), inner.tx.subscribe())
            }
        }
    }
}

/// The fields of a JSON object (`value` is always one here; anything else: none).
pub(super) fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn termination(how: &Termination) -> Value {
    match how {
        Termination::Exited(code) => json!({ "code": code }),
        Termination::Signaled {
            signal,
            core_dumped,
        } => json!({
            "code": how.code(),
            "signal": state::signal_name(*signal),
            "core_dumped": core_dumped,
        }),
        Termination::ExecFailed { code, error } => json!({ "code": code, "error": error }),
    }
}

fn next(next: &Next) -> Value {
    match next {
        Next::Restart {
            count,
            window,
            delay,
        } => json!({
            "next": "restart", "restarts": count,
            "window_ms": window.as_millis() as u64, "delay_ms": delay.as_millis() as u64,
        }),
        Next::Done => json!({ "next": "done" }),
        Next::Stay => json!({ "next": "stay" }),
        Next::Stopped => json!({ "next": "stopped" }),
        Next::Respawn => json!({ "next": "respawn" }),
        Next::GiveUp { max, window } => json!({
            "next": "give_up", "max": max, "window_ms": window.as_millis() as u64,
        }),
    }
}

/// `a` with `b`'s fields added.
fn merge(a: Value, b: Value) -> Value {
    let mut a = fields(a);
    a.extend(fields(b));
    Value::Object(a)
}

impl Event {
    /// The machine-readable kind of the event (`Record::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Started { .. } => "started",
            Event::Ready { .. } => "ready",
            Event::NotReady { .. } => "not_ready",
            Event::Exited {
                next: Next::Stopped,
                ..
            } => "stopped",
            Event::Exited { .. } => "exited",
            Event::SpawnFailed { .. } => "spawn_failed",
            Event::Unhealthy { .. } => "unhealthy",
            Event::Stopping { .. } => "stopping",
            Event::Killed { .. } => "killed",
            Event::GroupLeft { .. } => "group_left",
            Event::Daemonized { .. } => "daemonized",
            Event::Suspended {
                suspended: true, ..
            } => "suspended",
            Event::Suspended {
                suspended: false, ..
            } => "continued",
        }
    }

    /// The event's facts as JSON fields (durations in ms, signals by name).
    pub fn fields(&self) -> Map<String, Value> {
        fields(match self {
            Event::Started { pid } => json!({ "pid": pid }),
            Event::Ready { pid, after } => {
                json!({ "pid": pid, "after_ms": after.as_millis() as u64 })
            }
            Event::NotReady { pid, reason } => json!({ "pid": pid, "reason": reason }),
            Event::Exited {
                pid,
                how,
                ran,
                next: n,
            } => merge(
                merge(
                    json!({ "pid": pid, "ran_ms": ran.as_millis() as u64 }),
                    termination(how),
                ),
                next(n),
            ),
            Event::SpawnFailed { how, next: n } => merge(termination(how), next(n)),
            Event::Unhealthy {
                pid,
                failures,
                reason,
            } => json!({ "pid": pid, "failures": failures, "reason": reason }),
            Event::Stopping { pid, signal } => json!({ "pid": pid, "signal": signal.as_str() }),
            Event::Killed { pid, after } => {
                json!({ "pid": pid, "after_ms": after.as_millis() as u64 })
            }
            Event::GroupLeft { pid, how, signal } => merge(
                json!({ "pid": pid, "signal": signal.as_str() }),
                termination(how),
            ),
            Event::Daemonized { pid, left } => json!({ "pid": pid, "left": left }),
            Event::Suspended { pid, .. } => json!({ "pid": pid }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_exit_record_carries_its_facts_as_fields() {
        let event = Event::Exited {
            pid: 42,
            how: Termination::Signaled {
                signal: 9,
                core_dumped: false,
            },
            ran: Duration::from_millis(1500),
            next: Next::Restart {
                count: 2,
                window: Duration::from_secs(60),
                delay: Duration::from_millis(250),
            },
        };
        let record = Record::of_event(&Arc::from("app"), &event);
        let json = record.to_json();
        assert_eq!(json["kind"], "exited");
        assert_eq!(json["program"], "app");
        assert_eq!(json["pid"], 42);
        assert_eq!(json["code"], 137);
        assert_eq!(json["signal"], "SIGKILL");
        assert_eq!(json["ran_ms"], 1500);
        assert_eq!(json["next"], "restart");
        assert_eq!(json["delay_ms"], 250);
        assert_eq!(json["message"], event.to_string());
        assert!(json["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn subscribers_get_the_kept_tail_then_every_later_record_without_gap() {
        let log = EventLog::default();
        for i in 0..(KEPT + 3) {
            log.publish(Record::text(None, format!("n{i}")));
        }
        let (past, mut rx) = log.subscribe(2);
        let seqs: Vec<u64> = past.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![KEPT as u64 + 2, KEPT as u64 + 3]);
        log.publish(Record::text(None, "later".into()));
        let next = rx.try_recv().unwrap();
        assert_eq!(next.seq, KEPT as u64 + 4);
        let (all, _) = log.subscribe(usize::MAX);
        assert_eq!(all.len(), KEPT);
    }
}
