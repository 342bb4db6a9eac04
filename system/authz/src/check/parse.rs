//! Request parsing: a route's body or a plugin's in-process request, checked field by field (every
//! missing or blank field named at once) into managed mode or Context Mode.

use plystra_contracts::services::{ActorRef, CheckRequest, Credential};
use plystra_contracts::{ApiError, ErrorCode};

use std::collections::BTreeMap;

use super::decide::Caller;
use super::request::{AuthzActor, AuthzRequest, AuthzResource, InlineGrant};
use crate::condition::{Condition, MAX_REQUEST_ATTRIBUTE_BYTES};
use crate::engine::RequestAttributes;
use crate::index::ActorStatuses;

/// Collects missing and blank fields so one answer names all of them.
#[derive(Default)]
struct Missing(serde_json::Map<String, serde_json::Value>);

impl Missing {
    /// A field that must be given and not be blank.
    fn take(&mut self, field: &str, value: Option<String>) -> String {
        match self.present(field, value) {
            Some(v) => v,
            None => {
                self.0
                    .entry(field.to_owned())
                    .or_insert_with(|| "is required".into());
                String::new()
            }
        }
    }

    /// A field that may be absent, and must not be blank when present (even where another field
    /// shadows it), as the schema's `NOT_BLANK` pattern says ([`plystra_contracts::limits::NOT_BLANK`]), nor hold a control character (the
    /// route's body check refuses them first; a plugin's in-process request meets this one).
    fn present(&mut self, field: &str, value: Option<String>) -> Option<String> {
        match value {
            Some(v) if v.trim().is_empty() => {
                self.0.insert(field.to_owned(), "must not be blank".into());
                None
            }
            Some(v) => self.printable(field, v),
            None => None,
        }
    }

    /// `value`, unless it holds a control character (which, among others, PostgreSQL cannot
    /// store in the decision's audit record: one such record would fail its whole batch).
    fn printable(&mut self, field: &str, value: String) -> Option<String> {
        match plystra_contracts::limits::refused_character(&value, false) {
            Some(c) => {
                self.0.insert(
                    field.to_owned(),
                    format!("must not hold the control character U+{:04X}", u32::from(c)).into(),
                );
                None
            }
            None => Some(value),
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("invalid fields: {}", names.join(", ")),
        )
        .with_detail("fields", serde_json::Value::Object(self.0)))
    }
}

/// A validated request.
pub(super) enum Parsed {
    Managed(Managed),
    Context(Box<Context>),
}

/// Managed mode: everything by ID.
pub(super) struct Managed {
    pub(super) actor: ActorRef,
    pub(super) resource_type: String,
    pub(super) resource_id: String,
    pub(super) action: String,
    /// What the request brings for conditions.
    pub(super) attributes: RequestAttributes,
}

/// Context Mode: the target and the grants inline.
pub(super) struct Context {
    pub(super) actor: ActorRef,
    pub(super) statuses: ActorStatuses<'static>,
    pub(super) resource_type: String,
    pub(super) resource_id: String,
    pub(super) space_id: String,
    pub(super) group_id: Option<String>,
    pub(super) group_path: Option<String>,
    pub(super) owner_member_id: Option<String>,
    pub(super) action: String,
    pub(super) grants: Vec<InlineGrant>,
    /// Each grant's condition, compiled.
    pub(super) conditions: Vec<Option<Condition>>,
    /// What the request brings for conditions.
    pub(super) attributes: RequestAttributes,
}

/// Free-form attributes as conditions read them.
type Attributes = Option<BTreeMap<String, serde_json::Value>>;

/// The attributes a request brings for conditions (subject, resource and action properties, and
/// context, which the request calls `fields`), refused past [`MAX_REQUEST_ATTRIBUTE_BYTES`] of
/// JSON together, naming the largest.
pub(crate) fn request_attributes(
    [subject, resource, action, context]: [Attributes; 4],
    fields: [&str; 4],
) -> Result<RequestAttributes, ApiError> {
    let map = |a: Attributes| a.map(|a| a.into_iter().collect()).unwrap_or_default();
    let attributes = RequestAttributes {
        subject: map(subject),
        resource: map(resource),
        action: map(action),
        context: map(context),
    };
    if !attributes.is_empty() {
        let sizes = [
            &attributes.subject,
            &attributes.resource,
            &attributes.action,
            &attributes.context,
        ]
        .map(|m| serde_json::to_vec(m).map_or(usize::MAX, |v| v.len()));
        let size = sizes.iter().fold(0, |sum, s| s.saturating_add(sum));
        if size > MAX_REQUEST_ATTRIBUTE_BYTES {
            let largest = (0..4).max_by_key(|i| sizes[*i]).unwrap_or_default();
            return Err(ApiError::invalid_field(
                fields[largest],
                format!(
                    "properties and context together are at most {MAX_REQUEST_ATTRIBUTE_BYTES} bytes of JSON, not {size}"
                ),
            ));
        }
    }
    Ok(attributes)
}

/// Each inline grant's condition, compiled (400 naming `grants[i].condition`, its line and
/// column, for the first refused).
fn inline_conditions(grants: &[InlineGrant]) -> Result<Vec<Option<Condition>>, ApiError> {
    grants
        .iter()
        .enumerate()
        .map(|(i, grant)| {
            grant
                .condition
                .as_deref()
                .map(|source| {
                    Condition::compile(source).map_err(|e| {
                        ApiError::invalid_field(&format!("grants[{i}].condition"), e.to_string())
                            .with_detail("line", e.line)
                            .with_detail("column", e.column)
                    })
                })
                .transpose()
        })
        .collect()
}

fn status_or_active(value: Option<String>) -> String {
    value
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "active".to_owned())
}

/// Context Mode: the statuses the request brings for the actor (`active` where absent).
fn context_statuses(
    user: Option<String>,
    member: Option<String>,
    binding: Option<String>,
    space: Option<String>,
) -> ActorStatuses<'static> {
    ActorStatuses {
        user_status: status_or_active(user).into(),
        member_status: status_or_active(member).into(),
        user_member_status: status_or_active(binding).into(),
        user_member_expires_at: None,
        space_status: status_or_active(space).into(),
    }
}

/// Inline context is trusted input: only API keys (and the bootstrap key) may send it.
fn require_api_key(credential: Option<&Credential>) -> Result<(), ApiError> {
    if matches!(
        credential,
        Some(Credential::ApiKey { .. } | Credential::BootstrapKey)
    ) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::InlineContextRequiresApiKey,
        "inline grants (Context Mode) are accepted from API keys only",
    ))
}

impl Missing {
    /// Each inline grant's role, resource and action.
    fn grants(&mut self, grants: &[InlineGrant]) {
        for (i, grant) in grants.iter().enumerate() {
            if grant.role_key.is_none() && grant.role_id.is_none() {
                self.take(&format!("grants[{i}].role_key"), None);
            }
            self.take(
                &format!("grants[{i}].resource"),
                Some(grant.resource.to_string()),
            );
            self.take(
                &format!("grants[{i}].action"),
                Some(grant.action.to_string()),
            );
        }
    }
}

/// A route's body as managed mode (no `grants`) or Context Mode, refused with every missing or
/// blank field named.
pub(super) fn parse(
    body: AuthzRequest,
    credential: Option<&Credential>,
) -> Result<Parsed, ApiError> {
    let mut missing = Missing::default();
    let AuthzActor {
        user_id,
        member_id,
        user_member_id,
        binding_id,
        space_id,
        user_status,
        member_status,
        binding_status,
        space_status,
        properties: subject_properties,
    } = body.actor;
    let mut resource = body.resource.unwrap_or(AuthzResource {
        resource_type: None,
        id: None,
        external_id: None,
        space_id: None,
        group_id: None,
        group_path: None,
        owner_member_id: None,
        properties: None,
    });
    let attributes = request_attributes(
        [
            subject_properties,
            resource.properties.take(),
            body.action_properties,
            body.context,
        ],
        [
            "actor.properties",
            "resource.properties",
            "action_properties",
            "context",
        ],
    )?;
    let user_member_id = missing.present("actor.user_member_id", user_member_id.map(String::from));
    let binding_id = missing.present("actor.binding_id", binding_id.map(String::from));
    let actor_ref = ActorRef {
        user_id: missing.take("actor.user_id", Some(user_id.into())),
        member_id: missing.take("actor.member_id", Some(member_id.into())),
        user_member_id: missing.take("actor.user_member_id", user_member_id.or(binding_id)),
        space_id: missing.take("actor.space_id", Some(space_id.into())),
    };
    let body_type = missing.present("resource_type", body.resource_type.map(String::from));
    let resource_type = missing.present("resource.type", resource.resource_type.map(String::from));
    let resource_type = missing.take("resource_type", body_type.or(resource_type));
    let action = missing.take("action", Some(body.action.into()));
    let body_id = missing.present("resource_id", body.resource_id.map(String::from));
    let resource_id = missing.present("resource.id", resource.id.map(String::from));
    let external_id = missing.present(
        "resource.external_id",
        resource.external_id.map(String::from),
    );
    let Some(grants) = body.grants else {
        let managed = Managed {
            actor: actor_ref,
            resource_type,
            resource_id: missing.take("resource_id", body_id.or(resource_id)),
            action,
            attributes,
        };
        missing.finish()?;
        return Ok(Parsed::Managed(managed));
    };
    require_api_key(credential)?;
    let resource_id = missing.take("resource.id", body_id.or(resource_id).or(external_id));
    missing.grants(&grants);
    missing.finish()?;
    let conditions = inline_conditions(&grants)?;
    let space_id = resource
        .space_id
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| actor_ref.space_id.clone());
    Ok(Parsed::Context(Box::new(Context {
        statuses: context_statuses(user_status, member_status, binding_status, space_status),
        actor: actor_ref,
        resource_type,
        resource_id,
        space_id,
        group_id: resource.group_id.filter(|g| !g.trim().is_empty()),
        group_path: resource.group_path.filter(|g| !g.trim().is_empty()),
        owner_member_id: resource.owner_member_id,
        action,
        grants,
        conditions,
        attributes,
    })))
}

/// The consistency token of a request, if it carries one.
pub(super) fn at_least_revision(body: &AuthzRequest) -> Option<u64> {
    body.consistency.as_ref().and_then(|c| c.at_least_revision)
}

/// A plugin's managed-mode request, validated as the HTTP route validates the same fields: a
/// blank one is refused with the same error, naming it as the route does.
pub(super) fn managed_request(request: CheckRequest) -> Result<(Parsed, Caller), ApiError> {
    let CheckRequest {
        actor,
        resource_type,
        resource_id,
        action,
        ip,
        user_agent,
        request_id,
    } = request;
    let mut missing = Missing::default();
    let managed = Managed {
        actor: ActorRef {
            user_id: missing.take("actor.user_id", Some(actor.user_id)),
            member_id: missing.take("actor.member_id", Some(actor.member_id)),
            user_member_id: missing.take("actor.user_member_id", Some(actor.user_member_id)),
            space_id: missing.take("actor.space_id", Some(actor.space_id)),
        },
        resource_type: missing.take("resource_type", Some(resource_type)),
        resource_id: missing.take("resource_id", Some(resource_id)),
        action: missing.take("action", Some(action)),
        attributes: RequestAttributes::default(),
    };
    let ip = ip.and_then(|ip| missing.printable("ip", ip));
    let user_agent = user_agent.and_then(|agent| missing.printable("user_agent", agent));
    let request_id = missing.take("request_id", Some(request_id));
    missing.finish()?;
    let caller = Caller {
        credential: None,
        ip,
        user_agent,
        request_id,
    };
    Ok((Parsed::Managed(managed), caller))
}

#[cfg(test)]
mod tests {
    use plystra_contracts::Decision;
    use poem_openapi::types::Example;

    use super::*;
    use crate::check::fixtures::{finance_snapshot, inline, traced};
    use crate::check::trace::trace_of;

    #[test]
    fn inline_context_is_for_api_keys_only() {
        let session = Credential::Session {
            user_id: "user_alice".into(),
            session_id: "sess_1".into(),
        };
        for credential in [Some(&session), None] {
            let err = parse(inline(), credential).err().unwrap();
            assert_eq!(err.code, ErrorCode::InlineContextRequiresApiKey);
        }
        let key = Credential::ApiKey { id: "ak_1".into() };
        for credential in [&key, &Credential::BootstrapKey] {
            assert!(matches!(
                parse(inline(), Some(credential)),
                Ok(Parsed::Context(_))
            ));
        }
        // Without grants a session may check (managed mode).
        assert!(matches!(
            parse(AuthzRequest::example(), Some(&session)),
            Ok(Parsed::Managed(_))
        ));
    }

    /// A route's body as the body check sees it, before [`parse`].
    fn route_body(body: serde_json::Value) -> Result<AuthzRequest, ApiError> {
        plystra_contracts::body::check::<super::super::request::AuthzRequestBody>(body)
            .map(|body| body.0)
    }

    fn field_names(err: &ApiError) -> Vec<&str> {
        let fields = err.details["fields"].as_object().unwrap();
        fields.keys().map(String::as_str).collect()
    }

    #[test]
    fn every_blank_field_is_named_at_once_and_then_every_missing_one() {
        // Blank fields are the body check's: every one is named, even one another field shadows.
        let err = route_body(serde_json::json!({
            "actor": {"user_id": " ", "member_id": "", "space_id": "\t"},
            "action": "  ",
            "resource": {"external_id": " "},
        }))
        .unwrap_err();
        assert_eq!(
            field_names(&err),
            [
                "action",
                "actor.member_id",
                "actor.space_id",
                "actor.user_id",
                "resource.external_id"
            ]
        );
        assert_eq!(err.details["fields"]["actor.space_id"], "must not be blank");

        // Fields required only as one of two are the parser's, named together.
        let body = route_body(serde_json::json!({
            "actor": {"user_id": "user_alice", "member_id": "member_finance_reviewer",
                      "space_id": "space_acme"},
            "action": "approve",
        }))
        .unwrap();
        let err = parse(body, None).err().unwrap();
        assert_eq!(
            field_names(&err),
            ["actor.user_member_id", "resource_id", "resource_type"]
        );
    }

    #[test]
    fn a_plugin_request_is_refused_with_the_errors_of_the_route() {
        let plugin = plystra_contracts::services::CheckRequest {
            actor: ActorRef {
                user_id: " ".into(),
                member_id: "member_finance_reviewer".into(),
                user_member_id: String::new(),
                space_id: "space_acme".into(),
            },
            resource_type: "\t".into(),
            resource_id: "invoice_001".into(),
            action: String::new(),
            ip: None,
            user_agent: None,
            request_id: "req_notes_1".into(),
        };
        let refused = managed_request(plugin).err().unwrap();
        let route = route_body(serde_json::json!({
            "actor": {"user_id": " ", "member_id": "member_finance_reviewer",
                      "user_member_id": "", "space_id": "space_acme"},
            "resource_type": "\t",
            "resource_id": "invoice_001",
            "action": "",
        }))
        .unwrap_err();
        assert_eq!(refused.code, ErrorCode::ValidationFailed);
        assert_eq!(refused.message, route.message);
        assert_eq!(refused.details, route.details);
        assert_eq!(
            field_names(&refused),
            [
                "action",
                "actor.user_id",
                "actor.user_member_id",
                "resource_type"
            ]
        );

        // Alice approving invoice_001 through the notes plugin, from 192.0.2.7.
        let alice = || plystra_contracts::services::CheckRequest {
            actor: ActorRef {
                user_id: "user_alice".into(),
                member_id: "member_finance_reviewer".into(),
                user_member_id: "um_alice_finance_reviewer".into(),
                space_id: "space_acme".into(),
            },
            resource_type: "invoice".into(),
            resource_id: "invoice_001".into(),
            action: "approve".into(),
            ip: Some("192.0.2.7".into()),
            user_agent: Some("notes".into()),
            request_id: "req_notes_1".into(),
        };

        // A control character (from a path parameter, say) is refused by name, never stored.
        let refused = managed_request(plystra_contracts::services::CheckRequest {
            resource_id: "invoice_\u{0}001".into(),
            user_agent: Some("notes\u{1b}[2J".into()),
            ..alice()
        })
        .err()
        .unwrap();
        assert_eq!(refused.code, ErrorCode::ValidationFailed);
        let fields = refused.details["fields"].as_object().unwrap();
        assert_eq!(
            fields["resource_id"],
            "must not hold the control character U+0000"
        );
        assert_eq!(
            fields["user_agent"],
            "must not hold the control character U+001B"
        );
        assert_eq!(fields.len(), 2, "{fields:?}");
        // The request it came from is named, never left for ambient state to fill in.
        let refused = managed_request(plystra_contracts::services::CheckRequest {
            request_id: " ".into(),
            ..alice()
        })
        .err()
        .unwrap();
        assert_eq!(
            refused.details["fields"]["request_id"], "must not be blank",
            "{refused:?}"
        );

        // A well-formed one is managed mode, with the end user's address as the caller.
        let (parsed, caller) = managed_request(alice()).unwrap();
        let Parsed::Managed(managed) = &parsed else {
            panic!("a plugin's request is managed mode");
        };
        assert_eq!(managed.resource_id, "invoice_001");
        assert!(caller.credential.is_none());
        assert_eq!(caller.request_id, "req_notes_1");
        let trace = traced(trace_of(
            &finance_snapshot(),
            &caller,
            &parsed,
            1_800_000_000,
            false,
        ));
        assert_eq!(trace.decision, Decision::Allow);
        assert_eq!(trace.request.ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(trace.request.user_agent.as_deref(), Some("notes"));
    }
}
