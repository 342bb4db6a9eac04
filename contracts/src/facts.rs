//! The facts every process decides on, as values: what identity, the registry and the grant store
//! publish after each committed write for authorization to decide on, the credentials the
//! control plane and identity authenticate with (API keys, admin grants, sessions: HMACs, never
//! secrets), and what each consumer loads whole when it starts.
//!
//! A fact is the full state of one entity after a change, never a diff, so applying the same fact
//! twice is harmless. They travel through the change feed ([`crate::feed`]), in revision order,
//! as typed values within a process and serialised in the feed table; events still carry them
//! as `{"facts": [...]}` in their payload for subscribers ([`facts_of`] reads them back).

use serde::{Deserialize, Serialize};

/// The state of one entity authorization cares about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fact {
    /// A user.
    User {
        /// Its ID.
        id: String,
        /// `active`, `disabled`, …
        status: String,
        /// Its username (unique among users; it may change). Absent from facts written before
        /// users carried it, and left out of the serialised fact when unknown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// Its stored metadata ([`metadata_text`]), when it has any: part of what permission
        /// conditions read as `subject.properties`. Absent from facts written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<String>,
    },
    /// A space.
    Space {
        /// Its ID.
        id: String,
        /// `active`, `disabled`, …
        status: String,
    },
    /// A member of a space.
    Member {
        /// Its ID.
        id: String,
        /// Its space.
        space_id: String,
        /// `active`, `disabled`, …
        status: String,
        /// Its stored metadata ([`metadata_text`]), when it has any: what permission conditions
        /// read as `subject.properties`, over the user's. Absent from facts written before it
        /// existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<String>,
    },
    /// A binding that lets a user act as a member.
    UserMember {
        /// Its ID.
        id: String,
        /// The user.
        user_id: String,
        /// The member.
        member_id: String,
        /// `active` or `revoked`.
        status: String,
        /// Its expiry, RFC 3339.
        expires_at: Option<String>,
    },
    /// A group of a space's tree.
    Group {
        /// Its ID.
        id: String,
        /// Its space.
        space_id: String,
        /// Its dotted path.
        path: String,
        /// `active`, `disabled`, …
        status: String,
    },
    /// A registered resource type.
    ResourceType {
        /// Its ID.
        id: String,
        /// Its key, as checks name it.
        key: String,
        /// `active`, `deprecated`, `disabled`.
        status: String,
    },
    /// A registered action of a resource type.
    ResourceAction {
        /// The type's key.
        resource_type: String,
        /// The action's key.
        key: String,
        /// `normal`, `high`, …: what permission conditions read as `action.risk_level`. Absent
        /// from facts written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        risk_level: Option<String>,
    },
    /// A registered resource.
    Resource {
        /// The type's key.
        resource_type: String,
        /// Its ID.
        id: String,
        /// The ID in the application that owns it; checks may name a resource by either.
        external_id: String,
        /// Its space.
        space_id: String,
        /// Its group.
        group_id: Option<String>,
        /// The owning member.
        owner_member_id: Option<String>,
        /// `active` or `archived`.
        status: String,
        /// `private`, `space` or `public`: what permission conditions read as
        /// `resource.visibility`. Absent from facts written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visibility: Option<String>,
        /// Its stored metadata (a JSON object as text), when it has any: what permission
        /// conditions read as `resource.properties`. Absent from facts written before it
        /// existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<String>,
    },
    /// A role of a space.
    Role {
        /// Its ID.
        id: String,
        /// Its space.
        space_id: String,
        /// Its key.
        key: String,
        /// `active` or `disabled`.
        status: String,
    },
    /// A permission: an action on a resource type within a scope.
    Permission {
        /// Its ID.
        id: String,
        /// The resource type.
        resource: String,
        /// The action.
        action: String,
        /// `self`, `group`, `group_tree`, `space` or `global`.
        scope: String,
        /// `active` or `disabled`.
        status: String,
        /// Its condition (CEL source), when it has one. Absent from facts written before it
        /// existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        condition: Option<String>,
    },
    /// A permission held by a role.
    RolePermission {
        /// Its ID.
        id: String,
        /// The role.
        role_id: String,
        /// The permission.
        permission_id: String,
        /// Removed (soft-deleted).
        deleted: bool,
    },
    /// A role held by a member.
    MemberRole {
        /// Its ID.
        id: String,
        /// Its space.
        space_id: String,
        /// The member.
        member_id: String,
        /// The role.
        role_id: String,
        /// The anchor group of group scopes.
        scope_anchor_group_id: Option<String>,
        /// `active` or `revoked`.
        status: String,
    },
    /// A managed API key (admin.control_plane), as verifying it needs: never the secret, only
    /// its HMAC under the server's key secret.
    ApiKey {
        /// Its ID (`ak_…`).
        id: String,
        /// HMAC-SHA256 of the key's secret, hex.
        key_hmac: String,
        /// `instance`, `space` or `group`.
        level: String,
        /// The space of a space or group key.
        space_id: Option<String>,
        /// The group of a group key.
        group_id: Option<String>,
        /// The permission keys it holds.
        permission_keys: Vec<String>,
        /// `active` or `revoked` (a deleted key is `revoked`).
        status: String,
        /// When it stops working, RFC 3339.
        expires_at: Option<String>,
    },
    /// An admin grant (admin.control_plane).
    AdminGrant {
        /// Its ID (`ag_…`).
        id: String,
        /// The user it is granted to.
        user_id: String,
        /// `instance_super_admin`, `instance_admin`, `space_admin` or `group_admin`.
        level: String,
        /// The space of a space or group grant.
        space_id: Option<String>,
        /// The group of a group grant.
        group_id: Option<String>,
        /// The one permission key it is narrowed to, if any.
        permission_key: Option<String>,
        /// `active` or `revoked` (a deleted grant is `revoked`).
        status: String,
        /// When it stops, RFC 3339.
        expires_at: Option<String>,
    },
    /// A user session (identity.business), as verifying an access token needs: never the token,
    /// only its HMAC under the server's session secret.
    Session {
        /// Its ID (`sess_…`).
        id: String,
        /// The user.
        user_id: String,
        /// The binding the session acts through, if one is selected.
        user_member_id: Option<String>,
        /// HMAC-SHA256 of the current access token, hex.
        token_hmac: String,
        /// `active` or `revoked`.
        status: String,
        /// When the access token expires, RFC 3339.
        expires_at: String,
    },
}

/// The payload field events carry their facts in.
pub const FACTS_FIELD: &str = "facts";

/// The facts an event payload carries; `Ok(None)` when it carries none, `Err` when the field is
/// there but malformed (a publisher bug the reader must not silently skip).
pub fn facts_of(payload: &serde_json::Value) -> Result<Option<Vec<Fact>>, serde_json::Error> {
    match payload.get(FACTS_FIELD) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => Vec::<Fact>::deserialize(value).map(Some),
    }
}

/// `facts` as the payload field value.
pub fn facts_value(facts: &[Fact]) -> serde_json::Value {
    serde_json::to_value(facts).unwrap_or(serde_json::Value::Null)
}

/// Stored metadata as a fact carries it: the JSON object's text, `None` when there is none (or it
/// is empty). One form for every fact, whether made from an entity or from a bulk read.
pub fn metadata_text(metadata: Option<&crate::storage::Metadata>) -> Option<String> {
    metadata
        .filter(|m| !m.is_empty())
        .and_then(|m| serde_json::to_string(m).ok())
}

/// A `metadata` column read as text (a bulk read) in [`metadata_text`]'s form; anything but a
/// JSON object is none.
pub fn stored_metadata_text(column: Option<String>) -> Option<String> {
    let parsed: crate::storage::Metadata = serde_json::from_str(&column?).ok()?;
    metadata_text(Some(&parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_round_trip_through_an_event_payload() {
        let facts = vec![
            Fact::User {
                id: "user_a".into(),
                status: "active".into(),
                username: Some("alice@example.com".into()),
                metadata: None,
            },
            Fact::User {
                id: "user_b".into(),
                status: "disabled".into(),
                username: None,
                metadata: None,
            },
            Fact::MemberRole {
                id: "mr_a".into(),
                space_id: "space_a".into(),
                member_id: "member_a".into(),
                role_id: "role_a".into(),
                scope_anchor_group_id: None,
                status: "revoked".into(),
            },
        ];
        let payload = serde_json::json!({ FACTS_FIELD: facts_value(&facts), "id": "x" });
        assert_eq!(payload["facts"][0]["kind"], "user");
        assert_eq!(payload["facts"][0]["username"], "alice@example.com");
        // An unknown username is left out, not written as null.
        assert!(payload["facts"][1].get("username").is_none());
        assert_eq!(facts_of(&payload).unwrap(), Some(facts));
        // A user fact stored before users carried their username still reads, without one.
        let stored =
            serde_json::json!({"facts": [{"kind": "user", "id": "user_c", "status": "active"}]});
        assert_eq!(
            facts_of(&stored).unwrap(),
            Some(vec![Fact::User {
                id: "user_c".into(),
                status: "active".into(),
                username: None,
                metadata: None,
            }])
        );
        assert_eq!(facts_of(&serde_json::json!({"id": "x"})).unwrap(), None);
        assert!(facts_of(&serde_json::json!({"facts": [{"kind": "nope"}]})).is_err());
    }
}
