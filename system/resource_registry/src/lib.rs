//! resource.registry: resource types, actions, mappings, resources and the lookup context.
//!
//! This crate registers the capability and serves its vocabulary: risk levels, storage kinds and
//! the key pattern. The registry routes and lookup service arrive with the registry issue.

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
pub const ID: &str = "resource.registry";
/// The service this capability provides.
pub const SERVICE: &str = "resource.registry";

/// The manifest.
pub const MANIFEST: CapabilityManifest = system_manifest(SystemCapabilitySpec {
    id: ID,
    name: "Resource registry",
    version: "0.0.1",
    requires: Requires {
        kernel: "^0.0.1",
        capabilities: &["audit.explainable"],
    },
    provides: Provides {
        services: &[SERVICE],
        routes: &[RouteDecl::new(
            RouteMethod::Get,
            "/api/v1/registry/vocabulary",
            SERVICE,
            "getRegistryVocabulary",
        )],
        events: Events {
            publishes: &["resource.registry_updated"],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some("sys_resource"),
        },
    },
});

declare_event!(RESOURCE_REGISTRY_UPDATED, name: "resource.registry_updated", publisher: ID,
    description: "A resource type, action, mapping or resource changed.");

/// The registry vocabulary.
#[derive(Debug, Clone, Object)]
pub struct RegistryVocabulary {
    /// Risk levels an action can carry, lowest first.
    pub risk_levels: Vec<String>,
    /// Where a resource type's rows live.
    pub storage_kinds: Vec<String>,
    /// The pattern resource type and action keys follow.
    pub key_pattern: String,
}

/// The registry capability's service: for now, its vocabulary.
#[derive(Debug, Default)]
pub struct RegistryService;

impl RegistryService {
    /// The vocabulary.
    pub fn vocabulary(&self) -> RegistryVocabulary {
        RegistryVocabulary {
            risk_levels: ["low", "normal", "high", "critical"]
                .map(str::to_owned)
                .to_vec(),
            storage_kinds: vec!["internal_table".to_owned()],
            key_pattern: "^[a-z][a-z0-9_]*$".to_owned(),
        }
    }
}

/// The lifecycle.
#[derive(Debug, Default)]
pub struct RegistryCapability;

impl Capability for RegistryCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        services.provide::<RegistryService>(SERVICE, Arc::new(RegistryService))?;
        Ok(())
    }
}

#[derive(Tags)]
enum RegistryTag {
    /// Resource types, actions and mappings.
    #[oai(rename = "Resource Types")]
    ResourceTypes,
}

/// The registry routes.
pub struct RegistryApi {
    service: Arc<RegistryService>,
}

impl RouteApi for RegistryApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            service: services.require::<RegistryService>()?,
        })
    }
}

#[OpenApi(tag = "RegistryTag::ResourceTypes")]
impl RegistryApi {
    /// Registry rules clients can rely on: risk levels, storage kinds and the key pattern.
    #[oai(
        path = "/api/v1/registry/vocabulary",
        method = "get",
        operation_id = "getRegistryVocabulary"
    )]
    async fn vocabulary(&self) -> Result<Json<Envelope<RegistryVocabulary>>, ApiError> {
        Ok(Json(Envelope::new(self.service.vocabulary())))
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(RegistryCapability)
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: RegistryApi }

pub mod schema;
