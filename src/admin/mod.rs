//! Operations surface: the admin HTTP API on a unix socket (file permissions are
//! the authentication) and, optionally, on TCP with a bearer token (`auth`), the
//! live status page it serves (`page`), its CLI client, and the snapshot they
//! exchange.

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

pub mod api;
pub mod auth;
pub mod client;
pub mod page;
pub mod snapshot;
pub mod stream;
