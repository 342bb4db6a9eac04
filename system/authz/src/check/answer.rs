//! The answers' wire types: a check's result, a batch's items, and the full trace of a decision
//! that explain returns and the audit record keeps.

use std::collections::BTreeMap;

use plystra_contracts::{Decision, DenyCode};
use poem_openapi::{Enum, Object};

use crate::Scope;

/// The trace format version: `1.1` added each candidate's `condition`.
pub const TRACE_VERSION: &str = "1.1";

/// One item of a batch: its decision, or why it could not be decided.
#[derive(Debug, Clone, Object)]
pub struct BatchCheckItem {
    /// The item's position in the request.
    pub index: u32,
    /// The HTTP status the item would have had alone (200 for a decision, allow or deny).
    pub status: u16,
    /// The decision, when there is one.
    pub result: Option<CheckResult>,
    /// The error, when there is no decision.
    pub error: Option<plystra_contracts::error::ErrorBody>,
}

/// The batch's answers, in request order.
#[derive(Debug, Clone, Object)]
pub struct BatchCheckResult {
    /// One per check, in request order.
    pub results: Vec<BatchCheckItem>,
    /// How many were allowed.
    pub allowed: u32,
    /// How many were denied.
    pub denied: u32,
    /// How many could not be decided.
    pub failed: u32,
}

/// Where the decision's audit record is.
#[derive(Debug, Clone, Object)]
pub struct AuditRef {
    /// True when a record was written (false only when `deny_only` skipped an allow).
    pub recorded: bool,
    /// The record's ID.
    pub audit_log_id: Option<String>,
}

/// The outcome of a check.
#[derive(Debug, Clone, Object)]
pub struct CheckResult {
    /// True when allowed.
    pub allow: bool,
    /// `allow` or `deny`.
    pub decision: Decision,
    /// Why it was denied.
    pub deny_code: Option<DenyCode>,
    /// A sentence for people.
    pub reason: String,
    /// The trace's ID (also in `X-Plystra-Trace-ID`).
    pub trace_id: String,
    /// The audit record's ID (also in `X-Plystra-Audit-Log-ID`).
    pub audit_log_id: Option<String>,
    /// The audit record.
    pub audit: AuditRef,
    /// The authorization index revision the decision was made on (also in
    /// `X-Plystra-Authz-Revision`); it grows with every committed change.
    pub revision: u64,
}

/// The actor as it was at decision time.
#[derive(Debug, Clone, Object)]
pub struct ActorTrace {
    /// The user.
    pub user_id: String,
    /// Its status.
    pub user_status: String,
    /// The member.
    pub member_id: String,
    /// Its status.
    pub member_status: String,
    /// The member's space.
    pub member_space_id: String,
    /// The binding.
    pub user_member_id: String,
    /// Its status.
    pub user_member_status: String,
    /// Its expiry.
    pub user_member_expires_at: Option<String>,
    /// The request's space.
    pub space_id: String,
    /// Its status.
    pub space_status: String,
}

/// A group as it was at decision time.
#[derive(Debug, Clone, Object)]
pub struct GroupTrace {
    /// Its ID.
    pub id: Option<String>,
    /// Its path.
    pub path: String,
    /// Its space.
    pub space_id: Option<String>,
}

/// The target as it was at decision time.
#[derive(Debug, Clone, Object)]
pub struct TargetTrace {
    /// Its type.
    pub resource_type: String,
    /// Its ID.
    pub resource_id: String,
    /// Its space.
    pub space_id: Option<String>,
    /// Its group.
    pub group: Option<GroupTrace>,
    /// Its owner.
    pub owner_member_id: Option<String>,
}

/// What the registry said.
#[derive(Debug, Clone, Object)]
pub struct RegistryTrace {
    /// The type.
    pub resource_type: String,
    /// Whether it is registered.
    pub resource_type_known: bool,
    /// The action.
    pub action: String,
    /// Whether it is registered for the type.
    pub action_known: bool,
}

/// How a candidate's scope judged the target.
#[derive(Debug, Clone, Object)]
pub struct ScopeCheckTrace {
    /// The scope covers the target.
    pub covered: bool,
    /// The rule applied.
    pub rule: String,
    /// Why.
    pub reason: String,
    /// The code when not covered.
    pub deny_code: Option<DenyCode>,
}

/// One candidate grant.
#[derive(Debug, Clone, Object)]
pub struct CandidateTrace {
    /// The role's key.
    pub role: String,
    /// The role's ID.
    pub role_id: String,
    /// The role's space.
    pub role_space_id: String,
    /// The permission's ID.
    pub permission: String,
    /// The permission's scope.
    pub scope: Scope,
    /// The member-role's scope anchor.
    pub scope_anchor: Option<GroupTrace>,
    /// The scope's verdict.
    pub scope_check: ScopeCheckTrace,
    /// The member-role's ID.
    pub member_role_id: String,
    /// The member-role's space.
    pub member_role_space_id: String,
    /// The permission's condition and its verdict, when it has one.
    pub condition: Option<ConditionTrace>,
}

/// A condition's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ConditionResult {
    /// It was true: the grant covers the request.
    Met,
    /// It was false.
    NotMet,
    /// It could not be evaluated to a boolean (a missing attribute, a type mismatch): taken as
    /// not met.
    Failed,
    /// It was not evaluated: the grant's scope does not cover the target, or an earlier grant
    /// allowed.
    NotEvaluated,
}

/// Where a value a condition read came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum InputSource {
    /// What Plystra holds: the target's or the actor's stored state and metadata.
    Storage,
    /// The request's properties or context.
    Request,
    /// The server (`now`).
    Server,
}

/// One attribute a condition read.
#[derive(Debug, Clone, Object)]
pub struct ConditionInputTrace {
    /// The path read, for example `resource.properties.amount`.
    pub path: String,
    /// Where its value came from.
    pub source: InputSource,
    /// Whether it had a value (a missing one makes the condition fail).
    pub present: bool,
}

/// How a candidate's condition judged the request.
#[derive(Debug, Clone, Object)]
pub struct ConditionTrace {
    /// The condition, as written.
    pub expression: String,
    /// Its verdict.
    pub result: ConditionResult,
    /// Why it failed or was not evaluated.
    pub reason: Option<String>,
    /// Each attribute it read, in the order the condition names them.
    pub inputs: Vec<ConditionInputTrace>,
    /// The values read, by path (a missing one is absent). They are free-form data: explain's
    /// answer and the audit record show them as the audit redaction policy shows metadata
    /// (only allowlisted paths in clear; secret-like names and email addresses never).
    pub input_values: BTreeMap<String, serde_json::Value>,
}

/// Where the request came from, as the server saw it.
#[derive(Debug, Clone, Object)]
pub struct RequestTrace {
    /// The request ID.
    pub request_id: String,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

/// How a check was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum CheckMode {
    /// Managed mode: stored grants, everything named by ID.
    Managed,
    /// Context Mode: inline grants and statuses from the request.
    Context,
}

/// The full trace of a decision.
#[derive(Debug, Clone, Object)]
pub struct ExplainTrace {
    /// The trace format (`1.1`; `1.0` traces have no candidate `condition`).
    pub trace_version: String,
    /// The trace's ID.
    pub trace_id: String,
    /// `managed` (stored grants) or `context` (inline grants).
    pub mode: CheckMode,
    /// The authorization index revision the decision was made on.
    pub revision: u64,
    /// `allow` or `deny`.
    pub decision: Decision,
    /// Why it was denied.
    pub deny_code: Option<DenyCode>,
    /// A sentence for people.
    pub reason: String,
    /// The actor.
    pub actor: ActorTrace,
    /// The target.
    pub target: TargetTrace,
    /// The registry.
    pub resource_registry: RegistryTrace,
    /// Every candidate grant, in evaluation order.
    pub matched_candidates: Vec<CandidateTrace>,
    /// The request.
    pub request: RequestTrace,
    /// The audit record.
    pub audit: AuditRef,
}

impl AuditRef {
    /// No record (yet): what the record's own trace says, since it is written before its ID
    /// exists.
    pub(super) fn unrecorded() -> Self {
        Self {
            recorded: false,
            audit_log_id: None,
        }
    }
}
