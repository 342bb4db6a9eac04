//! The decision's audit record: its columns, and the trace as JSON made by moving the trace's
//! strings, field for field what poem-openapi writes for the explain answer.

use plystra_contracts::Decision;
use plystra_contracts::services::AuditRecord;
use poem_openapi::types::ToJSON;

use super::answer::{
    ActorTrace, CandidateTrace, ExplainTrace, GroupTrace, RegistryTrace, RequestTrace,
    ScopeCheckTrace, TargetTrace,
};

/// A JSON object of these fields (the map sorts them, as it does poem's output).
fn json_object<const N: usize>(fields: [(&str, serde_json::Value); N]) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    )
}

/// An optional field as poem-openapi writes it: present, `null` when absent.
fn optional(value: Option<String>) -> serde_json::Value {
    value.map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// An enum as its `ToJSON` writes it (its name as a string).
fn enum_json<T: ToJSON>(value: &T) -> serde_json::Value {
    value.to_json().unwrap_or(serde_json::Value::Null)
}

fn optional_group(group: Option<GroupTrace>) -> serde_json::Value {
    group.map_or(serde_json::Value::Null, GroupTrace::into_json)
}

impl GroupTrace {
    fn into_json(self) -> serde_json::Value {
        json_object([
            ("id", optional(self.id)),
            ("path", self.path.into()),
            ("space_id", optional(self.space_id)),
        ])
    }
}

impl ScopeCheckTrace {
    fn into_json(self) -> serde_json::Value {
        json_object([
            ("covered", self.covered.into()),
            ("rule", self.rule.into()),
            ("reason", self.reason.into()),
            ("deny_code", enum_json(&self.deny_code)),
        ])
    }
}

impl CandidateTrace {
    fn into_json(self) -> serde_json::Value {
        json_object([
            ("role", self.role.into()),
            ("role_id", self.role_id.into()),
            ("role_space_id", self.role_space_id.into()),
            ("permission", self.permission.into()),
            ("scope", enum_json(&self.scope)),
            ("scope_anchor", optional_group(self.scope_anchor)),
            ("scope_check", self.scope_check.into_json()),
            ("member_role_id", self.member_role_id.into()),
            ("member_role_space_id", self.member_role_space_id.into()),
            // Rare, and its values are free-form: written as the answer writes it.
            (
                "condition",
                self.condition
                    .and_then(|c| poem_openapi::types::ToJSON::to_json(&c))
                    .unwrap_or(serde_json::Value::Null),
            ),
        ])
    }
}

impl ActorTrace {
    fn into_json(self) -> serde_json::Value {
        json_object([
            ("user_id", self.user_id.into()),
            ("user_status", self.user_status.into()),
            ("member_id", self.member_id.into()),
            ("member_status", self.member_status.into()),
            ("member_space_id", self.member_space_id.into()),
            ("user_member_id", self.user_member_id.into()),
            ("user_member_status", self.user_member_status.into()),
            (
                "user_member_expires_at",
                optional(self.user_member_expires_at),
            ),
            ("space_id", self.space_id.into()),
            ("space_status", self.space_status.into()),
        ])
    }
}

impl TargetTrace {
    fn into_json(self) -> serde_json::Value {
        json_object([
            ("resource_type", self.resource_type.into()),
            ("resource_id", self.resource_id.into()),
            ("space_id", optional(self.space_id)),
            ("group", optional_group(self.group)),
            ("owner_member_id", optional(self.owner_member_id)),
        ])
    }
}

impl RegistryTrace {
    fn into_json(self) -> serde_json::Value {
        json_object([
            ("resource_type", self.resource_type.into()),
            ("resource_type_known", self.resource_type_known.into()),
            ("action", self.action.into()),
            ("action_known", self.action_known.into()),
        ])
    }
}

impl RequestTrace {
    fn into_json(self) -> serde_json::Value {
        json_object([
            ("request_id", self.request_id.into()),
            ("ip", optional(self.ip)),
            ("user_agent", optional(self.user_agent)),
        ])
    }
}

impl ExplainTrace {
    /// The trace as JSON, made by moving its strings: what the decision's audit record keeps.
    /// The same value, field for field (every field present, `null` where absent), as the
    /// explain answer's `data`, which poem-openapi writes from the same struct, less the `audit`
    /// block: the record is where the decision went, and it is not written to yet when its trace
    /// is made, so the block could only say what was not true once stored. The unit test
    /// `the_record_keeps_the_trace_the_explain_answer_returns` holds the two together.
    pub fn into_record_json(self) -> serde_json::Value {
        let candidates = self
            .matched_candidates
            .into_iter()
            .map(CandidateTrace::into_json)
            .collect();
        json_object([
            ("trace_version", self.trace_version.into()),
            ("trace_id", self.trace_id.into()),
            ("mode", enum_json(&self.mode)),
            ("revision", self.revision.into()),
            ("decision", enum_json(&self.decision)),
            ("deny_code", enum_json(&self.deny_code)),
            ("reason", self.reason.into()),
            ("actor", self.actor.into_json()),
            ("target", self.target.into_json()),
            ("resource_registry", self.resource_registry.into_json()),
            ("matched_candidates", serde_json::Value::Array(candidates)),
            ("request", self.request.into_json()),
        ])
    }

    /// The decision's audit record, without its trace (set from [`ExplainTrace::into_record_json`]).
    pub(super) fn audit_record(&self) -> AuditRecord {
        AuditRecord {
            space_id: Some(self.actor.space_id.clone()),
            actor_user_id: Some(self.actor.user_id.clone()),
            actor_member_id: Some(self.actor.member_id.clone()),
            actor_user_member_id: Some(self.actor.user_member_id.clone()),
            resource_type: Some(self.target.resource_type.clone()),
            resource_id: Some(self.target.resource_id.clone()),
            decision: Some(
                match self.decision {
                    Decision::Allow => "allow",
                    Decision::Deny => "deny",
                }
                .to_owned(),
            ),
            deny_code: self.deny_code.map(|c| c.as_str().to_owned()),
            ip_address: self.request.ip.clone(),
            user_agent: self.request.user_agent.clone(),
            ..AuditRecord::new(
                self.request.request_id.clone(),
                "authz.decision",
                self.resource_registry.action.clone(),
            )
        }
    }
}
