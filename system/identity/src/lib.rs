//! identity.business: users, spaces, groups, members, user-members, sessions and actor context.
//!
//! This crate registers the capability and serves its vocabulary: status lifecycles and ID
//! prefixes. The entity routes and actor resolution arrive with the identity issue.

use std::collections::BTreeMap;
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
pub const ID: &str = "identity.business";
/// The service this capability provides.
pub const SERVICE: &str = "identity.service";

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
        services: &[SERVICE],
        routes: &[RouteDecl::new(
            RouteMethod::Get,
            "/api/v1/identity/vocabulary",
            SERVICE,
            "getIdentityVocabulary",
        )],
        events: Events {
            publishes: &["identity.actor_resolved"],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_identity"),
        },
    },
});

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

/// The identity capability's service: for now, its vocabulary.
#[derive(Debug, Default)]
pub struct IdentityService;

impl IdentityService {
    /// The vocabulary.
    pub fn vocabulary(&self) -> IdentityVocabulary {
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
}

/// The lifecycle.
#[derive(Debug, Default)]
pub struct IdentityCapability;

impl Capability for IdentityCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        services.provide::<IdentityService>(SERVICE, Arc::new(IdentityService))?;
        Ok(())
    }
}

#[derive(Tags)]
enum IdentityTag {
    /// Users and their sessions.
    Users,
}

/// The identity routes.
pub struct IdentityApi {
    service: Arc<IdentityService>,
}

impl RouteApi for IdentityApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            service: services.require::<IdentityService>()?,
        })
    }
}

#[OpenApi(tag = "IdentityTag::Users")]
impl IdentityApi {
    /// Identity rules clients can rely on: ID prefixes, status lifecycles, the group path pattern.
    #[oai(
        path = "/api/v1/identity/vocabulary",
        method = "get",
        operation_id = "getIdentityVocabulary"
    )]
    async fn vocabulary(&self) -> Result<Json<Envelope<IdentityVocabulary>>, ApiError> {
        Ok(Json(Envelope::new(self.service.vocabulary())))
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(IdentityCapability)
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: IdentityApi }

pub mod schema;
