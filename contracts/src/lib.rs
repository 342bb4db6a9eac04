//! The contracts every Plystra crate shares: capability manifests and registration, the lifecycle
//! trait, the service traits through which capabilities use each other, and the HTTP error and
//! envelope types.
//!
//! The kernel depends on this crate only; capabilities depend on it and never on each other.

pub mod body;
pub mod entity;
pub mod envelope;
pub mod error;
pub mod events;
pub mod facts;
pub mod feed;
pub mod ids;
pub mod input;
pub mod lifecycle;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod not_blank;
pub mod pagination;
pub mod registration;
pub mod schema;
pub mod security;
pub mod services;
pub mod storage;
pub mod text_rows;

pub use envelope::{Envelope, ListEnvelope, Pagination};
pub use error::{ApiError, ErrorCode};
pub use lifecycle::{Capability, CapabilityError, CapabilityState, Health};
pub use manifest::{
    Access, BusinessPluginSpec, CapabilityKind, CapabilityManifest, ErrorBody, Events, Migrations,
    Provides, Requires, RouteDecl, RouteMethod, Setting, Stability,
};
pub use registration::{Registration, RouteApi, RouteSet};
pub use services::{Decision, DenyCode, ServiceError, ServiceRegistry};

/// The version of the kernel API this crate describes; manifests' `requires.kernel` is matched
/// against it.
pub const KERNEL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Re-exports the macros need. Capability crates do not depend on these crates directly.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use linkme;
    pub use poem;
    pub use poem_openapi;
}
