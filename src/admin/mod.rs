//! Operations surface: the admin HTTP API on a unix socket (file permissions are
//! the authentication), its CLI client, and the snapshot they exchange.

pub mod api;
pub mod client;
pub mod snapshot;
