//! Operations surface: the admin HTTP API on a unix socket (file permissions are
//! the authentication), its CLI client, and the snapshot they exchange.

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
pub mod client;
pub mod snapshot;
pub mod stream;
pub mod wait;
