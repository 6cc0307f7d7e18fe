//! A bounded, non-blocking writer for the supervisor's stdout.
//!
//! The owner task must never block on output: a stdout nobody reads (`selfheal |
//! sleep 1000`, a stalled log driver, a terminal paused with Ctrl-S) would
//! otherwise freeze PID 1 in `write(2)`: no reaping, no signals, no admin API.
//! So lines go into a queue bounded in bytes and one dedicated thread writes
//! them. Two kinds of producers:
//!
//! - the supervisor's own lines ([`Writer::push`]) never wait: when the queue
//!   is full (beyond [`QUEUE_BYTES`] and a small reserve) the line is dropped
//!   and counted;
//! - programs' lines ([`Writer::push_program`], from their reader tasks) wait
//!   for room while stdout is making progress, so a reader that is merely
//!   slower than a chatty program loses nothing (the program is slowed down
//!   through its own pipe, as with a terminal); once stdout has made no
//!   progress for [`STALL`], they are dropped and counted too, so a stalled
//!   stdout never stops the programs either.
//!
//! The count is written as one line (made by the `note` function) at the place
//! of the gap, as soon as the queue has room again. Docker's `mode=non-blocking`
//! log option makes the same trade (a bounded buffer that drops when full).
//!
//! Dropping the last [`Writer`] handle flushes what is queued, waiting at most
//! [`FLUSH_TIMEOUT`], so the final lines at exit are written whenever stdout
//! is read at all.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes of queued program lines at most (the batch being written by the
/// thread comes on top, so memory is bounded by about twice this).
pub const QUEUE_BYTES: usize = 1024 * 1024;

/// Room kept for the supervisor's own lines above the programs' share (a
/// sixteenth of the budget), so a chatty program that fills the queue does not
/// crowd out events.
const EVENT_RESERVE_DIVISOR: usize = 16;

/// No progress on stdout for this long means it is stalled: program lines are
/// then dropped instead of waited for.
pub const STALL: Duration = Duration::from_millis(500);

/// Bytes handed to one `write(2)`, so that progress is seen within a batch.
const WRITE_CHUNK: usize = 16 * 1024;

/// How long dropping the last handle waits for the queue to drain.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Formats the "N lines dropped" line.
pub type Note = Box<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// Handle to the writer thread; see the module docs.
pub struct Writer {
    shared: Arc<Shared>,
    budget: usize,
    note: Note,
    /// Every line dropped since start (`selfheal_log_lines_dropped_total`).
    dropped_total: prometheus_client::metrics::counter::Counter,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when lines are queued or the writer is closed.
    work: Condvar,
    /// Signalled when the thread finished a batch and the queue is empty.
    idle: Condvar,
    /// Wakes program reader tasks waiting for room (safe to notify from the
    /// writer thread, outside the runtime).
    room: tokio::sync::Notify,
}

struct Queue {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    dropped: u64,
    writing: bool,
    closed: bool,
    /// When the thread last took a batch or completed a write.
    progress: Instant,
}

impl Shared {
    /// An empty queue; `closed` from the start for a writer without a thread.
    fn new(closed: bool) -> Arc<Shared> {
        Arc::new(Shared {
            queue: Mutex::new(Queue {
                lines: VecDeque::new(),
                bytes: 0,
                dropped: 0,
                writing: false,
                closed,
                progress: Instant::now(),
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            room: tokio::sync::Notify::new(),
        })
    }

    /// The lock, even if a thread panicked while holding it (the queue is
    /// still consistent: every update is a single push/pop/assignment).
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Writer {
    /// Starts the writer thread on the process's stdout.
    pub fn stdout(note: Note) -> Writer {
        Writer::start(QUEUE_BYTES, note, write_stdout)
    }

    /// Starts the writer thread on the process's stderr.
    pub fn stderr(note: Note) -> Writer {
        Writer::start(QUEUE_BYTES, note, write_stderr)
    }

    /// A writer that discards every line, with no thread (`selfheal -- CMD`
    /// without `-v` prints nothing: a thread would only cost start-up time,
    /// memory and wake-ups at exit). Pushes are counted as dropped and never
    /// reported; `flush` returns at once.
    pub fn discard(note: Note) -> Writer {
        Writer {
            shared: Shared::new(true),
            budget: 0,
            note,
            dropped_total: Default::default(),
        }
    }

    /// Starts a writer thread that hands each batch to `sink`, which may block.
    /// `budget` bounds the queued bytes. If the thread cannot be started, every
    /// line is dropped and counted: the caller is never blocked.
    pub fn start(budget: usize, note: Note, sink: impl FnMut(&[u8]) + Send + 'static) -> Writer {
        let shared = Shared::new(false);
        let thread_shared = shared.clone();
        let started = std::thread::Builder::new()
            .name("selfheal-stdout".into())
            .spawn(move || run(&thread_shared, sink));
        if started.is_err() {
            // No thread: nothing will ever drain the queue. Mark it closed so
            // every push counts a dropped line instead of queueing forever.
            shared.lock().closed = true;
        }
        Writer {
            shared,
            budget,
            note,
            dropped_total: Default::default(),
        }
    }

    /// Queues one of the supervisor's lines (with its `\n`); never blocks.
    /// Dropped and counted when the queue is full.
    pub fn push(&self, line: Vec<u8>) {
        let mut queue = self.shared.lock();
        if let Err(_line) = self.enqueue(
            &mut queue,
            line,
            self.budget + self.budget / EVENT_RESERVE_DIVISOR,
        ) {
            queue.dropped += 1;
            self.dropped_total.inc();
        }
    }

    /// Queues one of a program's lines: waits for room while stdout makes
    /// progress, drops and counts it once stdout has stalled for [`STALL`].
    /// Only the calling task waits; the owner task is never involved.
    pub async fn push_program(&self, mut line: Vec<u8>) {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before the check, so a wake-up in between is not lost.
            room.as_mut().enable();
            {
                let mut queue = self.shared.lock();
                match self.enqueue(&mut queue, line, self.budget) {
                    Ok(()) => return,
                    // Closed (no thread): no room will ever come.
                    Err(back) if queue.closed || queue.progress.elapsed() >= STALL => {
                        drop(back);
                        queue.dropped += 1;
                        self.dropped_total.inc();
                        return;
                    }
                    Err(back) => line = back,
                }
            }
            let _ = tokio::time::timeout(STALL, room).await;
        }
    }

    /// Appends `line` if the queue stays within `limit` bytes, preceded by the
    /// pending "N lines dropped" note; gives the line back otherwise.
    fn enqueue(&self, queue: &mut Queue, line: Vec<u8>, limit: usize) -> Result<(), Vec<u8>> {
        if queue.closed || queue.bytes + line.len() > limit {
            return Err(line);
        }
        if queue.dropped > 0 {
            let note = (self.note)(queue.dropped);
            queue.dropped = 0;
            queue.bytes += note.len();
            queue.lines.push_back(note);
        }
        queue.bytes += line.len();
        queue.lines.push_back(line);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Waits until everything queued so far is written, at most `timeout`;
    /// a pending "dropped" count is queued first. Returns whether it drained.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut queue = self.shared.lock();
        if queue.dropped > 0 && !queue.closed {
            let note = (self.note)(queue.dropped);
            queue.dropped = 0;
            queue.bytes += note.len();
            queue.lines.push_back(note);
            self.shared.work.notify_one();
        }
        while !queue.closed && (queue.writing || !queue.lines.is_empty()) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = match self.shared.idle.wait_timeout(queue, left) {
                Ok((q, _)) => q,
                Err(e) => e.into_inner().0,
            };
        }
        queue.lines.is_empty()
    }

    /// Whether program lines are being dropped now: the queue is full and
    /// stdout has made no progress for [`STALL`]. Lets a reader count lines
    /// it would drop without formatting them.
    pub fn stalled(&self) -> bool {
        let queue = self.shared.lock();
        queue.bytes >= self.budget / 2 && queue.progress.elapsed() >= STALL
    }

    /// Counts `lines` as dropped (see [`Writer::stalled`]).
    pub fn count_dropped(&self, lines: u64) {
        self.shared.lock().dropped += lines;
        self.dropped_total.inc_by(lines);
    }

    /// The count of every line dropped since start (never reset), for metrics.
    pub fn dropped_total(&self) -> prometheus_client::metrics::counter::Counter {
        self.dropped_total.clone()
    }

    /// Lines dropped and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.flush(FLUSH_TIMEOUT);
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
    }
}

/// The thread: takes everything queued as one batch and writes it, in chunks
/// so that progress (see [`STALL`]) is recorded as stdout accepts bytes.
fn run(shared: &Shared, mut sink: impl FnMut(&[u8])) {
    let mut batch = Vec::new();
    loop {
        {
            let mut queue = shared.lock();
            queue.writing = false;
            queue.progress = Instant::now();
            if queue.lines.is_empty() {
                shared.idle.notify_all();
            }
            while queue.lines.is_empty() && !queue.closed {
                queue = match shared.work.wait(queue) {
                    Ok(q) => q,
                    Err(e) => e.into_inner(),
                };
            }
            if queue.lines.is_empty() {
                return; // closed and drained
            }
            batch.clear();
            for line in queue.lines.drain(..) {
                batch.extend_from_slice(&line);
            }
            queue.bytes = 0;
            queue.writing = true;
            queue.progress = Instant::now();
        }
        shared.room.notify_waiters();
        for chunk in batch.chunks(WRITE_CHUNK) {
            sink(chunk);
            shared.lock().progress = Instant::now();
        }
        if batch.capacity() > 2 * QUEUE_BYTES {
            batch = Vec::new();
        }
    }
}

/// Writes `bytes` to fd 1 completely, or gives up on an error other than
/// EINTR/EAGAIN (a closed stdout: the lines are lost, the supervisor lives).
/// A stdout left non-blocking by the launcher is waited on with `poll`.
fn write_stdout(bytes: &[u8]) {
    write_fd(std::io::stdout().as_fd(), bytes);
}

fn write_stderr(bytes: &[u8]) {
    write_fd(std::io::stderr().as_fd(), bytes);
}

/// Writes all of `bytes` to `fd`, waiting for room if it is non-blocking.
fn write_fd(fd: std::os::fd::BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                let mut pollfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: poll(2) on one pollfd that lives on this stack frame.
                if unsafe { libc::poll(&mut pollfd, 1, -1) } < 0
                    && nix::errno::Errno::last() != nix::errno::Errno::EINTR
                {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn note() -> Note {
        Box::new(|n| format!("{n} dropped\n").into_bytes())
    }

    #[tokio::test]
    async fn a_discarding_writer_has_no_thread_and_never_waits() {
        let writer = Writer::discard(note());
        // A writer thread would hold the other reference to the queue.
        assert_eq!(Arc::strong_count(&writer.shared), 1);
        let started = Instant::now();
        writer.push(b"event\n".to_vec());
        writer.push_program(b"line\n".to_vec()).await;
        assert!(writer.flush(Duration::from_secs(5)));
        drop(writer);
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn a_stalled_sink_costs_counted_lines_never_a_blocked_caller() {
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink_out = out.clone();
        let writer = Writer::start(10, note(), move |b: &[u8]| {
            let _ = gate_rx.recv(); // stalls until the test opens the gate
            sink_out.lock().unwrap().extend_from_slice(b);
        });
        writer.push(b"a\n".to_vec());
        // The thread takes "a" and stalls; fill the queue (10 bytes) and more.
        let started = Instant::now();
        for _ in 0..1000 {
            writer.push(b"bb\n".to_vec());
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(writer.dropped() > 900, "{}", writer.dropped());
        for _ in 0..100 {
            let _ = gate_tx.send(());
        }
        assert!(writer.flush(Duration::from_secs(5)));
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let dropped: u64 = text
            .lines()
            .filter_map(|l| l.strip_suffix(" dropped"))
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        let kept = text.lines().filter(|l| *l == "bb").count() as u64;
        assert_eq!(dropped + kept, 1000, "{text}");
        assert!(text.starts_with("a\n"), "{text}");
    }

    #[tokio::test]
    async fn program_lines_wait_for_a_slow_sink_and_are_dropped_by_a_stalled_one() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink_out = out.clone();
        // Slow but moving: 1 ms per batch, queue of 64 bytes.
        let writer = Writer::start(64, note(), move |b: &[u8]| {
            std::thread::sleep(Duration::from_millis(1));
            sink_out.lock().unwrap().extend_from_slice(b);
        });
        for i in 0..500 {
            writer.push_program(format!("{i:05}\n").into_bytes()).await;
        }
        assert!(writer.flush(Duration::from_secs(5)));
        let expected: String = (0..500).map(|i| format!("{i:05}\n")).collect();
        assert_eq!(
            String::from_utf8(out.lock().unwrap().clone()).unwrap(),
            expected
        );

        let (_gate_tx, gate_rx) = mpsc::channel::<()>();
        let stalled = Writer::start(64, note(), move |_: &[u8]| {
            let _ = gate_rx.recv(); // never opened while the test runs
        });
        let started = Instant::now();
        for _ in 0..100 {
            stalled.push_program(b"line\n".to_vec()).await;
        }
        assert!(stalled.dropped() > 50, "{}", stalled.dropped());
        assert!(started.elapsed() < STALL * 4, "{:?}", started.elapsed());
        std::mem::forget(stalled); // its thread is parked for good
    }

    #[test]
    fn nothing_is_lost_when_the_sink_keeps_up_and_drop_flushes() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink_out = out.clone();
        let writer = Writer::start(1 << 20, note(), move |b: &[u8]| {
            sink_out.lock().unwrap().extend_from_slice(b);
        });
        for i in 0..10_000 {
            writer.push(format!("{i}\n").into_bytes());
        }
        drop(writer);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let expected: String = (0..10_000).map(|i| format!("{i}\n")).collect();
        assert_eq!(text, expected);
    }
}
