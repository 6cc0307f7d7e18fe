//! Classified failures of one proxied request, each mapped to one status code and
//! a short plain body. Upstream internals (addresses, error texts) never reach the
//! client; they go to the log.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

use super::body::RespBody;

/// Why the proxy answered itself instead of relaying an upstream response.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No upstream could be connected to within the hold timeout (nothing sent).
    #[error("no upstream reachable within the hold timeout")]
    Unavailable,
    /// The supervisor says the upstream's program will not be ready in time
    /// (stopped, failed, or restarting later than the hold): `503` with this
    /// `Retry-After` in seconds.
    #[error("upstream program not ready in time (retry after {0} s)")]
    NotReady(u64),
    /// The upstream failed after the request was sent and it may not be replayed.
    #[error("upstream failed after the request was sent")]
    BadGateway(#[source] super::h1::ExchangeError),
    /// The upstream did not send a response head within the upstream timeout.
    #[error("upstream timed out")]
    GatewayTimeout,
    /// The request body is larger than `--max-body`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The client paused longer than `--body-timeout` while sending its body.
    #[error("request body read timed out")]
    BodyTimeout,
    /// The request body could not be decoded (bad chunking, early end).
    #[error("malformed request body")]
    BadBody,
    /// The request-target is longer than the limit.
    #[error("request-target too long")]
    UriTooLong,
    /// One header line or the whole header section is larger than the limit.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// A request the proxy refuses: smuggling vectors, a bad target form or
    /// `Host` (see [`super::request`]).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// CONNECT or TRACE: methods the proxy does not serve (RFC 9110 §9.3.6, §9.3.8).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A transfer coding the proxy does not implement (RFC 9112 §6.1).
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
}

/// `Allow` of a `405`: every method the proxy forwards (RFC 9110 §15.5.6
/// requires the list).
pub const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unavailable | ProxyError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadBody | ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::UriTooLong => StatusCode::URI_TOO_LONG,
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// Client errors leave the connection in an unknown framing state (or with an
    /// unread body): close it after answering (with a lingering close, see
    /// [`super::linger`]). A CONNECT's connection may already carry tunnel bytes.
    pub fn closes_connection(&self) -> bool {
        match self {
            ProxyError::Unavailable
            | ProxyError::NotReady(_)
            | ProxyError::BadGateway(_)
            | ProxyError::GatewayTimeout => false,
            ProxyError::BodyTooLarge
            | ProxyError::BodyTimeout
            | ProxyError::BadBody
            | ProxyError::UriTooLong
            | ProxyError::HeadersTooLarge
            | ProxyError::BadRequest(_)
            | ProxyError::MethodNotAllowed
            | ProxyError::NotImplemented(_) => true,
        }
    }

    fn body(&self) -> &'static str {
        match self {
            ProxyError::Unavailable | ProxyError::NotReady(_) => "service unavailable\n",
            ProxyError::BadGateway(_) => "bad gateway\n",
            ProxyError::GatewayTimeout => "gateway timeout\n",
            ProxyError::BodyTooLarge => "payload too large\n",
            ProxyError::BodyTimeout => "request timeout\n",
            ProxyError::BadBody | ProxyError::BadRequest(_) => "bad request\n",
            ProxyError::UriTooLong => "uri too long\n",
            ProxyError::HeadersTooLarge => "request header fields too large\n",
            ProxyError::MethodNotAllowed => "method not allowed\n",
            ProxyError::NotImplemented(_) => "not implemented\n",
        }
    }

    /// The response the client sees.
    pub fn response(&self) -> Response<RespBody> {
        let mut resp = Response::new(RespBody::full(Bytes::from_static(self.body().as_bytes())));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        match self {
            ProxyError::Unavailable => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ProxyError::NotReady(secs) => {
                h.insert(RETRY_AFTER, HeaderValue::from(*secs));
            }
            ProxyError::MethodNotAllowed => {
                h.insert(ALLOW, HeaderValue::from_static(ALLOW_METHODS));
            }
            _ => {}
        }
        if self.closes_connection() {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
