//! Authorization's pure core: the in-memory index ([`index`]), the decision engine and its trace
//! ([`engine`]), and the small vocabulary they share. No HTTP, no database, no async runtime:
//! the capability crate (`plystra-system-authz`) loads the index from the database, follows the
//! change feed into it and serves the decisions over HTTP; everything here is plain data and
//! pure functions, so its tests, property tests and benchmark build and run on their own.
//!
//! The boundary with the rest of the workspace is [`Fact`]: the capability maps each
//! `plystra_contracts::facts::Fact` it loads or follows to this crate's borrowed form (the
//! credentials kinds, which decisions do not use, have no counterpart here), and maps this
//! crate's [`DenyCode`] and [`ResolveError`] back to the contracts' types.

pub mod condition;
pub mod engine;
pub mod index;

/// A permission's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Enum),
    oai(rename_all = "snake_case")
)]
pub enum Scope {
    /// The target's owner is the acting member.
    #[cfg_attr(feature = "openapi", oai(rename = "self"))]
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

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Self::OwnSelf,
        Self::Group,
        Self::GroupTree,
        Self::Space,
        Self::Global,
    ];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OwnSelf => "self",
            Self::Group => "group",
            Self::GroupTree => "group_tree",
            Self::Space => "space",
            Self::Global => "global",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

/// Why the engine denied: upstream's 13 codes, in their order, and Plystra's one more
/// ([`DenyCode::ConditionNotMet`]). The capability maps each to the contracts' `DenyCode`, which
/// owns the wire names; a test there checks that the mapping is one to one and keeps the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Plystra's, not upstream's: a grant's scope covers the target but its condition was not
    /// met (or could not be evaluated), and no other grant allows.
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
}

/// Why the index could not resolve a request.
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
}

/// One entity's full state after a change, as the index applies it: the kinds a decision reads.
/// `S` is the text type: `&str` when the capability lends the facts it loaded or followed (no
/// copy), `String` in tests and the benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact<S = String> {
    /// A user.
    User {
        /// Its ID.
        id: S,
        /// `active`, `disabled`, …
        status: S,
        /// Its username (unique among users; it may change), when the fact carries it.
        username: Option<S>,
        /// Its stored metadata, a JSON object as text, when it has any: part of what a
        /// condition reads as `subject.properties`.
        metadata: Option<S>,
    },
    /// A space.
    Space {
        /// Its ID.
        id: S,
        /// `active`, `disabled`, …
        status: S,
    },
    /// A member of a space.
    Member {
        /// Its ID.
        id: S,
        /// Its space.
        space_id: S,
        /// `active`, `disabled`, …
        status: S,
        /// Its stored metadata, a JSON object as text, when it has any: what a condition reads
        /// as `subject.properties`, over the user's.
        metadata: Option<S>,
    },
    /// A binding between a user and a member (upstream's user-member).
    UserMember {
        /// Its ID.
        id: S,
        /// The user.
        user_id: S,
        /// The member.
        member_id: S,
        /// `active`, `revoked`, …
        status: S,
        /// Its expiry (RFC 3339), if any.
        expires_at: Option<S>,
    },
    /// A group.
    Group {
        /// Its ID.
        id: S,
        /// Its space.
        space_id: S,
        /// Its dotted path.
        path: S,
        /// `active`, `disabled`, …
        status: S,
    },
    /// A resource type.
    ResourceType {
        /// Its ID.
        id: S,
        /// Its key (what requests name).
        key: S,
        /// `active`, `disabled`, …
        status: S,
    },
    /// An action registered for a resource type.
    ResourceAction {
        /// The type's key.
        resource_type: S,
        /// The action's key.
        key: S,
        /// Its risk level, when the fact carries it: what a condition reads as
        /// `action.risk_level`.
        risk_level: Option<S>,
    },
    /// A resource.
    Resource(ResourceFact<S>),
    /// A role.
    Role {
        /// Its ID.
        id: S,
        /// Its space.
        space_id: S,
        /// Its key.
        key: S,
        /// `active`, `disabled`, …
        status: S,
    },
    /// A permission.
    Permission {
        /// Its ID.
        id: S,
        /// The resource type's key.
        resource: S,
        /// The action.
        action: S,
        /// Its scope's stored form.
        scope: S,
        /// `active`, `disabled`, …
        status: S,
        /// Its condition (CEL source), when it has one: the grant covers a request only when
        /// its scope covers the target and the condition holds.
        condition: Option<S>,
    },
    /// A permission held by a role.
    RolePermission {
        /// Its ID.
        id: S,
        /// The role.
        role_id: S,
        /// The permission.
        permission_id: S,
        /// Removed from the role.
        deleted: bool,
    },
    /// A role held by a member.
    MemberRole {
        /// Its ID.
        id: S,
        /// Its space.
        space_id: S,
        /// The member.
        member_id: S,
        /// The role.
        role_id: S,
        /// The anchor group of group scopes, if any.
        scope_anchor_group_id: Option<S>,
        /// `active`, `revoked`, …
        status: S,
    },
}

/// A resource's full state, as [`Fact::Resource`] carries it: its own type, so the index applies
/// it and the boundaries convert it as one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFact<S = String> {
    /// Its type's key.
    pub resource_type: S,
    /// Its ID.
    pub id: S,
    /// The application's ID for it.
    pub external_id: S,
    /// Its space.
    pub space_id: S,
    /// Its group, if any.
    pub group_id: Option<S>,
    /// Its owner, if any.
    pub owner_member_id: Option<S>,
    /// `active`, `archived`, …
    pub status: S,
    /// `private`, `space`, `public`, when the fact carries it: what a condition reads as
    /// `resource.visibility`.
    pub visibility: Option<S>,
    /// Its stored metadata, a JSON object as text, when it has any: what a condition reads
    /// as `resource.properties` (overlaid by the request's).
    pub metadata: Option<S>,
}

impl<S: AsRef<str>> ResourceFact<S> {
    /// The same resource, borrowing its texts.
    pub fn as_deref(&self) -> ResourceFact<&str> {
        fn opt<S: AsRef<str>>(s: &Option<S>) -> Option<&str> {
            s.as_ref().map(AsRef::as_ref)
        }
        ResourceFact {
            resource_type: self.resource_type.as_ref(),
            id: self.id.as_ref(),
            external_id: self.external_id.as_ref(),
            space_id: self.space_id.as_ref(),
            group_id: opt(&self.group_id),
            owner_member_id: opt(&self.owner_member_id),
            status: self.status.as_ref(),
            visibility: opt(&self.visibility),
            metadata: opt(&self.metadata),
        }
    }
}

impl<S> Fact<S> {
    /// The fact's kind, as the contracts' facts name it (`user`, `member_role`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User { .. } => "user",
            Self::Space { .. } => "space",
            Self::Member { .. } => "member",
            Self::UserMember { .. } => "user_member",
            Self::Group { .. } => "group",
            Self::ResourceType { .. } => "resource_type",
            Self::ResourceAction { .. } => "resource_action",
            Self::Resource(_) => "resource",
            Self::Role { .. } => "role",
            Self::Permission { .. } => "permission",
            Self::RolePermission { .. } => "role_permission",
            Self::MemberRole { .. } => "member_role",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_stored_form() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("planet"), None);
    }

    #[test]
    fn there_are_upstreams_thirteen_deny_codes_and_one_more() {
        let codes: std::collections::HashSet<_> = DenyCode::ALL.into_iter().collect();
        assert_eq!(codes.len(), 14);
        assert_eq!(DenyCode::ALL[13], DenyCode::ConditionNotMet);
    }
}
