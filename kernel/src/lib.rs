//! The Plystra kernel: a plugin host with compile-time registration.
//!
//! It discovers the capabilities linked into the binary, validates their manifests, orders them
//! by their dependency graph, runs their lifecycle and serves their route sets as one OpenAPI
//! document behind one request pipeline. It owns no business semantics and depends on
//! `plystra-contracts` only.

pub mod config;
pub mod config_guards;
pub mod events;
pub mod feed;
pub mod graph;
pub mod http;
pub mod runtime;
pub mod settings;
pub mod storage;
pub mod validation;

pub use config::{BuildInfo, Environment, KernelConfig};
pub use runtime::{BootError, Booted, CapabilitySource, Runtime, boot, resolve};
