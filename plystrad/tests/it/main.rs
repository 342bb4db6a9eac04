//! plystrad's end-to-end tests in one binary: the real router over a real database, real
//! processes over HTTP, one module per area; `support` holds what they share (the boot, the
//! requests, the logins, the test plugins and the Finance Reviewer fixture).

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

// Links the system capabilities, as the server binary does.
extern crate plystrad as _;

mod support;

mod admin;
mod audit;
mod audit_crash;
mod authz_check;
mod authz_conditions;
mod authz_grants;
mod authz_lookup;
mod authzen;
mod documented_rules;
mod http_protocol;
mod identity;
mod identity_input;
mod input_boundary;
mod logins;
mod observability;
mod registry;
mod replicas;
mod server;
mod storage_faults;
