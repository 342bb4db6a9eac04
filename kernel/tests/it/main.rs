//! The kernel's integration tests in one binary: boot and manifest rules, the HTTP pipeline, the
//! change feed, and the storage layer's constraints and migrations; `support` holds the test
//! capabilities they boot.

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

mod support;

mod boot;
mod feed;
mod http;
mod storage_constraints;
mod storage_migrations;
