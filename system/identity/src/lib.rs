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
    Provides, Requires, RouteApi, RouteDecl, RouteMethod, ServiceError, ServiceRegistry,
    declare_event,
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
    RouteDecl::new(RouteMethod::Get, "/api/v1/users", SERVICE, "listUsers")
        .permission("users:read"),
    RouteDecl::new(RouteMethod::Post, "/api/v1/users", SERVICE, "createUser")
        .permission("users:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/users/{user_id}",
        SERVICE,
        "getUser",
    )
    .permission("users:read"),
    RouteDecl::new(
        RouteMethod::Patch,
        "/api/v1/users/{user_id}",
        SERVICE,
        "updateUser",
    )
    .permission("users:manage"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/users/{user_id}/disable",
        SERVICE,
        "disableUser",
    )
    .permission("users:manage"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/users/{user_id}/restore",
        SERVICE,
        "restoreUser",
    )
    .permission("users:manage"),
    RouteDecl::new(RouteMethod::Get, "/api/v1/spaces", SERVICE, "listSpaces")
        .permission("spaces:read"),
    RouteDecl::new(RouteMethod::Post, "/api/v1/spaces", SERVICE, "createSpace")
        .permission("spaces:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/spaces/{space_id}",
        SERVICE,
        "getSpace",
    )
    .permission("spaces:read"),
    RouteDecl::new(
        RouteMethod::Patch,
        "/api/v1/spaces/{space_id}",
        SERVICE,
        "updateSpace",
    )
    .permission("spaces:manage"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/spaces/{space_id}/disable",
        SERVICE,
        "disableSpace",
    )
    .permission("spaces:manage"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/spaces/{space_id}/restore",
        SERVICE,
        "restoreSpace",
    )
    .permission("spaces:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/spaces/{space_id}/groups",
        SERVICE,
        "listGroups",
    )
    .permission("groups:read"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/spaces/{space_id}/groups",
        SERVICE,
        "createGroup",
    )
    .permission("groups:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/spaces/{space_id}/groups/tree",
        SERVICE,
        "getGroupTree",
    )
    .permission("groups:read"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/spaces/{space_id}/groups/{group_id}",
        SERVICE,
        "getGroup",
    )
    .permission("groups:read"),
    RouteDecl::new(
        RouteMethod::Patch,
        "/api/v1/spaces/{space_id}/groups/{group_id}",
        SERVICE,
        "updateGroup",
    )
    .permission("groups:manage"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/spaces/{space_id}/groups/{group_id}/disable",
        SERVICE,
        "disableGroup",
    )
    .permission("groups:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/groups/{group_id}",
        SERVICE,
        "getGroupByID",
    )
    .permission("groups:read"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/spaces/{space_id}/members",
        SERVICE,
        "listMembers",
    )
    .permission("members:read"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/spaces/{space_id}/members",
        SERVICE,
        "createMember",
    )
    .permission("members:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/spaces/{space_id}/members/{member_id}",
        SERVICE,
        "getMember",
    )
    .permission("members:read"),
    RouteDecl::new(
        RouteMethod::Patch,
        "/api/v1/spaces/{space_id}/members/{member_id}",
        SERVICE,
        "updateMember",
    )
    .permission("members:manage"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/spaces/{space_id}/members/{member_id}/disable",
        SERVICE,
        "disableMember",
    )
    .permission("members:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/members/{member_id}",
        SERVICE,
        "getMemberByID",
    )
    .permission("members:read"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/spaces/{space_id}/user-members",
        SERVICE,
        "listUserMembers",
    )
    .permission("user_members:read"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/spaces/{space_id}/user-members",
        SERVICE,
        "createUserMember",
    )
    .permission("user_members:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/spaces/{space_id}/user-members/{user_member_id}",
        SERVICE,
        "getUserMember",
    )
    .permission("user_members:read"),
    RouteDecl::new(
        RouteMethod::Patch,
        "/api/v1/spaces/{space_id}/user-members/{user_member_id}",
        SERVICE,
        "updateUserMember",
    )
    .permission("user_members:manage"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/spaces/{space_id}/user-members/{user_member_id}/revoke",
        SERVICE,
        "revokeUserMember",
    )
    .permission("user_members:manage"),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/user-members/{user_member_id}",
        SERVICE,
        "getUserMemberByID",
    )
    .permission("user_members:read"),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/auth/login",
        SESSIONS_SERVICE,
        "login",
    ),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/auth/refresh",
        SESSIONS_SERVICE,
        "refreshSession",
    ),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/auth/logout",
        SESSIONS_SERVICE,
        "logout",
    ),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/auth/register",
        SESSIONS_SERVICE,
        "register",
    ),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/actor/context",
        SESSIONS_SERVICE,
        "getActorContext",
    )
    .self_service(),
    RouteDecl::new(
        RouteMethod::Post,
        "/api/v1/actor/switch-member",
        SESSIONS_SERVICE,
        "switchMember",
    )
    .self_service(),
    RouteDecl::new(
        RouteMethod::Get,
        "/api/v1/identity/vocabulary",
        SERVICE,
        "getIdentityVocabulary",
    )
    .permission("instance:read"),
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
            publishes: &["identity.actor_resolved", facts::FACTS_CHANGED],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_identity"),
        },
    },
});

declare_event!(IDENTITY_FACTS_CHANGED, name: "identity.facts_changed", publisher: ID,
    description: "Users, spaces, members, bindings or groups changed and the change is committed. \
        Payload: {facts: [...]}, each the entity's full state as authorization indexes it.");

declare_event!(IDENTITY_ACTOR_RESOLVED, name: "identity.actor_resolved", publisher: ID,
    description: "An actor (user, binding, member, space) was resolved for a request.");

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
        let resolver = actor::Resolver {
            db: (*db).clone(),
            events: services.require::<dyn EventPublisher>().ok(),
        };
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
    fn the_manifest_declares_exactly_the_served_routes() {
        let mut served = std::collections::BTreeSet::new();
        for api in IdentityApi::meta() {
            for path in api.paths {
                for op in path.operations {
                    served.insert((
                        op.method.as_str().to_owned(),
                        path.path.clone(),
                        op.operation_id.unwrap_or_default().to_owned(),
                    ));
                }
            }
        }
        let declared: std::collections::BTreeSet<_> = ROUTES
            .iter()
            .map(|r| {
                (
                    r.method.as_str().to_owned(),
                    r.path.to_owned(),
                    r.operation.to_owned(),
                )
            })
            .collect();
        assert_eq!(served, declared);
    }
}
