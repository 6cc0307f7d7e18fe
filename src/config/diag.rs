//! Configuration diagnostics: every problem found, with file, line, column and field.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a [`Diagnostic`] is.
///
/// An error makes the config invalid: `selfheal check` exits 2 and the supervisor
/// refuses to start. A warning names something that fails on this host now but
/// may be fixed before the program runs (a binary installed by a later image
/// layer, a user created later, a volume mounted at run time): `check` prints it
/// with a `warning:` prefix and still exits 0 (2 with `--strict`), and the
/// supervisor starts anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// 1-based line of the offending value in the file.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the offending field, e.g. `programs.app.backoff.initial`.
    pub field: String,
    pub message: String,
}

impl Diagnostic {
    /// `path:line:column: [warning: ]field: message`, the form compilers use.
    pub fn display<'a>(&'a self, path: &'a Path) -> impl fmt::Display + 'a {
        Located(path, self)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

struct Located<'a>(&'a Path, &'a Diagnostic);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, d) = (self.0.display(), self.1);
        let warning = match d.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(
            f,
            "{path}:{}:{}: {warning}{}: {}",
            d.line, d.column, d.field, d.message
        )
    }
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
    /// At least one error; `diagnostics` holds the errors and the warnings.
    #[error("{}", Invalid(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

struct Invalid<'a>(&'a Path, &'a [Diagnostic]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, diagnostics) = (self.0, self.1);
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = diagnostics.len() - errors;
        write!(f, "{}: {}", path.display(), plural(errors, "error"))?;
        if warnings > 0 {
            write!(f, " and {}", plural(warnings, "warning"))?;
        }
        writeln!(f, " in the configuration:")?;
        for d in diagnostics {
            writeln!(f, "  {}", d.display(path))?;
        }
        Ok(())
    }
}

/// `1 error`, `2 errors`.
pub fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
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
        self.push(Severity::Error, span, field, message.into());
    }

    pub fn warning(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, span, field, message.into());
    }

    pub fn push(&mut self, severity: Severity, span: Range<usize>, field: &str, message: String) {
        let (line, column) = line_column(self.source, span.start);
        self.found.push(Diagnostic {
            severity,
            line,
            column,
            field: field.to_string(),
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.found.iter().any(Diagnostic::is_error)
    }

    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.found.sort_by_key(|d| (d.line, d.column));
        self.found.dedup();
        self.found
    }
}

/// 1-based line and column (in characters) of a byte offset; an offset past
/// the end (or inside a character) counts as far as the text allows.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
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
