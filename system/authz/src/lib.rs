//! authorization.resource: roles, permissions, authz/check and authz/explain, the lookups
//! (`lookup`), deny codes, scopes and traces.
//!
//! This crate registers the capability, serves the deny codes and scopes with their meaning, and
//! manages grants: roles (`roles`), permissions (`permissions`), role-permissions
//! (`role_permissions`) and member-roles (`member_roles`). Every grant change is audited in its
//! own transaction and announced as `authorization.grants_changed`;
//! `grants::load_grant_facts_in_parts` reads the grants in force for the authorization index.

pub mod authzen;
pub mod boundary;
pub mod check;
pub mod grants;
pub mod limits;
pub mod lookup;
pub mod member_roles;
pub mod permissions;
pub mod role_permissions;
pub mod roles;
pub mod schema;
pub mod store;

use std::sync::Arc;

use plystra_contracts::facts::FactsPart;
use plystra_contracts::feed::{Change, FactsConsumer, FactsFeed};
use plystra_contracts::services::AuditRecorder;
use plystra_contracts::storage::Database;

pub use plystra_authz_core::{Scope, condition, engine, index};
pub use plystra_contracts::DenyCode;
use plystra_contracts::{
    ApiError, Capability, CapabilityError, CapabilityManifest, Envelope, Events, Migrations,
    Provides, Requires, RouteApi, RouteDecl, ServiceError, ServiceRegistry, Setting, declare_event,
};
use plystra_privileged::{SystemCapabilitySpec, register_system_capability, system_manifest};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

/// The capability ID.
pub const ID: &str = "authorization.resource";
/// The service this capability provides.
pub const SERVICE: &str = "authorization.service";
/// The `Authorizer` business plugins call before they act.
pub const CHECKS_SERVICE: &str = "authorization.checks";

/// Every route this capability serves.
pub const ROUTES: &[RouteDecl] = &[
    RouteDecl::operation("checkAuthorization").permission("authz:check"),
    RouteDecl::operation("checkAuthorizationBatch").permission("authz:check"),
    RouteDecl::operation("explainAuthorization").permission("authz:check"),
    RouteDecl::operation("listDenyCodes").permission("authz:check"),
    RouteDecl::operation("lookupResources").permission("authz:check"),
    RouteDecl::operation("lookupSubjects").permission("authz:check"),
    RouteDecl::operation("lookupActions").permission("authz:check"),
    RouteDecl::operation("authzenEvaluation")
        .permission("authz:check")
        .text_errors(),
    RouteDecl::operation("authzenEvaluations")
        .permission("authz:check")
        .text_errors(),
    RouteDecl::operation("authzenSubjectSearch")
        .permission("authz:check")
        .text_errors(),
    RouteDecl::operation("authzenResourceSearch")
        .permission("authz:check")
        .text_errors(),
    RouteDecl::operation("authzenActionSearch")
        .permission("authz:check")
        .text_errors(),
    // Public (the kernel's list): a gateway reads it before it holds a credential.
    RouteDecl::operation("authzenMetadata").text_errors(),
    RouteDecl::operation("listRoles").permission("roles:read"),
    RouteDecl::operation("createRole").permission("roles:manage"),
    RouteDecl::operation("getRole").permission("roles:read"),
    RouteDecl::operation("updateRole").permission("roles:manage"),
    RouteDecl::operation("disableRole").permission("roles:manage"),
    RouteDecl::operation("getRoleByID").permission("roles:read"),
    RouteDecl::operation("listPermissions").permission("permissions:read"),
    RouteDecl::operation("createPermission").permission("permissions:manage"),
    RouteDecl::operation("getPermission").permission("permissions:read"),
    RouteDecl::operation("updatePermission").permission("permissions:manage"),
    RouteDecl::operation("disablePermission").permission("permissions:manage"),
    RouteDecl::operation("listRolePermissions").permission("permissions:read"),
    RouteDecl::operation("createRolePermission").permission("permissions:manage"),
    RouteDecl::operation("getRolePermission").permission("permissions:read"),
    RouteDecl::operation("deleteRolePermission").permission("permissions:manage"),
    RouteDecl::operation("listMemberRoles").permission("roles:read"),
    RouteDecl::operation("createMemberRole").permission("roles:manage"),
    RouteDecl::operation("getMemberRole").permission("roles:read"),
    RouteDecl::operation("revokeMemberRole").permission("roles:manage"),
];

/// The manifest.
pub const MANIFEST: CapabilityManifest = system_manifest(SystemCapabilitySpec {
    id: ID,
    name: "Resource authorization",
    version: "0.0.1",
    requires: Requires {
        kernel: "^0.0.1",
        capabilities: &[
            "identity.business",
            "resource.registry",
            "audit.explainable",
        ],
    },
    provides: Provides {
        services: &[SERVICE, CHECKS_SERVICE],
        routes: ROUTES,
        events: Events {
            publishes: &[store::GRANTS_CHANGED],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_authz"),
        },
        settings: &[
            Setting {
                name: "PLYSTRA_AUTHZ_MAX_BATCH",
                help: "the most checks of one batch or evaluations of one AuthZEN `evaluations` call (1-10000)",
                default: "100",
            },
            Setting {
                name: "PLYSTRA_AUTHZ_MAX_PAGE",
                help: "the most results of one lookup or AuthZEN search page (1-10000)",
                default: "1000",
            },
            Setting {
                name: "PLYSTRA_PUBLIC_URL",
                help: "the server's public URL, named as the policy decision point in AuthZEN's metadata",
                default: "`http://` and the request's `Host`",
            },
            Setting {
                name: "PLYSTRA_SESSION_SECRET",
                help: "also keys the lookups' page cursors, so that a cursor holds across processes",
                default: "random per process in development",
            },
        ],
    },
});

declare_event!(AUTHORIZATION_GRANTS_CHANGED, name: "authorization.grants_changed", publisher: ID,
    description: "A role, permission, role-permission or member-role changed and the change is \
        committed. Payload: {kind: role|permission|role_permission|member_role, id, space_id}.");

/// Every deny code with its meaning.
pub const DENY_CODES: &[(DenyCode, &str)] = &[
    (
        DenyCode::ActorUserInactive,
        "The acting user is not active.",
    ),
    (
        DenyCode::ActorMemberInactive,
        "The acting member is not active.",
    ),
    (DenyCode::SpaceInactive, "The space is not active."),
    (
        DenyCode::UserMemberRevoked,
        "The user-member binding is revoked.",
    ),
    (
        DenyCode::UserMemberExpired,
        "The user-member binding is past its expiry.",
    ),
    (
        DenyCode::CrossSpaceViolation,
        "The actor, the target, its group or a grant belong to different spaces.",
    ),
    (
        DenyCode::NoMatchingPermission,
        "No grant covers this resource type and action.",
    ),
    (
        DenyCode::ScopeAnchorMissing,
        "A grant's scope needs an anchor group that is missing.",
    ),
    (
        DenyCode::TargetGroupMissing,
        "A grant's scope needs the target's group, which is missing.",
    ),
    (
        DenyCode::ScopeOutOfBounds,
        "Grants exist, but none of their scopes covers the target.",
    ),
    (
        DenyCode::GlobalScopeDisabled,
        "A grant uses the global scope, which always denies.",
    ),
    (
        DenyCode::InvalidResourceType,
        "The resource type is not registered.",
    ),
    (
        DenyCode::InvalidResourceAction,
        "The action is not registered for the resource type.",
    ),
    (
        DenyCode::ConditionNotMet,
        "Plystra's, not upstream's: a grant's scope covers the target, but its permission's condition was not met (or could not be evaluated), and no other grant allows.",
    ),
];

/// One deny code.
#[derive(Debug, Clone, Object)]
pub struct DenyCodeInfo {
    /// The code.
    pub code: DenyCode,
    /// What it means.
    pub description: String,
}

/// Deny codes and scopes.
#[derive(Debug, Clone, Object)]
pub struct AuthorizationVocabulary {
    /// Every deny code a check can answer with.
    pub deny_codes: Vec<DenyCodeInfo>,
    /// Every scope a permission can have.
    pub scopes: Vec<Scope>,
}

/// Where the index loads from: identity, the registry and this capability's grant tables.
pub struct IndexSources {
    /// The grant tables.
    pub db: Database,
    /// identity.business.
    pub actors: Arc<dyn plystra_contracts::services::ActorResolver>,
    /// resource.registry.
    pub lookup: Arc<dyn plystra_contracts::services::ResourceLookup>,
}

/// The authorization capability's service: its vocabulary, and its index with what loads it.
#[derive(Default)]
pub struct AuthorizationService {
    /// The in-memory index checks decide on.
    pub index: Arc<index::AuthzIndex>,
    sources: Option<IndexSources>,
    /// The change feed the index follows (the kernel's follower); `None` without a database.
    feed: Option<Arc<dyn FactsFeed>>,
    /// How much one batch or page may ask for.
    pub limits: limits::Limits,
}

impl std::fmt::Debug for AuthorizationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationService")
            .field("index", &self.index)
            .field("sources", &self.sources.is_some())
            .field("feed", &self.feed.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

impl AuthorizationService {
    /// The vocabulary.
    pub fn vocabulary(&self) -> AuthorizationVocabulary {
        AuthorizationVocabulary {
            deny_codes: DENY_CODES
                .iter()
                .map(|(code, description)| DenyCodeInfo {
                    code: *code,
                    description: (*description).to_owned(),
                })
                .collect(),
            scopes: Scope::ALL.to_vec(),
        }
    }

    /// The snapshot to decide on. With `at_least` (a consistency token) it first waits, at most
    /// the consistency wait, until the feed revision is applied here. Fails closed: 503
    /// `NOT_READY` before the index is loaded, `FACTS_NOT_CURRENT` when this process cannot
    /// confirm it follows the feed within the staleness bound, `REVISION_NOT_REACHED` when the
    /// token's revision is not reached in time; 409 `REVISION_NOT_ISSUED` for a token past the
    /// database's newest revision.
    pub async fn snapshot(&self, at_least: Option<u64>) -> Result<Arc<index::Snapshot>, ApiError> {
        let Some(feed) = &self.feed else {
            return Err(ApiError::new(
                plystra_contracts::ErrorCode::NotReady,
                "the authorization index has no database to follow",
            ));
        };
        if let Some(revision) = at_least {
            feed.wait_for(revision).await?;
        }
        feed.current()?;
        self.index
            .snapshot()
            .map_err(|e| ApiError::new(plystra_contracts::ErrorCode::NotReady, e.to_string()))
    }

    /// Builds the index a full load installs, at feed revision `revision`: reads identity, the
    /// registry and the grant store at once (each on its own connections) and hands each
    /// source's facts, as soon as it has them (the registry's resources in parts, as they are
    /// read), to a builder thread that applies them (the facts may arrive in any order; see
    /// `Snapshot::empty_at`). So the build overlaps the slower reads, and the index's
    /// long-lived allocations are made on a thread of their own, apart from the rows and texts
    /// the reads decode and drop.
    async fn build(&self, revision: u64) -> Result<Built, String> {
        let Some(sources) = &self.sources else {
            return Err("no database, identity or registry service".to_owned());
        };
        let started = std::time::Instant::now();
        let (to_builder, arrived) = std::sync::mpsc::channel::<FactsPart>();
        let builder = tokio::task::spawn_blocking(move || {
            let mut next = index::Snapshot::empty_at(revision);
            let mut facts = 0;
            for part in arrived {
                facts += part.len();
                match part {
                    FactsPart::Facts(batch) => {
                        next.apply_all(batch.iter().filter_map(boundary::lend));
                        // Freeing a batch's texts is a tenth of the build: another core does it.
                        drop(tokio::task::spawn_blocking(move || drop(batch)));
                    }
                    // A few buffers: freed here.
                    FactsPart::Resources(rows) => {
                        next.reserve_resources(rows.len());
                        next.apply_all(rows.iter().map(boundary::lend_resource));
                    }
                }
            }
            (next, facts)
        });
        // Each source hands its facts over part by part, as it reads them, and says when it is
        // done. The builder only stops early if it panicked, which the join below reports.
        let send = |part: FactsPart| {
            let _ = to_builder.send(part);
        };
        let read = |source: &'static str, facts: usize| {
            tracing::debug!(
                source,
                facts,
                ms = started.elapsed().as_millis() as u64,
                "authorization facts read"
            );
        };
        // Identity's tables, one at a time, each as soon as it is read.
        let identity = async {
            let mut facts = 0;
            sources
                .actors
                .facts_in_parts(&mut |part| {
                    facts += part.len();
                    send(FactsPart::Facts(part));
                })
                .await
                .map_err(|e| format!("cannot load identity facts: {e}"))?;
            read("identity", facts);
            Ok::<_, String>(())
        };
        // The registry's types and actions, then its resources a bulk chunk at a time.
        let registry = async {
            let mut facts = 0;
            sources
                .lookup
                .facts_in_parts(&mut |part| {
                    facts += part.len();
                    send(part);
                })
                .await
                .map_err(|e| format!("cannot load registry facts: {e}"))?;
            read("registry", facts);
            Ok(())
        };
        // The roles and permissions, then the member-roles a bulk chunk at a time.
        let grants = async {
            let mut facts = 0;
            grants::load_grant_facts_in_parts(&sources.db, &mut |part| {
                facts += part.len();
                send(FactsPart::Facts(part));
            })
            .await
            .map_err(|e| format!("cannot load grants: {e}"))?;
            read("grants", facts);
            Ok(())
        };
        let loaded = futures_util::future::try_join3(identity, registry, grants).await;
        let read_ms = started.elapsed().as_millis() as u64;
        // Ends the builder's loop; after a failed read its partial snapshot is dropped.
        drop(to_builder);
        let (snapshot, facts) = builder
            .await
            .map_err(|e| format!("the index builder failed: {e}"))?;
        loaded?;
        Ok(Built {
            snapshot,
            facts,
            read_ms,
            total_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// A full load's index, and what it took.
struct Built {
    snapshot: index::Snapshot,
    facts: usize,
    /// Until the last source was read.
    read_ms: u64,
    /// Until the index was built (the builder finishes what arrived last after `read_ms`).
    total_ms: u64,
}

#[async_trait::async_trait]
impl FactsConsumer for AuthorizationService {
    async fn load(&self, revision: u64) -> Result<(), String> {
        match self.build(revision).await {
            Ok(built) => {
                self.index.install_snapshot(built.snapshot);
                tracing::info!(
                    facts = built.facts,
                    revision,
                    read_ms = built.read_ms,
                    build_ms = built.total_ms - built.read_ms,
                    "authorization index loaded"
                );
                Ok(())
            }
            Err(e) => {
                self.index.load_failed(e.clone());
                Err(e)
            }
        }
    }

    fn apply(&self, change: &Change) {
        self.index.apply(
            change.revision,
            change.facts.iter().filter_map(boundary::lend),
        );
    }
}

/// The lifecycle: the index is created at `register` and handed to the kernel's change-feed
/// follower, which loads it and keeps it current.
#[derive(Debug, Default)]
pub struct AuthorizationCapability {
    service: std::sync::OnceLock<Arc<AuthorizationService>>,
}

#[async_trait::async_trait]
impl Capability for AuthorizationCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        let index = Arc::new(index::AuthzIndex::new());
        let sources = match (
            services.require::<Database>(),
            services.require::<dyn plystra_contracts::services::ActorResolver>(),
            services.require::<dyn plystra_contracts::services::ResourceLookup>(),
        ) {
            (Ok(db), Ok(actors), Ok(lookup)) => Some(IndexSources {
                db: (*db).clone(),
                actors,
                lookup,
            }),
            _ => None,
        };
        let feed = services.require::<dyn FactsFeed>().ok();
        let limits = match services.require::<dyn plystra_contracts::services::RuntimeInfo>() {
            Ok(runtime) => limits::Limits::from_settings(|name| runtime.setting(name))?,
            Err(_) => limits::Limits::default(),
        };
        let service = Arc::new(AuthorizationService {
            index,
            sources,
            feed: feed.clone(),
            limits,
        });
        if let Some(feed) = &feed {
            feed.follow(service.clone());
        }
        let _ = self.service.set(service.clone());
        services.provide::<AuthorizationService>(SERVICE, service.clone())?;
        if let Ok(audit) = services.require::<dyn AuditRecorder>() {
            let decisions = check::Decisions::in_registry(services);
            services.provide::<dyn plystra_contracts::services::Authorizer>(
                CHECKS_SERVICE,
                Arc::new(check::Decider {
                    service,
                    audit,
                    decisions,
                }),
            )?;
        }
        Ok(())
    }

    async fn health(&self) -> plystra_contracts::Health {
        let Some(service) = self.service.get() else {
            return plystra_contracts::Health::Unhealthy("not registered".to_owned());
        };
        if let Some(feed) = &service.feed {
            feed.refresh().await;
        }
        match service.snapshot(None).await {
            Ok(_) => plystra_contracts::Health::Healthy,
            Err(e) => plystra_contracts::Health::Degraded(e.message),
        }
    }
}

#[derive(Tags)]
enum AuthorizationTag {
    /// Checks, explanations and their vocabulary.
    Authorization,
}

/// The operation groups of the grant routes.
#[derive(Tags)]
pub(crate) enum GrantsTag {
    /// Roles: named bundles of permissions, local to a space.
    Roles,
    /// Permissions: an action on a resource type within a scope.
    Permissions,
    /// Role-permissions: the permissions each role holds.
    RolePermissions,
    /// Member-roles: the roles each member holds, with their anchor groups.
    MemberRoles,
}

/// The deny-code route.
pub struct VocabularyApi {
    service: Arc<AuthorizationService>,
}

#[OpenApi(tag = "AuthorizationTag::Authorization")]
impl VocabularyApi {
    /// The deny codes a check can answer with (upstream's 13, then Plystra's
    /// `CONDITION_NOT_MET`), and the scopes a permission can have.
    #[oai(
        path = "/api/v1/authz/deny-codes",
        method = "get",
        operation_id = "listDenyCodes"
    )]
    async fn deny_codes(&self) -> Result<Json<Envelope<AuthorizationVocabulary>>, ApiError> {
        Ok(Json(Envelope::new(self.service.vocabulary())))
    }
}

type Apis = (
    VocabularyApi,
    check::CheckApi,
    lookup::LookupApi,
    authzen::AuthzenApi,
    roles::RolesApi,
    permissions::PermissionsApi,
    role_permissions::RolePermissionsApi,
    member_roles::MemberRolesApi,
);

plystra_contracts::route_set! {
    /// Every authorization route group, served as one route set.
    pub struct AuthorizationApi(Apis);
}

impl RouteApi for AuthorizationApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        let ctx = Arc::new(store::Ctx {
            db: (*services.require::<Database>()?).clone(),
            audit: services.require::<dyn AuditRecorder>()?,
            events: services.require::<dyn plystra_contracts::events::EventPublisher>()?,
            feed: services.require::<dyn FactsFeed>().ok(),
        });
        let decider = Arc::new(check::Decider {
            service: services.require::<AuthorizationService>()?,
            audit: services.require::<dyn AuditRecorder>()?,
            decisions: check::Decisions::in_registry(services),
        });
        let runtime = services.require::<dyn plystra_contracts::services::RuntimeInfo>()?;
        let cursors = lookup::CursorKey::from_runtime(&*runtime);
        Ok(Self((
            VocabularyApi {
                service: services.require::<AuthorizationService>()?,
            },
            check::CheckApi {
                decider: decider.clone(),
            },
            lookup::LookupApi {
                service: services.require::<AuthorizationService>()?,
                audit: services.require::<dyn AuditRecorder>()?,
                cursors: cursors.clone(),
            },
            authzen::AuthzenApi {
                decider,
                audit: services.require::<dyn AuditRecorder>()?,
                cursors,
                public_url: runtime
                    .setting("PLYSTRA_PUBLIC_URL")
                    .filter(|u| !u.trim().is_empty()),
            },
            roles::RolesApi { ctx: ctx.clone() },
            permissions::PermissionsApi { ctx: ctx.clone() },
            role_permissions::RolePermissionsApi { ctx: ctx.clone() },
            member_roles::MemberRolesApi { ctx },
        )))
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(AuthorizationCapability::default())
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: AuthorizationApi }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deny_code_is_described_once_in_order() {
        let described: Vec<DenyCode> = DENY_CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(described, DenyCode::ALL);
    }

    #[test]
    fn scopes_round_trip_through_their_stored_form() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            assert_eq!(
                poem_openapi::types::ToJSON::to_json(&scope),
                Some(serde_json::Value::String(scope.as_str().into()))
            );
        }
        assert_eq!(Scope::parse("tree"), None);
    }

    #[test]
    fn the_manifest_declares_exactly_the_served_operations() {
        let served: Vec<&str> = AuthorizationApi::meta()
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
}
