//! The access log: one line per request, cheap enough to leave on.
//!
//! Why not through `tracing` like the proxy's other lines: that formatted each
//! event through the subscriber's field visitors into a fresh `String` and wrote
//! it with one `write(2)` to stdout, i.e. one system call (and one copy through
//! the supervisor's pipe) per request, and a stalled stdout froze the worker
//! that wrote. Measured: ×0.77 nginx's requests/s with it on, ×0.94 without
//! (docs/benchmarks.md, "Proxy vs nginx").
//!
//! How it works instead:
//! - Each worker thread owns an [`AccessLog`]: lines are formatted straight
//!   into its buffer (numbers with `itoa`, strings escaped in place; no
//!   allocation per line).
//! - The buffer is handed to the writer thread when it holds [`FLUSH_BYTES`]
//!   (64 KiB), and otherwise [`FLUSH_INTERVAL`] (100 ms) after its first line:
//!   a line reaches stdout at most 100 ms after its request was answered. An
//!   idle worker arms no timer (no wake-ups while nothing is logged).
//! - One writer thread per process ([`Writer`]) receives filled buffers over a
//!   bounded channel ([`QUEUE_BUFFERS`] buffers) and writes each with one
//!   `write_all` to stdout. A stalled stdout blocks only that thread: when the
//!   channel is full the worker drops the buffer and counts its lines, and the
//!   writer reports the count in a line of its own as soon as stdout moves
//!   again (and at exit). A full channel means 8 × 64 KiB already waiting, so
//!   a reader that merely lags does not lose lines.
//! - Shutdown: after its drain each worker hands over what it holds
//!   ([`AccessLog::finish`]), then [`Writer::finish`] waits (bounded) for the
//!   writer to write everything, so a SIGTERM loses no line of an answered request.
//!
//! Formats (`--log-format`): the same fields as the proxy's former
//! `tracing` line, so readers of either format see no change:
//! - human: `␠INFO method=GET path="/a" status=200 duration_us=412 upstream="127.0.0.1:8000" retries=0`
//! - json: `{"timestamp":"2026-11-30T00:20:44.123456Z","level":"INFO","method":"GET","path":"/a","status":200,"duration_us":412,"upstream":"127.0.0.1:8000","retries":0}`
//!
//! `upstream` is left out when no upstream was picked; `aborted="cause"` is
//! added (last) when the client's answer was cut after its head. The access log is not
//! filtered by `RUST_LOG`; `--no-access-log` turns it off.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use tokio::sync::{mpsc, Notify};

use crate::cli::LogFormat;

/// A worker's buffer is handed to the writer once it holds this many bytes.
pub const FLUSH_BYTES: usize = 64 * 1024;
/// Longest time a line waits in a worker's buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Filled buffers that may wait for the writer thread before lines are dropped.
pub const QUEUE_BUFFERS: usize = 8;

/// One request as the access log records it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub method: &'a Method,
    /// The request target's path (no query).
    pub path: &'a str,
    /// Status code the client was answered with.
    pub status: u16,
    /// From the request head's arrival to the response head.
    pub duration: Duration,
    /// `host:port` of the upstream that served (or last failed) the request.
    pub upstream: Option<&'a str>,
    /// Attempts beyond the first.
    pub retries: u32,
    /// Why the client's answer was cut after its head, if it was.
    pub aborted: Option<&'a str>,
}

/// A filled buffer and how many lines it holds (to count them if dropped).
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

/// The worker threads' way to the writer thread.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Batch>,
    format: LogFormat,
    dropped: Arc<AtomicU64>,
}

/// The writer thread: owns stdout's side of the access log.
pub struct Writer {
    sink: Sink,
    done: std::sync::mpsc::Receiver<()>,
}

impl Writer {
    /// Starts the writer thread (`access-log`) for lines in `format`.
    ///
    /// Errors: the thread could not be spawned.
    pub fn start(format: LogFormat) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel(QUEUE_BUFFERS);
        let (done_tx, done) = std::sync::mpsc::channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                write_loop(rx, format, &counted);
                let _ = done_tx.send(());
            })?;
        Ok(Writer {
            sink: Sink {
                tx,
                format,
                dropped,
            },
            done,
        })
    }

    /// A handle for one worker thread.
    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    /// Waits up to `within` for every line handed over so far to be written.
    /// Call it after every worker's [`AccessLog`] is finished and dropped
    /// (the writer ends when the last [`Sink`] is gone).
    pub fn finish(self, within: Duration) {
        drop(self.sink);
        let _ = self.done.recv_timeout(within);
    }
}

/// Writes batches until every sender is gone; reports dropped lines.
fn write_loop(mut rx: mpsc::Receiver<Batch>, format: LogFormat, dropped: &AtomicU64) {
    let mut note = Vec::new();
    while let Some(batch) = rx.blocking_recv() {
        let mut out = std::io::stdout().lock();
        if out
            .write_all(&batch.bytes)
            .and_then(|()| out.flush())
            .is_err()
        {
            dropped.fetch_add(batch.lines, Ordering::Relaxed);
            continue;
        }
        report_dropped(&mut out, &mut note, format, dropped);
    }
    let mut out = std::io::stdout().lock();
    report_dropped(&mut out, &mut note, format, dropped);
}

/// Writes one warning line if lines were dropped since the last report.
fn report_dropped(
    out: &mut impl std::io::Write,
    note: &mut Vec<u8>,
    format: LogFormat,
    dropped: &AtomicU64,
) {
    let n = dropped.swap(0, Ordering::Relaxed);
    if n == 0 {
        return;
    }
    note.clear();
    let mut n_text = itoa::Buffer::new();
    match format {
        LogFormat::Human => {
            note.extend_from_slice(
                b" WARN access log lines dropped, stdout did not keep up dropped=",
            );
            note.extend_from_slice(n_text.format(n).as_bytes());
        }
        LogFormat::Json => {
            note.extend_from_slice(b"{\"timestamp\":\"");
            let mut clock = Clock::default();
            clock.write(note, SystemTime::now());
            note.extend_from_slice(
                b"\",\"level\":\"WARN\",\"message\":\"access log lines dropped, stdout did not keep up\",\"dropped\":",
            );
            note.extend_from_slice(n_text.format(n).as_bytes());
            note.push(b'}');
        }
    }
    note.push(b'\n');
    if out.write_all(note).and_then(|()| out.flush()).is_err() {
        dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// One worker thread's access log (not `Send`: it lives on its thread).
pub struct AccessLog {
    buf: RefCell<Vec<u8>>,
    lines: Cell<u64>,
    clock: RefCell<Clock>,
    /// Woken by the first line of an empty buffer; the flusher then waits
    /// [`FLUSH_INTERVAL`] and hands the buffer over.
    first_line: Notify,
    sink: Sink,
}

impl AccessLog {
    pub fn new(sink: Sink) -> Self {
        AccessLog {
            buf: RefCell::new(Vec::new()),
            lines: Cell::new(0),
            clock: RefCell::new(Clock::default()),
            first_line: Notify::new(),
            sink,
        }
    }

    /// Appends one line; hands the buffer over when it is full. Never blocks.
    pub fn record(&self, e: &Entry<'_>) {
        let full = {
            let mut buf = self.buf.borrow_mut();
            if buf.is_empty() {
                buf.reserve(FLUSH_BYTES + 1024);
                self.first_line.notify_one();
            }
            match self.sink.format {
                LogFormat::Human => human_line(&mut buf, e),
                LogFormat::Json => {
                    let now = SystemTime::now();
                    json_line(&mut buf, &mut self.clock.borrow_mut(), now, e)
                }
            }
            buf.len() >= FLUSH_BYTES
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.hand_over();
        }
    }

    /// Hands the buffer to the writer now; drops (and counts) its lines if
    /// the writer is [`QUEUE_BUFFERS`] buffers behind.
    fn hand_over(&self) {
        let Some(batch) = self.take() else { return };
        if let Err(e) = self.sink.tx.try_send(batch) {
            let lines = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => {
                    b.lines
                }
            };
            self.sink.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }

    fn take(&self) -> Option<Batch> {
        let bytes = std::mem::take(&mut *self.buf.borrow_mut());
        let lines = self.lines.replace(0);
        (!bytes.is_empty()).then_some(Batch { bytes, lines })
    }

    /// Runs on the worker's runtime for as long as it lives: hands the buffer
    /// over [`FLUSH_INTERVAL`] after the first line it received.
    pub async fn flush_loop(self: std::rc::Rc<Self>) {
        loop {
            self.first_line.notified().await;
            tokio::time::sleep(FLUSH_INTERVAL).await;
            self.hand_over();
        }
    }

    /// Hands over the last lines at shutdown, waiting up to `within` for room
    /// in the channel (the writer drains it unless stdout is stalled).
    pub async fn finish(&self, within: Duration) {
        let Some(batch) = self.take() else { return };
        let lines = batch.lines;
        if self.sink.tx.send_timeout(batch, within).await.is_err() {
            self.sink.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

/// `␠INFO method=GET path="/a" status=200 duration_us=412 upstream="…" retries=0`
/// (the layout of `tracing_subscriber`'s compact format, which wrote it before).
fn human_line(buf: &mut Vec<u8>, e: &Entry<'_>) {
    let mut num = itoa::Buffer::new();
    buf.extend_from_slice(b" INFO method=");
    buf.extend_from_slice(e.method.as_str().as_bytes());
    buf.extend_from_slice(b" path=\"");
    escape_into(buf, e.path);
    buf.extend_from_slice(b"\" status=");
    buf.extend_from_slice(num.format(e.status).as_bytes());
    buf.extend_from_slice(b" duration_us=");
    buf.extend_from_slice(num.format(micros(e.duration)).as_bytes());
    if let Some(up) = e.upstream {
        buf.extend_from_slice(b" upstream=\"");
        escape_into(buf, up);
        buf.push(b'"');
    }
    buf.extend_from_slice(b" retries=");
    buf.extend_from_slice(num.format(e.retries).as_bytes());
    if let Some(cause) = e.aborted {
        buf.extend_from_slice(b" aborted=\"");
        escape_into(buf, cause);
        buf.push(b'"');
    }
    buf.push(b'\n');
}

/// One JSON object per line, the fields of `tracing_subscriber`'s JSON format.
fn json_line(buf: &mut Vec<u8>, clock: &mut Clock, now: SystemTime, e: &Entry<'_>) {
    let mut num = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"timestamp\":\"");
    clock.write(buf, now);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"method\":\"");
    escape_into(buf, e.method.as_str());
    buf.extend_from_slice(b"\",\"path\":\"");
    escape_into(buf, e.path);
    buf.extend_from_slice(b"\",\"status\":");
    buf.extend_from_slice(num.format(e.status).as_bytes());
    buf.extend_from_slice(b",\"duration_us\":");
    buf.extend_from_slice(num.format(micros(e.duration)).as_bytes());
    if let Some(up) = e.upstream {
        buf.extend_from_slice(b",\"upstream\":\"");
        escape_into(buf, up);
        buf.push(b'"');
    }
    buf.extend_from_slice(b",\"retries\":");
    buf.extend_from_slice(num.format(e.retries).as_bytes());
    if let Some(cause) = e.aborted {
        buf.extend_from_slice(b",\"aborted\":\"");
        escape_into(buf, cause);
        buf.push(b'"');
    }
    buf.extend_from_slice(b"}\n");
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Appends `s` as the inside of a JSON string (RFC 8259 §7): `"` and `\`
/// escaped, control characters as `\u00XX`. Request paths almost never need
/// it, so the common case is one copy.
fn escape_into(buf: &mut Vec<u8>, s: &str) {
    let needs = |b: u8| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f;
    if !s.bytes().any(needs) {
        buf.extend_from_slice(s.as_bytes());
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in s.bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b if needs(b) => {
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[usize::from(b >> 4)]);
                buf.push(HEX[usize::from(b & 0xf)]);
            }
            b => buf.push(b),
        }
    }
}

/// RFC 3339 UTC timestamps with microseconds, the calendar part formatted
/// once per second.
#[derive(Default)]
struct Clock {
    second: u64,
    /// `2026-11-30T00:20:44.` for `second` (empty until first use).
    prefix: Vec<u8>,
}

impl Clock {
    fn write(&mut self, buf: &mut Vec<u8>, now: SystemTime) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if second != self.second || self.prefix.is_empty() {
            self.second = second;
            self.prefix.clear();
            let whole = UNIX_EPOCH + Duration::from_secs(second);
            // `YYYY-MM-DDTHH:MM:SSZ`; keep all but the `Z`.
            let _ = write!(self.prefix, "{}", humantime::format_rfc3339_seconds(whole));
            self.prefix.pop();
            self.prefix.push(b'.');
        }
        buf.extend_from_slice(&self.prefix);
        let mut digits = [b'0'; 6];
        let mut n = since.subsec_micros();
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        buf.extend_from_slice(&digits);
        buf.push(b'Z');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(method: &'a Method, path: &'a str, upstream: Option<&'a str>) -> Entry<'a> {
        Entry {
            method,
            path,
            status: 502,
            duration: Duration::from_micros(1234),
            upstream,
            retries: 2,
            aborted: None,
        }
    }

    #[test]
    fn human_line_has_every_field() {
        let mut buf = Vec::new();
        human_line(
            &mut buf,
            &entry(&Method::POST, "/a", Some("127.0.0.1:8000")),
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            " INFO method=POST path=\"/a\" status=502 duration_us=1234 upstream=\"127.0.0.1:8000\" retries=2\n"
        );
        let mut buf = Vec::new();
        human_line(&mut buf, &entry(&Method::GET, "/", None));
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            " INFO method=GET path=\"/\" status=502 duration_us=1234 retries=2\n"
        );
        let mut buf = Vec::new();
        let cut = Entry {
            aborted: Some("upstream closed inside the body"),
            ..entry(&Method::GET, "/", None)
        };
        human_line(&mut buf, &cut);
        assert!(String::from_utf8(buf)
            .unwrap()
            .ends_with(" retries=2 aborted=\"upstream closed inside the body\"\n"));
    }

    #[test]
    fn json_line_is_valid_json_with_every_field() {
        let mut buf = Vec::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_795_998_044_000_123);
        let path = "/we\"ird\\p\u{1}ath";
        json_line(
            &mut buf,
            &mut Clock::default(),
            at,
            &entry(&Method::GET, path, Some("up:1")),
        );
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["timestamp"], "2026-11-30T00:20:44.000123Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], path);
        assert_eq!(v["status"], 502);
        assert_eq!(v["duration_us"], 1234);
        assert_eq!(v["upstream"], "up:1");
        assert_eq!(v["retries"], 2);
        let mut buf = Vec::new();
        json_line(
            &mut buf,
            &mut Clock::default(),
            at,
            &entry(&Method::GET, "/", None),
        );
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert!(v.get("upstream").is_none());
        assert!(v.get("aborted").is_none());
        let mut buf = Vec::new();
        let cut = Entry {
            aborted: Some("cut"),
            ..entry(&Method::GET, "/", None)
        };
        json_line(&mut buf, &mut Clock::default(), at, &cut);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["aborted"], "cut");
    }

    #[test]
    fn clock_reformats_only_when_the_second_changes() {
        let mut c = Clock::default();
        let mut buf = Vec::new();
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        c.write(&mut buf, t + Duration::from_micros(5));
        buf.push(b' ');
        c.write(&mut buf, t + Duration::from_micros(999_999));
        buf.push(b' ');
        c.write(&mut buf, t + Duration::from_secs(1));
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2000-02-29T00:00:00.000005Z 2000-02-29T00:00:00.999999Z 2000-02-29T00:00:01.000000Z"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_never_blocks() {
        // A sink whose writer never reads: the queue fills and stays full.
        let (tx, _rx) = mpsc::channel(QUEUE_BUFFERS);
        let sink = Sink {
            tx,
            format: LogFormat::Human,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let log = AccessLog::new(sink.clone());
        let m = Method::GET;
        let long = "/".repeat(FLUSH_BYTES / 4);
        // Lines of 16 KiB and a bit: every fourth one fills a buffer.
        let batches = QUEUE_BUFFERS as u64 + 2;
        for _ in 0..4 * batches {
            log.record(&entry(&m, &long, None));
        }
        assert_eq!(
            sink.tx.capacity(),
            0,
            "the queue holds {QUEUE_BUFFERS} buffers"
        );
        assert_eq!(log.lines.get(), 0, "every full buffer was handed over");
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 2 * 4);
    }
}
