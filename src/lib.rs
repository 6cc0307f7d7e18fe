//! selfheal: a PID-1 supervisor that spawns, reaps, probes, restarts and stops a set
//! of programs, plus the two programs of its demo stack (a Redis-backed web app and
//! a reverse proxy that holds and retries requests through crashes).
//!
//! # Layout
//! - [`cli`]: command-line surface (clap); `main.rs` only dispatches.
//! - [`config`]: `supervisor.toml` → validated [`config::Config`]; every error at once, with spans.
//! - [`supervisor`]: the runtime over two pure state machines (`supervisor::stack` for the
//!   whole stack, `supervisor::state` per program), the one
//!   reaper, spawning, probes, signals, shutdown and the Prometheus metrics.
//! - [`admin`]: the admin HTTP API on a unix socket (and TCP with a bearer token),
//!   the live status page, `/metrics` with federation, and its CLI client.
//! - [`listenfd`]: inherited listening sockets (`LISTEN_FDS`), shared by app and proxy.
//! - [`statefd`]: the state channel's wire format (`SELFHEAL_STATE_FD`), supervisor ↔ proxy.
//! - [`app`]: `selfheal app`, the demo web app counting visits exactly once in Redis.
//! - [`proxy`]: `selfheal proxy`, the reverse proxy that holds and retries.
//! - [`stop`]: SIGTERM/SIGINT handling shared by app and proxy.
//! - [`exit`]: the supervisor's exit-code table.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod exit;
pub mod listenfd;
pub mod logging;
pub mod proxy;
pub mod statefd;
pub mod stop;
pub mod supervisor;
