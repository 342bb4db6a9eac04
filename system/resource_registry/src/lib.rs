//! resource.registry: resource types, their actions and storage mapping, resources, and the
//! lookup context authorization reads them through.
//!
//! Modules by concern: [`resource_types`], [`actions`], [`mappings`] and [`resources`] hold the
//! records and their rules; [`store`] the audited-mutation protocol; [`lookup`] the
//! `resource.registry` service ([`ResourceLookup`]); [`api`] the HTTP operations.

use std::sync::Arc;

use plystra_contracts::services::ResourceLookup;
use plystra_contracts::{
    Capability, CapabilityError, CapabilityManifest, Events, Migrations, Provides, Requires,
    RouteDecl, ServiceRegistry, declare_event,
};
use plystra_privileged::{SystemCapabilitySpec, register_system_capability, system_manifest};

pub mod actions;
pub mod api;
pub mod facts;
pub mod lookup;
pub mod mappings;
pub mod model;
pub mod registrar;
pub mod resource_types;
pub mod resources;
pub mod schema;
pub mod store;
pub mod validation;
pub mod vocabulary;

pub use store::Registry;

/// The capability ID.
pub const ID: &str = "resource.registry";
/// The service this capability provides: `Arc<dyn ResourceLookup>`.
pub const SERVICE: &str = "resource.registry";
/// The service business plugins declare and register through.
pub const REGISTRAR_SERVICE: &str = "resource.registrar";

/// Every route, as served.
pub const ROUTES: &[RouteDecl] = &[
    RouteDecl::operation("getRegistryVocabulary").permission("instance:read"),
    RouteDecl::operation("listResourceTypes").permission("registry:read"),
    RouteDecl::operation("upsertResourceType").permission("registry:manage"),
    RouteDecl::operation("getResourceType").permission("registry:read"),
    RouteDecl::operation("listResourceActions").permission("registry:read"),
    RouteDecl::operation("upsertResourceAction").permission("registry:manage"),
    RouteDecl::operation("getResourceMapping").permission("registry:read"),
    RouteDecl::operation("upsertResourceMapping").permission("registry:manage"),
    RouteDecl::operation("listResources").permission("resources:read"),
    RouteDecl::operation("createResource").permission("resources:manage"),
    RouteDecl::operation("getResourceByTypeAndID").permission("resources:read"),
    RouteDecl::operation("listSpaceResources").permission("resources:read"),
    RouteDecl::operation("createSpaceResource").permission("resources:manage"),
    RouteDecl::operation("getSpaceResource").permission("resources:read"),
    RouteDecl::operation("updateSpaceResource").permission("resources:manage"),
    RouteDecl::operation("archiveSpaceResource").permission("resources:manage"),
];

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
        services: &[SERVICE, REGISTRAR_SERVICE],
        routes: ROUTES,
        events: Events {
            publishes: &[store::REGISTRY_UPDATED],
            subscribes: &[],
        },
        migrations: Migrations {
            namespace: Some(schema::NAMESPACE),
        },
        settings: &[],
    },
});

declare_event!(RESOURCE_REGISTRY_UPDATED, name: "resource.registry_updated", publisher: ID,
    description: "A resource type, action, mapping or resource changed; the payload carries the entity kind, the change, a snapshot and the facts authorization indexes.");

/// The lifecycle.
#[derive(Debug, Default)]
pub struct RegistryCapability;

impl Capability for RegistryCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        let registry = Registry::from_services(services);
        let registry = Arc::new(registry);
        services.provide::<dyn ResourceLookup>(SERVICE, registry.clone())?;
        services.provide::<dyn plystra_contracts::services::ResourceRegistrar>(
            REGISTRAR_SERVICE,
            registry,
        )?;
        Ok(())
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(RegistryCapability)
}

register_system_capability! { manifest: MANIFEST, capability: construct, routes: api::RegistryApi }
