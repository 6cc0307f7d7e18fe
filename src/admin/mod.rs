//! Operations surface: the admin HTTP API on a unix socket (file permissions are
//! the authentication) and, optionally, on TCP with a bearer token (`auth`), the
//! live status page it serves (`page`), its CLI client, and the snapshot they
//! exchange.
//!
//! - [`api`], [`stream`]: the routes; [`snapshot`]: what `/status` answers.
//! - [`federation`]: programs' own metrics pages, appended to `/metrics`.
//! - [`client`]: the CLI side of every command;
//!   [`wait`]: when `start`/`stop`/`restart` are done (a pure rule table).
//! - [`advertise`]: where a running supervisor says its socket is, so the CLI
//!   finds it from any directory.

// PID 1 must not panic: no unwrap/expect/panic/unchecked indexing on runtime
// paths (tests may, where a panic is the failure report).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod advertise;
pub mod api;
pub mod auth;
pub mod client;
pub mod federation;
pub mod page;
pub mod snapshot;
pub mod stream;
pub mod wait;
