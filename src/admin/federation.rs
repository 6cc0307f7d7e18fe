//! Federation: the programs' own metrics pages (`metrics = "http://…"` in the
//! config), fetched by the admin API at each scrape of `/metrics` and appended
//! to the supervisor's own series, so one scrape covers the whole container.
//!
//! Every page is fetched concurrently on the API's task (never the owner's),
//! each within [`FETCH_TIMEOUT`]; a page that cannot be fetched, answers other
//! than 200, is larger than [`MAX_PAGE`] or is not exposition text is left out
//! (`selfheal_federation_up{program} 0`): it never fails the scrape. A page's
//! own `# EOF` line is dropped; the API writes one at the very end.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::MetricsUrl;

/// Bound on fetching one program's page (connect, answer and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest page appended, in bytes.
pub const MAX_PAGE: usize = 4 * 1024 * 1024;

/// What the supervisor asks for: OpenMetrics, the format of its own page.
const ACCEPT: &str = "application/openmetrics-text; version=1.0.0";

/// Fetches every page concurrently; the results come back in the order of
/// `targets`, `None` for a page left out.
pub async fn fetch_all(targets: &[MetricsUrl]) -> Vec<Option<String>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, url) in targets.iter().enumerate() {
        let url = url.clone();
        tasks.spawn(async move {
            let page = tokio::time::timeout(FETCH_TIMEOUT, fetch(&url)).await;
            (i, page.ok().flatten())
        });
    }
    let mut pages = vec![None; targets.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, page)) = joined {
            if let Some(slot) = pages.get_mut(i) {
                *slot = page;
            }
        }
    }
    pages
}

/// One page, checked and without its `# EOF` line.
async fn fetch(url: &MetricsUrl) -> Option<String> {
    let stream = TcpStream::connect(url.authority.as_str()).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(url.path.as_str())
        .header(hyper::header::HOST, url.authority.as_str())
        .header(hyper::header::ACCEPT, ACCEPT)
        .header(hyper::header::USER_AGENT, "selfheal-federation")
        .body(Empty::<Bytes>::new())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    if response.status() != hyper::StatusCode::OK {
        return None;
    }
    let body = Limited::new(response.into_body(), MAX_PAGE)
        .collect()
        .await
        .ok()?
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).ok()?;
    exposition(&text)
}

/// The page's lines without `# EOF`, each ending in `\n`, if it reads as
/// exposition text: every line empty, a `#` comment, or a sample (starting
/// with a metric name character). Anything else (an HTML error page) would
/// break the whole scrape, so such a page is left out.
pub fn exposition(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 1);
    for line in text.lines() {
        if line == "# EOF" || line.is_empty() {
            continue;
        }
        let first = line.chars().next()?;
        if first != '#' && !(first.is_ascii_alphabetic() || first == '_' || first == ':') {
            return None;
        }
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eof_is_dropped_and_a_missing_final_newline_added() {
        let page = "# TYPE a counter\na_total 1\n# EOF\n";
        assert_eq!(
            exposition(page).as_deref(),
            Some("# TYPE a counter\na_total 1\n")
        );
        assert_eq!(exposition("b 2").as_deref(), Some("b 2\n"));
        assert_eq!(exposition("").as_deref(), Some(""));
    }

    #[test]
    fn a_page_that_is_not_exposition_text_is_refused() {
        assert_eq!(exposition("<html>502</html>\n"), None);
        assert_eq!(exposition("ok\n 1 2\n"), None);
    }

    #[tokio::test]
    async fn an_unreachable_page_is_none_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let targets = [MetricsUrl {
            authority: format!("127.0.0.1:{port}"),
            path: "/metrics".into(),
        }];
        let started = std::time::Instant::now();
        assert_eq!(fetch_all(&targets).await, vec![None]);
        assert!(started.elapsed() < FETCH_TIMEOUT * 2);
    }
}
