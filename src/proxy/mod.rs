//! `selfheal proxy`: the reverse proxy that holds, retries, and never duplicates.
//!
//! # Layout
//! - [`server`]: runtime model (one current-thread runtime per core, all sharing
//!   the listener), accept loop, per-connection hyper server, graceful drain;
//!   [`spread`]: keeping client connections even across those threads.
//! - [`forward`]: one request's path as named steps (admit, pick upstream,
//!   connect, send, relay, fail), the access-log line.
//! - [`request`]: what a request must be to be forwarded (method, target
//!   form, `Host`, transfer codings).
//! - [`schedule`]: the supervisor's state channel and the rule that answers
//!   before connecting (`schedule::gate`: go, hold, or `503` now).
//! - [`retry`]: *the retry rule* (`retry::decide`: facts of a failed attempt →
//!   retry or answer) and the backoff.
//! - [`clientio`]: the client socket as hyper sees it (scanner feed, send
//!   timeout, lingering close).
//!   [`access_log`]: per-worker buffered access log and its writer thread.
//! - [`upstream`]: upstream set (passive ejection, active re-admission) and the
//!   per-thread connection pool with least-outstanding balancing.
//! - [`error`]: classified failures → status code and a short plain body.
//! - [`metrics`]: per-worker request counts, summed by a scrape of
//!   `--metrics-listen`.
//! - [`limits`]: request-head limits; [`smuggle`]: the request-smuggling scanner.
//! - [`headers`]: hop-by-hop stripping, `X-Forwarded-*`, request ids.
//! - [`h1`]: the upstream side of an exchange: one keep-alive HTTP/1.1
//!   connection driven by the client's task; [`framing`]: response body framing.
//! - [`body`]: request bodies (empty, buffered for replay, streamed) and the
//!   response body that returns its upstream connection to the pool.

pub mod access_log;
pub mod body;
pub mod clientio;
pub mod error;
pub mod forward;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod h1;
pub mod headers;
pub mod limits;
pub mod metrics;
pub mod request;
pub mod retry;
pub mod schedule;
pub mod server;
pub mod smuggle;
pub mod spread;
pub mod upstream;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

/// Command-line surface of `selfheal proxy`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyArgs {
    /// Address to bind when no socket is inherited (LISTEN_FDS).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Upstream address `host:port` (repeatable; balanced least-outstanding).
    #[arg(long, required = true)]
    pub upstream: Vec<String>,
    /// How long a request that could not reach any upstream is held and retried
    /// before `503` + `Retry-After`.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub hold_timeout: Duration,
    /// Longest wait on an upstream, else `504`: for it to take a piece of the
    /// request, and for its response head once the request is sent (a slow
    /// client's upload time does not count; `--body-timeout` bounds that).
    /// Also the longest pause between two reads of a response body: then the
    /// client's answer is cut (connection closed) and the upstream connection
    /// discarded.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// Time to establish one TCP connection to an upstream.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Time for a client to send a whole request head; also bounds an idle
    /// keep-alive connection (hyper arms one timer for both).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Longest time a client may take no response bytes while the proxy is
    /// writing to it, else its connection is closed (nginx's `send_timeout`).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,
    /// Longest pause between two reads of a request body, else `408`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,
    /// Bound on finishing in-flight requests after SIGTERM/SIGINT.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Largest request body accepted, in bytes, else `413`.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body: u64,
    /// Request bodies up to this size are buffered so that they can be replayed;
    /// larger ones are streamed and never retried once sent.
    #[arg(long, default_value_t = 64 * 1024)]
    pub retry_buffer: u64,
    /// Worker threads, each with its own runtime and upstream pool (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Task polls between two checks for new I/O on a busy worker (tokio's
    /// `event_interval`; its default is 61).
    #[arg(long, default_value_t = 500)]
    pub event_interval: u32,
    /// Add `Via: 1.1 NAME` to forwarded requests and responses (RFC 9110 §7.6.3;
    /// off by default, as in nginx). NAME: a host name or pseudonym.
    #[arg(long, value_name = "NAME", value_parser = headers::via_value)]
    pub via: Option<http::HeaderValue>,
    /// Do not write one access-log line per request.
    #[arg(long)]
    pub no_access_log: bool,
    /// Serve Prometheus metrics (`GET /metrics`, OpenMetrics text) on this
    /// address, e.g. `127.0.0.1:9101` (`SO_REUSEPORT`: the next incarnation of a
    /// surge restart binds it too). Off by default: then nothing is counted. An
    /// address that cannot be bound is a warning: the proxy serves without metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Log format: human lines or one JSON object per line.
    #[arg(long, value_enum, default_value_t = crate::cli::LogFormat::Human, env = "SELFHEAL_LOG_FORMAT")]
    pub log_format: crate::cli::LogFormat,
}

/// Entry point: take inherited sockets first (before any thread exists), then run.
pub fn main(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let mut inherited = crate::listenfd::take();
    let state = crate::statefd::take();
    // Never blocking: a stalled stdout must not freeze an event loop.
    let _log = crate::logging::init_non_blocking(args.log_format);
    let listener = crate::listenfd::listener_for(&mut inherited, &args.listen)
        .with_context(|| format!("listen on {}", args.listen))?;
    server::run(listener, args, state)?;
    Ok(ExitCode::SUCCESS)
}
