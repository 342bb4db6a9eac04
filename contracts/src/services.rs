//! The typed service registry, and the service traits through which capabilities use each other.
//!
//! A capability provides `Arc<dyn SomeService>` under the service name its manifest declares;
//! another capability requires it by type. Capabilities never reach into each other's crates.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

/// A service lookup or registration went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// No service of this type was provided.
    #[error(
        "service {type_name} is not provided (is the capability that provides it linked and listed as a dependency?)"
    )]
    Missing {
        /// The Rust type that was asked for.
        type_name: &'static str,
    },
    /// Two providers for one type or name.
    #[error("service {name} is provided twice")]
    Duplicate {
        /// The service name.
        name: &'static str,
    },
}

struct Entry {
    name: &'static str,
    value: Box<dyn Any + Send + Sync>,
}

/// Services by type, each under a declared name.
#[derive(Default)]
pub struct ServiceRegistry {
    by_type: HashMap<TypeId, Entry>,
    names: BTreeMap<&'static str, &'static str>,
}

impl std::fmt::Debug for ServiceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRegistry")
            .field("services", &self.names)
            .finish()
    }
}

impl ServiceRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Provides `service` under `name`. Typically `T` is a `dyn Trait` from this module.
    pub fn provide<T: ?Sized + Send + Sync + 'static>(
        &mut self,
        name: &'static str,
        service: Arc<T>,
    ) -> Result<(), ServiceError> {
        let key = TypeId::of::<Arc<T>>();
        if self.by_type.contains_key(&key) || self.names.contains_key(name) {
            return Err(ServiceError::Duplicate { name });
        }
        self.names.insert(name, std::any::type_name::<T>());
        self.by_type.insert(
            key,
            Entry {
                name,
                value: Box::new(service),
            },
        );
        Ok(())
    }

    /// The service of type `T`.
    pub fn require<T: ?Sized + Send + Sync + 'static>(&self) -> Result<Arc<T>, ServiceError> {
        self.by_type
            .get(&TypeId::of::<Arc<T>>())
            .and_then(|entry| entry.value.downcast_ref::<Arc<T>>())
            .cloned()
            .ok_or(ServiceError::Missing {
                type_name: std::any::type_name::<T>(),
            })
    }

    /// The name under which `T` was provided.
    pub fn name_of<T: ?Sized + Send + Sync + 'static>(&self) -> Option<&'static str> {
        self.by_type
            .get(&TypeId::of::<Arc<T>>())
            .map(|entry| entry.name)
    }

    /// Whether a service was provided under `name`.
    pub fn has_name(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Every provided service name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.names.keys().copied()
    }
}

/// Why a check denied: upstream's 13 codes, in their order, then Plystra's
/// `CONDITION_NOT_MET` (a grant's scope covers the target, but its condition does not hold). A
/// client that knows only upstream's codes still reads the decision from `decision`/`allow`;
/// the 14th code is answered only where a permission carries a condition, which only a
/// Plystra-aware operator can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, poem_openapi::Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DenyCode {
    /// The acting user is not active.
    ActorUserInactive,
    /// The acting member is not active.
    ActorMemberInactive,
    /// The space is not active.
    SpaceInactive,
    /// The user-member binding is revoked.
    UserMemberRevoked,
    /// The user-member binding is past its expiry.
    UserMemberExpired,
    /// The actor, the target, its group or a grant belong to different spaces.
    CrossSpaceViolation,
    /// No grant covers this resource type and action.
    NoMatchingPermission,
    /// A grant's scope needs an anchor group that is missing.
    ScopeAnchorMissing,
    /// A grant's scope needs the target's group, which is missing.
    TargetGroupMissing,
    /// Grants exist, but none of their scopes covers the target.
    ScopeOutOfBounds,
    /// A grant uses the `global` scope, which always denies.
    GlobalScopeDisabled,
    /// The resource type is not registered.
    InvalidResourceType,
    /// The action is not registered for the resource type.
    InvalidResourceAction,
    /// Plystra's: a grant's scope covers the target, but its condition was not met (or could
    /// not be evaluated), and no other grant allows.
    ConditionNotMet,
}

impl DenyCode {
    /// Every code: upstream's 13 in their order, then Plystra's.
    pub const ALL: [DenyCode; 14] = [
        Self::ActorUserInactive,
        Self::ActorMemberInactive,
        Self::SpaceInactive,
        Self::UserMemberRevoked,
        Self::UserMemberExpired,
        Self::CrossSpaceViolation,
        Self::NoMatchingPermission,
        Self::ScopeAnchorMissing,
        Self::TargetGroupMissing,
        Self::ScopeOutOfBounds,
        Self::GlobalScopeDisabled,
        Self::InvalidResourceType,
        Self::InvalidResourceAction,
        Self::ConditionNotMet,
    ];

    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActorUserInactive => "ACTOR_USER_INACTIVE",
            Self::ActorMemberInactive => "ACTOR_MEMBER_INACTIVE",
            Self::SpaceInactive => "SPACE_INACTIVE",
            Self::UserMemberRevoked => "USER_MEMBER_REVOKED",
            Self::UserMemberExpired => "USER_MEMBER_EXPIRED",
            Self::CrossSpaceViolation => "CROSS_SPACE_VIOLATION",
            Self::NoMatchingPermission => "NO_MATCHING_PERMISSION",
            Self::ScopeAnchorMissing => "SCOPE_ANCHOR_MISSING",
            Self::TargetGroupMissing => "TARGET_GROUP_MISSING",
            Self::ScopeOutOfBounds => "SCOPE_OUT_OF_BOUNDS",
            Self::GlobalScopeDisabled => "GLOBAL_SCOPE_DISABLED",
            Self::InvalidResourceType => "INVALID_RESOURCE_TYPE",
            Self::InvalidResourceAction => "INVALID_RESOURCE_ACTION",
            Self::ConditionNotMet => "CONDITION_NOT_MET",
        }
    }

    /// Parses the wire form.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// An authorization outcome: `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum Decision {
    /// Allowed (audit records of management changes that were carried out say `allow` too).
    Allow,
    /// Denied.
    Deny,
}

/// The kernel's view of the runtime, offered to capabilities as a service (`kernel.runtime`).
pub trait RuntimeInfo: Send + Sync {
    /// Whether the process runs in production mode.
    fn production(&self) -> bool;
    /// Reads a configuration value by its environment name (`PLYSTRA_…`).
    fn setting(&self, name: &str) -> Option<String>;
}

/// One audit record handed to the audit capability.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// What kind of event this is (`authz.decision`, `users.create`, …).
    pub event_type: String,
    /// The request that caused it.
    pub request_id: String,
    /// The action, for example `approve` or `users.create`.
    pub action: String,
    /// The space it happened in, if any.
    pub space_id: Option<String>,
    /// The acting user, member and binding, if known.
    pub actor_user_id: Option<String>,
    /// The acting member.
    pub actor_member_id: Option<String>,
    /// The binding between them.
    pub actor_user_member_id: Option<String>,
    /// The target's type.
    pub resource_type: Option<String>,
    /// The target's ID.
    pub resource_id: Option<String>,
    /// `allow` or `deny`, for decisions.
    pub decision: Option<String>,
    /// The deny code of a deny.
    pub deny_code: Option<String>,
    /// The caller's IP address, as the server saw it.
    pub ip_address: Option<String>,
    /// The caller's user agent.
    pub user_agent: Option<String>,
    /// The trace or snapshot; redacted before it is stored.
    pub trace: serde_json::Value,
}

impl AuditRecord {
    /// A record of `event_type` and `action` caused by the request `request_id`, every other
    /// field empty.
    pub fn new(
        request_id: impl Into<String>,
        event_type: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            request_id: request_id.into(),
            action: action.into(),
            space_id: None,
            actor_user_id: None,
            actor_member_id: None,
            actor_user_member_id: None,
            resource_type: None,
            resource_id: None,
            decision: None,
            deny_code: None,
            ip_address: None,
            user_agent: None,
            trace: serde_json::Value::Null,
        }
    }
}

/// The audit service could not make a record durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit unavailable: {0}")]
pub struct AuditUnavailable(pub String);

/// Records audit events durably (audit.explainable provides it as `audit.service`).
///
/// Every record is redacted by the one policy before it is stored, and appended to the hash chain.
#[async_trait]
pub trait AuditRecorder: Send + Sync {
    /// Appends through the group-commit writer; returns the record's ID once it is durable.
    /// `Ok(None)` when the write mode skips it (`deny_only` and an allow decision).
    async fn record(&self, record: AuditRecord) -> Result<Option<String>, AuditUnavailable>;

    /// True when [`record`](Self::record) skips every allowed `authz.decision` (the `deny_only`
    /// write mode), so a decider need not build the record of an allow at all.
    fn skips_allowed_decisions(&self) -> bool {
        false
    }

    /// `value` as the audit log's redaction policy would store it: for answers that show what
    /// the log keeps (explain's condition inputs). The default keeps nothing of it.
    fn redact(&self, value: serde_json::Value) -> serde_json::Value {
        drop(value);
        serde_json::Value::String("[redacted]".to_owned())
    }

    /// Appends inside the caller's transaction, so a management mutation and its record commit
    /// together or not at all. Holds the chain until the caller commits or rolls back.
    async fn record_in(
        &self,
        tx: &mut crate::storage::Transaction,
        record: AuditRecord,
    ) -> Result<String, AuditUnavailable>;
}

/// Who is acting, as the caller names them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActorRef {
    /// The user.
    pub user_id: String,
    /// The member the user acts as.
    pub member_id: String,
    /// The binding that lets the user act as the member.
    pub user_member_id: String,
    /// The space.
    pub space_id: String,
}

/// Why an actor could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// An ID names nothing.
    #[error("{entity} {id} not found")]
    NotFound {
        /// The entity kind (`user`, `member`, …).
        entity: &'static str,
        /// The ID that was not found.
        id: String,
    },
    /// The store could not answer.
    #[error("identity store unavailable: {0}")]
    Unavailable(String),
}

/// A group as other capabilities see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// The group's ID.
    pub id: String,
    /// Its space.
    pub space_id: String,
    /// Its dotted path.
    pub path: String,
    /// `active` or `disabled`.
    pub status: String,
}

/// Resolves actors (identity.business provides it as `identity.service`).
#[async_trait]
pub trait ActorResolver: Send + Sync {
    /// A group by ID (the control plane's group-level scopes), `None` when there is no such
    /// group.
    async fn group(&self, group_id: &str) -> Result<Option<GroupSnapshot>, ResolveError>;

    /// The actor a user session acts as: its user, the binding it acts through, that binding's
    /// member and the member's space. `NotFound` when the session has no acting binding.
    async fn of_session(&self, session_id: &str) -> Result<ActorRef, ResolveError>;

    /// Every user, space, member, binding and group, as facts: what authorization's index loads
    /// at start. Later changes arrive as `identity.facts_changed` events.
    async fn facts(&self) -> Result<Vec<crate::facts::Fact>, ResolveError>;

    /// The same facts as [`ActorResolver::facts`], handed to `part` as they are read (a table
    /// at a time, say), so that a load can apply the first part while the rest is read. The
    /// default hands them over in one part.
    async fn facts_in_parts(
        &self,
        part: &mut (dyn FnMut(Vec<crate::facts::Fact>) + Send),
    ) -> Result<(), ResolveError> {
        part(self.facts().await?);
        Ok(())
    }

    /// Every user and group, as facts: what the control plane's credentials need (user statuses
    /// for grants, group spaces and paths for scopes), without reading members and bindings.
    /// The default filters [`ActorResolver::facts`].
    async fn user_and_group_facts(&self) -> Result<Vec<crate::facts::Fact>, ResolveError> {
        let mut facts = self.facts().await?;
        facts.retain(|f| {
            matches!(
                f,
                crate::facts::Fact::User { .. } | crate::facts::Fact::Group { .. }
            )
        });
        Ok(facts)
    }
}

/// Looks up registry entries and targets (resource.registry provides it as `resource.registry`).
#[async_trait]
pub trait ResourceLookup: Send + Sync {
    /// Every resource type, action and resource, as facts: what authorization's index loads at
    /// start. Later changes arrive in `resource.registry_updated` events.
    async fn facts(&self) -> Result<Vec<crate::facts::Fact>, ResolveError>;

    /// The same facts as [`ResourceLookup::facts`], handed to `part` as they are read, so that
    /// a load can apply the first part while the next is read and never holds them all at
    /// once; resources may come packed ([`crate::facts::FactsPart::Resources`]). The default
    /// hands them over in one part.
    async fn facts_in_parts(
        &self,
        part: &mut (dyn FnMut(crate::facts::FactsPart) + Send),
    ) -> Result<(), ResolveError> {
        part(crate::facts::FactsPart::Facts(self.facts().await?));
        Ok(())
    }
}

/// The outcome of an authorization check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Allowed or denied.
    pub decision: Decision,
    /// The deny code on a deny.
    pub deny_code: Option<DenyCode>,
    /// A sentence for people.
    pub reason: String,
    /// The trace's ID.
    pub trace_id: String,
    /// The durable audit record's ID (`None` only when `deny_only` auditing skipped an allow).
    pub audit_log_id: Option<String>,
}

impl CheckOutcome {
    /// Allowed.
    pub fn allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

/// A check request in managed mode, as a capability or plugin asks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    /// Who acts.
    pub actor: ActorRef,
    /// The target's type.
    pub resource_type: String,
    /// The target's ID.
    pub resource_id: String,
    /// The action.
    pub action: String,
    /// The end user's address, for the audit record.
    pub ip: Option<String>,
    /// The end user's agent, for the audit record.
    pub user_agent: Option<String>,
    /// The request that led to the check, for its trace and audit record: the plugin's own HTTP
    /// request's ID ([`RequestId::of`]) or, outside one, an ID the plugin can correlate (a job's).
    pub request_id: String,
}

/// Why a check could not be decided. Never an allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    /// The request is malformed, names something unknown, or the index or audit store cannot
    /// answer; the error says which, as the HTTP routes would.
    #[error(transparent)]
    Refused(#[from] crate::ApiError),
}

/// Decides and audits checks (authorization.resource provides it as `authorization.checks`):
/// what business plugins call before they act.
#[async_trait]
pub trait Authorizer: Send + Sync {
    /// Decides one check and makes its audit record durable before answering. The request is
    /// taken as it is, typed: its strings move into the decision's trace and audit record, and
    /// a blank field is refused as `authz/check` refuses it.
    async fn check(&self, request: CheckRequest) -> Result<CheckOutcome, CheckError>;
}

/// Registers what a business plugin governs (resource.registry provides it as
/// `resource.registrar`). Every write is audited like the same call over HTTP.
#[async_trait]
pub trait ResourceRegistrar: Send + Sync {
    /// Creates or updates the resource type `key` and its actions `(key, risk level)`.
    async fn declare_type(
        &self,
        key: &str,
        display_name: &str,
        actions: &[(&str, &str)],
    ) -> Result<(), crate::ApiError>;

    /// Registers a resource of type `resource_type` in `space_id`; the registry generates the ID
    /// when `id` is `None`. Returns the ID.
    async fn create_resource(&self, resource: NewResource) -> Result<String, crate::ApiError>;

    /// The resource, `None` when there is no such resource.
    async fn resource(
        &self,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<RegisteredResource>, crate::ApiError>;
}

/// A registered resource as a plugin reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredResource {
    /// Its ID.
    pub id: String,
    /// Its space.
    pub space_id: String,
    /// Its group.
    pub group_id: Option<String>,
    /// The owning member.
    pub owner_member_id: Option<String>,
    /// Free-form attributes.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A resource a plugin registers.
#[derive(Debug, Clone, PartialEq)]
pub struct NewResource {
    /// Its type's key.
    pub resource_type: String,
    /// Its ID, or `None` to generate one.
    pub id: Option<String>,
    /// Its space.
    pub space_id: String,
    /// Its group.
    pub group_id: Option<String>,
    /// The owning member.
    pub owner_member_id: Option<String>,
    /// Free-form attributes.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Who registers it, for the audit record.
    pub credential: Option<Credential>,
    /// The request that registers it, for the audit record: the plugin's own HTTP request's ID
    /// ([`RequestId::of`]) or, outside one, an ID the plugin can correlate (1-128 characters,
    /// no control characters).
    pub request_id: String,
}

/// A credential the kernel authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The environment bootstrap key (`PLYSTRA_API_KEY`).
    BootstrapKey,
    /// A managed API key.
    ApiKey {
        /// The key's ID.
        id: String,
    },
    /// A user session.
    Session {
        /// The user.
        user_id: String,
        /// The session.
        session_id: String,
    },
}

impl Credential {
    /// The caller's credential, as the kernel's request pipeline put it in the request.
    pub fn of(req: &poem::Request) -> Option<&Credential> {
        req.extensions().get::<Credential>()
    }
}

/// The ID of a request, as the kernel's request pipeline put it in the request (the caller's
/// `X-Request-Id` when acceptable, else a generated `req_…`). Audit records take it from here,
/// explicitly, never from ambient state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// What a record names when no request caused it (an operator command, a background task).
    pub const NONE: &'static str = "req_unknown";

    /// The ID of `req`, or [`RequestId::NONE`] for a request the pipeline did not serve.
    pub fn of(req: &poem::Request) -> &str {
        req.extensions()
            .get::<RequestId>()
            .map_or(Self::NONE, |id| id.0.as_str())
    }
}

/// Who made a change and in which request: what an audit record of the change names.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The credential the kernel authenticated, if any.
    pub credential: Option<&'a Credential>,
    /// The request that made the change.
    pub request_id: &'a str,
}

impl<'a> Caller<'a> {
    /// The caller of an HTTP request the kernel's pipeline served.
    pub fn of(req: &'a poem::Request) -> Self {
        Self {
            credential: Credential::of(req),
            request_id: RequestId::of(req),
        }
    }

    /// A caller outside any HTTP request: an operator command run against the database, a
    /// plugin declaring its types at start.
    pub fn internal() -> Caller<'static> {
        Caller {
            credential: None,
            request_id: RequestId::NONE,
        }
    }
}

/// Verifies session access tokens (`ply_at_…`); identity.business provides it as
/// `identity.sessions`. The kernel's request pipeline consults it for protected routes.
#[async_trait]
pub trait SessionVerifier: Send + Sync {
    /// The session credential a token proves, `Ok(None)` for an unknown, expired or revoked one.
    async fn verify(&self, access_token: &str) -> Result<Option<Credential>, ResolveError>;
}

/// What a management call targets, as the kernel read it from the request: the operation's path
/// template and its path parameters (`space_id`, `group_id`, …). Space- and group-scoped
/// principals are judged against it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminTarget {
    /// The operation's path template, `/api/v1/spaces/{space_id}/members` style.
    pub route: String,
    /// The path parameters, by name.
    pub params: BTreeMap<String, String>,
}

impl AdminTarget {
    /// The value of path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Decides whether a credential may call a management operation (admin.control_plane provides it
/// as `admin.service`).
#[async_trait]
pub trait AdminAuthorizer: Send + Sync {
    /// Whether `credential` holds `permission` (for example `users:read`).
    async fn authorize(
        &self,
        credential: &Credential,
        permission: &str,
    ) -> Result<bool, ResolveError>;

    /// Whether `credential` holds `permission` for `target`: a scoped principal only reaches its
    /// own space or group subtree. Defaults to [`AdminAuthorizer::authorize`].
    async fn authorize_target(
        &self,
        credential: &Credential,
        permission: &str,
        _target: &AdminTarget,
    ) -> Result<bool, ResolveError> {
        self.authorize(credential, permission).await
    }

    /// Whether the environment bootstrap key is still accepted. After the handoff to a managed
    /// super admin, production refuses it; the refusal's audit record names `request_id`, the
    /// request that presented the key. Defaults to `true`.
    async fn accepts_bootstrap_key(&self, request_id: &str) -> Result<bool, ResolveError> {
        let _ = request_id;
        Ok(true)
    }
}

/// The states of the linked capabilities, as the kernel tracks them (the kernel provides it as
/// `kernel.capabilities`).
pub trait CapabilityStates: Send + Sync {
    /// `(capability ID, state)` for every linked capability, in boot order.
    fn states(&self) -> Vec<(String, String)>;
}

/// Verifies managed API keys (`ply_ak_…`); admin.control_plane provides it as `admin.api_keys`.
/// The kernel's request pipeline consults it for protected routes.
#[async_trait]
pub trait ApiKeyVerifier: Send + Sync {
    /// The credential a presented key proves, `Ok(None)` for an unknown, revoked or expired one.
    async fn verify(&self, presented: &str) -> Result<Option<Credential>, ResolveError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_codes_round_trip_through_their_wire_names() {
        use poem_openapi::types::ToJSON;
        for code in DenyCode::ALL {
            assert_eq!(DenyCode::parse(code.as_str()), Some(code));
            assert_eq!(
                code.to_json().unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
        assert_eq!(DenyCode::parse("NOPE"), None);
    }

    trait Greeter: Send + Sync {
        fn greet(&self) -> &'static str;
    }
    struct English;
    impl Greeter for English {
        fn greet(&self) -> &'static str {
            "hello"
        }
    }

    #[test]
    fn provides_and_requires_by_type() {
        let mut registry = ServiceRegistry::new();
        registry
            .provide::<dyn Greeter>("test.greeter", Arc::new(English))
            .unwrap();
        assert_eq!(registry.require::<dyn Greeter>().unwrap().greet(), "hello");
        assert_eq!(registry.name_of::<dyn Greeter>(), Some("test.greeter"));
        assert!(registry.has_name("test.greeter"));
    }

    #[test]
    fn missing_and_duplicate_services_are_typed_errors() {
        let mut registry = ServiceRegistry::new();
        assert!(matches!(
            registry.require::<dyn Greeter>(),
            Err(ServiceError::Missing { .. })
        ));
        registry
            .provide::<dyn Greeter>("test.greeter", Arc::new(English))
            .unwrap();
        let again = registry.provide::<dyn Greeter>("test.other", Arc::new(English));
        assert_eq!(again, Err(ServiceError::Duplicate { name: "test.other" }));
    }
}
