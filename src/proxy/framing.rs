//! Framing of an upstream response body (RFC 9112 §6): a length, chunked coding,
//! or everything until the connection closes. A pure decoder over the
//! connection's read buffer, so every case is tested without a socket.

use bytes::{Buf as _, Bytes, BytesMut};

/// Longest chunk-size line (size, extensions, CRLF) or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Trailer section bytes accepted (they are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// This many body bytes are left.
    Length(u64),
    /// Chunked coding.
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    UntilClose,
    /// The body is complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data; this many bytes are left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// In the trailer section (after the last chunk); bytes seen so far.
    Trailers(usize),
}

/// One decoding step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes, split off the buffer.
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The body is complete; what remains in the buffer is not part of it.
    Done,
}

/// The upstream broke the framing; the connection cannot be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed upstream body: {0}")]
pub struct FramingError(pub &'static str);

impl Framing {
    pub fn is_done(&self) -> bool {
        *self == Framing::Done
    }

    /// Body bytes still expected, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Framing::Length(n) => Some(*n),
            Framing::Done => Some(0),
            _ => None,
        }
    }

    /// Decodes from `buf` as far as it goes; call again after `Data`, and after
    /// reading more into `buf` on `NeedMore`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, FramingError> {
        loop {
            match self {
                Framing::Done => return Ok(Step::Done),
                Framing::Length(0) => *self = Framing::Done,
                Framing::Length(n) => {
                    let step = take_data(buf, n);
                    // Done as soon as the last byte is out: a consumer that
                    // knows the length stops asking after it.
                    if *n == 0 {
                        *self = Framing::Done;
                    }
                    return Ok(step);
                }
                Framing::UntilClose => {
                    return Ok(if buf.is_empty() {
                        Step::NeedMore
                    } else {
                        Step::Data(buf.split().freeze())
                    });
                }
                Framing::Chunked(c) => match c {
                    Chunk::Size => {
                        let Some(line) = take_line(buf)? else {
                            return Ok(Step::NeedMore);
                        };
                        let size = chunk_size(&line)?;
                        *c = if size == 0 {
                            Chunk::Trailers(0)
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(0) => *c = Chunk::DataEnd,
                    Chunk::Data(n) => return Ok(take_data(buf, n)),
                    Chunk::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(Step::NeedMore);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(FramingError("chunk data not followed by CRLF"));
                        }
                        buf.advance(2);
                        *c = Chunk::Size;
                    }
                    Chunk::Trailers(seen) => {
                        let Some(line) = take_line(buf)? else {
                            return Ok(Step::NeedMore);
                        };
                        if line.is_empty() {
                            *self = Framing::Done;
                        } else if !valid_trailer(&line) {
                            return Err(FramingError("malformed trailer field"));
                        } else {
                            *seen += line.len() + 2;
                            if *seen > MAX_TRAILERS {
                                return Err(FramingError("trailer section too large"));
                            }
                        }
                    }
                },
            }
        }
    }
}

/// Up to `*left` bytes from `buf` (all it has), counted off `left`.
fn take_data(buf: &mut BytesMut, left: &mut u64) -> Step {
    if buf.is_empty() {
        return Step::NeedMore;
    }
    let n = (*left).min(buf.len() as u64) as usize;
    *left -= n as u64;
    Step::Data(buf.split_to(n).freeze())
}

/// One CRLF-terminated line without its CRLF, or `None` if incomplete. A bare
/// LF is an error: the chunked grammar (RFC 9112 §7.1) requires CRLF, and the
/// leniency of §2.2 (a recipient MAY accept LF) covers only the start-line and
/// header fields. Peers that differ on this are a smuggling vector, so the
/// strict reading is the safe one.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, FramingError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(FramingError("line not ended by CRLF"));
            }
            let mut line = buf.split_to(i + 1);
            line.truncate(i - 1);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(FramingError("line too long")),
        None => Ok(None),
    }
}

/// The size of a chunk-size line (`1a;ext=1`, without its CRLF): hex digits,
/// then optional extensions, which are checked and ignored (RFC 9112 §7.1,
/// §7.1.1). Strict where peers disagree (each a known smuggling vector): no
/// sign, no `0x`, no leading whitespace, whitespace after the size only
/// before a `;` (BWS), extensions that follow the grammar (`;name` or
/// `;name=token` or `;name="quoted"`, so no bare `;` and no control byte: a
/// bare CR there is how some parsers were made to end the line early).
/// Shared by the response decoder and the request-smuggling scanner.
pub fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let (size, digits) =
        leading_hex(line).ok_or(FramingError("chunk size is not hex or too large"))?;
    let rest = &line[digits..];
    if !rest.is_empty() && !valid_extensions(rest) {
        return Err(FramingError("malformed chunk extension"));
    }
    Ok(size)
}

/// `*( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`, ext-name a token,
/// ext-val a token or a quoted-string (RFC 9112 §7.1.1, RFC 9110 §5.6).
fn valid_extensions(mut b: &[u8]) -> bool {
    let bws = |b: &[u8]| -> usize { b.iter().take_while(|&&c| c == b' ' || c == b'\t').count() };
    let token = |b: &[u8]| -> usize { b.iter().take_while(|&&c| is_tchar(c)).count() };
    while !b.is_empty() {
        b = &b[bws(b)..];
        let [b';', rest @ ..] = b else {
            return false;
        };
        b = &rest[bws(rest)..];
        let name = token(b);
        if name == 0 {
            return false;
        }
        b = &b[name..];
        let after = bws(b);
        if b.get(after) != Some(&b'=') {
            // BWS only ever precedes ";" or "=": whitespace that ends the
            // line is outside the grammar (and a classic parser split).
            if after > 0 && after == b.len() {
                return false;
            }
            b = &b[after..];
            continue;
        }
        b = &b[after + 1..];
        b = &b[bws(b)..];
        let value = if b.first() == Some(&b'"') {
            quoted_string(b)
        } else {
            Some(token(b)).filter(|&n| n > 0)
        };
        match value {
            Some(n) => b = &b[n..],
            None => return false,
        }
    }
    true
}

/// Length of the quoted-string `b` starts with (RFC 9110 §5.6.4).
fn quoted_string(b: &[u8]) -> Option<usize> {
    let text = |c: u8| c == b'\t' || c == b' ' || (0x21..=0x7e).contains(&c) || c >= 0x80;
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' if b.get(i + 1).is_some_and(|&c| text(c)) => i += 2,
            c if text(c) && c != b'\\' => i += 1,
            _ => return None,
        }
    }
    None
}

/// A trailer field line: `name: value`, the name a token, no control
/// character but HTAB (RFC 9112 §7.1.2, RFC 9110 §5.1, §5.5).
fn valid_trailer(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&c| c == b':') else {
        return false;
    };
    let name = &line[..colon];
    !name.is_empty()
        && name.iter().all(|&c| is_tchar(c))
        && !line[colon + 1..]
            .iter()
            .any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
}

/// `tchar` of RFC 9110 §5.6.2.
pub fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// The hex number `b` starts with, and how many digits it has; `None` without
/// digits or with more than 15 (sizes beyond 2^60 are refused, as nginx does).
/// Shared by the response decoder and the request-smuggling scanner.
pub fn leading_hex(b: &[u8]) -> Option<(u64, usize)> {
    let digits = b.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let value = b[..digits].iter().fold(0u64, |n, &c| {
        n * 16 + u64::from((c as char).to_digit(16).unwrap_or(0))
    });
    Some((value, digits))
}

/// A `Content-Length` value: decimal digits only, no sign, no overflow.
pub fn parse_decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes; returns the body and what
    /// is left in the buffer after the end.
    fn decode(
        mut f: Framing,
        input: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), FramingError> {
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let mut body = Vec::new();
        loop {
            match f.step(&mut buf)? {
                Step::Data(d) => body.extend_from_slice(&d),
                Step::Done => return Ok((body, buf.to_vec())),
                Step::NeedMore => {
                    if fed == input.len() {
                        if f == Framing::UntilClose {
                            return Ok((body, Vec::new()));
                        }
                        return Err(FramingError("eof"));
                    }
                    let end = (fed + piece).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn length_stops_at_the_length_whatever_the_pieces() {
        for piece in [1, 3, 100] {
            let (body, rest) = decode(Framing::Length(5), b"helloEXTRA", piece).unwrap();
            assert_eq!(body, b"hello");
            assert!(b"EXTRA".starts_with(&rest));
        }
        assert_eq!(decode(Framing::Length(0), b"", 1).unwrap().0, b"");
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let input =
            b"5;a=b\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        for piece in [1, 2, 7, 1000] {
            let (body, rest) = decode(Framing::Chunked(Chunk::Size), input, piece).unwrap();
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz", "piece {piece}");
            assert!(b"NEXT".starts_with(&rest), "piece {piece}");
        }
    }

    #[test]
    fn chunked_errors() {
        let bad: [&[u8]; 19] = [
            b"5;\r\n",
            b"5;bad[=x\r\n",
            b"5;a=\r\n",
            b"5;a=\"open\r\n",
            b"5;a b\r\n",
            b"zz\r\n",
            b"5\r\nhelloXX",
            b"5\n",
            b"1234567890abcdef0\r\n",
            b"5 junk\r\n",
            b"0x5\r\n",
            b" 5\r\n",
            b"5 \r\n",
            b"+5\r\n",
            b"5;a\rb\r\n",
            b"5\x0b;a\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\nbad name: 1\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
        ];
        for input in bad {
            assert!(
                decode(Framing::Chunked(Chunk::Size), input, 100).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long = vec![b'1'; MAX_LINE + 1];
        assert!(decode(Framing::Chunked(Chunk::Size), &long, 10_000).is_err());
    }

    #[test]
    fn extension_grammar() {
        for ok in [
            &b";a"[..],
            b";a=b",
            b" ; a = b",
            b";a=\"x;y\"",
            b";a;b",
            b";a=\"\\\"\"",
        ] {
            assert!(valid_extensions(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b";"[..],
            b";=b",
            b";a=",
            b";a=\"x",
            b";a b",
            b"a",
            b";a=b c",
            b";a=\"\x01\"",
            b";a ",
            b";a\t",
            b";a=b ",
        ] {
            assert!(!valid_extensions(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn chunk_extensions_with_bws_are_accepted() {
        for input in [
            &b"5 ;a=b\r\nhello\r\n0\r\n\r\n"[..],
            b"5\t; a=\"q\"\r\nhello\r\n0\r\n\r\n",
        ] {
            let (body, _) = decode(Framing::Chunked(Chunk::Size), input, 3).unwrap();
            assert_eq!(body, b"hello");
        }
    }

    #[test]
    fn until_close_takes_everything() {
        let (body, _) = decode(Framing::UntilClose, b"all of it", 4).unwrap();
        assert_eq!(body, b"all of it");
    }

    /// xorshift64: a fixed seed, so a failure is reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    #[test]
    fn any_valid_chunking_in_any_pieces_decodes_to_the_body() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..500 {
            let body: Vec<u8> = (0..rng.below(3000)).map(|_| rng.next() as u8).collect();
            let mut wire = Vec::new();
            let mut at = 0;
            while at < body.len() {
                let n = (1 + rng.below(700)).min(body.len() - at);
                let ext = if rng.below(4) == 0 { ";x=y" } else { "" };
                let size = if rng.below(2) == 0 {
                    format!("{n:x}")
                } else {
                    format!("{n:X}")
                };
                wire.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
                wire.extend_from_slice(&body[at..at + n]);
                wire.extend_from_slice(b"\r\n");
                at += n;
            }
            wire.extend_from_slice(b"0\r\n");
            if rng.below(3) == 0 {
                wire.extend_from_slice(b"x-trailer: 1\r\n");
            }
            wire.extend_from_slice(b"\r\nNEXT");
            let piece = 1 + rng.below(64);
            let (got, rest) = decode(Framing::Chunked(Chunk::Size), &wire, piece)
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(got, body, "round {round}, pieces of {piece}");
            assert!(b"NEXT".starts_with(&rest), "round {round}");
        }
    }

    #[test]
    fn garbage_never_panics_and_never_yields_more_than_it_was_given() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let alphabet = b"0123456789abcdefABCDEF;=\r\n \t\x00\xffzZ";
        for _ in 0..2000 {
            let input: Vec<u8> = (0..rng.below(200))
                .map(|_| alphabet[rng.below(alphabet.len() as u64)])
                .collect();
            let piece = 1 + rng.below(16);
            for start in [Framing::Chunked(Chunk::Size), Framing::Length(50)] {
                if let Ok((body, _)) = decode(start, &input, piece) {
                    assert!(body.len() <= input.len());
                }
            }
        }
    }
}
