//! Configuration diagnostics: every problem found, with file, line, column and field.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field, e.g. `programs.app.backoff.initial`.
    pub field: String,
    pub message: String,
}

/// Everything wrong with a config file, reported at once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", Invalid(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

struct Invalid<'a>(&'a Path, &'a [Diagnostic]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, diagnostics) = (self.0.display(), self.1);
        let n = diagnostics.len();
        writeln!(
            f,
            "{path}: {n} error{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for d in diagnostics {
            writeln!(
                f,
                "  {path}:{}:{}: {}: {}",
                d.line, d.column, d.field, d.message
            )?;
        }
        Ok(())
    }
}

/// Collects diagnostics while the config is read, turning byte spans into
/// line/column positions of the source text.
pub struct Diagnostics<'s> {
    source: &'s str,
    found: Vec<Diagnostic>,
}

impl<'s> Diagnostics<'s> {
    pub fn new(source: &'s str) -> Self {
        Diagnostics {
            source,
            found: Vec::new(),
        }
    }

    pub fn error(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let (line, column) = line_column(self.source, span.start);
        self.found.push(Diagnostic {
            line,
            column,
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|d| (d.line, d.column));
        self.found.dedup();
        self.found
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before
        .get(line_start..)
        .map_or(1, |s| s.chars().count() + 1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 6), (2, 1));
        assert_eq!(line_column(src, 10), (2, 4));
    }
}
