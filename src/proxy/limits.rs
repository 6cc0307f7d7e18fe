//! Request-head limits the proxy enforces itself (hyper has no per-line limits).
//!
//! | limit | default (nginx's) | status |
//! |---|---|---|
//! | request-target length | 8 KiB (`large_client_header_buffers 4 8k`) | 414 |
//! | one header line | 8 KiB | 431 |
//! | whole header section | 32 KiB | 431 |
//! | header count | 100 (hyper's parser, checked by hyper) | 431 |
//! | head larger than hyper's buffer | 64 KiB (checked by hyper) | 431 |
//!
//! Body limits live in [`super::body`]; smuggling checks in [`super::smuggle`].

use http::request::Parts;

use super::error::ProxyError;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_uri: usize,
    pub max_header_line: usize,
    pub max_header_section: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri: 8 * 1024,
            max_header_line: 8 * 1024,
            max_header_section: 32 * 1024,
        }
    }
}

/// Largest head hyper buffers (request line + headers); beyond it hyper answers 431.
pub const HYPER_MAX_HEAD: usize = 64 * 1024;

/// Checks the request line and header sizes.
pub fn check_head(parts: &Parts, l: &Limits) -> Result<(), ProxyError> {
    let uri = &parts.uri;
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, str::len);
    if target > l.max_uri {
        return Err(ProxyError::UriTooLong);
    }
    let mut total = 0usize;
    for (name, value) in &parts.headers {
        let line = name.as_str().len() + value.len() + 4;
        if line > l.max_header_line {
            return Err(ProxyError::HeadersTooLarge);
        }
        total += line;
    }
    if total > l.max_header_section {
        return Err(ProxyError::HeadersTooLarge);
    }
    Ok(())
}
