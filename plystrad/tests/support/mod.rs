//! Shared pieces of plystrad's end-to-end tests.

pub mod audit_writer;
