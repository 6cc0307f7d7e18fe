//! Header rewriting: hop-by-hop headers stripped both ways, `X-Forwarded-*` set,
//! an idempotency key (`X-Request-Id`) guaranteed on every request.

use std::cell::Cell;
use std::hash::BuildHasher as _;
use std::io::Write as _;
use std::net::IpAddr;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, EXPECT, HOST, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE, VIA,
};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: &str = "keep-alive";

/// Hop-by-hop headers other than `Connection` itself.
fn is_other_hop_by_hop(name: &HeaderName) -> bool {
    *name == TE
        || *name == TRAILER
        || *name == TRANSFER_ENCODING
        || *name == UPGRADE
        || name.as_str() == KEEP_ALIVE
        || name.as_str().starts_with("proxy-")
}

/// End-to-end fields a `Connection` token can never remove: the target and
/// framing of the message (a client naming `Host` or `Content-Length` would
/// change what the upstream routes or how it frames), the representation
/// metadata, and the fields this proxy vouches for (`X-Forwarded-*` chains
/// of earlier hops, the idempotency key). Framing fields are re-derived by the
/// proxy anyway; removing `Transfer-Encoding` as a hop-by-hop field is the
/// proxy's own doing, not the token's.
fn is_protected(name: &HeaderName) -> bool {
    use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
    *name == HOST
        || *name == CONTENT_LENGTH
        || *name == TRANSFER_ENCODING
        || *name == CONTENT_TYPE
        || *name == CONTENT_ENCODING
        || *name == CONTENT_RANGE
        || *name == X_FORWARDED_FOR
        || *name == X_FORWARDED_HOST
        || *name == X_FORWARDED_PROTO
        || *name == X_REQUEST_ID
}

/// Removes hop-by-hop headers: the fixed list, every `Proxy-*`, and whatever
/// `Connection` names except the [protected](is_protected) fields. One pass over the names when there are none; a lone
/// `Connection: keep-alive` / `close` (every keep-alive upstream sends one) is
/// removed without allocating.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let mut connection = false;
    let mut others = false;
    for name in h.keys() {
        if *name == CONNECTION {
            connection = true;
        } else if is_other_hop_by_hop(name) {
            others = true;
        }
    }
    if connection {
        let mut named: Vec<HeaderName> = Vec::new();
        for v in h.get_all(CONNECTION) {
            let Ok(v) = v.to_str() else { continue };
            for token in v.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("keep-alive") || token.eq_ignore_ascii_case("close") {
                    continue; // options, or a header removed below anyway
                }
                if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                    if !is_protected(&name) {
                        named.push(name);
                    }
                }
            }
        }
        h.remove(CONNECTION);
        for name in named {
            h.remove(name);
        }
    }
    if others {
        let doomed: Vec<HeaderName> = h
            .keys()
            .filter(|n| is_other_hop_by_hop(n))
            .cloned()
            .collect();
        for name in doomed {
            h.remove(name);
        }
    }
}

/// `--via NAME` → the `Via` element `1.1 NAME`. NAME is a `received-by`: a
/// host name or pseudonym, so only token characters, `.`, `:` and `-` pass.
pub fn via_value(name: &str) -> Result<HeaderValue, String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'*+^`|".contains(&b));
    if !ok {
        return Err(format!(
            "{name:?} is not a host name or pseudonym (letters, digits, - . _ :)"
        ));
    }
    HeaderValue::from_str(&format!("1.1 {name}")).map_err(|e| e.to_string())
}

/// Appends this proxy's element to `Via` (after any the message already has).
pub fn append_via(h: &mut HeaderMap, via: &HeaderValue) {
    append_element(h, VIA, via);
}

/// Appends `element` to the list header `name` (this hop's entry goes last),
/// folding earlier lines into one: `a, b, element`.
fn append_element(h: &mut HeaderMap, name: HeaderName, element: &HeaderValue) {
    if !h.contains_key(&name) {
        h.insert(name, element.clone());
        return;
    }
    let mut joined: Vec<u8> = Vec::with_capacity(64);
    for v in h.get_all(&name) {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(element.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(name, v);
    }
}

/// The client address as a header value, computed once per connection.
pub fn peer_value(ip: IpAddr) -> HeaderValue {
    let mut buf = [0u8; 64];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cur, "{ip}");
    let n = cur.position() as usize;
    HeaderValue::from_bytes(&buf[..n]).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Drops request fields whose name has an underscore, as nginx does by
/// default (`underscores_in_headers off`): CGI-style back ends map `-` and
/// `_` to the same variable, so `Transfer_Encoding` or `X_Forwarded_For`
/// could stand in for the real field behind the proxy's back.
fn drop_underscored(h: &mut HeaderMap) {
    if !h.keys().any(|n| n.as_str().contains('_')) {
        return;
    }
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in doomed {
        h.remove(name);
    }
}

/// Rewrites a request's headers for the upstream. Returns whether the request
/// carries an idempotency key (always true: one is set when absent).
pub fn prepare_request(h: &mut HeaderMap, peer: &HeaderValue, ids: &RequestIds) -> bool {
    drop_underscored(h);
    strip_hop_by_hop(h);
    // Room for the (up to) four headers added below: one growth, not several.
    h.reserve(4);
    // The body is sent whole or streamed as is; the upstream answers, not us.
    h.remove(EXPECT);
    append_element(h, X_FORWARDED_FOR, peer);
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = h.get(HOST).cloned() {
        h.insert(X_FORWARDED_HOST, host);
    } else {
        h.remove(X_FORWARDED_HOST);
    }
    if h.get(X_REQUEST_ID).is_none_or(|v| v.is_empty()) {
        h.insert(X_REQUEST_ID, ids.next_value());
    }
    true
}

/// Unique request ids: a random per-process prefix, the worker, a counter.
pub struct RequestIds {
    prefix: u64,
    worker: usize,
    next: Cell<u64>,
}

impl RequestIds {
    pub fn new(worker: usize) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let prefix = std::hash::RandomState::new().hash_one((std::process::id(), nanos));
        RequestIds {
            prefix,
            worker,
            next: Cell::new(0),
        }
    }

    /// `PPPPPPPPPPPPPPPP-WWWW-NNNNNNNNNNNNNNNN` (hex: prefix, worker, counter).
    pub fn next_value(&self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.get();
        self.next.set(n.wrapping_add(1));
        let mut buf = [0u8; 38];
        let mut put = |at: usize, width: usize, v: u64| {
            for k in 0..width {
                buf[at + k] = HEX[((v >> (4 * (width - 1 - k))) & 0xf) as usize];
            }
        };
        put(0, 16, self.prefix);
        put(17, 4, self.worker as u64);
        put(22, 16, n);
        buf[16] = b'-';
        buf[21] = b'-';
        HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_names_are_host_names_or_pseudonyms() {
        assert_eq!(via_value("edge-1.example").unwrap(), "1.1 edge-1.example");
        assert_eq!(via_value("selfheal").unwrap(), "1.1 selfheal");
        for bad in ["", "two words", "a,b", "x\r\ny", "é"] {
            assert!(via_value(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn list_headers_get_this_hop_appended_last() {
        let mut h = HeaderMap::new();
        let me = HeaderValue::from_static("1.1 edge");
        append_via(&mut h, &me);
        assert_eq!(h.get(VIA).unwrap(), "1.1 edge");
        let mut h = HeaderMap::new();
        h.append(VIA, HeaderValue::from_static("1.0 a"));
        h.append(VIA, HeaderValue::from_static("1.1 b"));
        append_via(&mut h, &me);
        assert_eq!(h.get_all(VIA).iter().count(), 1);
        assert_eq!(h.get(VIA).unwrap(), "1.0 a, 1.1 b, 1.1 edge");
    }

    #[test]
    fn strips_fixed_proxy_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn connection_tokens_never_remove_essentials() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("Host, Content-Length, content-type, X-Forwarded-For, x-a"),
        );
        for n in [
            "host",
            "content-length",
            "content-type",
            "x-forwarded-for",
            "x-a",
        ] {
            h.insert(HeaderName::from_static(n), HeaderValue::from_static("1"));
        }
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 4, "{h:?}");
        assert!(!h.contains_key("x-a"));
    }

    #[test]
    fn ids_are_unique() {
        let ids = RequestIds::new(3);
        assert_ne!(ids.next_value(), ids.next_value());
    }
}
