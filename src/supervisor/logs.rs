//! The supervisor's output: programs' lines prefixed with their name
//! (`app    | …`), interleaved with the supervisor's event lines, or one JSON
//! object per line with `--log-format json`.

use std::io::Write;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::LogFormat;

/// Where every line goes. Cheap to clone into reader tasks.
#[derive(Debug, Clone)]
pub struct Output {
    format: LogFormat,
    width: usize,
}

const SELF: &str = "selfheal";

impl Output {
    pub fn new(format: LogFormat, names: &[&str]) -> Output {
        let width = names
            .iter()
            .map(|n| n.len())
            .chain([SELF.len()])
            .max()
            .unwrap_or(SELF.len());
        Output { format, width }
    }

    /// A line a program printed.
    pub fn program_line(&self, program: &str, line: &str) {
        self.write(program, "output", line);
    }

    /// A supervisor event about `program` (`app exited with code 1 …`).
    pub fn event(&self, program: &str, text: &str) {
        match self.format {
            LogFormat::Human => self.write(SELF, "event", &format!("{program} {text}")),
            LogFormat::Json => self.json(program, "event", text),
        }
    }

    /// A supervisor line about itself.
    pub fn note(&self, text: &str) {
        self.write(SELF, "event", text);
    }

    fn write(&self, source: &str, kind: &str, text: &str) {
        match self.format {
            LogFormat::Human => {
                let line = format!("{source:<width$} | {text}\n", width = self.width);
                // Errors (a closed stdout) must not take PID 1 down: ignored.
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
            LogFormat::Json => self.json(source, kind, text),
        }
    }

    fn json(&self, program: &str, kind: &str, text: &str) {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let value =
            serde_json::json!({ "ts_ms": ts, "program": program, "kind": kind, "message": text });
        let _ = writeln!(std::io::stdout().lock(), "{value}");
    }
}

/// Copies a program's output to [`Output`] line by line until the pipe closes
/// (when the program and every descendant holding it have exited).
pub fn pump(output: Output, program: Arc<str>, reader: std::io::PipeReader) {
    let fd: std::os::fd::OwnedFd = reader.into();
    let pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(pipe) => pipe,
        Err(e) => {
            output.event(&program, &format!("cannot read its output: {e}"));
            return;
        }
    };
    tokio::spawn(async move {
        let mut reader = BufReader::with_capacity(8 * 1024, pipe);
        let mut buf = Vec::with_capacity(256);
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    output.program_line(&program, text.trim_end_matches(['\n', '\r']));
                }
            }
        }
    });
}
