//! `GET /`: the live status page, one self-contained HTML document
//! (`page.html`: inline CSS and JavaScript, no external assets).
//!
//! The page reads `/status` and subscribes to `/events?recent=50` with
//! `EventSource`; on each event it reads `/status` again (and every 5 s for the
//! uptimes). Where `/events` is missing or fails, it polls `/status` every
//! second and retries the stream every 15 s. Every value from the API reaches
//! the DOM through `textContent`, never as markup.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

/// The page, as shipped in the binary.
pub const PAGE: &str = include_str!("page.html");

/// What the page may load: itself, its inline style and script, and requests
/// to its own origin (`/status`, `/events`); nothing else.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `GET /`: the page, never cached (it is small, and a cached copy could
/// outlive an upgrade of the binary).
pub async fn page() -> Response {
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::PAGE;

    /// The string literals of the `kind` function in `source`.
    fn kinds(source: &str) -> Vec<String> {
        let start = source
            .find("pub fn kind(&self) -> &'static str {")
            .expect("a kind function");
        let body = &source[start..];
        let body = &body[..body.find("\n    }\n").expect("its end")];
        body.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// `EventSource` hands a named event only to a listener of that name: a
    /// kind missing from the page's list would never reach it.
    #[test]
    fn the_page_listens_to_every_event_kind() {
        let mut all = kinds(include_str!("../supervisor/events.rs"));
        all.extend(kinds(include_str!("../supervisor/notes.rs")));
        all.push("note".to_string());
        // The typed records of the state channel, memory and traffic modules.
        for (file, text) in [
            ("channel.rs", include_str!("../supervisor/channel.rs")),
            ("memory.rs", include_str!("../supervisor/memory.rs")),
            ("traffic.rs", include_str!("../supervisor/traffic.rs")),
        ] {
            let typed = typed_kinds(text);
            assert!(!typed.is_empty(), "no typed record found in {file}");
            all.extend(typed);
        }
        assert!(all.len() > 15, "{all:?}");
        for kind in all {
            assert!(
                PAGE.contains(&format!("'{kind}'")),
                "page.html does not listen to the event kind {kind:?}"
            );
        }
    }

    /// The kind of each `Record::typed(program, "kind", …)` in `source`.
    fn typed_kinds(source: &str) -> Vec<String> {
        source
            .split("Record::typed(")
            .skip(1)
            .filter_map(|rest| rest.split('"').nth(1).map(String::from))
            .collect()
    }

    #[test]
    fn data_reaches_the_page_as_text_only() {
        assert!(!PAGE.contains("innerHTML"));
        assert!(!PAGE.contains("insertAdjacentHTML"));
        assert!(!PAGE.contains("document.write"));
        assert!(
            !PAGE.contains("http://") && !PAGE.contains("https://"),
            "external asset"
        );
    }
}
