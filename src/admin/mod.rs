//! Admin API (being built).
pub mod client;
