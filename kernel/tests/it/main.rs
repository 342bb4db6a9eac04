//! The kernel's integration tests in one binary: boot and manifest rules, the HTTP pipeline, the
//! change feed, and the storage layer's constraints and migrations; `support` holds the test
//! capabilities they boot.

mod support;

mod boot;
mod feed;
mod http;
mod storage_constraints;
mod storage_migrations;
