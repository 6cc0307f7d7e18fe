//! The recent output of every program, kept in memory for `selfheal logs`.
//!
//! One ring per program, bounded in bytes ([`LogBook::capacity`], the
//! `[supervisor] log_ring` setting, 1 MiB by default): the oldest lines go when
//! a new one does not fit. Memory is taken as lines arrive — a quiet program
//! costs nothing — and never exceeds the bound whatever a program prints (a
//! line is at most [`super::MAX_LINE`] bytes). Every kept line is also
//! broadcast to live readers (`selfheal logs -f`); one that falls more than
//! [`CHANNEL`] lines behind loses the oldest and is told how many.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::supervisor::events::{epoch_ms, rfc3339};

/// Default bytes kept per program.
pub const DEFAULT_CAPACITY: usize = 1024 * 1024;

/// Lines a live reader may fall behind before it loses some (so a follower
/// pins at most this many lines beyond the rings).
pub const CHANNEL: usize = 512;

/// What a kept line costs beyond its text: its record, the `Arc` and
/// allocator headers, the ring's slot; so a flood of empty lines is bounded too.
const OVERHEAD: usize = std::mem::size_of::<LogLine>() + 48;

/// One line a program printed. `GET /logs` sends it as
/// `{"ts": RFC 3339, "ts_ms", "program", "line", "partial"}`.
#[derive(Debug)]
pub struct LogLine {
    /// Order of arrival across all programs (not sent).
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub program: Arc<str>,
    pub line: Box<str>,
    /// The line was cut at `MAX_LINE` and continues in the next one.
    pub partial: bool,
}

impl LogLine {
    fn cost(&self) -> usize {
        self.line.len() + OVERHEAD
    }
}

impl Serialize for LogLine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(self.ts_ms);
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("ts", &rfc3339(at))?;
        map.serialize_entry("ts_ms", &self.ts_ms)?;
        map.serialize_entry("program", &*self.program)?;
        map.serialize_entry("line", &*self.line)?;
        map.serialize_entry("partial", &self.partial)?;
        map.end()
    }
}

/// Which lines a reader wants.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Program names; empty means every program.
    pub programs: Vec<String>,
    /// Only the last `n` (across the selected programs).
    pub last: Option<usize>,
    /// Only lines at or after this instant (ms since the epoch).
    pub since_ms: Option<u64>,
}

impl Selection {
    /// Whether a line of `program` at `ts_ms` is selected (ignoring `last`).
    pub fn wants(&self, line: &LogLine) -> bool {
        (self.programs.is_empty() || self.programs.iter().any(|p| names(p, &line.program)))
            && self.since_ms.is_none_or(|t| line.ts_ms >= t)
    }
}

/// Whether `wanted` (a program, `app`, or one instance, `app#2`; `app#0` is
/// replica 0, whose lines go by `app`) names the instance `program`.
fn names(wanted: &str, program: &str) -> bool {
    let wanted = wanted.strip_suffix("#0").unwrap_or(wanted);
    program == wanted
        || program
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('#'))
}

/// The rings of every program, shared by the readers of programs' output
/// (which keep lines) and the admin API (which reads them).
pub struct LogBook {
    capacity: usize,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<LogLine>>,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    rings: HashMap<Arc<str>, Ring>,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<Arc<LogLine>>,
    bytes: usize,
}

impl LogBook {
    /// Rings of at most `capacity` bytes each (0 keeps nothing).
    pub fn new(capacity: usize) -> LogBook {
        let (tx, _) = broadcast::channel(CHANNEL);
        LogBook {
            capacity,
            inner: Mutex::new(Inner::default()),
            tx,
        }
    }

    /// Bytes kept per program at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keeps one line of `program` (dropping its oldest lines as needed) and
    /// sends it to live readers.
    pub fn keep(&self, program: &Arc<str>, line: &str, partial: bool) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.seq += 1;
        let line = Arc::new(LogLine {
            seq: inner.seq,
            ts_ms: epoch_ms(SystemTime::now()),
            program: program.clone(),
            line: line.into(),
            partial,
        });
        let cost = line.cost();
        if cost <= self.capacity {
            let ring = inner.rings.entry(program.clone()).or_default();
            while ring.bytes + cost > self.capacity {
                match ring.lines.pop_front() {
                    Some(old) => ring.bytes -= old.cost(),
                    None => break,
                }
            }
            ring.bytes += cost;
            ring.lines.push_back(line.clone());
        }
        let _ = self.tx.send(line); // no live reader: nothing to do
    }

    /// The kept lines `selection` wants, oldest first, and a receiver of
    /// every later line (no gap, no repeat between the two).
    pub fn read(
        &self,
        selection: &Selection,
    ) -> (Vec<Arc<LogLine>>, broadcast::Receiver<Arc<LogLine>>) {
        let Ok(inner) = self.inner.lock() else {
            return (Vec::new(), self.tx.subscribe());
        };
        let mut lines: Vec<Arc<LogLine>> = inner
            .rings
            .values()
            .flat_map(|ring| {
                let wanted = ring.lines.iter().filter(|l| selection.wants(l));
                let skip = selection
                    .last
                    .map_or(0, |n| wanted.clone().count().saturating_sub(n));
                wanted.skip(skip).cloned()
            })
            .collect();
        // The last n of each program (as `docker compose logs --tail`), in order.
        lines.sort_unstable_by_key(|l| l.seq);
        (lines, self.tx.subscribe())
    }

    /// Bytes held for `program` now.
    pub fn held(&self, program: &str) -> usize {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.rings.get(program).map(|r| r.bytes))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Arc<LogLine>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("{}:{}", l.program, l.line))
            .collect()
    }

    #[test]
    fn a_ring_keeps_the_newest_lines_within_its_bytes() {
        let book = LogBook::new(10 * (OVERHEAD + 3));
        let app: Arc<str> = Arc::from("app");
        for i in 0..100 {
            book.keep(&app, &format!("{i:03}"), false);
        }
        assert!(book.held("app") <= book.capacity());
        let (lines, _) = book.read(&Selection::default());
        assert_eq!(lines.len(), 10);
        assert_eq!(lines.last().map(|l| &*l.line), Some("099"));
        // A line larger than the whole ring is streamed, never kept.
        book.keep(&app, &"x".repeat(2000), false);
        assert!(book.held("app") <= book.capacity());
    }

    #[test]
    fn reads_merge_programs_in_order_and_take_the_last_n_of_each() {
        let book = LogBook::new(DEFAULT_CAPACITY);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        book.keep(&a, "1", false);
        book.keep(&b, "2", false);
        book.keep(&a, "3", false);
        book.keep(&b, "4", false);
        let all = Selection::default();
        assert_eq!(texts(&book.read(&all).0), ["a:1", "b:2", "a:3", "b:4"]);
        let last = Selection {
            last: Some(3),
            ..Selection::default()
        };
        assert_eq!(texts(&book.read(&last).0), ["a:1", "b:2", "a:3", "b:4"]);
        let one = Selection {
            last: Some(1),
            ..Selection::default()
        };
        assert_eq!(texts(&book.read(&one).0), ["a:3", "b:4"]);
        let only_b = Selection {
            programs: vec!["b".into()],
            last: Some(1),
            ..Selection::default()
        };
        assert_eq!(texts(&book.read(&only_b).0), ["b:4"]);
        let future = Selection {
            since_ms: Some(u64::MAX),
            ..Selection::default()
        };
        assert!(book.read(&future).0.is_empty());
    }

    #[test]
    fn a_program_name_selects_each_of_its_instances() {
        assert!(names("app", "app"));
        assert!(names("app", "app#2"));
        assert!(names("app#0", "app"));
        assert!(names("app#2", "app#2"));
        assert!(!names("app#2", "app"));
        assert!(!names("app", "apple"));
        assert!(!names("app", "app2#1"));
    }

    #[test]
    fn a_reader_gets_every_line_kept_after_it_read() {
        let book = LogBook::new(DEFAULT_CAPACITY);
        let a: Arc<str> = Arc::from("a");
        book.keep(&a, "before", false);
        let (past, mut rx) = book.read(&Selection::default());
        book.keep(&a, "after", false);
        assert_eq!(texts(&past), ["a:before"]);
        assert_eq!(
            rx.try_recv().map(|l| l.line.to_string()).ok(),
            Some("after".into())
        );
    }
}
