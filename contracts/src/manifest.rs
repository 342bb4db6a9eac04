//! Capability manifests: the const-constructible declaration of what a capability is, needs and provides.
//!
//! A manifest's fields are private. The only public constructor, [`CapabilityManifest::business_plugin`],
//! always yields a non-privileged `business_plugin`. System capabilities are built through the
//! privileged path in `system/privileged`, which `cargo xtask privileged` and the kernel both guard.

use serde::Serialize;

/// What kind of capability a manifest declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityKind {
    /// One of the five official governance capabilities.
    SystemCapability,
    /// Anything else: a plugin that must pass through the governance layer.
    BusinessPlugin,
}

impl CapabilityKind {
    /// The wire name of the kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SystemCapability => "system_capability",
            Self::BusinessPlugin => "business_plugin",
        }
    }
}

/// How settled a capability's interface is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stability {
    /// May change in any release.
    Experimental,
    /// Changes only with notice.
    Beta,
    /// Covered by semver.
    Stable,
}

impl Stability {
    /// The wire name of the stability level.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Experimental => "experimental",
            Self::Beta => "beta",
            Self::Stable => "stable",
        }
    }
}

/// An HTTP method a route may be served on. A route set that serves an operation on any other
/// method is refused at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RouteMethod {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PATCH`
    Patch,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
}

impl RouteMethod {
    /// The method as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }

    /// Parses an upper- or lower-case method name.
    pub fn parse(method: &str) -> Option<Self> {
        match method.to_ascii_uppercase().as_str() {
            "GET" => Some(Self::Get),
            "POST" => Some(Self::Post),
            "PATCH" => Some(Self::Patch),
            "PUT" => Some(Self::Put),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// Who may call a protected route. The kernel enforces it before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// A management operation: the bootstrap key, or a credential the admin authorizer grants
    /// `permission` (for example `users:read`; `None` means only `*` covers it).
    Admin {
        /// The permission key the operation needs.
        permission: Option<&'static str>,
    },
    /// An operation on the caller's own user session (actor context, switch-member).
    SelfService,
}

/// One operation a capability declares it serves, keyed by its OpenAPI operationId, with what only
/// the manifest knows about it: who may call it and which declared service answers it.
///
/// The method and the path are not repeated here: they are the route set's own
/// (`#[oai(path = …, method = …, operation_id = …)]`), and the kernel reads them from its
/// poem-openapi metadata. At boot the kernel refuses an operation the route set serves that no
/// `RouteDecl` names, a `RouteDecl` naming an operation the route set does not serve, and an
/// operation declared twice.
///
/// ```
/// use plystra_contracts::RouteDecl;
///
/// const ROUTES: &[RouteDecl] = &[
///     RouteDecl::operation("checkAuthorization").permission("authz:check"),
///     RouteDecl::operation("getActorContext").self_service(),
///     RouteDecl::operation("login").served_by("identity.sessions"),
/// ];
/// # assert_eq!(ROUTES[0].operation, "checkAuthorization");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RouteDecl {
    /// The OpenAPI operationId the route set serves the operation under.
    pub operation: &'static str,
    /// The declared service that answers it; `None` means the capability's first service
    /// (`provides.services[0]`). See [`RouteDecl::service_in`].
    pub service: Option<&'static str>,
    /// Who may call it; management access unless declared otherwise.
    pub access: Access,
    /// How its errors are written: Plystra's envelope unless declared otherwise.
    pub errors: ErrorBody,
}

/// How an operation's error responses are written. Whatever the form, the status comes from the
/// one mapping of error codes ([`crate::ErrorCode::status`]) and the code rides in
/// `X-Plystra-Error-Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorBody {
    /// The upstream envelope, `{error: {code, message, details, request_id}, request_id}`.
    #[default]
    Envelope,
    /// The message alone, as `text/plain`: for operations that speak a standard whose errors
    /// are "an error message string" (AuthZEN). The kernel writes every error on the operation's
    /// path this way, its own (401, 403, 413, …) included.
    Text,
}

impl RouteDecl {
    /// The management operation `operation`: the bootstrap key or an admin grant of `*`,
    /// answered by the capability's first service.
    pub const fn operation(operation: &'static str) -> Self {
        Self {
            operation,
            service: None,
            access: Access::Admin { permission: None },
            errors: ErrorBody::Envelope,
        }
    }

    /// The same operation, needing `permission` from an admin grant.
    pub const fn permission(mut self, permission: &'static str) -> Self {
        self.access = Access::Admin {
            permission: Some(permission),
        };
        self
    }

    /// The same operation, for the caller's own user session.
    pub const fn self_service(mut self) -> Self {
        self.access = Access::SelfService;
        self
    }

    /// The same operation, its errors written as a message string ([`ErrorBody::Text`]).
    pub const fn text_errors(mut self) -> Self {
        self.errors = ErrorBody::Text;
        self
    }

    /// The same operation, answered by `service` (one of `provides.services`) rather than the
    /// capability's first service.
    pub const fn served_by(mut self, service: &'static str) -> Self {
        self.service = Some(service);
        self
    }

    /// The service that answers the operation in a capability that provides `provides`: the
    /// declared one, else the first of `provides.services` (`None` only when it is empty, which
    /// the kernel refuses).
    pub fn service_in(&self, provides: &Provides) -> Option<&'static str> {
        self.service.or_else(|| provides.services.first().copied())
    }
}

/// What a capability needs before it can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Requires {
    /// A semver requirement the kernel version must satisfy, for example `^0.0.1`.
    pub kernel: &'static str,
    /// The IDs of the capabilities that must boot first.
    pub capabilities: &'static [&'static str],
}

/// Events a capability publishes and subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Events {
    /// Event names this capability publishes.
    pub publishes: &'static [&'static str],
    /// Event names this capability listens to.
    pub subscribes: &'static [&'static str],
}

impl Events {
    /// No events at all.
    pub const NONE: Events = Events {
        publishes: &[],
        subscribes: &[],
    };
}

/// The migration namespace a capability owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Migrations {
    /// The namespace (`sys_audit`, …), or `None` for a capability that keeps no tables.
    pub namespace: Option<&'static str>,
}

/// What a capability provides to the rest of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Provides {
    /// Names of the services it registers (`audit.service`, …).
    pub services: &'static [&'static str],
    /// The operations it serves, by operationId; they must be exactly the operations of its
    /// route set, each once.
    pub routes: &'static [RouteDecl],
    /// Events it publishes and subscribes to.
    pub events: Events,
    /// The migration namespace it owns.
    pub migrations: Migrations,
    /// The settings it reads (`RuntimeInfo::setting`), each listed in `plystrad --help`.
    pub settings: &'static [Setting],
}

/// A setting a process reads from its environment: its name, what it does and its default.
/// The kernel declares its own; a capability declares the ones it reads in
/// [`Provides::settings`]. `plystrad --help` lists them all, and reading one that nobody declared
/// is a programming error the tests catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The environment name, `PLYSTRA_…`; a name ending in `_` declares a family
    /// (`PLYSTRA_AUDIT_PII_` for `PLYSTRA_AUDIT_PII_EMAIL`, …).
    pub name: &'static str,
    /// What it does and what it accepts, in one line.
    pub help: &'static str,
    /// What applies when it is unset, in words.
    pub default: &'static str,
}

impl Setting {
    /// Whether this declaration covers the setting `name`.
    pub fn covers(&self, name: &str) -> bool {
        if self.name.ends_with('_') {
            name.strip_prefix(self.name)
                .is_some_and(|rest| !rest.is_empty())
        } else {
            name == self.name
        }
    }
}

/// The fields a business plugin author writes. Kind, privilege and requiredness are not among
/// them: a business plugin is never privileged and never a system capability.
#[derive(Debug, Clone, Copy)]
pub struct BusinessPluginSpec {
    /// Stable dotted ID, for example `example.notes`.
    pub id: &'static str,
    /// Human-readable name.
    pub name: &'static str,
    /// Semver version of the plugin.
    pub version: &'static str,
    /// What it needs.
    pub requires: Requires,
    /// What it provides.
    pub provides: Provides,
    /// How settled its interface is.
    pub stability: Stability,
}

/// The fields of a system capability's manifest, as written in `system/`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct SystemCapabilitySpec {
    pub id: &'static str,
    pub name: &'static str,
    pub version: &'static str,
    pub requires: Requires,
    pub provides: Provides,
}

/// A token that the privileged registration path passes to build a system capability manifest.
///
/// Holding one is not a permission: the kernel still refuses a privileged manifest registered by
/// a package outside the system allowlist, and `cargo xtask privileged` flags any use of this type
/// outside `system/`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct PrivilegedSeal(());

impl PrivilegedSeal {
    #[doc(hidden)]
    pub const fn __new() -> Self {
        Self(())
    }
}

/// The declaration of a capability, checked by the kernel at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilityManifest {
    pub(crate) id: &'static str,
    pub(crate) kind: CapabilityKind,
    pub(crate) name: &'static str,
    pub(crate) version: &'static str,
    pub(crate) requires: Requires,
    pub(crate) provides: Provides,
    pub(crate) privileged: bool,
    pub(crate) required: bool,
    pub(crate) stability: Stability,
}

impl CapabilityManifest {
    /// A business plugin's manifest: never privileged, never required.
    pub const fn business_plugin(spec: BusinessPluginSpec) -> Self {
        Self {
            id: spec.id,
            kind: CapabilityKind::BusinessPlugin,
            name: spec.name,
            version: spec.version,
            requires: spec.requires,
            provides: spec.provides,
            privileged: false,
            required: false,
            stability: spec.stability,
        }
    }

    /// A system capability's manifest. Used only by `plystra-privileged`.
    #[doc(hidden)]
    pub const fn __system_capability(_seal: PrivilegedSeal, spec: SystemCapabilitySpec) -> Self {
        Self {
            id: spec.id,
            kind: CapabilityKind::SystemCapability,
            name: spec.name,
            version: spec.version,
            requires: spec.requires,
            provides: spec.provides,
            privileged: true,
            required: true,
            stability: Stability::Experimental,
        }
    }

    /// Stable dotted ID.
    pub const fn id(&self) -> &'static str {
        self.id
    }
    /// System capability or business plugin.
    pub const fn kind(&self) -> CapabilityKind {
        self.kind
    }
    /// Human-readable name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// Semver version string.
    pub const fn version(&self) -> &'static str {
        self.version
    }
    /// What it needs.
    pub const fn requires(&self) -> &Requires {
        &self.requires
    }
    /// What it provides.
    pub const fn provides(&self) -> &Provides {
        &self.provides
    }
    /// Whether it belongs to the privileged governance layer.
    pub const fn privileged(&self) -> bool {
        self.privileged
    }
    /// Whether the runtime is unready without it.
    pub const fn required(&self) -> bool {
        self.required
    }
    /// How settled its interface is.
    pub const fn stability(&self) -> Stability {
        self.stability
    }
}

/// Test-only access to every manifest field, so the kernel's negative tests can build manifests
/// that the public constructors refuse to produce. Compiled only with the `test-manifests` feature,
/// which no shipped crate enables.
#[cfg(feature = "test-manifests")]
pub mod test_manifests {
    use super::*;

    /// Every field, settable.
    #[derive(Debug, Clone, Copy)]
    pub struct RawManifest {
        pub id: &'static str,
        pub kind: CapabilityKind,
        pub name: &'static str,
        pub version: &'static str,
        pub requires: Requires,
        pub provides: Provides,
        pub privileged: bool,
        pub required: bool,
        pub stability: Stability,
    }

    impl RawManifest {
        /// Builds the manifest as written, without any rule applied.
        pub const fn build(self) -> CapabilityManifest {
            CapabilityManifest {
                id: self.id,
                kind: self.kind,
                name: self.name,
                version: self.version,
                requires: self.requires,
                provides: self.provides,
                privileged: self.privileged,
                required: self.required,
                stability: self.stability,
            }
        }
    }
}
