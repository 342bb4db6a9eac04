//! The audit capability's integration tests in one binary: the hash chain under concurrency and
//! at shutdown, the content-hash rule, and the streamed export, on the selected backend.

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

mod chain;
mod content_hash;
mod export;
