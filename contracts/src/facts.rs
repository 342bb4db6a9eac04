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

use crate::text_rows::TextRows;

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
    stored_metadata_text_of(column.as_deref()?)
}

/// [`stored_metadata_text`] of a borrowed column.
pub fn stored_metadata_text_of(column: &str) -> Option<String> {
    let parsed: crate::storage::Metadata = serde_json::from_str(column).ok()?;
    metadata_text(Some(&parsed))
}

/// A part of a load's facts as a source hands it over: facts, or a chunk of resources as a bulk
/// read packed them (100,000 resources are read at start; see [`ResourceRows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactsPart {
    /// Facts.
    Facts(Vec<Fact>),
    /// `Fact::Resource`s, packed.
    Resources(ResourceRows),
}

impl FactsPart {
    /// How many facts the part holds.
    pub fn len(&self) -> usize {
        match self {
            Self::Facts(facts) => facts.len(),
            Self::Resources(rows) => rows.len(),
        }
    }

    /// It holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The part as facts.
    pub fn into_facts(self) -> Vec<Fact> {
        match self {
            Self::Facts(facts) => facts,
            Self::Resources(rows) => rows.iter().map(|row| row.to_fact()).collect(),
        }
    }
}

/// A chunk of `Fact::Resource`s as a bulk read packed them: one text buffer ([`TextRows`]) with
/// the columns in [`ResourceRows::COLUMNS`] order, instead of nine `String`s a resource.
/// Metadata is held apart, in [`metadata_text`]'s form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRows {
    rows: TextRows,
    /// Each row's metadata in the form a fact carries it.
    metadata: Vec<Option<String>>,
}

/// One resource of [`ResourceRows`], borrowed: a `Fact::Resource`'s fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceRow<'a> {
    /// The type's key.
    pub resource_type: &'a str,
    /// Its ID.
    pub id: &'a str,
    /// Its external ID.
    pub external_id: &'a str,
    /// Its space.
    pub space_id: &'a str,
    /// Its group.
    pub group_id: Option<&'a str>,
    /// The owning member.
    pub owner_member_id: Option<&'a str>,
    /// Its visibility.
    pub visibility: &'a str,
    /// Its status.
    pub status: &'a str,
    /// Its metadata, in [`metadata_text`]'s form.
    pub metadata: Option<&'a str>,
}

impl ResourceRows {
    /// The columns, in order: the type's key, ID, external ID, space, group, owner, visibility,
    /// status and the stored metadata as text.
    pub const COLUMNS: [&'static str; 9] = [
        "resource_type",
        "id",
        "external_id",
        "space_id",
        "group_id",
        "owner_member_id",
        "visibility",
        "status",
        "metadata",
    ];

    /// The metadata's place in [`ResourceRows::COLUMNS`].
    const METADATA: usize = 8;

    /// The columns a row may lack a value in.
    const OPTIONAL: [&'static str; 3] = ["group_id", "owner_member_id", "metadata"];

    /// `rows`, read as [`ResourceRows::COLUMNS`]; the stored metadata is put in a fact's form.
    /// Refused when a row lacks a value only group, owner and metadata may lack, or the rows
    /// have other columns.
    pub fn new(rows: TextRows) -> Result<Self, String> {
        if rows.columns() != Self::COLUMNS.len() || rows.partial() != 0 {
            return Err(format!(
                "resource rows have {} columns ({} values over), not {}",
                rows.columns(),
                rows.partial(),
                Self::COLUMNS.len()
            ));
        }
        let mut metadata = Vec::with_capacity(rows.len());
        for row in rows.iter() {
            for (column, name) in Self::COLUMNS.iter().enumerate() {
                if row.get(column).is_none() && !Self::OPTIONAL.contains(name) {
                    return Err(format!("a resource row has no {name}"));
                }
            }
            metadata.push(row.get(Self::METADATA).and_then(stored_metadata_text_of));
        }
        Ok(Self { rows, metadata })
    }

    /// How many resources.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// None.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The resources, in the order they were read.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ResourceRow<'_>> {
        self.rows
            .iter()
            .zip(&self.metadata)
            .map(|(row, metadata)| ResourceRow {
                // `new` checked that these are present.
                resource_type: row.get(0).unwrap_or_default(),
                id: row.get(1).unwrap_or_default(),
                external_id: row.get(2).unwrap_or_default(),
                space_id: row.get(3).unwrap_or_default(),
                group_id: row.get(4),
                owner_member_id: row.get(5),
                visibility: row.get(6).unwrap_or_default(),
                status: row.get(7).unwrap_or_default(),
                metadata: metadata.as_deref(),
            })
    }
}

impl ResourceRow<'_> {
    /// The resource as an owned fact.
    pub fn to_fact(&self) -> Fact {
        Fact::Resource {
            resource_type: self.resource_type.to_owned(),
            id: self.id.to_owned(),
            external_id: self.external_id.to_owned(),
            space_id: self.space_id.to_owned(),
            group_id: self.group_id.map(str::to_owned),
            owner_member_id: self.owner_member_id.map(str::to_owned),
            status: self.status.to_owned(),
            visibility: Some(self.visibility.to_owned()),
            metadata: self.metadata.map(str::to_owned),
        }
    }
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

    fn packed(rows: &[[Option<&str>; 9]]) -> TextRows {
        let mut packed = TextRows::new(9);
        for row in rows {
            for value in row {
                packed.push(*value).unwrap();
            }
        }
        packed
    }

    #[test]
    fn resource_rows_read_as_the_facts_a_full_read_makes_with_metadata_in_one_form() {
        let rows = ResourceRows::new(packed(&[
            [
                Some("invoice"),
                Some("res_1"),
                Some("inv-1"),
                Some("space_1"),
                Some("group_1"),
                Some("member_1"),
                Some("space"),
                Some("active"),
                // As PostgreSQL prints JSONB: spaces, its own key order.
                Some(r#"{"b": 2, "a": "x"}"#),
            ],
            [
                Some("invoice"),
                Some("res_2"),
                Some("inv-2"),
                Some("space_1"),
                None,
                None,
                Some("private"),
                Some("archived"),
                None,
            ],
            [
                Some("invoice"),
                Some("res_3"),
                Some("inv-3"),
                Some("space_1"),
                None,
                None,
                Some("public"),
                Some("active"),
                // Not an object, or empty: no metadata, as a full read makes it.
                Some("[1]"),
            ],
        ]))
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(ResourceRows::COLUMNS[ResourceRows::METADATA], "metadata");
        let facts = FactsPart::Resources(rows.clone()).into_facts();
        assert_eq!(
            facts[0],
            Fact::Resource {
                resource_type: "invoice".into(),
                id: "res_1".into(),
                external_id: "inv-1".into(),
                space_id: "space_1".into(),
                group_id: Some("group_1".into()),
                owner_member_id: Some("member_1".into()),
                status: "active".into(),
                visibility: Some("space".into()),
                metadata: Some(r#"{"a":"x","b":2}"#.into()),
            }
        );
        let parsed = serde_json::from_str(r#"{"b": 2, "a": "x"}"#).unwrap();
        assert_eq!(
            rows.iter().next().unwrap().metadata,
            metadata_text(Some(&parsed)).as_deref(),
            "the same text a fact made from the entity carries"
        );
        let second = rows.iter().nth(1).unwrap();
        assert_eq!(
            (second.group_id, second.owner_member_id, second.metadata),
            (None, None, None)
        );
        assert_eq!((second.status, second.visibility), ("archived", "private"));
        assert_eq!(rows.iter().nth(2).unwrap().metadata, None);
    }

    #[test]
    fn resource_rows_refuse_a_missing_required_value_and_other_shapes() {
        let full = [Some("t"); 9];
        assert!(ResourceRows::new(packed(&[full])).is_ok());
        for (column, name) in ResourceRows::COLUMNS.iter().enumerate() {
            let mut row = full;
            row[column] = None;
            let optional = ["group_id", "owner_member_id", "metadata"].contains(name);
            assert_eq!(
                ResourceRows::new(packed(&[full, row])).is_ok(),
                optional,
                "{name} missing"
            );
        }
        let mut partial = packed(&[full]);
        partial.push(Some("t")).unwrap();
        assert!(ResourceRows::new(partial).is_err(), "a value over");
        assert!(
            ResourceRows::new(TextRows::new(8)).is_err(),
            "eight columns"
        );
    }
}
