//! `GET` with `Connection: close` on `std::net`; the response is read by the
//! parser shared with the integration tests (`tests/common`).

pub use crate::common::Response;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `GET path` on a fresh connection to `addr`; `Err` on any I/O or parse error.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("set timeouts: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: selfheal-container-test\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    crate::common::read_response(&mut stream).ok_or_else(|| "no complete HTTP response".to_string())
}

#[cfg(test)]
mod tests {
    use crate::common::read_response;

    fn parse(raw: &[u8]) -> Result<crate::common::Response, ()> {
        read_response(&mut &raw[..]).ok_or(())
    }

    #[test]
    fn parses_status_and_headers() {
        let r =
            parse(b"HTTP/1.1 200 OK\r\nX-Visit-Count: 42\r\nContent-Length: 2\r\n\r\nhi").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.visit_count(), Some(42));
        assert_eq!(r.body, b"hi");
        assert!(parse(b"garbage").is_err());
        assert!(parse(b"SSH-2.0 x\r\n\r\n").is_err());
    }
}
