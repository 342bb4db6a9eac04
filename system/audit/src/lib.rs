//! audit.explainable: audit writes and queries, decision traces and privacy-aware snapshots.
//!
//! This crate registers the capability and serves its event-type catalog. The durable,
//! hash-chained log and its query API arrive with the audit issue.

pub mod chain;
pub mod redaction;

use plystra_contracts::{
    ApiError, Capability, CapabilityError, CapabilityManifest, Events, ListEnvelope, Migrations,
    Pagination, Provides, Requires, RouteApi, RouteDecl, RouteMethod, ServiceError,
    ServiceRegistry, declare_event,
};
use plystra_privileged::{SystemCapabilitySpec, register_system_capability, system_manifest};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use std::sync::Arc;

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
        routes: &[RouteDecl::new(
            RouteMethod::Get,
            "/api/v1/audit/event-types",
            SERVICE,
            "listAuditEventTypes",
        )],
        events: Events {
            publishes: &["audit.event_recorded"],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_audit"),
        },
    },
});

declare_event!(AUDIT_EVENT_RECORDED, name: "audit.event_recorded", publisher: ID,
    description: "An audit record became durable.");

/// The catalog of audit event types: (key, category, description).
pub const EVENT_TYPES: &[(&str, &str, &str)] = &[
    (
        "authz.decision",
        "authorization",
        "An authorization check or explain was decided.",
    ),
    ("users.create", "management", "A user was created."),
    ("users.update", "management", "A user was changed."),
    ("users.disable", "management", "A user was disabled."),
    ("users.restore", "management", "A user was restored."),
    ("spaces.create", "management", "A space was created."),
    ("spaces.update", "management", "A space was changed."),
    ("spaces.disable", "management", "A space was disabled."),
    ("spaces.restore", "management", "A space was restored."),
    ("groups.create", "management", "A group was created."),
    ("groups.update", "management", "A group was changed."),
    ("groups.disable", "management", "A group was disabled."),
    ("members.create", "management", "A member was created."),
    ("members.update", "management", "A member was changed."),
    ("members.disable", "management", "A member was disabled."),
    (
        "user_members.create",
        "management",
        "A user was bound to a member.",
    ),
    (
        "user_members.update",
        "management",
        "A binding was changed.",
    ),
    (
        "user_members.revoke",
        "management",
        "A binding was revoked.",
    ),
    ("roles.create", "management", "A role was created."),
    ("roles.update", "management", "A role was changed."),
    ("roles.disable", "management", "A role was disabled."),
    (
        "permissions.create",
        "management",
        "A permission was created.",
    ),
    (
        "permissions.update",
        "management",
        "A permission was changed.",
    ),
    (
        "permissions.disable",
        "management",
        "A permission was disabled.",
    ),
    (
        "role_permissions.create",
        "management",
        "A permission was granted to a role.",
    ),
    (
        "role_permissions.delete",
        "management",
        "A permission was taken from a role.",
    ),
    (
        "member_roles.create",
        "management",
        "A role was granted to a member.",
    ),
    (
        "member_roles.revoke",
        "management",
        "A role was revoked from a member.",
    ),
    (
        "resource_types.upsert",
        "management",
        "A resource type, action or mapping was registered.",
    ),
    ("resources.create", "management", "A resource was created."),
    ("resources.update", "management", "A resource was changed."),
    (
        "resources.archive",
        "management",
        "A resource was archived.",
    ),
    ("api_keys.create", "admin", "An API key was created."),
    ("api_keys.revoke", "admin", "An API key was revoked."),
    (
        "admin_grants.create",
        "admin",
        "An admin grant was created.",
    ),
    (
        "admin_grants.revoke",
        "admin",
        "An admin grant was revoked.",
    ),
    (
        "admin.bootstrap",
        "admin",
        "The first super admin was created.",
    ),
    (
        "admin.handoff",
        "admin",
        "The environment bootstrap key was retired in favour of managed credentials.",
    ),
    (
        "admin.permission_denied",
        "admin",
        "A management call was refused for lack of permission.",
    ),
];

/// One audit event type.
#[derive(Debug, Clone, Object)]
pub struct AuditEventType {
    /// The event type key, for example `users.create`.
    pub key: String,
    /// `authorization`, `management` or `admin`.
    pub category: String,
    /// What it records.
    pub description: String,
}

/// The audit capability's service: for now, its event catalog.
#[derive(Debug, Default)]
pub struct AuditService;

impl AuditService {
    /// Every event type, in catalog order.
    pub fn event_types(&self) -> Vec<AuditEventType> {
        EVENT_TYPES
            .iter()
            .map(|(key, category, description)| AuditEventType {
                key: (*key).to_owned(),
                category: (*category).to_owned(),
                description: (*description).to_owned(),
            })
            .collect()
    }
}

/// The lifecycle.
#[derive(Debug, Default)]
pub struct AuditCapability;

impl Capability for AuditCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        services.provide::<AuditService>(SERVICE, Arc::new(AuditService))?;
        Ok(())
    }
}

#[derive(Tags)]
enum AuditTag {
    /// The audit log.
    Audit,
}

/// The audit routes.
pub struct AuditApi {
    service: Arc<AuditService>,
}

impl RouteApi for AuditApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            service: services.require::<AuditService>()?,
        })
    }
}

#[OpenApi(tag = "AuditTag::Audit")]
impl AuditApi {
    /// The catalog of audit event types that records can carry in `event_type`.
    #[oai(
        path = "/api/v1/audit/event-types",
        method = "get",
        operation_id = "listAuditEventTypes"
    )]
    async fn event_types(&self) -> Result<Json<ListEnvelope<AuditEventType>>, ApiError> {
        let data = self.service.event_types();
        let limit = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Ok(Json(ListEnvelope::new(
            data,
            Pagination::single_page(limit),
        )))
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(AuditCapability)
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: AuditApi }

pub mod schema;
