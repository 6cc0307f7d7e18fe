//! Reference decoders the fuzz targets compare the proxy's parsers with.
//!
//! Each is written straight from the grammar, for clarity rather than speed,
//! on a whole input (no streaming), so that a disagreement points at the
//! proxy's incremental code. Where RFC 9112 leaves a choice, the reference
//! takes the proxy's documented one (noted at each place).

/// Longest input a target looks at: below the proxy's line limit (4 KiB),
/// so that limits never explain a disagreement.
pub const MAX_INPUT: usize = 4000;

/// The fuzz input split into a control byte and the rest.
pub fn split_control(data: &[u8]) -> Option<(u8, &[u8])> {
    let (&c, rest) = data.split_first()?;
    Some((c, &rest[..rest.len().min(MAX_INPUT)]))
}

/// Piece sizes derived from a control byte: how the bytes arrive in reads
/// (1 = byte by byte; 0 in the low bits = all at once).
pub fn pieces(control: u8) -> Vec<usize> {
    match control & 0x0f {
        0 => vec![usize::MAX],
        n => vec![usize::from(n), usize::from(control >> 4) + 1],
    }
}

/// What a reference decoder made of a whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A complete body: its payload and the bytes its framing took.
    Done { body: Vec<u8>, consumed: usize },
    /// Valid so far, but the input ends before the body does.
    Incomplete,
    /// Not a valid body.
    Invalid,
}

/// `chunked` transfer coding (RFC 9112 §7.1):
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-size   = 1*HEXDIG          ; at most 15 digits (the proxy's limit, nginx's too)
/// chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
/// ext-name     = token
/// ext-val      = token / quoted-string     ; RFC 9112 §7.1.1, RFC 9110 §5.6
/// trailer      = field-name ":" field-value CRLF ; name a token, value without
///                                  ; control characters other than HTAB
/// ```
pub fn chunked(input: &[u8]) -> Reference {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let Some(line) = line_at(input, at) else {
            return Reference::Incomplete;
        };
        let Ok(line) = line else {
            return Reference::Invalid;
        };
        at += line.len() + 2;
        let Some(size) = chunk_size_line(line) else {
            return Reference::Invalid;
        };
        if size == 0 {
            break;
        }
        let Ok(size) = usize::try_from(size) else {
            return Reference::Incomplete; // larger than any input here
        };
        if input.len() < at.saturating_add(size).saturating_add(2) {
            // Not all here yet; what is here must still fit the grammar.
            let have = &input[at.min(input.len())..];
            if have.len() > size && have[size] != b'\r' {
                return Reference::Invalid;
            }
            return Reference::Incomplete;
        }
        body.extend_from_slice(&input[at..at + size]);
        at += size;
        if &input[at..at + 2] != b"\r\n" {
            return Reference::Invalid;
        }
        at += 2;
    }
    loop {
        let Some(line) = line_at(input, at) else {
            return Reference::Incomplete;
        };
        let Ok(line) = line else {
            return Reference::Invalid;
        };
        at += line.len() + 2;
        if line.is_empty() {
            return Reference::Done { body, consumed: at };
        }
        if !trailer_line(line) {
            return Reference::Invalid;
        }
    }
}

/// The line starting at `at` without its CRLF: `None` when no LF follows yet,
/// `Some(Err)` when the LF is not preceded by CR.
fn line_at(input: &[u8], at: usize) -> Option<Result<&[u8], ()>> {
    let rest = input.get(at..)?;
    let lf = rest.iter().position(|&b| b == b'\n')?;
    if lf == 0 || rest[lf - 1] != b'\r' {
        return Some(Err(()));
    }
    Some(Ok(&rest[..lf - 1]))
}

fn chunk_size_line(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
    let rest = &line[digits..];
    if rest.is_empty() {
        return Some(size);
    }
    extensions(rest).then_some(size)
}

fn skip_bws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

fn token(s: &[u8]) -> Option<&[u8]> {
    let n = s.iter().take_while(|&&b| is_tchar(b)).count();
    (n > 0).then(|| &s[n..])
}

/// RFC 9110 §5.6.4: DQUOTE *( qdtext / quoted-pair ) DQUOTE.
fn quoted_string(s: &[u8]) -> Option<&[u8]> {
    let mut i = 1;
    if s.first() != Some(&b'"') {
        return None;
    }
    loop {
        match *s.get(i)? {
            b'"' => return Some(&s[i + 1..]),
            b'\\' => {
                let next = *s.get(i + 1)?;
                if !(next == b'\t' || next == b' ' || (0x21..=0x7e).contains(&next) || next >= 0x80) {
                    return None;
                }
                i += 2;
            }
            b if b == b'\t' || b == b' ' || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b) || b >= 0x80 => i += 1,
            _ => return None,
        }
    }
}

/// The whole `chunk-ext` grammar, written from the RFC (not from the proxy).
fn extensions(mut s: &[u8]) -> bool {
    while !s.is_empty() {
        s = skip_bws(s);
        let Some(rest) = s.strip_prefix(b";") else { return false };
        let Some(rest) = token(skip_bws(rest)) else { return false };
        s = rest;
        let after = skip_bws(s);
        if let Some(value) = after.strip_prefix(b"=") {
            let value = skip_bws(value);
            s = match token(value).or_else(|| quoted_string(value)) {
                Some(rest) => rest,
                None => return false,
            };
        }
    }
    true
}

fn trailer_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && line[..colon].iter().copied().all(is_tchar)
        && !line[colon + 1..].iter().copied().any(is_ctl)
}

/// A control character other than HTAB (RFC 5234 CTL).
pub fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// `tchar` (RFC 9110 §5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A body of exactly `length` bytes (`Content-Length`, RFC 9112 §6.2).
pub fn length(input: &[u8], length: u64) -> Reference {
    match usize::try_from(length) {
        Ok(n) if n <= input.len() => Reference::Done {
            body: input[..n].to_vec(),
            consumed: n,
        },
        _ => Reference::Incomplete,
    }
}

/// A `Content-Length` field value as hyper and the proxy read it: a decimal
/// number, or a comma-separated list of the same number (RFC 9110 §8.6).
pub fn content_length(values: &[&[u8]]) -> Option<u64> {
    let mut n = None;
    for v in values {
        for part in v.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let m: u64 = std::str::from_utf8(part).ok()?.parse().ok()?;
            if n.is_some_and(|n| n != m) {
                return None;
            }
            n = Some(m);
        }
    }
    n
}

/// The codings of `Transfer-Encoding` field values, in order, trimmed.
pub fn codings<'a>(values: &[&'a [u8]]) -> Vec<&'a [u8]> {
    values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_reference() {
        let ok = chunked(b"5;a=b\r\nhello\r\n1\r\n!\r\n0\r\nx: 1\r\n\r\nNEXT");
        assert_eq!(
            ok,
            Reference::Done {
                body: b"hello!".to_vec(),
                consumed: 31
            }
        );
        assert_eq!(chunked(b"5\r\nhel"), Reference::Incomplete);
        for bad in [
            &b"5 \r\nhello\r\n"[..],
            b"0x5\r\n",
            b"5\nhello",
            b"5;a\rb\r\n",
        ] {
            assert_eq!(chunked(bad), Reference::Invalid, "{bad:?}");
        }
    }
}
