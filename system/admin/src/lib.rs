//! admin.control_plane: API keys, admin grants, management API protection, the bootstrap handoff
//! and admin audit.
//!
//! This crate registers the capability and serves the permission-key catalog. Keys, grants and
//! per-route permissions arrive with the admin issue; until then the kernel protects every
//! non-public route with the bootstrap key.

pub mod api_key;
pub mod permission;

use std::sync::Arc;

use plystra_contracts::{
    ApiError, Capability, CapabilityError, CapabilityManifest, Envelope, Events, Migrations,
    Provides, Requires, RouteApi, RouteDecl, RouteMethod, ServiceError, ServiceRegistry,
    declare_event,
};
use plystra_privileged::{SystemCapabilitySpec, register_system_capability, system_manifest};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

/// The capability ID.
pub const ID: &str = "admin.control_plane";
/// The service this capability provides.
pub const SERVICE: &str = "admin.service";

/// The manifest.
pub const MANIFEST: CapabilityManifest = system_manifest(SystemCapabilitySpec {
    id: ID,
    name: "Admin control plane",
    version: "0.0.1",
    requires: Requires {
        kernel: "^0.0.1",
        capabilities: &[
            "identity.business",
            "authorization.resource",
            "audit.explainable",
        ],
    },
    provides: Provides {
        services: &[SERVICE],
        routes: &[RouteDecl::new(
            RouteMethod::Get,
            "/api/v1/admin/permission-keys",
            SERVICE,
            "listPermissionKeys",
        )
        .permission("admin_grants:read")],
        events: Events {
            publishes: &["admin.action_authorized"],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_admin"),
        },
    },
});

declare_event!(ADMIN_ACTION_AUTHORIZED, name: "admin.action_authorized", publisher: ID,
    description: "A management call passed its permission check.");

/// The permission keys that protect management operations, with what each allows.
pub const PERMISSION_KEYS: &[(&str, &str)] = &[
    (
        "*",
        "Everything (never granted to an API key as super admin).",
    ),
    ("users:read", "Read users."),
    ("users:manage", "Create, change, disable and restore users."),
    ("spaces:read", "Read spaces."),
    (
        "spaces:manage",
        "Create, change, disable and restore spaces.",
    ),
    ("groups:read", "Read groups."),
    ("groups:manage", "Create, change and disable groups."),
    ("members:read", "Read members."),
    ("members:manage", "Create, change and disable members."),
    ("user_members:read", "Read user-member bindings."),
    ("user_members:manage", "Create, change and revoke bindings."),
    ("roles:read", "Read roles and member-roles."),
    (
        "roles:manage",
        "Create, change and disable roles; grant and revoke member-roles.",
    ),
    ("permissions:read", "Read permissions and role-permissions."),
    (
        "permissions:manage",
        "Create, change and disable permissions; attach them to roles.",
    ),
    (
        "registry:read",
        "Read resource types, actions and mappings.",
    ),
    (
        "registry:manage",
        "Register resource types, actions and mappings.",
    ),
    ("resources:read", "Read resources."),
    ("resources:manage", "Create, change and archive resources."),
    ("audit:read", "Query and verify the audit log."),
    ("authz:check", "Call authz/check and authz/explain."),
    ("api_keys:read", "Read API keys."),
    (
        "api_keys:create",
        "Create API keys within the caller's own permissions.",
    ),
    ("api_keys:revoke", "Revoke API keys."),
    ("admin_grants:read", "Read admin grants."),
    (
        "admin_grants:manage",
        "Create and revoke admin grants (user sessions only).",
    ),
    (
        "instance:read",
        "Read the console overview and the caller's own admin profile.",
    ),
    ("capabilities:read", "List the linked capabilities."),
    ("metrics:read", "Read Prometheus metrics."),
];

/// One permission key.
#[derive(Debug, Clone, Object)]
pub struct PermissionKey {
    /// The key, `domain:action` or `*`.
    pub key: String,
    /// What it allows.
    pub description: String,
}

/// Admin vocabulary.
#[derive(Debug, Clone, Object)]
pub struct AdminVocabulary {
    /// Every permission key.
    pub permission_keys: Vec<PermissionKey>,
    /// Admin grant levels, broadest first.
    pub admin_levels: Vec<String>,
    /// API key levels, broadest first.
    pub api_key_levels: Vec<String>,
}

/// The admin capability's service: for now, its vocabulary.
#[derive(Debug, Default)]
pub struct AdminService;

impl AdminService {
    /// The vocabulary.
    pub fn vocabulary(&self) -> AdminVocabulary {
        AdminVocabulary {
            permission_keys: PERMISSION_KEYS
                .iter()
                .map(|(key, description)| PermissionKey {
                    key: (*key).to_owned(),
                    description: (*description).to_owned(),
                })
                .collect(),
            admin_levels: [
                "instance_super_admin",
                "instance_admin",
                "space_admin",
                "group_admin",
            ]
            .map(str::to_owned)
            .to_vec(),
            api_key_levels: ["instance", "space", "group"].map(str::to_owned).to_vec(),
        }
    }
}

/// The lifecycle.
#[derive(Debug, Default)]
pub struct AdminCapability;

impl Capability for AdminCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        services.provide::<AdminService>(SERVICE, Arc::new(AdminService))?;
        Ok(())
    }
}

#[derive(Tags)]
enum AdminTag {
    /// Admin grants and the control plane.
    Admin,
}

/// The admin routes.
pub struct AdminApi {
    service: Arc<AdminService>,
}

impl RouteApi for AdminApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            service: services.require::<AdminService>()?,
        })
    }
}

#[OpenApi(tag = "AdminTag::Admin")]
impl AdminApi {
    /// The permission keys that protect management operations, and the admin and API key levels.
    #[oai(
        path = "/api/v1/admin/permission-keys",
        method = "get",
        operation_id = "listPermissionKeys"
    )]
    async fn permission_keys(&self) -> Result<Json<Envelope<AdminVocabulary>>, ApiError> {
        Ok(Json(Envelope::new(self.service.vocabulary())))
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(AdminCapability)
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: AdminApi }

pub mod schema;
