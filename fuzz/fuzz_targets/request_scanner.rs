//! The request-smuggling scanner against `httparse` (the parser hyper runs on
//! the same bytes): a client's byte stream, handed over in arbitrary pieces,
//! is followed request by request with httparse and the reference body
//! decoders. Where every request before it was plain (one valid
//! `Content-Length` or `Transfer-Encoding: chunked`, a body that decodes), the
//! first request carrying both `Content-Length` and `Transfer-Encoding` must
//! be the one the scanner flags, and no plain request may be flagged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selfheal::proxy::fuzzing::scan_requests;
use selfheal_fuzz::{chunked, content_length, pieces, split_control, Reference};

/// hyper's default limit on request header fields.
const MAX_HEADERS: usize = 100;

/// What the scanner must report for a stream.
#[derive(Debug)]
struct Expect {
    /// This request carries both framing headers, every one before it is plain.
    flag: Option<u64>,
    /// Requests before this index are plain: never flagged.
    plain_before: u64,
}

fn reference(stream: &[u8]) -> Expect {
    let mut at = 0;
    let mut index = 0;
    let stop = |i| Expect {
        flag: None,
        plain_before: i,
    };
    while at < stream.len() {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut fields);
        let head_len = match req.parse(&stream[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) | Err(_) => return stop(index),
        };
        let values = |name: &str| -> Vec<&[u8]> {
            req.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect()
        };
        let (te, cl) = (values("transfer-encoding"), values("content-length"));
        if !te.is_empty() && !cl.is_empty() {
            return Expect {
                flag: Some(index),
                plain_before: index,
            };
        }
        at += head_len;
        if !te.is_empty() {
            if te.len() != 1 || !te[0].trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return stop(index);
            }
            match chunked(&stream[at..]) {
                Reference::Done { consumed, .. } => at += consumed,
                _ => return stop(index),
            }
        } else if !cl.is_empty() {
            // Only one plain number counts as plain (a list or a repeat of
            // the same number is accepted by hyper, refusable by the scanner).
            let plain = cl.len() == 1 && cl[0].trim_ascii().iter().all(u8::is_ascii_digit);
            match content_length(&cl) {
                Some(n) if plain => match usize::try_from(n) {
                    Ok(n) if n <= stream.len() - at => at += n,
                    _ => return stop(index + 1),
                },
                _ => return stop(index),
            }
        }
        index += 1;
    }
    stop(index)
}

fuzz_target!(|data: &[u8]| {
    let Some((control, stream)) = split_control(data) else {
        return;
    };
    let sizes = pieces(control);
    let mut chunks = Vec::new();
    let mut rest = stream;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(n.clamp(1, rest.len()));
        chunks.push(a);
        rest = b;
    }
    let flagged = scan_requests(&chunks);
    let expect = reference(stream);
    if let Some(k) = expect.flag {
        assert_eq!(flagged, Some(k), "CL+TE request {k} not flagged");
    }
    if let Some(f) = flagged {
        assert!(
            f >= expect.plain_before,
            "plain request {f} flagged ({expect:?})"
        );
    }
});
