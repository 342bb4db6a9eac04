//! What plystrad's end-to-end tests share: the in-process app and its requests, the Finance
//! Reviewer fixture, the first super admin, the real server on a socket, real processes, and the audit-writing test plugin.

pub mod app;
pub mod audit_writer;
pub mod finance_reviewer;
pub mod identity_rows;
pub mod processes;
pub mod serve;
pub mod super_admin;
