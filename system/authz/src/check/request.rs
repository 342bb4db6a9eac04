//! The request's wire types: an `authz/check` or `authz/explain` body and its parts, the batch's
//! body, and the schema of the either/or fields poem-openapi's derive cannot say.

use std::collections::BTreeMap;

use poem_openapi::Object;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};

use plystra_contracts::limits::NOT_BLANK;
use plystra_contracts::not_blank::NotBlank;

use crate::Scope;

/// Who acts. `user_id`, `member_id` and `space_id` are required, and the binding is named by
/// `user_member_id` or by upstream's `binding_id` (the schema's `anyOf`).
#[derive(Debug, Clone, Object)]
pub struct AuthzActor {
    /// The user.
    pub user_id: NotBlank,
    /// The member the user acts as.
    pub member_id: NotBlank,
    /// The user-member binding (this or `binding_id` is required; this one wins).
    pub user_member_id: Option<NotBlank>,
    /// Upstream's name for `user_member_id`.
    pub binding_id: Option<NotBlank>,
    /// The space the request is made in.
    pub space_id: NotBlank,
    /// Context Mode: the user's status (`active` when absent).
    pub user_status: Option<String>,
    /// Context Mode: the member's status (`active` when absent).
    pub member_status: Option<String>,
    /// Context Mode: the binding's status (`active` when absent; `revoked` denies).
    pub binding_status: Option<String>,
    /// Context Mode: the space's status (`active` when absent).
    pub space_status: Option<String>,
    /// Attributes of the actor for permission conditions (`subject.properties`).
    pub properties: Option<BTreeMap<String, serde_json::Value>>,
}

/// The target as an object. In managed mode only `type` and `id` are read; in Context Mode the
/// rest describes the target inline.
#[derive(Debug, Clone, Object)]
pub struct AuthzResource {
    /// The resource type (when the request has no `resource_type`).
    #[oai(rename = "type")]
    pub resource_type: Option<NotBlank>,
    /// The resource ID (when the request has no `resource_id`).
    pub id: Option<NotBlank>,
    /// Context Mode: the ID in the calling application (used when `id` is absent).
    pub external_id: Option<NotBlank>,
    /// Context Mode: its space (the actor's when absent).
    pub space_id: Option<String>,
    /// Context Mode: its group, by ID; the index supplies the group's path and space.
    pub group_id: Option<String>,
    /// Context Mode: its group, by dotted path (when `group_id` is absent).
    pub group_path: Option<String>,
    /// Context Mode: the owning member, for `self` scopes.
    pub owner_member_id: Option<String>,
    /// Attributes of the target for permission conditions (`resource.properties`); each
    /// overlays the stored metadata entry of its name.
    pub properties: Option<BTreeMap<String, serde_json::Value>>,
}

/// Context Mode: one grant the caller vouches for. `resource`, `action` and `scope` are required,
/// and the role is named by `role_key` or `role_id` (the schema's `anyOf`).
#[derive(Debug, Clone, Object)]
pub struct InlineGrant {
    /// The role's key.
    pub role_key: Option<String>,
    /// The role's ID; when the index knows it, the role's space is taken from there.
    pub role_id: Option<String>,
    /// The permission's ID, kept in the trace.
    pub permission_id: Option<String>,
    /// The resource type the grant covers.
    pub resource: NotBlank,
    /// The action the grant covers.
    pub action: NotBlank,
    /// `self`, `group`, `group_tree`, `space` or `global`.
    pub scope: Scope,
    /// The grant's space (the actor's when absent).
    pub space_id: Option<String>,
    /// The anchor group, by ID; the index supplies its path and space.
    pub scope_anchor_group_id: Option<String>,
    /// The anchor group, by dotted path (when no ID is given).
    pub scope_anchor_group_path: Option<String>,
    /// A condition (CEL) the grant also needs, checked as a stored permission's is: a refused
    /// one is a 400 naming `grants[i].condition`, its line and column.
    #[oai(validator(max_length = 1024))]
    pub condition: Option<String>,
}

/// A check or explain request. Without `grants` it is managed mode; with `grants` (even empty) it
/// is Context Mode, accepted from API keys only. `actor` and `action` are required; the target's
/// type is `resource_type` or `resource.type`, and its ID is `resource_id` or `resource.id` (in
/// Context Mode also `resource.external_id`): the schema's `allOf` of two `anyOf`s. A field that
/// is present must not be blank, even where another one shadows it.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct AuthzRequest {
    /// Who acts.
    pub actor: AuthzActor,
    /// The target's type (or `resource.type`).
    pub resource_type: Option<NotBlank>,
    /// The target's ID (or `resource.id`).
    pub resource_id: Option<NotBlank>,
    /// The target as an object.
    pub resource: Option<AuthzResource>,
    /// The action, for example `approve`.
    pub action: NotBlank,
    /// Context Mode: the grants to decide on, instead of the stored ones.
    pub grants: Option<Vec<InlineGrant>>,
    /// Attributes of the action for permission conditions (`action.properties`).
    pub action_properties: Option<BTreeMap<String, serde_json::Value>>,
    /// The request's context for permission conditions (`context`): the time, the client's
    /// address, anything the caller vouches for.
    pub context: Option<BTreeMap<String, serde_json::Value>>,
    /// Decide on facts at least as new as a revision this client saw (read-your-writes across
    /// processes). Absent: the process decides on the revision it has applied, and says which.
    pub consistency: Option<Consistency>,
}

/// A consistency token: the least change-feed revision a decision may be made on.
#[derive(Debug, Clone, Object)]
pub struct Consistency {
    /// A revision from `X-Plystra-Authz-Revision` of an earlier answer (a write's, or a
    /// decision's). The server waits, at most `PLYSTRA_CONSISTENCY_WAIT_MS` (1 s by default),
    /// until it has applied that revision, and answers 503 `REVISION_NOT_REACHED` otherwise;
    /// a revision past the newest the database committed is refused at once with 409
    /// `REVISION_NOT_ISSUED`. The header `X-Plystra-At-Least-Revision` does the same for any
    /// protected operation.
    pub at_least_revision: Option<u64>,
}

impl poem_openapi::types::Example for AuthzRequest {
    fn example() -> Self {
        Self {
            actor: AuthzActor {
                user_id: NotBlank::from_static("user_alice"),
                member_id: NotBlank::from_static("member_finance_reviewer"),
                user_member_id: Some(NotBlank::from_static("um_alice_finance_reviewer")),
                binding_id: None,
                space_id: NotBlank::from_static("space_acme"),
                user_status: None,
                member_status: None,
                binding_status: None,
                space_status: None,
                properties: None,
            },
            resource_type: Some(NotBlank::from_static("invoice")),
            resource_id: Some(NotBlank::from_static("invoice_001")),
            resource: None,
            action: NotBlank::from_static("approve"),
            grants: None,
            action_properties: None,
            context: None,
            consistency: None,
        }
    }
}

/// An [`AuthzRequest`] as the routes take it: the same fields and parsing, and a schema that also
/// says which alternative fields are required, which poem-openapi's derive cannot: the target's
/// type and ID (`allOf` of two `anyOf`s on `AuthzRequest`), the actor's binding (`anyOf` on
/// `AuthzActor`) and an inline grant's role (`anyOf` on `InlineGrant`). Each alternative is a
/// present, non-null string (or object); the handler refuses a request that meets none.
#[derive(Debug, Clone)]
pub struct AuthzRequestBody(pub AuthzRequest);

impl Type for AuthzRequestBody {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        AuthzRequest::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        AuthzRequest::schema_ref()
    }

    fn register(registry: &mut Registry) {
        AuthzRequest::register(registry);
        document_alternatives(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromJSON for AuthzRequestBody {
    fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
        AuthzRequest::parse_from_json(value)
            .map(Self)
            .map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl ToJSON for AuthzRequestBody {
    fn to_json(&self) -> Option<serde_json::Value> {
        self.0.to_json()
    }
}

/// `{"required": [field], "properties": {field: schema}}`: the field is present and not null.
fn present(field: &'static str, schema: MetaSchema) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        required: vec![field],
        properties: vec![(field, MetaSchemaRef::Inline(Box::new(schema)))],
        ..MetaSchema::ANY
    }))
}

/// A non-blank string, as [`NOT_BLANK`] has it.
fn text() -> MetaSchema {
    MetaSchema {
        pattern: Some(NOT_BLANK.to_owned()),
        ..MetaSchema::new("string")
    }
}

/// An object holding `field` as non-blank text: `resource.type`, `resource.id`.
fn object_with(field: &'static str) -> MetaSchema {
    match present(field, text()) {
        MetaSchemaRef::Inline(schema) => MetaSchema {
            ty: "object",
            ..*schema
        },
        MetaSchemaRef::Reference(_) => unreachable!("present builds an inline schema"),
    }
}

fn any_of(alternatives: Vec<MetaSchemaRef>) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        any_of: alternatives,
        ..MetaSchema::ANY
    }))
}

/// Adds the either/or rules to the registered schemas (see [`AuthzRequestBody`]).
fn document_alternatives(registry: &mut Registry) {
    if let Some(schema) = registry.schemas.get_mut("AuthzRequest") {
        let resource_type = any_of(vec![
            present("resource_type", text()),
            present("resource", object_with("type")),
        ]);
        let context_resource = MetaSchema {
            required: vec!["grants", "resource"],
            properties: vec![
                (
                    "grants",
                    MetaSchemaRef::Inline(Box::new(MetaSchema::new("array"))),
                ),
                (
                    "resource",
                    MetaSchemaRef::Inline(Box::new(object_with("external_id"))),
                ),
            ],
            ..MetaSchema::ANY
        };
        let resource_id = any_of(vec![
            present("resource_id", text()),
            present("resource", object_with("id")),
            MetaSchemaRef::Inline(Box::new(context_resource)),
        ]);
        schema.all_of = vec![resource_type, resource_id];
    }
    if let Some(schema) = registry.schemas.get_mut("AuthzActor") {
        schema.any_of = vec![
            present("user_member_id", text()),
            present("binding_id", text()),
        ];
    }
    if let Some(schema) = registry.schemas.get_mut("InlineGrant") {
        schema.any_of = vec![
            present("role_key", MetaSchema::new("string")),
            present("role_id", MetaSchema::new("string")),
        ];
    }
}

/// Checks decided independently, 1 to `PLYSTRA_AUTHZ_MAX_BATCH` of them (100 by default).
#[derive(Debug, Clone, Object)]
pub struct BatchCheckRequest {
    /// The checks, 1 to `PLYSTRA_AUTHZ_MAX_BATCH` (100 by default; more is a 400 naming
    /// `checks`; `maxItems` is the most any deployment may set), each shaped like an `authz/check` body. A check that is not well-formed (a
    /// missing or blank field) fails the whole batch with 400 naming `checks[i].field`.
    #[oai(validator(min_items = 1, max_items = 10000))]
    pub checks: Vec<AuthzRequestBody>,
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::Example;

    use super::*;

    #[test]
    fn the_not_blank_pattern_refuses_what_the_handler_calls_blank() {
        // poem-openapi's validator holds the field to the same pattern the document shows.
        let with_action = |action: &str| {
            let mut body = AuthzRequest::example().to_json().unwrap();
            body["action"] = action.into();
            AuthzRequest::parse_from_json(Some(body))
        };
        for blank in ["", " ", "\t", " \u{a0}\u{3000} ", "a\u{0}b", "a\u{85}"] {
            assert!(with_action(blank).is_err(), "{blank:?}");
        }
        for text in ["a", " a ", "approve", "été", "a b"] {
            assert!(with_action(text).is_ok(), "{text:?}");
        }
    }
}
