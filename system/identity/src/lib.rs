//! identity.business: users, spaces, groups, members, user-members, sessions and actor context.
//!
//! It serves the upstream identity routes, provides actor resolution (`identity.service`) and
//! session verification (`identity.sessions`), and records every management change through the
//! audit service in the same transaction as the change.

use std::collections::BTreeMap;
use std::sync::Arc;

use plystra_contracts::events::EventPublisher;
use plystra_contracts::services::{ActorResolver, AuditRecorder, RuntimeInfo, SessionVerifier};
use plystra_contracts::storage::Database;
use plystra_contracts::{
    ApiError, Capability, CapabilityError, CapabilityManifest, Envelope, Events, Migrations,
    Provides, Requires, RouteApi, RouteDecl, ServiceError, ServiceRegistry, Setting, declare_event,
};
use plystra_privileged::{SystemCapabilitySpec, register_system_capability, system_manifest};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

pub mod actor;
pub mod auth;
pub mod facts;
pub mod groups;
pub mod members;
pub mod passwords;
pub mod schema;
pub mod session_index;
pub mod sessions;
mod space_scoped;
pub mod spaces;
pub mod store;
pub mod user_members;
pub mod users;

/// The capability ID.
pub const ID: &str = "identity.business";
/// The actor resolution service (`dyn ActorResolver`).
pub const SERVICE: &str = "identity.service";
/// The session verification service (`dyn SessionVerifier`).
pub const SESSIONS_SERVICE: &str = "identity.sessions";

/// Every route this capability serves.
pub const ROUTES: &[RouteDecl] = &[
    RouteDecl::operation("listUsers").permission("users:read"),
    RouteDecl::operation("createUser").permission("users:manage"),
    RouteDecl::operation("getUser").permission("users:read"),
    RouteDecl::operation("updateUser").permission("users:manage"),
    RouteDecl::operation("disableUser").permission("users:manage"),
    RouteDecl::operation("restoreUser").permission("users:manage"),
    RouteDecl::operation("listSpaces").permission("spaces:read"),
    RouteDecl::operation("createSpace").permission("spaces:manage"),
    RouteDecl::operation("getSpace").permission("spaces:read"),
    RouteDecl::operation("updateSpace").permission("spaces:manage"),
    RouteDecl::operation("disableSpace").permission("spaces:manage"),
    RouteDecl::operation("restoreSpace").permission("spaces:manage"),
    RouteDecl::operation("listGroups").permission("groups:read"),
    RouteDecl::operation("createGroup").permission("groups:manage"),
    RouteDecl::operation("getGroupTree").permission("groups:read"),
    RouteDecl::operation("getGroup").permission("groups:read"),
    RouteDecl::operation("updateGroup").permission("groups:manage"),
    RouteDecl::operation("disableGroup").permission("groups:manage"),
    RouteDecl::operation("getGroupByID").permission("groups:read"),
    RouteDecl::operation("listMembers").permission("members:read"),
    RouteDecl::operation("createMember").permission("members:manage"),
    RouteDecl::operation("getMember").permission("members:read"),
    RouteDecl::operation("updateMember").permission("members:manage"),
    RouteDecl::operation("disableMember").permission("members:manage"),
    RouteDecl::operation("getMemberByID").permission("members:read"),
    RouteDecl::operation("listUserMembers").permission("user_members:read"),
    RouteDecl::operation("createUserMember").permission("user_members:manage"),
    RouteDecl::operation("getUserMember").permission("user_members:read"),
    RouteDecl::operation("updateUserMember").permission("user_members:manage"),
    RouteDecl::operation("revokeUserMember").permission("user_members:manage"),
    RouteDecl::operation("getUserMemberByID").permission("user_members:read"),
    RouteDecl::operation("login").served_by(SESSIONS_SERVICE),
    RouteDecl::operation("refreshSession").served_by(SESSIONS_SERVICE),
    RouteDecl::operation("logout").served_by(SESSIONS_SERVICE),
    RouteDecl::operation("register").served_by(SESSIONS_SERVICE),
    RouteDecl::operation("getActorContext")
        .served_by(SESSIONS_SERVICE)
        .self_service(),
    RouteDecl::operation("switchMember")
        .served_by(SESSIONS_SERVICE)
        .self_service(),
    RouteDecl::operation("getIdentityVocabulary").permission("instance:read"),
];

/// The manifest.
pub const MANIFEST: CapabilityManifest = system_manifest(SystemCapabilitySpec {
    id: ID,
    name: "Business identity",
    version: "0.0.1",
    requires: Requires {
        kernel: "^0.0.1",
        capabilities: &["audit.explainable"],
    },
    provides: Provides {
        services: &[SERVICE, SESSIONS_SERVICE],
        routes: ROUTES,
        events: Events {
            publishes: &[facts::FACTS_CHANGED],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_identity"),
        },
        settings: &[
            Setting {
                name: "PLYSTRA_SESSION_SECRET",
                help: "the key session tokens are signed with (at least 32 characters in production)",
                default: "random per process in development",
            },
            Setting {
                name: "PLYSTRA_SESSION_SECRET_PREVIOUS",
                help: "an earlier session key still accepted while sessions signed with it expire",
                default: "none",
            },
            Setting {
                name: "PLYSTRA_LOGIN_ATTEMPTS_PER_MINUTE",
                help: "login attempts one client address may make a minute; 0 turns the limit off",
                default: "60",
            },
            Setting {
                name: "PLYSTRA_PASSWORD_HASH_CONCURRENCY",
                help: "Argon2id password hashes running at once (19 MiB each)",
                default: "the number of cores",
            },
            Setting {
                name: "PLYSTRA_PASSWORD_HASH_WAIT_MS",
                help: "how long a request waits for a hashing turn before 503 SERVER_BUSY",
                default: "1000",
            },
            Setting {
                name: "PLYSTRA_AUTH_REGISTRATION_ENABLED",
                help: "`true` opens self-registration (`POST /api/v1/auth/register`)",
                default: "off",
            },
            Setting {
                name: "PLYSTRA_AUTH_REGISTRATION_TOKEN",
                help: "the token self-registration requires (at least 32 characters in production)",
                default: "none",
            },
            Setting {
                name: "PLYSTRA_AUTH_REGISTRATION_SPACE_ID",
                help: "the space self-registered users join",
                default: "none",
            },
        ],
    },
});

declare_event!(IDENTITY_FACTS_CHANGED, name: "identity.facts_changed", publisher: ID,
    description: "Users, spaces, members, bindings or groups changed and the change is committed. \
        Payload: {facts: [...]}, each the entity's full state as authorization indexes it.");

/// Entities, their ID prefixes and the statuses they move through.
pub const ENTITIES: &[(&str, &str, &[&str])] = &[
    ("user", "user_", &["active", "disabled"]),
    ("space", "space_", &["active", "disabled"]),
    ("group", "group_", &["active", "disabled"]),
    ("member", "member_", &["active", "disabled"]),
    ("user_member", "um_", &["active", "revoked"]),
];

/// An identity entity's rules.
#[derive(Debug, Clone, Object)]
pub struct EntityVocabulary {
    /// The prefix every generated ID carries.
    pub id_prefix: String,
    /// The statuses the entity can have, initial first.
    pub statuses: Vec<String>,
}

/// The identity vocabulary.
#[derive(Debug, Clone, Object)]
pub struct IdentityVocabulary {
    /// Per entity: ID prefix and statuses.
    pub entities: BTreeMap<String, EntityVocabulary>,
    /// The pattern a group path follows.
    pub group_path_pattern: String,
}

/// The vocabulary.
pub fn vocabulary() -> IdentityVocabulary {
    IdentityVocabulary {
        entities: ENTITIES
            .iter()
            .map(|(name, prefix, statuses)| {
                let statuses = statuses.iter().map(|s| (*s).to_owned()).collect();
                (
                    (*name).to_owned(),
                    EntityVocabulary {
                        id_prefix: (*prefix).to_owned(),
                        statuses,
                    },
                )
            })
            .collect(),
        group_path_pattern: r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$".to_owned(),
    }
}

fn database(services: &ServiceRegistry) -> Result<Arc<Database>, CapabilityError> {
    services.require::<Database>().map_err(|_| {
        CapabilityError::Configuration(
            "identity.business needs a database (kernel.database); configure PLYSTRA_DATABASE_URL"
                .into(),
        )
    })
}

fn sessions(services: &ServiceRegistry) -> Result<sessions::Sessions, CapabilityError> {
    let db = database(services)?;
    let runtime = services.require::<dyn RuntimeInfo>()?;
    let secrets = sessions::Secrets::from_runtime(runtime.as_ref());
    if secrets.is_none() {
        tracing::error!(
            "PLYSTRA_SESSION_SECRET is not set in production: sessions are off (login, refresh and registration answer 503; no session token is accepted)"
        );
    }
    Ok(sessions::Sessions::new((*db).clone(), secrets))
}

/// The lifecycle.
#[derive(Debug, Default)]
pub struct IdentityCapability;

impl Capability for IdentityCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        let db = database(services)?;
        // The session table follows the change feed, as the authorization index does: loaded by
        // the kernel's follower at start, then every committed change in revision order.
        let index = Arc::new(session_index::SessionIndex::new());
        let feed = services
            .require::<dyn plystra_contracts::feed::FactsFeed>()
            .ok();
        if let Some(feed) = &feed {
            feed.follow(Arc::new(session_index::FollowedSessions::new(
                index.clone(),
                (*db).clone(),
            )));
        }
        let verifier = sessions::Verifier {
            sessions: Arc::new(sessions(services)?),
            index,
            feed,
        };
        let resolver = actor::Resolver { db: (*db).clone() };
        services.provide::<dyn ActorResolver>(SERVICE, Arc::new(resolver))?;
        services.provide::<dyn SessionVerifier>(SESSIONS_SERVICE, Arc::new(verifier))?;
        Ok(())
    }
}

/// The operation groups of the document.
#[derive(Tags)]
pub(crate) enum ApiTag {
    /// Users: the people who log in.
    Users,
    /// Spaces: the tenants.
    Spaces,
    /// Groups: each space's tree.
    Groups,
    /// Members: who acts in a space.
    Members,
    /// User-members: which users may act as which members.
    #[oai(rename = "User Members")]
    UserMembers,
    /// Sessions: login, refresh, logout, registration.
    Auth,
    /// The acting user, binding, member and space of a session.
    Actor,
}

/// The vocabulary route.
pub struct VocabularyApi;

#[OpenApi(tag = "ApiTag::Users")]
impl VocabularyApi {
    /// Identity rules clients can rely on: ID prefixes, status lifecycles, the group path pattern.
    #[oai(
        path = "/api/v1/identity/vocabulary",
        method = "get",
        operation_id = "getIdentityVocabulary"
    )]
    async fn vocabulary(&self) -> Result<Json<Envelope<IdentityVocabulary>>, ApiError> {
        Ok(Json(Envelope::new(vocabulary())))
    }
}

type Apis = (
    users::UsersApi,
    spaces::SpacesApi,
    groups::GroupsApi,
    members::MembersApi,
    user_members::UserMembersApi,
    auth::AuthApi,
    actor::ActorApi,
    VocabularyApi,
);

plystra_contracts::route_set! {
    /// Every identity route group, served as one route set.
    pub struct IdentityApi(Apis);
}

impl RouteApi for IdentityApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        let db = services.require::<Database>()?;
        let audit = services.require::<dyn AuditRecorder>()?;
        let runtime = services.require::<dyn RuntimeInfo>()?;
        let secrets = sessions::Secrets::from_runtime(runtime.as_ref());
        let ctx = Arc::new(store::Ctx {
            db: (*db).clone(),
            audit,
            sessions: Arc::new(
                sessions::Sessions::new((*db).clone(), secrets)
                    .with_limits(sessions::LoginLimits::from_runtime(runtime.as_ref())),
            ),
            events: services.require::<dyn EventPublisher>().ok(),
            feed: services
                .require::<dyn plystra_contracts::feed::FactsFeed>()
                .ok(),
        });
        if let Ok(metrics) = services.require::<plystra_contracts::metrics::Metrics>() {
            ctx.sessions.hashing().instrument(&metrics);
        }
        Ok(Self((
            users::UsersApi { ctx: ctx.clone() },
            spaces::SpacesApi { ctx: ctx.clone() },
            groups::GroupsApi { ctx: ctx.clone() },
            members::MembersApi { ctx: ctx.clone() },
            user_members::UserMembersApi { ctx: ctx.clone() },
            auth::AuthApi {
                ctx: ctx.clone(),
                registration: auth::Registration::from_runtime(runtime.as_ref()),
            },
            actor::ActorApi { ctx },
            VocabularyApi,
        )))
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(IdentityCapability)
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: IdentityApi }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_lists_every_entity() {
        let v = vocabulary();
        assert_eq!(v.entities.len(), 5);
        assert_eq!(v.entities["user_member"].id_prefix, "um_");
    }

    #[test]
    fn the_manifest_declares_exactly_the_served_operations() {
        let served: Vec<&str> = IdentityApi::meta()
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
