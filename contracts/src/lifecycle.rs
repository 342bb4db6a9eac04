//! The lifecycle every capability follows, in the spirit of Caddy's modules:
//! init → register → start → health → stop.

use async_trait::async_trait;
use poem_openapi::Enum;
use serde::Serialize;

use crate::services::{ServiceError, ServiceRegistry};

/// Where a capability is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Enum)]
#[serde(rename_all = "snake_case")]
#[oai(rename_all = "snake_case")]
pub enum CapabilityState {
    /// Found among the linked registrations.
    Discovered,
    /// Its manifest passed every rule.
    Validated,
    /// Its migration namespace is registered.
    Migrated,
    /// Its services are in the service registry.
    Registered,
    /// Its start hook is running.
    Starting,
    /// Started and healthy.
    Ready,
    /// Started but reporting a problem; the runtime stays up.
    Degraded,
    /// A hook failed; see the reason.
    Failed,
    /// Stopped at shutdown.
    Stopped,
}

impl CapabilityState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Discovered => "discovered",
            Self::Validated => "validated",
            Self::Migrated => "migrated",
            Self::Registered => "registered",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// What a capability says about itself when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Healthy,
    /// Working with a problem, described.
    Degraded(String),
    /// Not working, with the reason.
    Unhealthy(String),
}

/// A lifecycle hook failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    /// A service it needs is missing or of the wrong type.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Its configuration is unusable.
    #[error("configuration: {0}")]
    Configuration(String),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// A capability's lifecycle. Every hook but `register` has a default that does nothing.
///
/// The kernel calls the hooks in dependency order (reverse order for `stop`). When `register`
/// runs, the services of every capability this one depends on are already in the registry.
#[async_trait]
pub trait Capability: Send + Sync + 'static {
    /// Prepares the capability (Caddy's provision). The registry holds the kernel's services.
    async fn init(&self, _services: &ServiceRegistry) -> Result<(), CapabilityError> {
        Ok(())
    }

    /// Provides this capability's services and takes the ones it needs from its dependencies.
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError>;

    /// Starts background work. Called once every capability has registered.
    async fn start(&self, _services: &ServiceRegistry) -> Result<(), CapabilityError> {
        Ok(())
    }

    /// Reports health; readiness requires every required capability to be healthy.
    async fn health(&self) -> Health {
        Health::Healthy
    }

    /// Stops background work. Called in reverse dependency order at shutdown.
    async fn stop(&self) -> Result<(), CapabilityError> {
        Ok(())
    }
}
