//! The audit capability's integration tests in one binary: the hash chain under concurrency and
//! at shutdown, and the content-hash rule, on the selected backend.

mod chain;
mod content_hash;
