//! Authentication of the admin API over TCP (`admin_listen`): a bearer token.
//!
//! The unix socket needs none (its file mode, 0600, is the authentication);
//! over TCP every request passes [`require`], an axum middleware:
//!
//! | request | answer |
//! |---|---|
//! | no token configured (`admin_listen` on loopback without `admin_token_file`) | passed on when its `Host` is an IP address or `localhost`: anyone on this host may use it; any other host name gets `403` (a web page whose name was re-pointed at 127.0.0.1, DNS rebinding, must not drive the API from a local browser) |
//! | `GET`/`HEAD` of a route listed in `admin_public` (`/metrics`, `/livez`, `/readyz`) | passed on |
//! | `Authorization: Bearer <token>`, or the cookie [`COOKIE`] holding it | passed on |
//! | `GET /?token=<token>` | `303 See Other` to `/` with `Set-Cookie: selfheal_admin=<token>; HttpOnly; SameSite=Strict; Path=/` |
//! | anything else (no credentials, a wrong token) | `401` with `WWW-Authenticate: Bearer realm="selfheal"` (`, error="invalid_token"` when a wrong one was sent; RFC 6750 §3) |
//!
//! The cookie exists for the status page: `EventSource` cannot send an
//! `Authorization` header, so a browser logs in once with `/?token=…` and its
//! requests (the page, `/status`, `/events`) then carry the cookie. `HttpOnly`
//! keeps it from scripts, `SameSite=Strict` from other sites' requests. Tokens
//! are compared in constant time ([`subtle`]).

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use headers::authorization::Bearer;
use headers::{Authorization, Cookie, HeaderMapExt};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::{AdminToken, PublicRoute};

/// Name of the cookie that carries the token for the status page.
pub const COOKIE: &str = "selfheal_admin";

/// What the TCP listener checks: the token (`None`: none configured) and the
/// routes open without it.
#[derive(Debug, Clone)]
pub struct Auth {
    token: Option<AdminToken>,
    public: Vec<PublicRoute>,
}

impl Auth {
    /// `token`: `None` leaves the listener open (loopback only, which the
    /// config enforces); `public`: the `admin_public` routes.
    pub fn new(token: Option<AdminToken>, public: Vec<PublicRoute>) -> Arc<Auth> {
        Arc::new(Auth { token, public })
    }

    fn is_public(&self, method: &Method, path: &str) -> bool {
        (method == Method::GET || method == Method::HEAD)
            && self.public.iter().any(|r| r.path() == path)
    }

    /// Whether `offered` is the token, in time independent of where they differ.
    fn accepts(token: &AdminToken, offered: &str) -> bool {
        bool::from(token.expose().as_bytes().ct_eq(offered.as_bytes()))
    }
}

/// What a request offered as credentials.
enum Offered {
    None,
    Good,
    Bad,
}

fn offered(token: &AdminToken, headers: &HeaderMap) -> Offered {
    if let Some(Authorization(bearer)) = headers.typed_get::<Authorization<Bearer>>() {
        return match Auth::accepts(token, bearer.token()) {
            true => Offered::Good,
            false => Offered::Bad,
        };
    }
    // A header that is not a well-formed `Bearer` credential is a wrong one.
    if headers.contains_key(header::AUTHORIZATION) {
        return Offered::Bad;
    }
    match headers
        .typed_get::<Cookie>()
        .and_then(|c| c.get(COOKIE).map(|v| Auth::accepts(token, v)))
    {
        Some(true) => Offered::Good,
        Some(false) => Offered::Bad,
        None => Offered::None,
    }
}

/// Whether the request's `Host` names this machine by address (`127.0.0.1:9100`,
/// `[::1]`) or as `localhost`: what a browser sends for a page of this listener,
/// and never for a page of another site, even one whose name resolves to a
/// loopback address. No `Host` (HTTP/1.0 tools) counts as local.
fn local_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.typed_get::<headers::Host>() else {
        return !headers.contains_key(header::HOST);
    };
    let name = host.hostname();
    let name = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// `?token=…` on the page's URL.
#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

/// The middleware (see the module doc for the rules).
pub async fn require(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let Some(token) = &auth.token else {
        if !local_host(request.headers()) {
            return (
                StatusCode::FORBIDDEN,
                "without admin_token_file, the admin API answers only requests to an IP address or localhost\n",
            )
                .into_response();
        }
        return next.run(request).await;
    };
    if auth.is_public(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    if request.method() == Method::GET && request.uri().path() == "/" {
        if let Ok(Query(q)) = Query::<TokenQuery>::try_from_uri(request.uri()) {
            return match Auth::accepts(token, &q.token) {
                true => login(&q.token),
                false => unauthorized(true),
            };
        }
    }
    match offered(token, request.headers()) {
        Offered::Good => next.run(request).await,
        Offered::Bad => unauthorized(true),
        Offered::None => unauthorized(false),
    }
}

/// `303` to `/` (the token leaves the address bar and the history) with the
/// session cookie set.
fn login(token: &str) -> Response {
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    match HeaderValue::from_str(&cookie) {
        Ok(value) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, HeaderValue::from_static("/")),
                (header::SET_COOKIE, value),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        // Unreachable for a valid token (b64token characters only).
        Err(_) => unauthorized(true),
    }
}

/// `401` with the challenge of RFC 6750 §3 (`error="invalid_token"` when a
/// token was offered and refused).
fn unauthorized(offered: bool) -> Response {
    let challenge = if offered {
        r#"Bearer realm="selfheal", error="invalid_token""#
    } else {
        r#"Bearer realm="selfheal""#
    };
    let text = if offered {
        "invalid token\n"
    } else {
        "the admin API needs a token: Authorization: Bearer <token> (browsers: open /?token=<token>)\n"
    };
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AdminToken {
        AdminToken::new("s3cret-token").unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn verdict(pairs: &[(&str, &str)]) -> &'static str {
        match offered(&token(), &headers(pairs)) {
            Offered::None => "none",
            Offered::Good => "good",
            Offered::Bad => "bad",
        }
    }

    #[test]
    fn credentials_by_header_and_cookie() {
        assert_eq!(verdict(&[]), "none");
        assert_eq!(verdict(&[("authorization", "Bearer s3cret-token")]), "good");
        assert_eq!(verdict(&[("authorization", "bearer s3cret-token")]), "good");
        assert_eq!(verdict(&[("authorization", "Bearer s3cret-tokeN")]), "bad");
        assert_eq!(verdict(&[("authorization", "Bearer s3cret")]), "bad");
        assert_eq!(verdict(&[("authorization", "Basic czNjcmV0")]), "bad");
        assert_eq!(
            verdict(&[("cookie", "a=b; selfheal_admin=s3cret-token")]),
            "good"
        );
        assert_eq!(verdict(&[("cookie", "selfheal_admin=nope")]), "bad");
        assert_eq!(verdict(&[("cookie", "other=s3cret-token")]), "none");
        // A wrong header is not rescued by a right cookie.
        assert_eq!(
            verdict(&[
                ("authorization", "Bearer nope"),
                ("cookie", "selfheal_admin=s3cret-token")
            ]),
            "bad"
        );
    }

    #[test]
    fn without_a_token_only_addresses_and_localhost_are_served() {
        for (host, local) in [
            ("127.0.0.1:9100", true),
            ("[::1]:9100", true),
            ("10.1.2.3", true),
            ("localhost:9100", true),
            ("LOCALHOST", true),
            ("evil.example:9100", false),
            ("localhost.evil.example", false),
        ] {
            assert_eq!(local_host(&headers(&[("host", host)])), local, "{host}");
        }
        assert!(local_host(&HeaderMap::new()));
    }

    #[test]
    fn public_routes_are_gets_of_listed_paths() {
        let auth = Auth::new(Some(token()), vec![PublicRoute::Metrics]);
        assert!(auth.is_public(&Method::GET, "/metrics"));
        assert!(auth.is_public(&Method::HEAD, "/metrics"));
        assert!(!auth.is_public(&Method::POST, "/metrics"));
        assert!(!auth.is_public(&Method::GET, "/livez"));
        assert!(!auth.is_public(&Method::GET, "/metrics/x"));
    }

    #[test]
    fn tokens_are_b64token_text() {
        assert!(AdminToken::new("").is_err());
        assert!(AdminToken::new("a b").is_err());
        assert!(AdminToken::new("a;b").is_err());
        assert!(AdminToken::new("==").is_err());
        assert!(AdminToken::new("abc+/_-.~==").is_ok());
        assert_eq!(
            format!("{:?}", AdminToken::new("abc").unwrap()),
            "AdminToken(<redacted>)"
        );
    }
}
