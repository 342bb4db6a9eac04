//! authorization.resource: roles, permissions, authz/check and authz/explain, deny codes, scopes
//! and traces.
//!
//! This crate registers the capability and serves the deny codes and scopes with their meaning.
//! Grants, check and explain arrive with the authorization issue.

pub mod engine;

use std::sync::Arc;

pub use plystra_contracts::DenyCode;
use plystra_contracts::{
    ApiError, Capability, CapabilityError, CapabilityManifest, Envelope, Events, Migrations,
    Provides, Requires, RouteApi, RouteDecl, RouteMethod, ServiceError, ServiceRegistry,
    declare_event,
};
use plystra_privileged::{SystemCapabilitySpec, register_system_capability, system_manifest};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Tags};

/// The capability ID.
pub const ID: &str = "authorization.resource";
/// The service this capability provides.
pub const SERVICE: &str = "authorization.service";

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
        services: &[SERVICE],
        routes: &[RouteDecl::new(
            RouteMethod::Get,
            "/api/v1/authz/deny-codes",
            SERVICE,
            "listDenyCodes",
        )],
        events: Events {
            publishes: &["authorization.decision_recorded"],
            subscribes: &["resource.registry_updated"],
        },
        migrations: Migrations {
            namespace: Some("sys_authz"),
        },
    },
});

declare_event!(AUTHORIZATION_DECISION_RECORDED, name: "authorization.decision_recorded", publisher: ID,
    description: "A check or explain was decided and its audit record is durable.");

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
];

/// A permission's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum)]
#[oai(rename_all = "snake_case")]
pub enum Scope {
    /// The target's owner is the acting member.
    #[oai(rename = "self")]
    OwnSelf,
    /// The target's group is the anchor group.
    Group,
    /// The target's group is the anchor group or below it.
    GroupTree,
    /// The target is in the actor's space.
    Space,
    /// Always denies with GLOBAL_SCOPE_DISABLED.
    Global,
}

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

/// The authorization capability's service: for now, its vocabulary.
#[derive(Debug, Default)]
pub struct AuthorizationService;

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
            scopes: vec![
                Scope::OwnSelf,
                Scope::Group,
                Scope::GroupTree,
                Scope::Space,
                Scope::Global,
            ],
        }
    }
}

/// The lifecycle.
#[derive(Debug, Default)]
pub struct AuthorizationCapability;

impl Capability for AuthorizationCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        services.provide::<AuthorizationService>(SERVICE, Arc::new(AuthorizationService))?;
        Ok(())
    }
}

#[derive(Tags)]
enum AuthorizationTag {
    /// Checks, explanations and their vocabulary.
    Authorization,
}

/// The authorization routes.
pub struct AuthorizationApi {
    service: Arc<AuthorizationService>,
}

impl RouteApi for AuthorizationApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            service: services.require::<AuthorizationService>()?,
        })
    }
}

#[OpenApi(tag = "AuthorizationTag::Authorization")]
impl AuthorizationApi {
    /// The 13 deny codes a check can answer with, and the scopes a permission can have.
    #[oai(
        path = "/api/v1/authz/deny-codes",
        method = "get",
        operation_id = "listDenyCodes"
    )]
    async fn deny_codes(&self) -> Result<Json<Envelope<AuthorizationVocabulary>>, ApiError> {
        Ok(Json(Envelope::new(self.service.vocabulary())))
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(AuthorizationCapability)
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: AuthorizationApi }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_thirteen_distinct_deny_codes() {
        let codes: std::collections::HashSet<_> = DENY_CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes.len(), 13);
    }
}

pub mod schema;
