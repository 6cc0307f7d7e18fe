//! What a request must be to be forwarded: its method, its request-target form,
//! its `Host`, its transfer codings. Pure checks over the parsed head (hyper has
//! parsed the request line and fields; it accepts more than a proxy should).
//!
//! | request | answer | rule |
//! |---|---|---|
//! | `CONNECT` | `405` + `Allow` (`400` if its target is not `host:port`); never forwarded | the proxy does not tunnel (RFC 9110 §9.3.6) |
//! | `TRACE` | `405` + `Allow` | it would echo credentials and cookies back (RFC 9110 §9.3.8 lets a server refuse it; nginx answers 405 too) |
//! | target not origin-form (`/p?q`), absolute-form (`http`/`https` with an authority, no userinfo) or `OPTIONS *` | `400` | RFC 9112 §3.2 (`GET admin`, `GET *`, `GET example.com:80` are none of them) |
//! | HTTP/1.1 without `Host`, more than one `Host` line, a `Host` that is not `uri-host [":" port]` | `400` | RFC 9112 §3.2, RFC 9110 §7.2 |
//! | absolute-form | its authority replaces `Host` upstream | RFC 9112 §3.2.2 |
//! | `Transfer-Encoding` other than one final `chunked` (`gzip, chunked`, `chunked, chunked`) | `501` | RFC 9112 §6.1 (a coding the proxy does not implement) |
//! | `Transfer-Encoding` whose final coding is not `chunked` (`identity`, `chunked, gzip`), or on HTTP/1.0 | `400` (answered by hyper's parser before this module) | RFC 9112 §6.3 ¶4, §6.1 |
//!
//! nginx differs in two places: it accepts an absolute-form HTTP/1.1 request
//! without `Host` (RFC 9112 §3.2 requires 400 for any HTTP/1.1 request
//! lacking it, so we do), and it answers 501 rather than 400 when the final
//! coding is not `chunked` (RFC 9112 §6.3 asks for 400).

use http::header::{HeaderValue, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::{Method, Uri, Version};

use super::error::ProxyError;

/// Checks method, target and `Host`; rewrites an absolute-form target to
/// origin-form with its authority as `Host`. `default_host` is sent for an
/// HTTP/1.0 request that has no `Host` (HTTP/1.0 does not require one).
///
/// Errors: [`ProxyError::MethodNotAllowed`] for CONNECT and TRACE,
/// [`ProxyError::NotImplemented`] for unsupported transfer codings,
/// [`ProxyError::BadRequest`] for everything else listed in the module table.
pub fn check(parts: &mut Parts, default_host: &HeaderValue) -> Result<(), ProxyError> {
    if parts.method == Method::CONNECT {
        // The target of CONNECT must be authority-form (`host:port`).
        return match (parts.uri.authority(), parts.uri.scheme(), parts.uri.path()) {
            (Some(a), None, "" | "/") if a.port_u16().is_some() && valid_authority(a.as_str()) => {
                Err(ProxyError::MethodNotAllowed)
            }
            _ => Err(ProxyError::BadRequest("malformed CONNECT target")),
        };
    }
    if parts.method == Method::TRACE {
        return Err(ProxyError::MethodNotAllowed);
    }
    check_codings(parts)?;
    let absolute = match target_form(&parts.method, &parts.uri)? {
        Form::Origin | Form::Asterisk => None,
        Form::Absolute => Some(absolute_authority(&parts.uri)?),
    };
    check_host(parts)?;
    if let Some(authority) = absolute {
        parts.headers.insert(HOST, authority);
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) if pq.as_str().starts_with('/') => Uri::from(pq.clone()),
            // `http://h?q` has an empty path: origin-form needs the `/`.
            Some(pq) => format!("/{}", pq.as_str())
                .parse()
                .map_err(|_| ProxyError::BadRequest("invalid request-target"))?,
            None => Uri::from_static("/"),
        };
    } else if !parts.headers.contains_key(HOST) {
        parts.headers.insert(HOST, default_host.clone());
    }
    Ok(())
}

/// The request-target forms of RFC 9112 §3.2 that a reverse proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `/path?query`.
    Origin,
    /// `http://authority/path?query`.
    Absolute,
    /// `*`, only with OPTIONS.
    Asterisk,
}

fn target_form(method: &Method, uri: &Uri) -> Result<Form, ProxyError> {
    match (uri.scheme_str(), uri.authority()) {
        (None, None) if uri.path().starts_with('/') => Ok(Form::Origin),
        (None, None) if uri.path() == "*" && *method == Method::OPTIONS => Ok(Form::Asterisk),
        (Some(s), Some(_)) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
            Ok(Form::Absolute)
        }
        // Authority-form outside CONNECT (`GET example.com:80`), a bare word
        // that hyper read as an authority (`GET admin`), `GET *`, other schemes.
        _ => Err(ProxyError::BadRequest("invalid request-target form")),
    }
}

/// The authority of an absolute-form target as a `Host` value.
fn absolute_authority(uri: &Uri) -> Result<HeaderValue, ProxyError> {
    let a = uri
        .authority()
        .map(|a| a.as_str())
        .filter(|a| valid_authority(a))
        .ok_or(ProxyError::BadRequest(
            "invalid authority in request-target",
        ))?;
    HeaderValue::from_str(a).map_err(|_| ProxyError::BadRequest("invalid authority"))
}

/// Exactly one valid `Host` line for HTTP/1.1; at most one for HTTP/1.0.
/// With an absolute-form target the line is still required and validated (it
/// is then replaced by the target's authority).
fn check_host(parts: &Parts) -> Result<(), ProxyError> {
    let mut lines = parts.headers.get_all(HOST).iter();
    match (lines.next(), lines.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadRequest("more than one Host")),
        (Some(v), None) if valid_authority_bytes(v.as_bytes()) => Ok(()),
        // RFC 9110 §7.2 allows an empty Host only when the target has no
        // authority; as nginx does, the proxy wants a name to pass on.
        (Some(_), None) => Err(ProxyError::BadRequest("invalid Host")),
        (None, _) if parts.version != Version::HTTP_10 => {
            Err(ProxyError::BadRequest("HTTP/1.1 request without Host"))
        }
        (None, _) => Ok(()),
    }
}

fn valid_authority(a: &str) -> bool {
    valid_authority_bytes(a.as_bytes())
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP-literal in
/// brackets (IPv6 only; IPvFuture is refused), or a reg-name of unreserved
/// characters, percent-encodings and sub-delims (which covers IPv4); a port of
/// 1 to 5 digits up to 65535. No userinfo, no whitespace, no `/ ? # @`. Empty
/// is refused.
pub fn valid_authority_bytes(b: &[u8]) -> bool {
    let port = if b.first() == Some(&b'[') {
        let Some(end) = b.iter().position(|&c| c == b']') else {
            return false;
        };
        let inside = &b[1..end];
        let ok = std::str::from_utf8(inside)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some();
        if !ok {
            return false;
        }
        match &b[end + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return false,
        }
    } else {
        let (host, port) = match b.iter().rposition(|&c| c == b':') {
            Some(i) => (&b[..i], Some(&b[i + 1..])),
            None => (b, None),
        };
        if host.is_empty() || !valid_reg_name(host) {
            return false;
        }
        port
    };
    port.is_none_or(valid_port)
}

fn valid_reg_name(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !(b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
            continue;
        }
        let unreserved = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        let sub_delim = matches!(
            c,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        );
        if !(unreserved || sub_delim) {
            return false;
        }
        i += 1;
    }
    true
}

fn valid_port(p: &[u8]) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.iter().all(u8::is_ascii_digit)
        && p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
}

/// hyper lets through a `Transfer-Encoding` whose last coding is `chunked`
/// (and answers 400 itself otherwise); the proxy implements only `chunked`
/// alone, so anything else is 501 (RFC 9112 §6.1). Costs nothing when the
/// request has no `Transfer-Encoding`.
fn check_codings(parts: &Parts) -> Result<(), ProxyError> {
    let lines = parts.headers.get_all(TRANSFER_ENCODING);
    let mut lines = lines.iter().peekable();
    if lines.peek().is_none() {
        return Ok(());
    }
    let mut codings = lines
        .flat_map(|v| v.as_bytes().split(|&c| c == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty());
    let Some(first) = codings.next() else {
        return Err(ProxyError::BadRequest("empty transfer-encoding"));
    };
    let mut last = first;
    let mut count = 1;
    for t in codings {
        last = t;
        count += 1;
    }
    if !last.eq_ignore_ascii_case(b"chunked") {
        return Err(ProxyError::BadRequest("chunked is not the final coding"));
    }
    if count > 1 {
        return Err(ProxyError::NotImplemented("transfer coding"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(raw_target: &str, method: &str, version: Version, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder()
            .method(method)
            .uri(raw_target)
            .version(version);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn run(target: &str, method: &str, headers: &[(&str, &str)]) -> Result<Parts, u16> {
        let mut p = parts(target, method, Version::HTTP_11, headers);
        let def = HeaderValue::from_static("up:1");
        check(&mut p, &def)
            .map(|()| p)
            .map_err(|e| e.status().as_u16())
    }

    #[test]
    fn target_forms() {
        let h = [("host", "example.com")];
        assert!(run("/a?b", "GET", &h).is_ok());
        assert!(run("*", "OPTIONS", &h).is_ok());
        assert_eq!(run("*", "GET", &h).err(), Some(400));
        assert_eq!(run("admin", "GET", &h).err(), Some(400));
        assert_eq!(run("example.com:80", "GET", &h).err(), Some(400));
        assert_eq!(run("ftp://x/a", "GET", &h).err(), Some(400));
        assert_eq!(run("example.com:443", "CONNECT", &h).err(), Some(405));
        assert_eq!(run("/", "CONNECT", &h).err(), Some(400));
        assert_eq!(run("example.com", "CONNECT", &h).err(), Some(400));
        assert_eq!(run("/", "TRACE", &h).err(), Some(405));
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let p = run("http://a.example:81/x?y", "GET", &[("host", "b.example")]).unwrap();
        assert_eq!(p.headers.get(HOST).unwrap(), "a.example:81");
        assert_eq!(p.uri, "/x?y");
        let p = run("http://a.example", "GET", &[("host", "b")]).unwrap();
        assert_eq!(p.uri, "/");
        assert_eq!(
            run("http://u@a.example/", "GET", &[("host", "a")]).err(),
            Some(400)
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(run("/", "GET", &[]).err(), Some(400));
        assert_eq!(
            run("/", "GET", &[("host", "a"), ("host", "a")]).err(),
            Some(400)
        );
        let mut p = parts("/", "GET", Version::HTTP_10, &[]);
        check(&mut p, &HeaderValue::from_static("up:1")).unwrap();
        assert_eq!(p.headers.get(HOST).unwrap(), "up:1");
        for good in [
            "a",
            "a.b-c_d~e:80",
            "127.0.0.1:8080",
            "[::1]:80",
            "[::1]",
            "x%41y",
            "a:65535",
        ] {
            assert!(valid_authority(good), "{good}");
        }
        for bad in [
            "", "a b", "a/b", "a?b", "a#b", "u@a", "a:", "a:x", "a:65536", "a:123456", "[::1",
            "[zz]", "[::1]x", ":80", "a\tb", "é",
        ] {
            assert!(!valid_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn codings() {
        let h = |te: &'static str| [("host", "a"), ("transfer-encoding", te)];
        assert!(run("/", "POST", &h("chunked")).is_ok());
        assert!(run("/", "POST", &h("Chunked")).is_ok());
        assert_eq!(run("/", "POST", &h("gzip, chunked")).err(), Some(501));
        assert_eq!(run("/", "POST", &h("chunked, chunked")).err(), Some(501));
        assert_eq!(run("/", "POST", &h("chunked, gzip")).err(), Some(400));
        assert_eq!(run("/", "POST", &h("identity")).err(), Some(400));
        assert_eq!(
            run(
                "/",
                "POST",
                &[
                    ("host", "a"),
                    ("transfer-encoding", "gzip"),
                    ("transfer-encoding", "chunked")
                ]
            )
            .err(),
            Some(501)
        );
    }
}
