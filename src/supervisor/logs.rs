//! The supervisor's output: programs' lines prefixed with their name
//! (`app    | …`), interleaved with the supervisor's event lines, or one JSON
//! object per line with `--log-format json`.
//!
//! Two bounds keep PID 1's memory flat and its loop free whatever programs
//! print:
//! - a program's line is cut every [`MAX_LINE`] bytes (16 KiB, Docker's
//!   limit). Every piece but the last of a cut line is marked: in human format
//!   it ends with `…`, in JSON it has `"partial": true` (Docker's log drivers
//!   mark such pieces as partial messages too).
//! - everything goes to stdout through a bounded, non-blocking [`Writer`]: a
//!   slow stdout slows the chatty program down (through its own pipe), a
//!   stalled one costs dropped lines, reported as one line
//!   `selfheal | N lines dropped …` where the gap is; never a blocked supervisor.

pub mod file;
pub mod ring;
mod writer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::LogFormat;
pub use ring::{LogBook, LogLine, Selection};
pub use writer::Writer;

use super::events::Record;

/// Longest piece of a program's line written as one line, in bytes.
pub const MAX_LINE: usize = 16 * 1024;

/// Bytes asked of the pipe per read.
const READ_CHUNK: usize = 8 * 1024;

/// How long [`Output::finish`] waits for programs' last lines at exit.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where every line goes. Cheap to clone into reader tasks.
#[derive(Clone)]
pub struct Output {
    format: LogFormat,
    width: usize,
    writer: Arc<Writer>,
    readers: Arc<Readers>,
    book: Arc<LogBook>,
    /// Programs whose output also goes to a `log_file`, by instance name.
    files: Arc<std::sync::Mutex<std::collections::HashMap<Arc<str>, Arc<Writer>>>>,
}

/// The reader tasks still running, so that exit can wait for their last lines.
#[derive(Default)]
struct Readers {
    live: AtomicUsize,
    ended: tokio::sync::Notify,
}

/// Held by a reader task; counts it out when the task ends or is dropped.
struct ReaderGuard(Arc<Readers>);

impl ReaderGuard {
    fn new(readers: &Arc<Readers>) -> ReaderGuard {
        readers.live.fetch_add(1, Ordering::SeqCst);
        ReaderGuard(readers.clone())
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.ended.notify_waiters();
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("format", &self.format)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

const SELF: &str = "selfheal";

/// Where the supervisor's lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    /// `selfheal -v -- CMD`: stdout belongs to the main program.
    Stderr,
    /// `selfheal -- CMD`: silent, as tini and dumb-init are.
    Nowhere,
}

impl Output {
    /// Output to the process's stdout, through its own writer thread, with
    /// rings of the default size.
    pub fn new(format: LogFormat, names: &[&str]) -> Output {
        Output::to(format, names, Destination::Stdout, ring::DEFAULT_CAPACITY)
    }

    /// Output to `destination`, through its own writer thread (none for
    /// [`Destination::Nowhere`]); every program line is also kept in a ring
    /// of `ring` bytes per program.
    pub fn to(format: LogFormat, names: &[&str], destination: Destination, ring: usize) -> Output {
        let width = names
            .iter()
            .map(|n| n.len())
            .chain([SELF.len()])
            .max()
            .unwrap_or(SELF.len());
        let note = move |n: u64| {
            let text = format!(
                "{n} lines dropped (stdout was not read fast enough; the supervisor never waits for it)"
            );
            format_line(format, width, SELF, "event", &text, false)
        };
        let writer = match destination {
            Destination::Stdout => Writer::stdout(Box::new(note)),
            Destination::Stderr => Writer::stderr(Box::new(note)),
            Destination::Nowhere => Writer::discard(Box::new(note)),
        };
        Output {
            format,
            width,
            writer: Arc::new(writer),
            readers: Arc::default(),
            book: Arc::new(LogBook::new(ring)),
            files: Arc::default(),
        }
    }

    /// From now on `program`'s lines are also written to `file`.
    pub fn attach_file(&self, program: Arc<str>, file: Arc<Writer>) {
        if let Ok(mut files) = self.files.lock() {
            files.insert(program, file);
        }
    }

    fn file_of(&self, program: &str) -> Option<Arc<Writer>> {
        self.files.lock().ok()?.get(program).cloned()
    }

    /// The programs' kept lines (`selfheal logs`).
    pub fn book(&self) -> Arc<LogBook> {
        self.book.clone()
    }

    /// Lines dropped so far because stdout was not read fast enough.
    pub fn dropped(&self) -> u64 {
        self.writer.dropped()
    }

    /// At exit: waits (at most `timeout`) until every program's output has
    /// been read to its end, so the last lines a program printed before it
    /// died are not lost with the runtime. The queue itself is flushed when
    /// the last `Output` is dropped (see [`Writer`]).
    pub async fn finish(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ended = self.readers.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.readers.live.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return;
            }
        }
    }

    /// A line a program printed; `partial` when it was cut at [`MAX_LINE`]
    /// and continues in the next line. Waits for room while stdout makes
    /// progress (see [`Writer::push_program`]); called by reader tasks only.
    pub async fn program_line(&self, program: &Arc<str>, line: &str, partial: bool) {
        self.book.keep(program, line, partial);
        if let Some(file) = self.file_of(program) {
            let mut bytes = line.as_bytes().to_vec();
            if !partial {
                bytes.push(b'\n');
            }
            file.push_program(bytes).await;
        }
        let line = format_line(self.format, self.width, program, "output", line, partial);
        self.writer.push_program(line).await;
    }

    /// A supervisor event: in human format `source | message` (source: the
    /// program's name before the message, or `selfheal`), in JSON the whole
    /// record with its fields.
    pub fn record(&self, record: &Record) {
        let line = match self.format {
            LogFormat::Human => {
                let text = match &record.program {
                    Some(program) if !record.named => format!("{program} {}", record.message),
                    _ => record.message.clone(),
                };
                format_line(self.format, self.width, SELF, "event", &text, false)
            }
            LogFormat::Json => {
                let mut value = record.to_json();
                if let Some(fields) = value.as_object_mut() {
                    fields.remove("seq");
                    fields.insert(
                        "event".into(),
                        fields.get("kind").cloned().unwrap_or_default(),
                    );
                    fields.insert("kind".into(), "event".into());
                    if !fields.get("program").is_some_and(|p| p.is_string()) {
                        fields.insert("program".into(), SELF.into());
                    }
                }
                let mut line = value.to_string().into_bytes();
                line.push(b'\n');
                line
            }
        };
        self.writer.push(line);
    }

    /// A supervisor event about `program` (`app exited with code 1 …`).
    pub fn event(&self, program: &str, text: &str) {
        match self.format {
            LogFormat::Human => self.emit(SELF, "event", &format!("{program} {text}"), false),
            LogFormat::Json => self.emit(program, "event", text, false),
        }
    }

    /// A supervisor line about itself.
    pub fn note(&self, text: &str) {
        self.emit(SELF, "event", text, false);
    }

    /// The count of every output line dropped since start (a shared counter).
    pub fn dropped_lines(&self) -> prometheus_client::metrics::counter::Counter {
        self.writer.dropped_total()
    }

    /// Waits (at most `timeout`) until every line so far is written.
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        self.writer.flush(timeout)
    }

    fn emit(&self, source: &str, kind: &str, text: &str, partial: bool) {
        self.writer.push(format_line(
            self.format,
            self.width,
            source,
            kind,
            text,
            partial,
        ));
    }
}

/// One output line with its `\n`.
fn format_line(
    format: LogFormat,
    width: usize,
    source: &str,
    kind: &str,
    text: &str,
    partial: bool,
) -> Vec<u8> {
    match format {
        LogFormat::Human => {
            let mark = if partial { "…" } else { "" };
            format!("{source:<width$} | {text}{mark}\n").into_bytes()
        }
        LogFormat::Json => {
            let now = std::time::SystemTime::now();
            let mut value = serde_json::json!({
                "ts": super::events::rfc3339(now), "ts_ms": super::events::epoch_ms(now),
                "program": source, "kind": kind,
            });
            if let Some(fields) = value.as_object_mut() {
                // A program's own JSON line is embedded as an object, so a
                // log pipeline sees its fields rather than an escaped string.
                match embedded_json(kind, text, partial) {
                    Some(object) => fields.insert("json".into(), object),
                    None => fields.insert("message".into(), text.into()),
                };
                if partial {
                    fields.insert("partial".into(), serde_json::Value::Bool(true));
                }
            }
            let mut line = value.to_string().into_bytes();
            line.push(b'\n');
            line
        }
    }
}

/// A whole output line that is a JSON object, parsed (else `None`).
fn embedded_json(kind: &str, text: &str, partial: bool) -> Option<serde_json::Value> {
    if kind != "output" || partial || !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .filter(|v| v.is_object())
}

/// Copies a program's output to [`Output`] line by line until the pipe closes
/// (when the program and every descendant holding it have exited). Lines
/// longer than [`MAX_LINE`] are cut into marked pieces, so at most about
/// twice `MAX_LINE + READ_CHUNK` bytes are held per program, whatever it prints.
pub fn pump(output: Output, program: Arc<str>, reader: std::io::PipeReader) {
    let fd: std::os::fd::OwnedFd = reader.into();
    let pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(pipe) => pipe,
        Err(e) => {
            output.event(&program, &format!("cannot read its output: {e}"));
            return;
        }
    };
    let guard = ReaderGuard::new(&output.readers);
    tokio::spawn(async move {
        let _guard = guard;
        // Allocated when bytes are there and given back once all are
        // written: a quiet program holds no buffer (1000 idle programs held
        // 8 MB of them, 4 MB resident, when each reserved one before waiting).
        let mut pending: Vec<u8> = Vec::new();
        loop {
            if pending.is_empty() {
                pending = Vec::new();
            }
            if pipe.readable().await.is_err() {
                break;
            }
            pending.reserve(READ_CHUNK);
            match pipe.try_read_buf(&mut pending) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Ok(0) | Err(_) => break,
                Ok(_) if output.writer.stalled() => {
                    // Not written: kept in the ring and counted, not formatted.
                    let mut lines = 0;
                    let used = split_lines(&pending, |line, partial| {
                        lines += 1;
                        let line = String::from_utf8_lossy(line);
                        output.book.keep(&program, &line, partial);
                    });
                    pending.drain(..used);
                    output.writer.count_dropped(lines);
                }
                Ok(_) => {
                    let mut pieces = Vec::new();
                    let used = split_lines(&pending, |line, partial| {
                        pieces.push((String::from_utf8_lossy(line).into_owned(), partial))
                    });
                    pending.drain(..used);
                    for (line, partial) in pieces {
                        output.program_line(&program, &line, partial).await;
                    }
                }
            }
        }
        if !pending.is_empty() {
            // The last line, unterminated: complete, since the stream ended.
            let line = String::from_utf8_lossy(&pending);
            output
                .program_line(&program, line.trim_end_matches('\r'), false)
                .await;
        }
    });
}

/// Emits every complete line of `buf` (without `\n` and a `\r` before it) and
/// every [`MAX_LINE`] piece of an over-long one (`partial = true`); returns how
/// many bytes were consumed. What is left is at most `MAX_LINE` bytes without a
/// newline.
fn split_lines(buf: &[u8], mut emit: impl FnMut(&[u8], bool)) -> usize {
    let mut start = 0;
    loop {
        let rest = buf.get(start..).unwrap_or_default();
        // One byte more than a piece: a line of exactly MAX_LINE is not cut.
        let window = rest.get(..=MAX_LINE).unwrap_or(rest);
        if let Some(nl) = window.iter().position(|&b| b == b'\n') {
            let line = window.get(..nl).unwrap_or_default();
            emit(line.strip_suffix(b"\r").unwrap_or(line), false);
            start += nl + 1;
        } else if rest.len() > MAX_LINE {
            let piece = rest.get(..MAX_LINE).unwrap_or(rest);
            let cut = utf8_cut(piece);
            emit(piece.get(..cut).unwrap_or(piece), true);
            start += cut;
        } else {
            return start;
        }
    }
}

/// Where to cut a full window so that a UTF-8 character is not split: before
/// an unfinished multi-byte sequence at its end (at most 3 bytes back), else at
/// its end. Invalid bytes are cut anywhere (they are shown as U+FFFD anyway).
fn utf8_cut(window: &[u8]) -> usize {
    let end = window.len();
    for back in 1..=3.min(end) {
        let i = end - back;
        let Some(&b) = window.get(i) else { break };
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let needs = match b {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if back < needs && i > 0 { i } else { end };
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(buf: &[u8]) -> (Vec<(Vec<u8>, bool)>, usize) {
        let mut out = Vec::new();
        let used = split_lines(buf, |l, p| out.push((l.to_vec(), p)));
        (out, used)
    }

    #[test]
    fn complete_lines_lose_their_line_ending() {
        let (lines, used) = split(b"a\r\nb\n\rc\ntail");
        assert_eq!(
            lines,
            vec![
                (b"a".to_vec(), false),
                (b"b".to_vec(), false),
                (b"\rc".to_vec(), false)
            ]
        );
        assert_eq!(used, 8);
    }

    #[test]
    fn long_lines_are_cut_into_marked_pieces() {
        let mut buf = vec![b'x'; MAX_LINE * 2 + 5];
        buf.push(b'\n');
        let (exact, _) = split(&[vec![b'y'; MAX_LINE], b"\n".to_vec()].concat());
        assert_eq!(exact, vec![(vec![b'y'; MAX_LINE], false)]);
        let (lines, used) = split(&buf);
        let shape: Vec<(usize, bool)> = lines.iter().map(|(l, p)| (l.len(), *p)).collect();
        assert_eq!(shape, vec![(MAX_LINE, true), (MAX_LINE, true), (5, false)]);
        assert_eq!(used, buf.len());
        // Without a newline, the short tail waits for more.
        let (lines, used) = split(&buf[..MAX_LINE + 7]);
        assert_eq!(lines.len(), 1);
        assert_eq!(used, MAX_LINE);
    }

    #[test]
    fn pieces_are_marked_in_both_formats() {
        let human = format_line(LogFormat::Human, 6, "app", "output", "abc", true);
        assert_eq!(human, "app    | abc…\n".as_bytes());
        let whole = format_line(LogFormat::Human, 6, "app", "output", "abc", false);
        assert_eq!(whole, b"app    | abc\n");
        let json = format_line(LogFormat::Json, 6, "app", "output", "abc", true);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["partial"], true);
        assert_eq!(value["message"], "abc");
        let json = format_line(LogFormat::Json, 6, "app", "output", "abc", false);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert!(value.get("partial").is_none());
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let mut buf = vec![b'x'; MAX_LINE - 1];
        buf.extend_from_slice("é".as_bytes()); // 2 bytes straddling the limit
        buf.extend_from_slice(b"yz");
        let (lines, used) = split(&buf);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].0.len(), MAX_LINE - 1);
        assert!(lines[0].1);
        assert_eq!(used, MAX_LINE - 1);
        assert_eq!(utf8_cut(&[b'a'; 4]), 4);
        assert_eq!(utf8_cut("aé".as_bytes()), 3);
        assert_eq!(utf8_cut(&"a€".as_bytes()[..3]), 1);
        assert_eq!(utf8_cut(&[0xff, 0xff]), 2);
    }
}
