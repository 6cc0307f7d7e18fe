//! `selfheal app`: the demo web app. `GET /` counts a visit in Redis exactly once per
//! request id; `/livez` never touches Redis, `/readyz` pings it; chaos routes
//! (`/kill`, `/hang`, `/leak`) only with `--chaos`.
//!
//! - [`router`]: routes, handlers, request ids.
//! - [`counter`]: the Redis side (idempotent Lua script, lazy reconnecting connection, deadlines).
//! - [`chaos`]: the chaos endpoints and the hang guard.
//! - [`server`]: accept loop, graceful shutdown and drain, signals.

pub mod chaos;
pub mod counter;
pub mod router;
pub mod server;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::LogFormat;
use server::{Drain, Shutdown, StopReason};

#[derive(Debug, clap::Args)]
pub struct AppArgs {
    /// Address to bind when no socket is inherited (LISTEN_FDS).
    #[arg(long, default_value = "127.0.0.1:8000", env = "SELFHEAL_APP_LISTEN")]
    pub listen: String,
    /// Redis URL.
    #[arg(
        long,
        default_value = "redis://127.0.0.1:6379",
        env = "SELFHEAL_REDIS_URL"
    )]
    pub redis: String,
    /// Enable the chaos endpoints (/kill, /hang, /leak). The variable takes 1/0,
    /// true/false, yes/no, on/off.
    #[arg(
        long,
        env = "SELFHEAL_CHAOS",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub chaos: bool,
    /// How long `GET /` keeps retrying Redis before answering 503.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, env = "SELFHEAL_REDIS_TIMEOUT")]
    pub redis_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Runtime threads: 1 = a current-thread runtime (default: same req/s as 2
    /// workers on 2 cores, better p99, less memory; docs/benchmarks.md),
    /// N > 1 = a multi-threaded runtime with N workers.
    #[arg(long, default_value_t = 1, env = "SELFHEAL_APP_THREADS")]
    pub threads: usize,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "SELFHEAL_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// How long in-flight requests get after `/kill` (its own 202 must go out).
const KILL_DRAIN: Duration = Duration::from_secs(1);

pub fn main(args: AppArgs) -> anyhow::Result<ExitCode> {
    // First, while the process is still single-threaded (it edits the environment).
    let mut inherited = crate::listenfd::take();
    crate::logging::init(args.log_format);

    let origin = if inherited.is_empty() {
        "bound"
    } else {
        "inherited"
    };
    let listener = crate::listenfd::listener_for(&mut inherited, &args.listen)
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("local address of the listener")?;

    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("build the tokio runtime")?;

    let counter = counter::Counter::new(&args.redis, args.redis_timeout)
        .with_context(|| format!("redis URL {:?}", args.redis))?;
    let shutdown = Shutdown::default();
    let state = Arc::new(router::AppState::new(counter, args.chaos, shutdown.clone()));
    let drain = Drain {
        on_signal: args.drain_timeout,
        on_kill: KILL_DRAIN,
    };

    let reason = runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("register the listener with the runtime")?;
        // Registered before "serving" is logged: a SIGTERM right after is handled.
        let signals = server::forward_signals(shutdown.clone()).context("signal handlers")?;
        let signals = tokio::spawn(signals);
        let warm = state.clone();
        tokio::spawn(async move {
            match warm.counter.warm_up().await {
                Ok(()) => tracing::info!("redis connected"),
                Err(err) => {
                    tracing::warn!(cause = %err, "redis not reachable yet; will retry per request")
                }
            }
        });
        tracing::info!(
            "serving on {addr} ({origin}) pid {} chaos={} redis={}",
            std::process::id(),
            if args.chaos { "on" } else { "off" },
            args.redis
        );
        let reason = server::run(listener, router::router(state), shutdown, drain)
            .await
            .context("serve")?;
        signals.abort();
        anyhow::Ok(reason)
    })?;
    // Hung handlers (after /hang) and Redis tasks are dropped here, not awaited.
    runtime.shutdown_timeout(Duration::from_millis(100));

    match reason {
        StopReason::Kill => tracing::warn!("exiting with code 1 (kill)"),
        StopReason::Signal(name) => tracing::info!(signal = name, "stopped cleanly, exiting 0"),
    }
    Ok(ExitCode::from(reason.exit_code()))
}
