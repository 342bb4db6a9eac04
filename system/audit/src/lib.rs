//! audit.explainable: audit writes and queries, decision traces and privacy-aware snapshots.
//!
//! Records reach the log through `AuditRecorder` (see `service`): redacted by one policy, appended
//! to a SHA-256 hash chain, made durable by a group-commit writer or inside the caller's own
//! transaction. The routes (see `api`) query and verify the log; nothing changes a record.

pub mod api;
pub mod catalog;
pub mod chain;
pub mod export;
pub mod redaction;
pub mod schema;
pub mod service;
pub mod store;
pub mod writer;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use plystra_contracts::services::{AuditRecorder, RuntimeInfo};
use plystra_contracts::storage::Database;
use plystra_contracts::{
    Capability, CapabilityError, CapabilityManifest, Events, Health, Migrations, Provides,
    Requires, RouteDecl, ServiceRegistry, Setting, declare_event,
};
use plystra_privileged::{SystemCapabilitySpec, register_system_capability, system_manifest};

use crate::service::{AuditService, AuditSettings};

/// The capability ID.
pub const ID: &str = "audit.explainable";
/// The service this capability provides.
pub const SERVICE: &str = "audit.service";

/// The manifest.
pub const MANIFEST: CapabilityManifest = system_manifest(SystemCapabilitySpec {
    id: ID,
    name: "Explainable audit",
    version: "0.0.1",
    requires: Requires {
        kernel: "^0.0.1",
        capabilities: &[],
    },
    provides: Provides {
        services: &[SERVICE],
        routes: &[
            RouteDecl::operation("listAuditLogs").permission("audit:read"),
            RouteDecl::operation("getAuditLog").permission("audit:read"),
            RouteDecl::operation("listSpaceAuditLogs").permission("audit:read"),
            RouteDecl::operation("getSpaceAuditLog").permission("audit:read"),
            RouteDecl::operation("verifyAuditChain").permission("audit:read"),
            RouteDecl::operation("exportAuditLog").permission("audit:read"),
            RouteDecl::operation("listAuditEventTypes").permission("audit:read"),
        ],
        events: Events {
            publishes: &["audit.event_recorded"],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_audit"),
        },
        settings: &[
            Setting {
                name: "PLYSTRA_AUDIT_WRITE_MODE",
                help: "which decisions are recorded before the answer: `always` (every one) or `deny_only`",
                default: "always",
            },
            Setting {
                name: "PLYSTRA_AUDIT_HASH_KEY",
                help: "the key PII hashes in audit records are made with; keep it stable, or hashes of one value stop matching",
                default: "derived from PLYSTRA_API_KEY_SECRET; without that, random per process",
            },
            Setting {
                name: "PLYSTRA_AUDIT_PII_",
                help: "`_EMAIL`, `_PHONE`, `_USERNAME`, `_IP_ADDRESS`, `_USER_AGENT`: `keep`, `hash` or `drop` that field in audit records",
                default: "email, phone and username hashed",
            },
            Setting {
                name: "PLYSTRA_AUDIT_METADATA_ALLOWLIST",
                help: "comma list of metadata keys audit records keep in clear (the rest is redacted)",
                default: "none",
            },
        ],
    },
});

declare_event!(AUDIT_EVENT_RECORDED, name: "audit.event_recorded", publisher: ID,
    description: "An audit record became durable.");

/// How long a failed audit commit keeps the store reported as not writable, unless a later batch
/// commits first.
const RECENT_FAILURE: std::time::Duration = std::time::Duration::from_secs(5);

/// The lifecycle: init reads the settings and starts the writer; stop drains it.
#[derive(Debug, Default)]
pub struct AuditCapability {
    service: OnceLock<Arc<AuditService>>,
}

#[async_trait]
impl Capability for AuditCapability {
    async fn init(&self, services: &ServiceRegistry) -> Result<(), CapabilityError> {
        let db = services.require::<Database>().map_err(|_| {
            CapabilityError::Configuration(
                "the audit log needs a database (kernel.database)".to_owned(),
            )
        })?;
        let runtime = services.require::<dyn RuntimeInfo>()?;
        let settings = AuditSettings::from_runtime(runtime.as_ref())
            .map_err(CapabilityError::Configuration)?;
        let events = services
            .require::<dyn plystra_contracts::events::EventPublisher>()
            .ok();
        let service = AuditService::start_with_events((*db).clone(), settings, events);
        if let Ok(metrics) = services.require::<plystra_contracts::metrics::Metrics>() {
            service.writer().instrument(&metrics);
        }
        let _ = self.service.set(service);
        Ok(())
    }

    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        let service = self
            .service
            .get()
            .cloned()
            .ok_or_else(|| CapabilityError::Other("init did not run".to_owned()))?;
        services.provide::<dyn AuditRecorder>(SERVICE, service)?;
        Ok(())
    }

    async fn health(&self) -> Health {
        match self.service.get() {
            None => Health::Unhealthy("not initialised".to_owned()),
            Some(service) => {
                // The store must accept writes, not only answer: checks and changes fail closed
                // without it. A failed commit counts for a few seconds, for the faults a check
                // cannot see without writing (a full disk below SQLite's page limit).
                if let Err(e) = service.database().check_writable().await {
                    return if e.is_unavailable() {
                        Health::Unhealthy(format!("audit store unreachable: {e}"))
                    } else {
                        Health::Unhealthy(format!("audit store not writable: {e}"))
                    };
                }
                match service.writer().recent_failure(RECENT_FAILURE) {
                    Some(reason) => {
                        Health::Unhealthy(format!("audit store not writable: {reason}"))
                    }
                    None => Health::Healthy,
                }
            }
        }
    }

    async fn stop(&self) -> Result<(), CapabilityError> {
        if let Some(service) = self.service.get() {
            service.shutdown().await;
        }
        Ok(())
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(AuditCapability::default())
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: api::AuditApi }
