//! Container end-to-end tests: the real image under the real Docker engine,
//! driven through the `docker` CLI.
//!
//! The image is built beforehand (`ci/container-test.sh` does it all) and named
//! by `SELFHEAL_IMAGE` (default `selfheal:test`). Every test owns its
//! container, volume and host port (Docker picks a free loopback port) and
//! removes them on drop; a failing test prints `docker logs`. An unreachable
//! engine or a missing image fails the tests: they never skip.
//!
//! Run: `ci/container-test.sh`, or, with the image built,
//! `cargo test --test container -- --test-threads 2`.

#[path = "../common/mod.rs"]
mod common;
mod harness;
mod healing;
mod http;
mod init;
mod lifecycle;
mod serving;
