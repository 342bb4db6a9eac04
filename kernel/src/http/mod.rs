//! The kernel's HTTP side: one OpenAPI document and one application assembled from every
//! registered route set, behind one request pipeline.

pub mod assembly;
pub mod auth;
mod document;
pub mod kernel_api;
pub mod metrics;
pub mod operations;
pub mod pipeline;
pub mod request_guard;

pub use assembly::{PUBLIC_OPERATIONS, openapi_json, openapi_yaml};
