//! End-to-end tests of the `commitments` binary: every command on the seed story, bad input
//! with its exit code and an unchanged store, the store lock, `replay --follow` beside writers,
//! concurrency conflicts, time travel, and an import killed at random moments.

#![allow(clippy::unwrap_used)]

mod bad_input;
mod common;
mod concurrency;
mod crash;
mod import;
mod read;
mod store;
