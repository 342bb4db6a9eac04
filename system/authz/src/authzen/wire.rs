//! AuthZEN 1.0's wire types: the entities (subject, resource, action), the requests of the
//! evaluation, evaluations and search endpoints, their answers, and the PDP metadata. Field names
//! and shapes are the specification's; every object takes properties it does not declare and
//! ignores them, and absent optional answers are left out rather than written as `null`.

use std::collections::BTreeMap;

use plystra_contracts::DenyCode;
use plystra_contracts::not_blank::NotBlank;
use poem_openapi::{Enum, Object};

/// Free-form attributes of an entity, a context or an option set.
pub type Properties = BTreeMap<String, serde_json::Value>;

/// Who asks: `type` `user` (by user ID or username), `member` or `user_member` (by ID).
#[derive(Debug, Clone, Object)]
pub struct AuthzenSubject {
    /// `user`, `member` or `user_member`.
    #[oai(rename = "type")]
    pub kind: NotBlank,
    /// A `user`: its ID or, failing that, its exact username. A `member` or `user_member`: its
    /// ID.
    pub id: NotBlank,
    /// `space_id` picks the space the subject acts in (a `user` with bindings in several spaces;
    /// any subject acting outside its member's space). All of them are what permission
    /// conditions read as `subject.properties`.
    pub properties: Option<Properties>,
}

/// The subject of a subject search: only its `type` is read.
#[derive(Debug, Clone, Object)]
pub struct AuthzenSearchedSubject {
    /// `user`, `member` or `user_member`: what the results are.
    #[oai(rename = "type")]
    pub kind: NotBlank,
    /// Ignored, as the specification requires.
    pub id: Option<String>,
    /// Ignored.
    pub properties: Option<Properties>,
}

/// What is acted on: a resource type's key and the resource's ID or external ID.
#[derive(Debug, Clone, Object)]
pub struct AuthzenResource {
    /// The resource type's key.
    #[oai(rename = "type")]
    pub kind: NotBlank,
    /// The resource's ID or, failing that, its external ID.
    pub id: NotBlank,
    /// What permission conditions read as `resource.properties`, each over the stored metadata
    /// entry of its name.
    pub properties: Option<Properties>,
}

/// The resource of a resource search: only its `type` is read.
#[derive(Debug, Clone, Object)]
pub struct AuthzenSearchedResource {
    /// The resource type's key: what the results are.
    #[oai(rename = "type")]
    pub kind: NotBlank,
    /// Ignored, as the specification requires.
    pub id: Option<String>,
    /// Ignored.
    pub properties: Option<Properties>,
}

/// What is done: an action's key.
#[derive(Debug, Clone, Object)]
pub struct AuthzenAction {
    /// The action's key, for example `approve`.
    pub name: NotBlank,
    /// What permission conditions read as `action.properties` (ignored by action searches).
    pub properties: Option<Properties>,
}

/// One access evaluation.
#[derive(Debug, Clone, Object)]
pub struct AuthzenEvaluationRequest {
    /// Who asks.
    pub subject: AuthzenSubject,
    /// What is done.
    pub action: AuthzenAction,
    /// What it is done to.
    pub resource: AuthzenResource,
    /// The environment: what permission conditions read as `context`.
    pub context: Option<Properties>,
}

/// One item of an evaluations request: each entity it leaves out is the request's top-level one.
#[derive(Debug, Clone, Object)]
pub struct AuthzenEvaluationItem {
    /// Who asks (the top-level `subject` when absent).
    pub subject: Option<AuthzenSubject>,
    /// What is done (the top-level `action` when absent).
    pub action: Option<AuthzenAction>,
    /// What it is done to (the top-level `resource` when absent).
    pub resource: Option<AuthzenResource>,
    /// The environment (the top-level `context` when absent).
    pub context: Option<Properties>,
}

/// How the items of an evaluations request are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum EvaluationsSemantic {
    /// Every item, answered in order (the default).
    ExecuteAll,
    /// In order, stopping after the first item that is not allowed.
    DenyOnFirstDeny,
    /// In order, stopping after the first item that is allowed.
    PermitOnFirstPermit,
}

/// Options of an evaluations request; others are ignored.
#[derive(Debug, Clone, Object)]
pub struct AuthzenEvaluationsOptions {
    /// `execute_all` when absent.
    pub evaluations_semantic: Option<EvaluationsSemantic>,
}

/// Several evaluations in one call, the top-level entities the items' defaults; without items,
/// one evaluation of the top-level entities.
#[derive(Debug, Clone, Object)]
pub struct AuthzenEvaluationsRequest {
    /// The default subject.
    pub subject: Option<AuthzenSubject>,
    /// The default action.
    pub action: Option<AuthzenAction>,
    /// The default resource.
    pub resource: Option<AuthzenResource>,
    /// The default context.
    pub context: Option<Properties>,
    /// The evaluations, at most `PLYSTRA_AUTHZ_MAX_BATCH` (100 by default; `maxItems` is the
    /// most any deployment may set).
    #[oai(validator(max_items = 10000))]
    pub evaluations: Option<Vec<AuthzenEvaluationItem>>,
    /// How the items are run.
    pub options: Option<AuthzenEvaluationsOptions>,
}

/// Why an evaluation could not be decided: the status its own request would have had.
#[derive(Debug, Clone, Object)]
pub struct AuthzenEvaluationError {
    /// An HTTP status: 400 (an unknown subject type, an ambiguous subject), 404 (an unknown
    /// user, member, binding or resource), 503 (the facts or the audit log unavailable).
    pub status: u16,
    /// What went wrong.
    pub message: String,
    /// Plystra's error code.
    pub code: String,
}

/// What Plystra adds to a decision.
#[derive(Debug, Clone, Default, Object)]
pub struct AuthzenDecisionContext {
    /// Why the engine decided as it did.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// A deny's code: one of those `GET /api/v1/authz/deny-codes` lists.
    #[oai(skip_serializing_if_is_none)]
    pub deny_code: Option<DenyCode>,
    /// A deny's reason for administrators, keyed by HTTP status as the specification's example
    /// does (`{"403": "…"}`).
    #[oai(skip_serializing_if_is_none)]
    pub reason_admin: Option<BTreeMap<String, String>>,
    /// The decision's trace ID, as its audit record's trace holds it.
    #[oai(skip_serializing_if_is_none)]
    pub trace_id: Option<String>,
    /// The decision's audit record (absent where the log skips allows).
    #[oai(skip_serializing_if_is_none)]
    pub audit_log_id: Option<String>,
    /// The index revision the decision was made on.
    #[oai(skip_serializing_if_is_none)]
    pub revision: Option<u64>,
    /// Why the evaluation could not be decided (then `decision` is `false`).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<AuthzenEvaluationError>,
}

/// An access decision.
#[derive(Debug, Clone, Object)]
pub struct AuthzenDecision {
    /// `true` only for an allow; any deny or failure is `false`.
    pub decision: bool,
    /// The deny code, the reason, the trace, the audit record and the revision; or the error.
    #[oai(skip_serializing_if_is_none)]
    pub context: Option<AuthzenDecisionContext>,
}

/// The decisions of an evaluations request, in item order (short of the items a semantic
/// stopped before); without items, the one decision.
#[derive(Debug, Clone, Object)]
pub struct AuthzenEvaluationsResponse {
    /// The one decision, when the request had no items.
    #[oai(skip_serializing_if_is_none)]
    pub decision: Option<bool>,
    /// The one decision's context, when the request had no items.
    #[oai(skip_serializing_if_is_none)]
    pub context: Option<AuthzenDecisionContext>,
    /// The items' decisions.
    #[oai(skip_serializing_if_is_none)]
    pub evaluations: Option<Vec<AuthzenDecision>>,
}

/// Which page of a search.
#[derive(Debug, Clone, Object)]
pub struct AuthzenPageRequest {
    /// The `next_token` of the previous page of this same search; absent or empty for the first.
    pub token: Option<String>,
    /// At most this many results, from 1 to `PLYSTRA_AUTHZ_MAX_PAGE` (1000 by default); 100 when
    /// absent (`maximum` is the most any deployment may set). It must not change between the
    /// pages of one search.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub limit: Option<i64>,
    /// Ignored.
    pub properties: Option<Properties>,
}

/// Where a search's results stop.
#[derive(Debug, Clone, Object)]
pub struct AuthzenPageResponse {
    /// Send it as `page.token` for the next page; empty after the last.
    pub next_token: String,
    /// How many results this page holds.
    pub count: u64,
}

/// What Plystra adds to a search's answer.
#[derive(Debug, Clone, Default, Object)]
pub struct AuthzenSearchContext {
    /// The index revision the search was answered on.
    #[oai(skip_serializing_if_is_none)]
    pub revision: Option<u64>,
    /// The search's audit record (one per page).
    #[oai(skip_serializing_if_is_none)]
    pub audit_log_id: Option<String>,
    /// The permissions whose condition reads what only a request brings (`context`, the
    /// subject's or the action's properties): a search decides on stored attributes alone, so
    /// their grants count as not met here. Absent when there are none.
    #[oai(skip_serializing_if_is_none)]
    pub undecided_conditions: Option<Vec<String>>,
    /// Why the search could not be answered (then `results` is empty).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<AuthzenEvaluationError>,
}

/// Which subjects of a type may perform the action on the resource?
#[derive(Debug, Clone, Object)]
pub struct AuthzenSubjectSearchRequest {
    /// The type of subject to find.
    pub subject: AuthzenSearchedSubject,
    /// What is done.
    pub action: AuthzenAction,
    /// What it is done to.
    pub resource: AuthzenResource,
    /// The environment. Not read: a search decides conditions on stored attributes alone.
    pub context: Option<Properties>,
    /// Which page.
    pub page: Option<AuthzenPageRequest>,
}

/// Which resources of a type may the subject perform the action on?
#[derive(Debug, Clone, Object)]
pub struct AuthzenResourceSearchRequest {
    /// Who asks.
    pub subject: AuthzenSubject,
    /// What is done.
    pub action: AuthzenAction,
    /// The type of resource to find.
    pub resource: AuthzenSearchedResource,
    /// The environment. Not read: a search decides conditions on stored attributes alone.
    pub context: Option<Properties>,
    /// Which page.
    pub page: Option<AuthzenPageRequest>,
}

/// Which actions may the subject perform on the resource?
#[derive(Debug, Clone, Object)]
pub struct AuthzenActionSearchRequest {
    /// Who asks.
    pub subject: AuthzenSubject,
    /// What it is done to.
    pub resource: AuthzenResource,
    /// The environment. Not read: a search decides conditions on stored attributes alone.
    pub context: Option<Properties>,
    /// Which page.
    pub page: Option<AuthzenPageRequest>,
}

/// A subject found, named so that it can be sent back in an evaluation.
#[derive(Debug, Clone, Object)]
pub struct AuthzenFoundSubject {
    /// The type searched for.
    #[oai(rename = "type")]
    pub kind: String,
    /// A user's username (its ID if it has none), a member's or binding's ID.
    pub id: String,
    /// `space_id`: the space the subject acts in.
    pub properties: Properties,
}

/// A resource found, named so that it can be sent back in an evaluation.
#[derive(Debug, Clone, Object)]
pub struct AuthzenFoundResource {
    /// The type searched for.
    #[oai(rename = "type")]
    pub kind: String,
    /// The resource's external ID where that names it alone, else its ID.
    pub id: String,
}

/// An action found.
#[derive(Debug, Clone, Object)]
pub struct AuthzenFoundAction {
    /// The action's key.
    pub name: String,
}

/// A subject search's page.
#[derive(Debug, Clone, Object)]
pub struct AuthzenSubjectSearchResponse {
    /// Where the results stop.
    pub page: AuthzenPageResponse,
    /// The revision and the audit record; or the error.
    pub context: AuthzenSearchContext,
    /// The subjects.
    pub results: Vec<AuthzenFoundSubject>,
}

/// A resource search's page.
#[derive(Debug, Clone, Object)]
pub struct AuthzenResourceSearchResponse {
    /// Where the results stop.
    pub page: AuthzenPageResponse,
    /// The revision and the audit record; or the error.
    pub context: AuthzenSearchContext,
    /// The resources.
    pub results: Vec<AuthzenFoundResource>,
}

/// An action search's page.
#[derive(Debug, Clone, Object)]
pub struct AuthzenActionSearchResponse {
    /// Where the results stop.
    pub page: AuthzenPageResponse,
    /// The revision and the audit record; or the error.
    pub context: AuthzenSearchContext,
    /// The actions.
    pub results: Vec<AuthzenFoundAction>,
}

/// Where this PDP's AuthZEN endpoints are.
#[derive(Debug, Clone, Object)]
pub struct AuthzenMetadata {
    /// This PDP's identifier: `PLYSTRA_PUBLIC_URL`, or `http://` and the request's `Host`.
    pub policy_decision_point: String,
    /// Access Evaluation.
    pub access_evaluation_endpoint: String,
    /// Access Evaluations.
    pub access_evaluations_endpoint: String,
    /// Subject Search.
    pub search_subject_endpoint: String,
    /// Resource Search.
    pub search_resource_endpoint: String,
    /// Action Search.
    pub search_action_endpoint: String,
}
