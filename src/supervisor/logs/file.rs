//! `log_file`: a program's output also appended to a file rotated by size,
//! through the `rolling-file` crate, written by its own thread (a slow or
//! stuck disk slows the program through its pipe, never the supervisor).

use std::io::Write;
use std::sync::Arc;

use rolling_file::{BasicRollingFileAppender, RollingConditionBasic};

use super::Writer;
use crate::config::LogFile;

/// Bytes of lines queued for the file at most.
const QUEUE_BYTES: usize = 256 * 1024;

/// Opens (creating its directory) `config.path` for appending; the writer
/// rotates it at `max_size`, keeping `keep` old files (`path.1` the newest).
pub fn open(config: &LogFile) -> std::io::Result<Arc<Writer>> {
    if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let condition = RollingConditionBasic::new().max_size(config.max_size);
    let keep = usize::try_from(config.keep).unwrap_or(usize::MAX);
    let mut file = BasicRollingFileAppender::new(&config.path, condition, keep)?;
    let note = Box::new(|n: u64| format!("[selfheal: {n} lines dropped]\n").into_bytes());
    let writer = Writer::start(QUEUE_BYTES, note, move |batch: &[u8]| {
        // Line by line, so the size is checked before each (a file ends at
        // most one line past `max_size`). A full disk or a removed directory
        // costs these lines, nothing else.
        for line in batch.split_inclusive(|b| *b == b'\n') {
            let _ = file.write_all(line);
        }
        let _ = file.flush();
    });
    Ok(Arc::new(writer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_rotate_at_max_size_keeping_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/app.log");
        let config = LogFile {
            path: path.clone(),
            max_size: 100,
            keep: 2,
        };
        let writer = open(&config).unwrap();
        for i in 0..30 {
            writer.push(format!("line {i:02} of the program\n").into_bytes());
        }
        assert!(writer.flush(std::time::Duration::from_secs(5)));
        drop(writer);
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.contains("line 29"), "{current}");
        assert!(current.len() <= 100 + 25, "{}", current.len());
        assert!(path.with_extension("log.1").exists());
        assert!(path.with_extension("log.2").exists());
        assert!(!path.with_extension("log.3").exists());
    }
}
