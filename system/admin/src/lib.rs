//! admin.control_plane: API keys, admin grants, management API protection, the bootstrap handoff
//! and admin audit.
//!
//! It provides the `AdminAuthorizer` the kernel consults for every management operation
//! (`admin.service`), the `ApiKeyVerifier` for managed keys (`admin.api_keys`), and serves the
//! API key, admin grant, `admin/me`, console and permission-key routes. `plystractl admin` uses
//! [`bootstrap`] for the first super admin and headless keys.

pub mod api_key;
pub mod bootstrap;
pub mod console;
pub mod core;
pub(crate) mod credentials;
pub mod grants;
pub mod keys;
pub mod level_rules;
pub mod permission;
pub mod scope;
pub mod store;

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use plystra_contracts::services::{
    ActorResolver, AdminAuthorizer, ApiKeyVerifier, AuditRecorder, CapabilityStates, RuntimeInfo,
};
use plystra_contracts::storage::Database;
use plystra_contracts::{
    ApiError, Capability, CapabilityError, CapabilityManifest, Envelope, Events, Migrations,
    Provides, Requires, RouteApi, RouteDecl, ServiceError, ServiceRegistry, Setting, declare_event,
};
use plystra_privileged::{SystemCapabilitySpec, register_system_capability, system_manifest};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use crate::core::Admin;

/// The capability ID.
pub const ID: &str = "admin.control_plane";
/// The admin authorizer (`dyn AdminAuthorizer`).
pub const SERVICE: &str = "admin.service";
/// The API key verifier (`dyn ApiKeyVerifier`).
pub const API_KEYS_SERVICE: &str = "admin.api_keys";
/// The control plane itself, for its routes.
pub const CONTROL_SERVICE: &str = "admin.control";

/// Every route this capability serves, with its permission key.
pub const ROUTES: &[RouteDecl] = &[
    RouteDecl::operation("listPermissionKeys").permission("admin_grants:read"),
    RouteDecl::operation("listApiKeys").permission("api_keys:read"),
    RouteDecl::operation("createApiKey").permission("api_keys:create"),
    RouteDecl::operation("getApiKey").permission("api_keys:read"),
    RouteDecl::operation("revokeApiKey").permission("api_keys:revoke"),
    RouteDecl::operation("getAdminMe").permission("instance:read"),
    RouteDecl::operation("listAdminGrants").permission("admin_grants:read"),
    RouteDecl::operation("createAdminGrant").permission("admin_grants:manage"),
    RouteDecl::operation("getAdminGrant").permission("admin_grants:read"),
    RouteDecl::operation("revokeAdminGrant").permission("admin_grants:manage"),
    RouteDecl::operation("getConsoleOverview").permission("instance:read"),
];

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
        services: &[SERVICE, API_KEYS_SERVICE, CONTROL_SERVICE],
        routes: ROUTES,
        events: Events {
            publishes: &["admin.action_authorized"],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_admin"),
        },
        settings: &[
            Setting {
                name: "PLYSTRA_API_KEY_SECRET",
                help: "the key managed API keys are hashed with (required in production)",
                default: "random per process in development",
            },
            Setting {
                name: "PLYSTRA_API_KEY_SECRET_PREVIOUS",
                help: "comma list of earlier API-key secrets still accepted during a rotation",
                default: "none",
            },
            Setting {
                name: "PLYSTRA_API_KEY_PERMISSIONS",
                help: "comma list of the permissions the bootstrap key holds (read at start)",
                default: "upstream's kernel list, mapped",
            },
            Setting {
                name: "PLYSTRA_API_KEY_LAST_USED_FLUSH_SECONDS",
                help: "how often a key's last use is written",
                default: "30",
            },
        ],
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

/// The admin vocabulary.
pub fn vocabulary() -> AdminVocabulary {
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

/// How often coalesced `last_used_at` times are written, unless
/// `PLYSTRA_API_KEY_LAST_USED_FLUSH_SECONDS` says otherwise.
pub const DEFAULT_FLUSH_SECONDS: u64 = 30;

/// The lifecycle.
#[derive(Debug, Default)]
pub struct AdminCapability {
    admin: OnceLock<Arc<Admin>>,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    flush_every: OnceLock<std::time::Duration>,
}

/// The key secrets from `PLYSTRA_API_KEY_SECRET` and `PLYSTRA_API_KEY_SECRET_PREVIOUS`. Without a
/// primary secret, production turns managed API keys off (none verifies, creating one answers
/// 503; the production guards normally stop such a start earlier); development uses a random one
/// for this process (keys then stop verifying at restart) and says so.
pub fn key_secrets(runtime: &dyn RuntimeInfo) -> Option<api_key::KeySecrets> {
    let previous = runtime
        .setting("PLYSTRA_API_KEY_SECRET_PREVIOUS")
        .unwrap_or_default();
    match runtime
        .setting("PLYSTRA_API_KEY_SECRET")
        .filter(|s| !s.is_empty())
    {
        Some(primary) => Some(api_key::KeySecrets::new(&primary, &previous)),
        None if runtime.production() => {
            tracing::error!(
                "PLYSTRA_API_KEY_SECRET is not set in production: managed API keys are off (none is accepted; creating one answers 503)"
            );
            None
        }
        None => {
            tracing::warn!(
                "no PLYSTRA_API_KEY_SECRET: managed API keys are hashed under a random secret and stop working at restart"
            );
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            Some(api_key::KeySecrets::new(&hex::encode(bytes), &previous))
        }
    }
}

#[async_trait]
impl Capability for AdminCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        let db = services.require::<Database>().map_err(|_| {
            CapabilityError::Configuration(
                "admin.control_plane needs a database (kernel.database); configure PLYSTRA_DATABASE_URL"
                    .into(),
            )
        })?;
        let runtime = services.require::<dyn RuntimeInfo>()?;
        let bootstrap =
            core::bootstrap_permissions(runtime.setting("PLYSTRA_API_KEY_PERMISSIONS").as_deref())
                .map_err(|e| {
                    CapabilityError::Configuration(format!("PLYSTRA_API_KEY_PERMISSIONS: {e}"))
                })?;
        let flush = match runtime.setting("PLYSTRA_API_KEY_LAST_USED_FLUSH_SECONDS") {
            None => DEFAULT_FLUSH_SECONDS,
            Some(v) => v.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                CapabilityError::Configuration(format!(
                    "PLYSTRA_API_KEY_LAST_USED_FLUSH_SECONDS={v:?} must be a positive number of seconds"
                ))
            })?,
        };
        let _ = self.flush_every.set(std::time::Duration::from_secs(flush));
        let feed = services
            .require::<dyn plystra_contracts::feed::FactsFeed>()
            .ok();
        let admin = Arc::new(Admin::new(
            (*db).clone(),
            key_secrets(runtime.as_ref()),
            bootstrap,
            runtime.production(),
            services.require::<dyn ActorResolver>()?,
            services.require::<dyn AuditRecorder>()?,
            services
                .require::<dyn plystra_contracts::events::EventPublisher>()
                .ok(),
            feed.clone(),
        ));
        // The credentials follow the change feed, loaded with the authorization index.
        if let Some(feed) = &feed {
            feed.follow(admin.credentials.clone());
        }
        let _ = self.admin.set(admin.clone());
        services.provide::<dyn AdminAuthorizer>(SERVICE, admin.clone())?;
        services.provide::<dyn ApiKeyVerifier>(API_KEYS_SERVICE, admin.clone())?;
        services.provide::<Admin>(CONTROL_SERVICE, admin)?;
        Ok(())
    }

    async fn start(&self, _services: &ServiceRegistry) -> Result<(), CapabilityError> {
        let Some(admin) = self.admin.get().cloned() else {
            return Ok(());
        };
        let every = self
            .flush_every
            .get()
            .copied()
            .unwrap_or(std::time::Duration::from_secs(DEFAULT_FLUSH_SECONDS));
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = admin.flush_last_used().await {
                    tracing::warn!(error = %e, "cannot write API key last-use times; retrying");
                }
            }
        });
        *self.flusher.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(())
    }

    async fn stop(&self) -> Result<(), CapabilityError> {
        if let Some(task) = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
        if let Some(admin) = self.admin.get() {
            admin
                .flush_last_used()
                .await
                .map_err(|e| CapabilityError::Other(format!("flushing last-use times: {e}")))?;
        }
        Ok(())
    }
}

/// The operation groups of the document.
#[derive(Tags)]
pub(crate) enum AdminTag {
    /// API keys, admin grants and the control plane.
    Admin,
}

/// The vocabulary route.
pub struct VocabularyApi;

#[OpenApi(tag = "AdminTag::Admin")]
impl VocabularyApi {
    /// The permission keys that protect management operations, and the admin and API key levels.
    #[oai(
        path = "/api/v1/admin/permission-keys",
        method = "get",
        operation_id = "listPermissionKeys"
    )]
    async fn permission_keys(&self) -> Result<Json<Envelope<AdminVocabulary>>, ApiError> {
        Ok(Json(Envelope::new(vocabulary())))
    }
}

type Apis = (
    VocabularyApi,
    keys::KeysApi,
    grants::GrantsApi,
    console::ConsoleApi,
);

plystra_contracts::route_set! {
    /// Every admin route group, served as one route set.
    pub struct AdminApi(Apis);
}

impl RouteApi for AdminApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        let admin = services.require::<Admin>()?;
        Ok(Self((
            VocabularyApi,
            keys::KeysApi {
                admin: admin.clone(),
            },
            grants::GrantsApi {
                admin: admin.clone(),
            },
            console::ConsoleApi {
                admin,
                states: services.require::<dyn CapabilityStates>().ok(),
            },
        )))
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(AdminCapability::default())
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: AdminApi }

pub mod schema;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_declares_exactly_the_served_operations() {
        let served: Vec<&str> = AdminApi::meta()
            .into_iter()
            .flat_map(|api| api.paths)
            .flat_map(|path| path.operations)
            .map(|op| op.operation_id.unwrap_or_default())
            .collect();
        let served: std::collections::BTreeSet<_> = served.into_iter().collect();
        let declared: std::collections::BTreeSet<_> = ROUTES.iter().map(|r| r.operation).collect();
        assert_eq!(declared.len(), ROUTES.len(), "an operation declared twice");
        assert_eq!(served, declared);
    }

    #[test]
    fn every_declared_permission_is_a_listed_permission_key() {
        for route in ROUTES {
            if let plystra_contracts::Access::Admin {
                permission: Some(p),
            } = route.access
            {
                assert!(
                    PERMISSION_KEYS.iter().any(|(k, _)| *k == p),
                    "{p} is not listed"
                );
            }
        }
    }
}
