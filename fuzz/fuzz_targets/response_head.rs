//! The proxy's upstream response-head parser against `httparse` (its default,
//! strict configuration) and the framing rules of RFC 9112 §6.3:
//! - what httparse rejects the proxy rejects; where httparse needs more bytes
//!   the proxy waits; a head the proxy accepts has httparse's status, fields
//!   (in order; `Content-Length` may be dropped or collapsed to one) and length;
//! - the body framing the proxy picks is the one the RFC gives: never a
//!   `Content-Length` when `Transfer-Encoding` is present, the one length of
//!   all equal `Content-Length` values, differing or invalid ones refused;
//! - a connection is kept for reuse only when the body's end is known from
//!   the framing and the framing was unambiguous (not CL and TE together).
#![no_main]

use libfuzzer_sys::fuzz_target;
use selfheal::proxy::fuzzing::{parse_response_head, BodyFraming};
use selfheal_fuzz::{codings, content_length, split_control};

/// Most header fields the proxy accepts in a response head.
const MAX_HEADERS: usize = 128;

/// httparse's view of the final (non-1xx) head.
enum Reference {
    Partial,
    Invalid,
    Final {
        code: u16,
        version: u8,
        headers: Vec<(String, Vec<u8>)>,
        consumed: usize,
    },
}

fn reference(input: &[u8]) -> Reference {
    let mut at = 0;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut fields);
        let n = match resp.parse(&input[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Reference::Partial,
            Err(_) => return Reference::Invalid,
        };
        let code = resp.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            at += n;
            continue;
        }
        return Reference::Final {
            code,
            version: resp.version.unwrap_or(1),
            headers: resp
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect(),
            consumed: at + n,
        };
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((control, input)) = split_control(data) else {
        return;
    };
    let head_request = control & 1 == 1;
    let ours = parse_response_head(input, head_request);
    let (code, version, headers, consumed) = match reference(input) {
        Reference::Invalid => {
            assert!(ours.is_err(), "accepted what httparse rejects: {ours:?}");
            return;
        }
        Reference::Partial => {
            assert!(
                matches!(ours, Ok(None)),
                "httparse needs more bytes, the proxy says {ours:?}"
            );
            return;
        }
        Reference::Final {
            code,
            version,
            headers,
            consumed,
        } => (code, version, headers, consumed),
    };
    let head = match ours {
        Ok(Some(head)) => head,
        Ok(None) => panic!("a complete head (status {code}) left waiting for more"),
        // Refusing is allowed (status out of range, 101, bad framing, invalid
        // field values); which refusals are required is checked below.
        Err(_) => {
            assert_refusal_allowed(code, head_request, &headers);
            return;
        }
    };
    assert_eq!(head.status, code);
    assert_eq!(head.consumed, consumed);
    assert!(
        code >= 200,
        "interim or invalid status {code} relayed as final"
    );
    assert_ne!(code, 101, "protocol switch accepted");
    // Fields: httparse's, except Content-Length (dropped or collapsed); the
    // values of one name in order (the order between names is not
    // significant, RFC 9110 §5.3, and the header map does not keep it).
    assert_eq!(grouped(&head.headers), grouped(&headers), "fields differ");

    let values = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    let bodiless = head_request || code == 204 || code == 304;
    match head.framing {
        BodyFraming::None => assert!(bodiless, "no body for status {code}"),
        _ if bodiless => panic!("a body for HEAD/204/304: {:?}", head.framing),
        BodyFraming::Length(n) => {
            assert!(
                te.is_empty(),
                "Content-Length trusted beside Transfer-Encoding"
            );
            assert_eq!(content_length(&cl), Some(n), "wrong length");
        }
        BodyFraming::Chunked => {
            let codings = codings(&te);
            assert!(
                codings
                    .last()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")),
                "chunked framing without chunked as the final coding"
            );
            assert!(
                !head.headers.iter().any(|(n, _)| n == "content-length"),
                "Content-Length relayed beside Transfer-Encoding"
            );
        }
        BodyFraming::UntilClose => {
            assert!(cl.is_empty() || !te.is_empty(), "a valid length ignored");
            assert!(
                !head.keep_alive,
                "close-delimited body on a kept connection"
            );
        }
    }
    // HEAD, 204 and 304 end at their head whatever fields they carry (RFC
    // 9112 §6.3 rule 1), so only a body makes framing fields matter.
    if head.keep_alive && !bodiless {
        assert!(
            te.is_empty() || cl.is_empty(),
            "connection reused after a response with both Content-Length and Transfer-Encoding"
        );
    }
    if head.keep_alive && version == 0 {
        // HTTP/1.0 keeps a connection only when asked to.
        let asked = values("connection").iter().any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"keep-alive"))
        });
        assert!(asked, "HTTP/1.0 connection kept without keep-alive");
    }
});

/// Field values by name (names sorted), without `Content-Length`.
fn grouped(fields: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<&[u8]>)> {
    let mut out: Vec<(&str, Vec<&[u8]>)> = Vec::new();
    for (name, value) in fields.iter().filter(|(n, _)| n != "content-length") {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => out.push((name, vec![value])),
        }
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// A head httparse accepts may be refused by the proxy only for a reason of
/// its own: a status outside 200–999 (or 101), a field value `http` rejects,
/// or framing it cannot trust. A plain head with a valid length must pass.
fn assert_refusal_allowed(code: u16, head_request: bool, headers: &[(String, Vec<u8>)]) {
    if !(200..=999).contains(&code) {
        return;
    }
    let values = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    let plain_values = headers
        .iter()
        .all(|(_, v)| http::HeaderValue::from_bytes(v).is_ok());
    let bodiless = head_request || code == 204 || code == 304;
    // An invalid Content-Length is refused even where no body follows (HEAD,
    // 204, 304): forwarding it would hand the client the same bad field.
    let length_ok = cl.is_empty() || content_length(&cl).is_some();
    let framing_ok = length_ok && (bodiless || te.is_empty());
    assert!(
        !(plain_values && framing_ok),
        "refused a plain head: status {code}, fields {headers:?}"
    );
}
