//! The manifest rules the kernel enforces at boot. Every violation is collected, not just the first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use plystra_contracts::registration::{BundleDeclaration, Registration};
use plystra_contracts::{CapabilityKind, Stability};

use crate::http::operations::served;

/// The five official system capabilities and the migration namespace fixed for each.
pub const SYSTEM_CAPABILITIES: &[(&str, &str)] = &[
    ("audit.explainable", "sys_audit"),
    ("identity.business", "sys_identity"),
    ("resource.registry", "sys_resource"),
    ("authorization.resource", "sys_authz"),
    ("admin.control_plane", "sys_admin"),
];

/// The packages allowed to register privileged manifests.
pub const SYSTEM_PACKAGE_ALLOWLIST: &[&str] = &[
    "plystra-system-audit",
    "plystra-system-identity",
    "plystra-system-resource-registry",
    "plystra-system-authz",
    "plystra-system-admin",
];

/// The version every system capability must have.
pub const SYSTEM_CAPABILITY_VERSION: &str = "0.0.1";

/// One broken rule, naming the capability and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// `id` is empty.
    #[error("capability registered by {package}: id is empty")]
    EmptyId { package: &'static str },
    /// A system capability with an ID outside the official five.
    #[error("{id}: kind system_capability is reserved for the official IDs ({official})")]
    UnofficialSystemId { id: String, official: String },
    /// `name` is empty.
    #[error("{id}: name is empty")]
    EmptyName { id: String },
    /// `version` is not semver.
    #[error("{id}: version {version:?} is not valid semver: {reason}")]
    InvalidVersion {
        id: String,
        version: String,
        reason: String,
    },
    /// A system capability at another version.
    #[error(
        "{id}: version is {version}, system capabilities must be exactly {SYSTEM_CAPABILITY_VERSION}"
    )]
    WrongSystemVersion { id: String, version: String },
    /// `requires.kernel` is not a semver requirement.
    #[error("{id}: requires.kernel {requirement:?} is not a valid semver requirement: {reason}")]
    InvalidKernelRequirement {
        id: String,
        requirement: String,
        reason: String,
    },
    /// The kernel does not satisfy `requires.kernel`.
    #[error("{id}: requires.kernel {requirement} is not satisfied by kernel {kernel}")]
    KernelVersionUnsatisfied {
        id: String,
        requirement: String,
        kernel: String,
    },
    /// A dependency on itself.
    #[error("{id}: requires.capabilities lists itself")]
    SelfDependency { id: String },
    /// A dependency that is not linked.
    #[error("{id}: requires.capabilities names {dependency}, which is not linked")]
    MissingDependency { id: String, dependency: String },
    /// `provides.services` is empty.
    #[error("{id}: provides.services is empty; a capability provides at least one service")]
    NoServices { id: String },
    /// A route naming an undeclared service.
    #[error(
        "{id}: route {operation} names service {service}, which provides.services does not declare"
    )]
    UndeclaredRouteService {
        id: String,
        operation: String,
        service: String,
    },
    /// One operation declared twice in `provides.routes`.
    #[error("{id}: provides.routes declares operation {operation} more than once")]
    DuplicateRouteDecl { id: String, operation: String },
    /// A served path not starting with `/` (poem-openapi's derive refuses one; a hand-written
    /// route set could still describe one).
    #[error("{id}: route path {path:?} must start with /")]
    RoutePathNotAbsolute { id: String, path: String },
    /// An operation served on a method outside `RouteMethod`.
    #[error(
        "{id}: serves {method} {path}, but routes are served on GET, POST, PATCH, PUT or DELETE"
    )]
    UnsupportedRouteMethod {
        id: String,
        method: String,
        path: String,
    },
    /// A system capability with the wrong namespace.
    #[error("{id}: provides.migrations.namespace is {found:?}, it must be {expected}")]
    WrongNamespace {
        id: String,
        found: Option<String>,
        expected: &'static str,
    },
    /// A system capability that is not privileged, required and experimental.
    #[error(
        "{id}: system capabilities are privileged: true, required: true, stability: experimental ({field} is {found})"
    )]
    SystemFlags {
        id: String,
        field: &'static str,
        found: String,
    },
    /// Two registrations with one ID.
    #[error("{id}: registered twice (by {first} and {second})")]
    DuplicateId {
        id: String,
        first: &'static str,
        second: &'static str,
    },
    /// A privileged manifest from a package outside the allowlist.
    #[error(
        "{id}: privileged manifest registered by package {package}, which is not in the system allowlist"
    )]
    PrivilegedOutsideSystem { id: String, package: &'static str },
    /// A business plugin reusing a system capability's name, service, route or event.
    #[error(
        "{id}: business plugin claims {what} {value}, which belongs to system capability {owner}"
    )]
    ShadowsSystem {
        id: String,
        what: &'static str,
        value: String,
        owner: String,
    },
    /// A system capability depending on a business plugin.
    #[error("{id}: system capability depends on business plugin {dependency}")]
    SystemDependsOnPlugin { id: String, dependency: String },
    /// Two capabilities serving one (method, path).
    #[error("route {method} {path} is claimed by both {first} and {second}")]
    RouteCollision {
        method: &'static str,
        path: String,
        first: String,
        second: String,
    },
    /// Two operations with one operationId.
    #[error("operationId {operation} is claimed by both {first} and {second}")]
    OperationIdCollision {
        operation: String,
        first: String,
        second: String,
    },
    /// Two capabilities defining one schema name differently.
    #[error("schema {schema} is defined differently by {first} and {second}")]
    SchemaCollision {
        schema: String,
        first: String,
        second: String,
    },
    /// Declared routes differ from the served ones.
    #[error("{id}: {detail}")]
    RouteMismatch { id: String, detail: String },
    /// An operation without an operationId.
    #[error("{id}: operation {method} {path} has no operationId")]
    MissingOperationId {
        id: String,
        method: String,
        path: String,
    },
    /// A published event with no descriptor.
    #[error("{id}: publishes event {event}, which has no descriptor (declare_event!)")]
    UndescribedEvent { id: String, event: String },
    /// The bundle expects a capability that was not linked.
    #[error(
        "bundle {package} expects capability {id}, which is not linked (did the linker drop its crate?)"
    )]
    BundleMissing { package: &'static str, id: String },
    /// A system capability that no bundle declares.
    #[error("system capability {id} is linked but no bundle declares it")]
    NotInBundle { id: String },
}

/// Checks every registration and returns every violation.
pub fn validate(
    registrations: &[&'static Registration],
    bundles: &[&'static BundleDeclaration],
    event_names: &BTreeSet<&'static str>,
    kernel_version: &semver::Version,
) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let mut first_by_id: HashMap<&str, &'static str> = HashMap::new();
    for reg in registrations {
        let m = reg.manifest;
        if let Some(first) = first_by_id.insert(m.id(), reg.package) {
            errors.push(ManifestError::DuplicateId {
                id: m.id().to_owned(),
                first,
                second: reg.package,
            });
        }
        validate_one(reg, registrations, event_names, kernel_version, &mut errors);
    }
    validate_shadowing(registrations, &mut errors);
    validate_bundles(registrations, bundles, &mut errors);
    errors
}

fn validate_one(
    reg: &'static Registration,
    all: &[&'static Registration],
    event_names: &BTreeSet<&'static str>,
    kernel_version: &semver::Version,
    errors: &mut Vec<ManifestError>,
) {
    let m = reg.manifest;
    let id = m.id().to_owned();
    if m.id().trim().is_empty() {
        errors.push(ManifestError::EmptyId {
            package: reg.package,
        });
    }
    if m.name().trim().is_empty() {
        errors.push(ManifestError::EmptyName { id: id.clone() });
    }
    match semver::Version::parse(m.version()) {
        Err(e) => errors.push(ManifestError::InvalidVersion {
            id: id.clone(),
            version: m.version().to_owned(),
            reason: e.to_string(),
        }),
        Ok(_)
            if m.kind() == CapabilityKind::SystemCapability
                && m.version() != SYSTEM_CAPABILITY_VERSION =>
        {
            errors.push(ManifestError::WrongSystemVersion {
                id: id.clone(),
                version: m.version().to_owned(),
            })
        }
        Ok(_) => {}
    }
    match semver::VersionReq::parse(m.requires().kernel) {
        Err(e) => errors.push(ManifestError::InvalidKernelRequirement {
            id: id.clone(),
            requirement: m.requires().kernel.to_owned(),
            reason: e.to_string(),
        }),
        Ok(req) if !req.matches(kernel_version) => {
            errors.push(ManifestError::KernelVersionUnsatisfied {
                id: id.clone(),
                requirement: m.requires().kernel.to_owned(),
                kernel: kernel_version.to_string(),
            })
        }
        Ok(_) => {}
    }
    for dep in m.requires().capabilities {
        if *dep == m.id() {
            errors.push(ManifestError::SelfDependency { id: id.clone() });
            continue;
        }
        match all.iter().find(|r| r.manifest.id() == *dep) {
            None => errors.push(ManifestError::MissingDependency {
                id: id.clone(),
                dependency: (*dep).to_owned(),
            }),
            Some(target)
                if m.kind() == CapabilityKind::SystemCapability
                    && target.manifest.kind() == CapabilityKind::BusinessPlugin =>
            {
                errors.push(ManifestError::SystemDependsOnPlugin {
                    id: id.clone(),
                    dependency: (*dep).to_owned(),
                })
            }
            Some(_) => {}
        }
    }
    let provides = m.provides();
    if provides.services.is_empty() {
        errors.push(ManifestError::NoServices { id: id.clone() });
    }
    // A route's method and path are its route set's; `http::assembly::check_route_sets` checks
    // them against the metadata. Here: what only the manifest says.
    let (mut declared, mut repeated) = (BTreeSet::new(), BTreeSet::new());
    for route in provides.routes {
        if !declared.insert(route.operation) && repeated.insert(route.operation) {
            errors.push(ManifestError::DuplicateRouteDecl {
                id: id.clone(),
                operation: route.operation.to_owned(),
            });
        }
        if let Some(service) = route.service
            && !provides.services.contains(&service)
        {
            errors.push(ManifestError::UndeclaredRouteService {
                id: id.clone(),
                operation: route.operation.to_owned(),
                service: service.to_owned(),
            });
        }
    }
    for event in provides.events.publishes {
        if !event_names.contains(event) {
            errors.push(ManifestError::UndescribedEvent {
                id: id.clone(),
                event: (*event).to_owned(),
            });
        }
    }
    let privileged_kind = m.kind() == CapabilityKind::SystemCapability;
    if (m.privileged() || privileged_kind) && !SYSTEM_PACKAGE_ALLOWLIST.contains(&reg.package) {
        errors.push(ManifestError::PrivilegedOutsideSystem {
            id: id.clone(),
            package: reg.package,
        });
    }
    if privileged_kind {
        match SYSTEM_CAPABILITIES
            .iter()
            .find(|(sys_id, _)| *sys_id == m.id())
        {
            None => errors.push(ManifestError::UnofficialSystemId {
                id: id.clone(),
                official: SYSTEM_CAPABILITIES
                    .iter()
                    .map(|(i, _)| *i)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            Some((_, namespace)) if provides.migrations.namespace != Some(namespace) => errors
                .push(ManifestError::WrongNamespace {
                    id: id.clone(),
                    found: provides.migrations.namespace.map(str::to_owned),
                    expected: namespace,
                }),
            Some(_) => {}
        }
        if !m.privileged() {
            errors.push(system_flag(&id, "privileged", "false"));
        }
        if !m.required() {
            errors.push(system_flag(&id, "required", "false"));
        }
        if m.stability() != Stability::Experimental {
            errors.push(system_flag(&id, "stability", m.stability().as_str()));
        }
    }
}

fn system_flag(id: &str, field: &'static str, found: &str) -> ManifestError {
    ManifestError::SystemFlags {
        id: id.to_owned(),
        field,
        found: found.to_owned(),
    }
}

/// A business plugin may not use a system capability's ID, service names, route paths (as their
/// route sets serve them) or events.
fn validate_shadowing(registrations: &[&'static Registration], errors: &mut Vec<ManifestError>) {
    let mut owned: BTreeMap<(&'static str, String), String> = BTreeMap::new();
    for (sys_id, _) in SYSTEM_CAPABILITIES {
        owned.insert(("id", (*sys_id).to_owned()), (*sys_id).to_owned());
    }
    for reg in registrations
        .iter()
        .filter(|r| r.manifest.kind() == CapabilityKind::SystemCapability)
    {
        let m = reg.manifest;
        for s in m.provides().services {
            owned.insert(("service", (*s).to_owned()), m.id().to_owned());
        }
        for op in served(&reg.routes) {
            owned.insert(("route path", op.path), m.id().to_owned());
        }
        for e in m.provides().events.publishes {
            owned.insert(("event", (*e).to_owned()), m.id().to_owned());
        }
    }
    for reg in registrations
        .iter()
        .filter(|r| r.manifest.kind() == CapabilityKind::BusinessPlugin)
    {
        let m = reg.manifest;
        let claims = std::iter::once(("id", m.id().to_owned()))
            .chain(
                m.provides()
                    .services
                    .iter()
                    .map(|s| ("service", (*s).to_owned())),
            )
            .chain(
                served(&reg.routes)
                    .into_iter()
                    .map(|op| ("route path", op.path)),
            )
            .chain(
                m.provides()
                    .events
                    .publishes
                    .iter()
                    .map(|e| ("event", (*e).to_owned())),
            );
        for (what, value) in claims {
            if let Some(owner) = owned.get(&(what, value.clone())) {
                errors.push(ManifestError::ShadowsSystem {
                    id: m.id().to_owned(),
                    what,
                    value,
                    owner: owner.clone(),
                });
            }
        }
    }
}

/// Each bundle's expected IDs must all be linked, and every system capability must be in a bundle.
fn validate_bundles(
    registrations: &[&'static Registration],
    bundles: &[&'static BundleDeclaration],
    errors: &mut Vec<ManifestError>,
) {
    let linked: BTreeSet<&str> = registrations.iter().map(|r| r.manifest.id()).collect();
    let mut declared = BTreeSet::new();
    for bundle in bundles {
        for id in bundle.capability_ids {
            declared.insert(*id);
            if !linked.contains(id) {
                errors.push(ManifestError::BundleMissing {
                    package: bundle.package,
                    id: (*id).to_owned(),
                });
            }
        }
    }
    for reg in registrations {
        let m = reg.manifest;
        if m.kind() == CapabilityKind::SystemCapability && !declared.contains(m.id()) {
            errors.push(ManifestError::NotInBundle {
                id: m.id().to_owned(),
            });
        }
    }
}
