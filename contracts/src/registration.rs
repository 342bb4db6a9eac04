//! Link-time registration: what a capability crate submits, and the macro that submits it.
//!
//! A capability crate calls [`register_capability!`](crate::register_capability) once. The macro
//! submits a [`Registration`] through `inventory`: the manifest, the lifecycle constructor, the
//! route set and the registering package's name, so the kernel can find every linked capability
//! without `plystrad` naming any of them.

use std::collections::HashMap;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::{MetaApi, Registry};

use crate::lifecycle::Capability;
use crate::manifest::CapabilityManifest;
use crate::services::{ServiceError, ServiceRegistry};

/// The routing table that `poem_openapi::OpenApi::add_routes` fills: path → method → endpoint.
pub type RouteTable = HashMap<String, HashMap<Method, BoxEndpoint<'static>>>;

/// A poem-openapi API type that a capability serves, built from the services the runtime holds.
pub trait RouteApi: OpenApi + Send + Sync + 'static {
    /// Builds the API value once every capability has registered its services.
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError>;
}

/// Declares a capability's route set: a named type that serves a tuple of route groups (each an
/// `OpenApi`) as one `OpenApi`, by delegating to the tuple. Implement [`RouteApi`] for it to
/// build the groups from the services.
///
/// ```ignore
/// type Apis = (UsersApi, SpacesApi);
/// plystra_contracts::route_set! {
///     /// Every identity route group, served as one route set.
///     pub struct IdentityApi(Apis);
/// }
/// ```
#[macro_export]
macro_rules! route_set {
    ($(#[$meta:meta])* $vis:vis struct $name:ident($apis:ty);) => {
        $(#[$meta])*
        $vis struct $name($apis);

        impl $crate::__private::poem_openapi::OpenApi for $name {
            fn meta() -> ::std::vec::Vec<$crate::__private::poem_openapi::registry::MetaApi> {
                <$apis as $crate::__private::poem_openapi::OpenApi>::meta()
            }

            fn register(registry: &mut $crate::__private::poem_openapi::registry::Registry) {
                <$apis as $crate::__private::poem_openapi::OpenApi>::register(registry);
            }

            fn add_routes(self, route_table: &mut $crate::registration::RouteTable) {
                $crate::__private::poem_openapi::OpenApi::add_routes(self.0, route_table);
            }
        }
    };
}

/// A capability's routes, as function pointers (the `OpenApi` trait is not object safe).
#[derive(Clone, Copy)]
pub struct RouteSet {
    /// The operations, as poem-openapi describes them.
    pub meta: fn() -> Vec<MetaApi>,
    /// Registers the schemas the operations use.
    pub register: fn(&mut Registry),
    /// Builds the API from the services and adds its endpoints to the table.
    pub add_routes: fn(&ServiceRegistry, &mut RouteTable) -> Result<(), ServiceError>,
}

impl std::fmt::Debug for RouteSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSet").finish_non_exhaustive()
    }
}

impl RouteSet {
    /// The route set of one API type.
    pub const fn of<A: RouteApi>() -> Self {
        Self {
            meta: A::meta,
            register: A::register,
            add_routes: add_routes_of::<A>,
        }
    }

    /// A route set with no operations.
    pub const EMPTY: RouteSet = RouteSet {
        meta: Vec::new,
        register: register_nothing,
        add_routes: add_no_routes,
    };
}

fn add_routes_of<A: RouteApi>(
    services: &ServiceRegistry,
    table: &mut RouteTable,
) -> Result<(), ServiceError> {
    A::build(services)?.add_routes(table);
    Ok(())
}

fn register_nothing(_: &mut Registry) {}

fn add_no_routes(_: &ServiceRegistry, _: &mut RouteTable) -> Result<(), ServiceError> {
    Ok(())
}

/// Constructs a capability's lifecycle object.
pub type CapabilityConstructor = fn() -> Box<dyn Capability>;

/// Everything one capability crate submits at link time.
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    /// The manifest.
    pub manifest: &'static CapabilityManifest,
    /// Builds the lifecycle object.
    pub construct: CapabilityConstructor,
    /// The routes it serves.
    pub routes: RouteSet,
    /// `CARGO_PKG_NAME` of the crate that registered it, checked against the system allowlist.
    pub package: &'static str,
}

inventory::collect!(Registration);

/// Every registration linked into this binary, in link order (the kernel sorts them).
pub fn linked() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}

/// A bundle crate's declaration of the capability IDs it links, so the kernel can notice a crate
/// the linker dropped.
#[derive(Debug, Clone, Copy)]
pub struct BundleDeclaration {
    /// `CARGO_PKG_NAME` of the bundle crate.
    pub package: &'static str,
    /// The capability IDs the bundle expects to be linked.
    pub capability_ids: &'static [&'static str],
}

inventory::collect!(BundleDeclaration);

/// Every bundle declaration linked into this binary.
pub fn linked_bundles() -> impl Iterator<Item = &'static BundleDeclaration> {
    inventory::iter::<BundleDeclaration>.into_iter()
}

/// Registers a business plugin: its manifest, its lifecycle constructor and its route set.
///
/// ```ignore
/// plystra_contracts::register_capability! {
///     manifest: MANIFEST,            // a `static CapabilityManifest` built with `business_plugin`
///     capability: NotesCapability::new,  // `fn() -> Box<dyn Capability>`
///     routes: NotesApi,              // a type implementing `RouteApi`, or `none`
/// }
/// ```
///
/// The manifest can only come from [`CapabilityManifest::business_plugin`], so this macro can
/// never register a privileged or `system_capability` manifest.
#[macro_export]
macro_rules! register_capability {
    (manifest: $manifest:path, capability: $construct:expr, routes: none $(,)?) => {
        $crate::__register_business_plugin!(
            $manifest,
            $construct,
            $crate::registration::RouteSet::EMPTY
        );
    };
    (manifest: $manifest:path, capability: $construct:expr, routes: $api:ty $(,)?) => {
        $crate::__register_business_plugin!(
            $manifest,
            $construct,
            $crate::registration::RouteSet::of::<$api>()
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __register_business_plugin {
    ($manifest:path, $construct:expr, $routes:expr) => {
        const _: () = {
            // Refuses at compile time anything but a business plugin manifest.
            const _: () = ::core::assert!(
                !$manifest.privileged()
                    && ::core::matches!(
                        $manifest.kind(),
                        $crate::manifest::CapabilityKind::BusinessPlugin
                    ),
                "register_capability! registers business plugins only"
            );
            $crate::__private::inventory::submit! {
                $crate::registration::Registration {
                    manifest: &$manifest,
                    construct: $construct,
                    routes: $routes,
                    package: ::core::env!("CARGO_PKG_NAME"),
                }
            }
        };
    };
}
