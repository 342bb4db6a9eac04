//! `authz/check`, `authz/check/batch` and `authz/explain`: resolve the request against the
//! authorization index's current snapshot (no database read), decide with the engine, make
//! exactly one audit record durable per decision, answer.
//!
//! Managed mode names the actor and the target by ID; Context Mode (API keys and the bootstrap
//! key only) brings the target and the grants inline, and the registry still judges the type
//! and action. An error anywhere on this path is an error response, never an allow. A decision
//! is returned only after its audit record has committed (503 `AUDIT_UNAVAILABLE` otherwise).

use std::borrow::Cow;
use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::services::{ActorRef, AuditRecord, AuditRecorder, Credential, ResolveError};
use plystra_contracts::{ApiError, Decision, DenyCode, Envelope, ErrorCode};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};

use crate::Scope;

use crate::engine::{self, ActorFacts, Candidate, Facts, GroupFacts, TargetFacts};
use crate::index::{ActorStatuses, Request as IndexRequest, Snapshot};

/// The trace format version.
pub const TRACE_VERSION: &str = "1.0";

#[derive(Tags)]
enum CheckTag {
    /// Authorization decisions.
    Authorization,
}

/// Text that is not blank: at least one character that is neither white space nor a control
/// character, and no control character (the rule [`plystra_contracts::limits::refused_character`]
/// holds every string to). Written with `\xHH` escapes and `\s`, which ECMA-262, Python's `re`
/// and the Rust `regex` crate read alike.
pub const NOT_BLANK: &str =
    r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$";

/// Who acts. `user_id`, `member_id` and `space_id` are required, and the binding is named by
/// `user_member_id` or by upstream's `binding_id` (the schema's `anyOf`).
#[derive(Debug, Clone, Object)]
pub struct AuthzActor {
    /// The user.
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub user_id: String,
    /// The member the user acts as.
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub member_id: String,
    /// The user-member binding (this or `binding_id` is required; this one wins).
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub user_member_id: Option<String>,
    /// Upstream's name for `user_member_id`.
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub binding_id: Option<String>,
    /// The space the request is made in.
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub space_id: String,
    /// Context Mode: the user's status (`active` when absent).
    pub user_status: Option<String>,
    /// Context Mode: the member's status (`active` when absent).
    pub member_status: Option<String>,
    /// Context Mode: the binding's status (`active` when absent; `revoked` denies).
    pub binding_status: Option<String>,
    /// Context Mode: the space's status (`active` when absent).
    pub space_status: Option<String>,
}

/// The target as an object. In managed mode only `type` and `id` are read; in Context Mode the
/// rest describes the target inline.
#[derive(Debug, Clone, Object)]
pub struct AuthzResource {
    /// The resource type (when the request has no `resource_type`).
    #[oai(
        rename = "type",
        validator(
            pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
        )
    )]
    pub resource_type: Option<String>,
    /// The resource ID (when the request has no `resource_id`).
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub id: Option<String>,
    /// Context Mode: the ID in the calling application (used when `id` is absent).
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub external_id: Option<String>,
    /// Context Mode: its space (the actor's when absent).
    pub space_id: Option<String>,
    /// Context Mode: its group, by ID; the index supplies the group's path and space.
    pub group_id: Option<String>,
    /// Context Mode: its group, by dotted path (when `group_id` is absent).
    pub group_path: Option<String>,
    /// Context Mode: the owning member, for `self` scopes.
    pub owner_member_id: Option<String>,
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
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub resource: String,
    /// The action the grant covers.
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub action: String,
    /// `self`, `group`, `group_tree`, `space` or `global`.
    pub scope: Scope,
    /// The grant's space (the actor's when absent).
    pub space_id: Option<String>,
    /// The anchor group, by ID; the index supplies its path and space.
    pub scope_anchor_group_id: Option<String>,
    /// The anchor group, by dotted path (when no ID is given).
    pub scope_anchor_group_path: Option<String>,
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
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub resource_type: Option<String>,
    /// The target's ID (or `resource.id`).
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub resource_id: Option<String>,
    /// The target as an object.
    pub resource: Option<AuthzResource>,
    /// The action, for example `approve`.
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    ))]
    pub action: String,
    /// Context Mode: the grants to decide on, instead of the stored ones.
    pub grants: Option<Vec<InlineGrant>>,
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
                user_id: "user_alice".into(),
                member_id: "member_finance_reviewer".into(),
                user_member_id: Some("um_alice_finance_reviewer".into()),
                binding_id: None,
                space_id: "space_acme".into(),
                user_status: None,
                member_status: None,
                binding_status: None,
                space_status: None,
            },
            resource_type: Some("invoice".into()),
            resource_id: Some("invoice_001".into()),
            resource: None,
            action: "approve".into(),
            grants: None,
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

/// Up to 100 checks, decided independently.
#[derive(Debug, Clone, Object)]
pub struct BatchCheckRequest {
    /// The checks, 1 to 100, each shaped like an `authz/check` body. A check that is not
    /// well-formed (a missing or blank field) fails the whole batch with 400 naming
    /// `checks[i].field`.
    #[oai(validator(min_items = 1, max_items = 100))]
    pub checks: Vec<AuthzRequestBody>,
}

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

/// The most checks one batch may carry.
pub const MAX_BATCH: usize = 100;

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
    /// `1.0`.
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

/// A check's answer.
#[derive(ApiResponse)]
pub enum CheckResponse {
    /// The decision (a deny is a 200 too).
    #[oai(status = 200)]
    Decided(
        Json<Envelope<CheckResult>>,
        #[oai(header = "X-Plystra-Trace-ID")] String,
        #[oai(header = "X-Plystra-Audit-Log-ID")] Option<String>,
        #[oai(header = "X-Plystra-Authz-Revision")] u64,
    ),
}

/// An explain's answer.
#[derive(ApiResponse)]
pub enum ExplainResponse {
    /// The decision with its full trace.
    #[oai(status = 200)]
    Explained(
        Json<Envelope<ExplainTrace>>,
        #[oai(header = "X-Plystra-Trace-ID")] String,
        #[oai(header = "X-Plystra-Audit-Log-ID")] Option<String>,
        #[oai(header = "X-Plystra-Authz-Revision")] u64,
    ),
}

/// Decides and audits: the one path behind the HTTP routes and the `Authorizer` service.
pub struct Decider {
    /// The capability's service: the index and what loads it.
    pub service: Arc<crate::AuthorizationService>,
    /// audit.explainable.
    pub audit: Arc<dyn AuditRecorder>,
}

/// Who asks, as the decision's trace and audit record show it. Taken from the HTTP request by
/// the routes; a plugin calling `Authorizer` passes its own end user's address.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The credential the kernel authenticated, if any.
    pub credential: Option<Credential>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

impl Caller {
    /// The caller of an HTTP request.
    pub fn of(req: &poem::Request) -> Self {
        Self {
            credential: Credential::of(req).cloned(),
            ip: req
                .remote_addr()
                .as_socket_addr()
                .map(|a| a.ip().to_string()),
            user_agent: req.header("User-Agent").map(str::to_owned),
        }
    }
}

/// The check and explain routes.
pub struct CheckApi {
    /// The decision path.
    pub decider: Arc<Decider>,
}

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
    /// shadows it), as the schema's `NOT_BLANK` pattern says, nor hold a control character (the
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
enum Parsed {
    Managed(Managed),
    Context(Box<Context>),
}

/// Managed mode: everything by ID.
struct Managed {
    actor: ActorRef,
    resource_type: String,
    resource_id: String,
    action: String,
}

/// Context Mode: the target and the grants inline.
struct Context {
    actor: ActorRef,
    statuses: ActorStatuses<'static>,
    resource_type: String,
    resource_id: String,
    space_id: String,
    group_id: Option<String>,
    group_path: Option<String>,
    owner_member_id: Option<String>,
    action: String,
    grants: Vec<InlineGrant>,
}

fn status_or_active(value: Option<String>) -> String {
    value
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "active".to_owned())
}

fn parse(body: AuthzRequest, credential: Option<&Credential>) -> Result<Parsed, ApiError> {
    let mut missing = Missing::default();
    let actor = body.actor;
    let resource = body.resource.unwrap_or(AuthzResource {
        resource_type: None,
        id: None,
        external_id: None,
        space_id: None,
        group_id: None,
        group_path: None,
        owner_member_id: None,
    });
    let user_member_id = missing.present("actor.user_member_id", actor.user_member_id);
    let binding_id = missing.present("actor.binding_id", actor.binding_id);
    let actor_ref = ActorRef {
        user_id: missing.take("actor.user_id", Some(actor.user_id)),
        member_id: missing.take("actor.member_id", Some(actor.member_id)),
        user_member_id: missing.take("actor.user_member_id", user_member_id.or(binding_id)),
        space_id: missing.take("actor.space_id", Some(actor.space_id)),
    };
    let body_type = missing.present("resource_type", body.resource_type);
    let resource_type = missing.present("resource.type", resource.resource_type);
    let resource_type = missing.take("resource_type", body_type.or(resource_type));
    let action = missing.take("action", Some(body.action));
    let body_id = missing.present("resource_id", body.resource_id);
    let resource_id = missing.present("resource.id", resource.id);
    let external_id = missing.present("resource.external_id", resource.external_id);
    let Some(grants) = body.grants else {
        let managed = Managed {
            actor: actor_ref,
            resource_type,
            resource_id: missing.take("resource_id", body_id.or(resource_id)),
            action,
        };
        missing.finish()?;
        return Ok(Parsed::Managed(managed));
    };
    // Inline context is trusted input: only API keys (and the bootstrap key) may send it.
    if !matches!(
        credential,
        Some(Credential::ApiKey { .. } | Credential::BootstrapKey)
    ) {
        return Err(ApiError::new(
            ErrorCode::InlineContextRequiresApiKey,
            "inline grants (Context Mode) are accepted from API keys only",
        ));
    }
    let resource_id = missing.take("resource.id", body_id.or(resource_id).or(external_id));
    for (i, grant) in grants.iter().enumerate() {
        if grant.role_key.is_none() && grant.role_id.is_none() {
            missing.take(&format!("grants[{i}].role_key"), None);
        }
        missing.take(
            &format!("grants[{i}].resource"),
            Some(grant.resource.clone()),
        );
        missing.take(&format!("grants[{i}].action"), Some(grant.action.clone()));
    }
    missing.finish()?;
    let space_id = resource
        .space_id
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| actor_ref.space_id.clone());
    Ok(Parsed::Context(Box::new(Context {
        statuses: ActorStatuses {
            user_status: status_or_active(actor.user_status).into(),
            member_status: status_or_active(actor.member_status).into(),
            user_member_status: status_or_active(actor.binding_status).into(),
            user_member_expires_at: None,
            space_status: status_or_active(actor.space_status).into(),
        },
        actor: actor_ref,
        resource_type,
        resource_id,
        space_id,
        group_id: resource.group_id.filter(|g| !g.trim().is_empty()),
        group_path: resource.group_path.filter(|g| !g.trim().is_empty()),
        owner_member_id: resource.owner_member_id,
        action,
        grants,
    })))
}

/// The engine's facts for a Context Mode request: the registry from the snapshot, everything
/// else from the request. Groups named by ID take their path and space from the snapshot.
fn context_facts<'a>(snapshot: &'a Snapshot, ctx: &'a Context, now: i64) -> Facts<'a> {
    let (type_key, action_known) = snapshot.registry(&ctx.resource_type, &ctx.action);
    let group_of = |id: Option<&'a String>,
                    path: Option<&'a String>,
                    space: &'a str|
     -> Option<GroupFacts<'a>> {
        match (id, path) {
            (Some(id), path) => Some(snapshot.group(id).unwrap_or(GroupFacts {
                id: Some(Cow::Borrowed(id)),
                path: path.map_or(Cow::Borrowed(""), |p| Cow::Borrowed(p)),
                space_id: Some(Cow::Borrowed(space)),
            })),
            (None, Some(path)) => Some(GroupFacts {
                id: None,
                path: Cow::Borrowed(path),
                space_id: Some(Cow::Borrowed(space)),
            }),
            (None, None) => None,
        }
    };
    let borrowed = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
    let candidates = match type_key {
        Some(key) if action_known => ctx
            .grants
            .iter()
            .enumerate()
            .filter(|(_, g)| g.resource == key && g.action == ctx.action)
            .map(|(i, g)| {
                let scope = g.scope;
                let grant_space: &'a str = g
                    .space_id
                    .as_deref()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or(&ctx.actor.space_id);
                let role_space = g
                    .role_id
                    .as_deref()
                    .and_then(|id| snapshot.role_space(id))
                    .unwrap_or(grant_space);
                let anchor = group_of(
                    g.scope_anchor_group_id.as_ref(),
                    g.scope_anchor_group_path.as_ref(),
                    grant_space,
                );
                Candidate {
                    role_key: borrowed(&g.role_key)
                        .or_else(|| borrowed(&g.role_id))
                        .unwrap_or_default(),
                    role_id: borrowed(&g.role_id).unwrap_or_default(),
                    role_space_id: Cow::Borrowed(role_space),
                    permission_id: borrowed(&g.permission_id)
                        .unwrap_or_else(|| Cow::Owned(format!("inline_{i}"))),
                    scope,
                    member_role_id: Cow::Owned(format!("inline_{i}")),
                    member_role_space_id: Cow::Borrowed(grant_space),
                    anchor_named: anchor.is_some(),
                    anchor,
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    let expires = ctx
        .statuses
        .user_member_expires_at
        .as_deref()
        .and_then(|e| {
            time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp());
    Facts {
        actor: ActorFacts {
            user_id: Cow::Borrowed(&ctx.actor.user_id),
            user_active: ctx.statuses.user_status == "active",
            member_id: Cow::Borrowed(&ctx.actor.member_id),
            member_active: ctx.statuses.member_status == "active",
            member_space_id: Cow::Borrowed(&ctx.actor.space_id),
            user_member_id: Cow::Borrowed(&ctx.actor.user_member_id),
            binding_revoked: ctx.statuses.user_member_status == "revoked",
            binding_expires_at: expires,
            space_id: Cow::Borrowed(&ctx.actor.space_id),
            space_active: ctx.statuses.space_status == "active",
        },
        target: TargetFacts {
            resource_type: Cow::Borrowed(&ctx.resource_type),
            resource_id: Cow::Borrowed(&ctx.resource_id),
            space_id: Cow::Borrowed(&ctx.space_id),
            group: group_of(
                ctx.group_id.as_ref(),
                ctx.group_path.as_ref(),
                &ctx.space_id,
            ),
            owner_member_id: borrowed(&ctx.owner_member_id),
        },
        action: Cow::Borrowed(&ctx.action),
        resource_type_known: type_key.is_some(),
        action_known,
        candidates,
        now,
    }
}

fn resolve_error(e: ResolveError) -> ApiError {
    match e {
        ResolveError::NotFound { entity, id } => {
            let code = match entity {
                "user" => ErrorCode::UserNotFound,
                "member" => ErrorCode::MemberNotFound,
                "user_member" => ErrorCode::UserMemberNotFound,
                "space" => ErrorCode::SpaceNotFound,
                "group" => ErrorCode::GroupNotFound,
                "resource" => ErrorCode::ResourceNotFound,
                _ => ErrorCode::NotFound,
            };
            ApiError::not_found(code, entity, &id)
        }
        ResolveError::Unavailable(reason) => ApiError::new(ErrorCode::DatabaseUnavailable, reason),
    }
}

/// The trace of one decision on `snapshot`, its audit reference not yet set. Every string of the
/// trace is built here, once; the audit record and the answers take them from the trace.
///
/// With `untraced_allow` (the answer is short and the audit log skips allowed decisions) an
/// allow comes back as [`Traced::Allowed`] without the trace: nothing would keep it.
fn trace_of(
    snapshot: &Snapshot,
    caller: &Caller,
    parsed: &Parsed,
    now: i64,
    untraced_allow: bool,
) -> Result<Traced, ApiError> {
    let resolved_statuses;
    let (mode, facts, statuses, target_space_id): (_, _, &ActorStatuses<'_>, _) = match parsed {
        Parsed::Managed(m) => {
            let resolved = snapshot
                .resolve(
                    &IndexRequest {
                        user_id: &m.actor.user_id,
                        member_id: &m.actor.member_id,
                        user_member_id: &m.actor.user_member_id,
                        space_id: &m.actor.space_id,
                        resource_type: &m.resource_type,
                        resource_id: &m.resource_id,
                        action: &m.action,
                    },
                    now,
                )
                .map_err(|e| resolve_error(crate::boundary::resolve_error(e)))?;
            resolved_statuses = resolved.statuses;
            (
                CheckMode::Managed,
                resolved.facts,
                &resolved_statuses,
                resolved.target_space_id,
            )
        }
        Parsed::Context(c) => (
            CheckMode::Context,
            context_facts(snapshot, c, now),
            &c.statuses,
            Some(c.space_id.as_str()),
        ),
    };
    // The trace is always built: the audit record keeps it, and explain returns it.
    let evaluation = engine::evaluate(&facts, true);
    let reason = evaluation.reason(&facts);
    let engine::Evaluation {
        deny_code, checks, ..
    } = evaluation;
    if untraced_allow && deny_code.is_none() {
        return Ok(Traced::Allowed {
            reason,
            revision: snapshot.revision(),
        });
    }
    let group_trace = |g: &GroupFacts<'_>| GroupTrace {
        id: g.id.as_deref().map(str::to_owned),
        path: g.path.to_string(),
        space_id: g.space_id.as_deref().map(str::to_owned),
    };
    let matched_candidates = checks
        .into_iter()
        .map(|(i, check)| {
            let c = &facts.candidates[i];
            CandidateTrace {
                role: c.role_key.to_string(),
                role_id: c.role_id.to_string(),
                role_space_id: c.role_space_id.to_string(),
                permission: c.permission_id.to_string(),
                scope: c.scope,
                scope_anchor: c.anchor.as_ref().map(group_trace),
                scope_check: ScopeCheckTrace {
                    covered: check.covered,
                    rule: check.rule,
                    reason: check.reason,
                    deny_code: check.deny_code.map(crate::boundary::deny_code),
                },
                member_role_id: c.member_role_id.to_string(),
                member_role_space_id: c.member_role_space_id.to_string(),
            }
        })
        .collect();
    let resource_type = facts.target.resource_type.to_string();
    Ok(Traced::Full(ExplainTrace {
        trace_version: TRACE_VERSION.to_owned(),
        trace_id: plystra_contracts::ids::generate("trace_"),
        mode,
        revision: snapshot.revision(),
        decision: if deny_code.is_none() {
            Decision::Allow
        } else {
            Decision::Deny
        },
        deny_code: deny_code.map(crate::boundary::deny_code),
        reason,
        actor: ActorTrace {
            user_id: facts.actor.user_id.to_string(),
            user_status: statuses.user_status.to_string(),
            member_id: facts.actor.member_id.to_string(),
            member_status: statuses.member_status.to_string(),
            member_space_id: facts.actor.member_space_id.to_string(),
            user_member_id: facts.actor.user_member_id.to_string(),
            user_member_status: statuses.user_member_status.to_string(),
            user_member_expires_at: statuses
                .user_member_expires_at
                .as_deref()
                .map(str::to_owned),
            space_id: facts.actor.space_id.to_string(),
            space_status: statuses.space_status.to_string(),
        },
        target: TargetTrace {
            resource_type: resource_type.clone(),
            resource_id: facts.target.resource_id.to_string(),
            space_id: target_space_id.map(str::to_owned),
            group: facts.target.group.as_ref().map(group_trace),
            owner_member_id: facts.target.owner_member_id.as_deref().map(str::to_owned),
        },
        resource_registry: RegistryTrace {
            resource_type,
            resource_type_known: facts.resource_type_known,
            action: facts.action.to_string(),
            action_known: facts.action_known,
        },
        matched_candidates,
        request: RequestTrace {
            request_id: plystra_contracts::current_request_id(),
            ip: caller.ip.clone(),
            user_agent: caller.user_agent.clone(),
        },
        audit: AuditRef::unrecorded(),
    }))
}

/// What [`trace_of`] decided.
enum Traced {
    /// The decision with its full trace.
    Full(ExplainTrace),
    /// An allow whose trace nobody keeps: the audit log skips it and the answer is short.
    Allowed {
        /// The sentence for people.
        reason: String,
        /// The snapshot's revision.
        revision: u64,
    },
}

impl AuditRef {
    /// No record (yet): what the record's own trace says, since it is written before its ID
    /// exists.
    fn unrecorded() -> Self {
        Self {
            recorded: false,
            audit_log_id: None,
        }
    }

    fn into_json(self) -> serde_json::Value {
        json_object([
            ("recorded", self.recorded.into()),
            ("audit_log_id", optional(self.audit_log_id)),
        ])
    }
}

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

impl GroupTrace {
    fn into_json(self) -> serde_json::Value {
        json_object([
            ("id", optional(self.id)),
            ("path", self.path.into()),
            ("space_id", optional(self.space_id)),
        ])
    }
}

fn optional_group(group: Option<GroupTrace>) -> serde_json::Value {
    group.map_or(serde_json::Value::Null, GroupTrace::into_json)
}

impl ExplainTrace {
    /// The trace as JSON, made by moving its strings: what the decision's audit record keeps.
    /// The same value, field for field (every field present, `null` where absent), as the
    /// explain answer's `data`, which poem-openapi writes from the same struct; the unit test
    /// `the_record_keeps_the_trace_the_explain_answer_returns` holds the two together.
    pub fn into_record_json(self) -> serde_json::Value {
        let actor = self.actor;
        let target = self.target;
        let registry = self.resource_registry;
        let request = self.request;
        let candidates = self
            .matched_candidates
            .into_iter()
            .map(|c| {
                json_object([
                    ("role", c.role.into()),
                    ("role_id", c.role_id.into()),
                    ("role_space_id", c.role_space_id.into()),
                    ("permission", c.permission.into()),
                    ("scope", enum_json(&c.scope)),
                    ("scope_anchor", optional_group(c.scope_anchor)),
                    (
                        "scope_check",
                        json_object([
                            ("covered", c.scope_check.covered.into()),
                            ("rule", c.scope_check.rule.into()),
                            ("reason", c.scope_check.reason.into()),
                            ("deny_code", enum_json(&c.scope_check.deny_code)),
                        ]),
                    ),
                    ("member_role_id", c.member_role_id.into()),
                    ("member_role_space_id", c.member_role_space_id.into()),
                ])
            })
            .collect();
        json_object([
            ("trace_version", self.trace_version.into()),
            ("trace_id", self.trace_id.into()),
            ("mode", enum_json(&self.mode)),
            ("revision", self.revision.into()),
            ("decision", enum_json(&self.decision)),
            ("deny_code", enum_json(&self.deny_code)),
            ("reason", self.reason.into()),
            (
                "actor",
                json_object([
                    ("user_id", actor.user_id.into()),
                    ("user_status", actor.user_status.into()),
                    ("member_id", actor.member_id.into()),
                    ("member_status", actor.member_status.into()),
                    ("member_space_id", actor.member_space_id.into()),
                    ("user_member_id", actor.user_member_id.into()),
                    ("user_member_status", actor.user_member_status.into()),
                    (
                        "user_member_expires_at",
                        optional(actor.user_member_expires_at),
                    ),
                    ("space_id", actor.space_id.into()),
                    ("space_status", actor.space_status.into()),
                ]),
            ),
            (
                "target",
                json_object([
                    ("resource_type", target.resource_type.into()),
                    ("resource_id", target.resource_id.into()),
                    ("space_id", optional(target.space_id)),
                    ("group", optional_group(target.group)),
                    ("owner_member_id", optional(target.owner_member_id)),
                ]),
            ),
            (
                "resource_registry",
                json_object([
                    ("resource_type", registry.resource_type.into()),
                    ("resource_type_known", registry.resource_type_known.into()),
                    ("action", registry.action.into()),
                    ("action_known", registry.action_known.into()),
                ]),
            ),
            ("matched_candidates", serde_json::Value::Array(candidates)),
            (
                "request",
                json_object([
                    ("request_id", request.request_id.into()),
                    ("ip", optional(request.ip)),
                    ("user_agent", optional(request.user_agent)),
                ]),
            ),
            ("audit", self.audit.into_json()),
        ])
    }

    /// The decision's audit record, without its trace (set from [`ExplainTrace::into_record_json`]).
    fn audit_record(&self) -> AuditRecord {
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
            ..AuditRecord::new("authz.decision", self.resource_registry.action.clone())
        }
    }
}

/// What a decision answers: the full trace (explain) or the short result (check, batch and the
/// `Authorizer`). Each takes the typed trace once and hands back the audit record's JSON of it.
trait Answer: Sized {
    /// True when the answer carries no trace, so an allow the audit log skips needs none.
    const SHORT: bool;
    /// The answer and the record's trace JSON, both from `trace`.
    fn split(trace: ExplainTrace) -> (Self, serde_json::Value);
    /// The answer to an allow with no trace and no record (only for short answers).
    fn unrecorded_allow(reason: String, revision: u64) -> Option<Self>;
    /// Where the audit record went.
    fn audited(&mut self, audit: AuditRef);
}

impl Answer for ExplainTrace {
    const SHORT: bool = false;

    fn unrecorded_allow(_: String, _: u64) -> Option<Self> {
        None
    }

    fn split(trace: ExplainTrace) -> (Self, serde_json::Value) {
        // The trace is returned, so its JSON is written from it by reference: poem's `ToJSON`,
        // as the answer itself will be (cheaper than a clone to move from).
        let json = ToJSON::to_json(&trace).unwrap_or(serde_json::Value::Null);
        (trace, json)
    }

    fn audited(&mut self, audit: AuditRef) {
        self.audit = audit;
    }
}

impl Answer for CheckResult {
    const SHORT: bool = true;

    fn unrecorded_allow(reason: String, revision: u64) -> Option<Self> {
        Some(CheckResult {
            allow: true,
            decision: Decision::Allow,
            deny_code: None,
            reason,
            trace_id: plystra_contracts::ids::generate("trace_"),
            audit_log_id: None,
            audit: AuditRef {
                recorded: false,
                audit_log_id: None,
            },
            revision,
        })
    }

    fn split(trace: ExplainTrace) -> (Self, serde_json::Value) {
        let result = CheckResult {
            allow: trace.decision == Decision::Allow,
            decision: trace.decision,
            deny_code: trace.deny_code,
            reason: trace.reason.clone(),
            trace_id: trace.trace_id.clone(),
            audit_log_id: None,
            audit: AuditRef::unrecorded(),
            revision: trace.revision,
        };
        // The trace is not returned: its strings move into the record's JSON.
        (result, trace.into_record_json())
    }

    fn audited(&mut self, audit: AuditRef) {
        self.audit_log_id.clone_from(&audit.audit_log_id);
        self.audit = audit;
    }
}

/// The consistency token of a request, if it carries one.
fn at_least_revision(body: &AuthzRequest) -> Option<u64> {
    body.consistency.as_ref().and_then(|c| c.at_least_revision)
}

impl Decider {
    /// Decides an `authz/explain` body, audits once, and returns the full trace.
    pub async fn explain(
        &self,
        caller: &Caller,
        body: AuthzRequest,
    ) -> Result<ExplainTrace, ApiError> {
        let at_least = at_least_revision(&body);
        let parsed = parse(body, caller.credential.as_ref())?;
        self.decide_parsed(caller, parsed, at_least).await
    }

    /// Decides an `authz/check` body, audits once, and returns the result (the trace only in the
    /// audit record).
    pub async fn decide(
        &self,
        caller: &Caller,
        body: AuthzRequest,
    ) -> Result<CheckResult, ApiError> {
        let at_least = at_least_revision(&body);
        let parsed = parse(body, caller.credential.as_ref())?;
        self.decide_parsed(caller, parsed, at_least).await
    }

    /// Decides a validated request on a snapshot at least as new as `at_least`, makes its one
    /// audit record durable, and answers with the trace or the result.
    async fn decide_parsed<A: Answer>(
        &self,
        caller: &Caller,
        parsed: Parsed,
        at_least: Option<u64>,
    ) -> Result<A, ApiError> {
        let snapshot = self.service.snapshot(at_least).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let untraced_allow = A::SHORT && self.audit.skips_allowed_decisions();
        let trace = match trace_of(&snapshot, caller, &parsed, now, untraced_allow)? {
            Traced::Full(trace) => trace,
            Traced::Allowed { reason, revision } => {
                let answer = A::unrecorded_allow(reason, revision).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InternalError,
                        "an untraced allow was produced for a traced answer",
                    )
                })?;
                plystra_contracts::metrics::record_authz_decision(Decision::Allow, None);
                return Ok(answer);
            }
        };
        let (decision, deny_code) = (trace.decision, trace.deny_code);
        let mut record = trace.audit_record();
        let (mut answer, trace_json) = A::split(trace);
        record.trace = trace_json;
        let audit_log_id = self
            .audit
            .record(record)
            .await
            .map_err(|e| ApiError::new(ErrorCode::AuditUnavailable, e.to_string()))?;
        answer.audited(AuditRef {
            recorded: audit_log_id.is_some(),
            audit_log_id,
        });
        plystra_contracts::metrics::record_authz_decision(decision, deny_code);
        Ok(answer)
    }
}

#[OpenApi(tag = "CheckTag::Authorization")]
impl CheckApi {
    /// Decides whether the actor may perform the action on the resource. A deny is a 200 with
    /// `decision: deny` and one of the 13 deny codes; the decision's audit record is durable
    /// before the answer leaves.
    #[oai(
        path = "/api/v1/authz/check",
        method = "post",
        operation_id = "checkAuthorization"
    )]
    async fn check(
        &self,
        req: &poem::Request,
        body: JsonBody<AuthzRequestBody>,
    ) -> Result<CheckResponse, ApiError> {
        let result = self.decider.decide(&Caller::of(req), body.0.0).await?;
        let trace_id = result.trace_id.clone();
        let audit_log_id = result.audit_log_id.clone();
        let revision = result.revision;
        Ok(CheckResponse::Decided(
            Json(Envelope::new(result)),
            trace_id,
            audit_log_id,
            revision,
        ))
    }

    /// Decides exactly as `check` does and returns the full trace: the actor, target and registry
    /// as values, every candidate grant with its scope verdict, the request and the audit record.
    #[oai(
        path = "/api/v1/authz/explain",
        method = "post",
        operation_id = "explainAuthorization"
    )]
    async fn explain(
        &self,
        req: &poem::Request,
        body: JsonBody<AuthzRequestBody>,
    ) -> Result<ExplainResponse, ApiError> {
        let trace = self.decider.explain(&Caller::of(req), body.0.0).await?;
        let trace_id = trace.trace_id.clone();
        let audit_log_id = trace.audit.audit_log_id.clone();
        let revision = trace.revision;
        Ok(ExplainResponse::Explained(
            Json(Envelope::new(trace)),
            trace_id,
            audit_log_id,
            revision,
        ))
    }

    /// Decides up to 100 checks in one call. Each item is decided and audited on its own, as if
    /// sent alone, and answered in request order: a deny is a decision, and an item that cannot
    /// be decided (an unknown ID, a missing field) carries its error instead, without failing the
    /// others.
    #[oai(
        path = "/api/v1/authz/check/batch",
        method = "post",
        operation_id = "checkAuthorizationBatch"
    )]
    async fn check_batch(
        &self,
        req: &poem::Request,
        body: JsonBody<BatchCheckRequest>,
    ) -> Result<Json<Envelope<BatchCheckResult>>, ApiError> {
        let checks = body.0.checks;
        if checks.is_empty() || checks.len() > MAX_BATCH {
            return Err(ApiError::invalid_field(
                "checks",
                format!("must hold 1 to {MAX_BATCH} checks, not {}", checks.len()),
            ));
        }
        let caller = Caller::of(req);
        // Each check is parsed once. One that is not well-formed fails the batch, as the schema
        // says; one that is well-formed but cannot be decided (an unknown ID, inline grants
        // from a session) carries its own error below.
        let parsed: Vec<Result<(Parsed, Option<u64>), ApiError>> = checks
            .into_iter()
            .map(|check| {
                let at_least = at_least_revision(&check.0);
                parse(check.0, caller.credential.as_ref()).map(|p| (p, at_least))
            })
            .collect();
        let mut malformed = serde_json::Map::new();
        for (i, check) in parsed.iter().enumerate() {
            if let Err(e) = check
                && e.code == ErrorCode::ValidationFailed
                && let Some(fields) = e.details.get("fields").and_then(|f| f.as_object())
            {
                for (field, problem) in fields {
                    malformed.insert(format!("checks[{i}].{field}"), problem.clone());
                }
            }
        }
        if !malformed.is_empty() {
            let names: Vec<&str> = malformed.keys().map(String::as_str).collect();
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                format!("invalid fields: {}", names.join(", ")),
            )
            .with_detail("fields", serde_json::Value::Object(malformed)));
        }
        // Decided concurrently so their audit records share group commits; joined in order.
        let (caller, decider) = (&caller, &self.decider);
        let outcomes = futures_util::future::join_all(parsed.into_iter().map(|check| async move {
            let (parsed, at_least) = check?;
            decider
                .decide_parsed::<CheckResult>(caller, parsed, at_least)
                .await
        }))
        .await;
        let (mut allowed, mut denied, mut failed) = (0, 0, 0);
        let results = outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| match outcome {
                Ok(result) => {
                    if result.allow {
                        allowed += 1;
                    } else {
                        denied += 1;
                    }
                    BatchCheckItem {
                        index: i as u32,
                        status: 200,
                        result: Some(result),
                        error: None,
                    }
                }
                Err(e) => {
                    failed += 1;
                    BatchCheckItem {
                        index: i as u32,
                        status: e.status().as_u16(),
                        result: None,
                        error: Some(e.envelope().error),
                    }
                }
            })
            .collect();
        Ok(Json(Envelope::new(BatchCheckResult {
            results,
            allowed,
            denied,
            failed,
        })))
    }
}

/// A plugin's managed-mode request, validated as the HTTP route validates the same fields: a
/// blank one is refused with the same error, naming it as the route does.
fn managed_request(
    request: plystra_contracts::services::CheckRequest,
) -> Result<(Parsed, Caller), ApiError> {
    let plystra_contracts::services::CheckRequest {
        actor,
        resource_type,
        resource_id,
        action,
        ip,
        user_agent,
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
    };
    let ip = ip.and_then(|ip| missing.printable("ip", ip));
    let user_agent = user_agent.and_then(|agent| missing.printable("user_agent", agent));
    missing.finish()?;
    let caller = Caller {
        credential: None,
        ip,
        user_agent,
    };
    Ok((Parsed::Managed(managed), caller))
}

#[async_trait::async_trait]
impl plystra_contracts::services::Authorizer for Decider {
    async fn check(
        &self,
        request: plystra_contracts::services::CheckRequest,
    ) -> Result<plystra_contracts::services::CheckOutcome, plystra_contracts::services::CheckError>
    {
        let (parsed, caller) = managed_request(request)?;
        let result = self
            .decide_parsed::<CheckResult>(&caller, parsed, None)
            .await?;
        Ok(plystra_contracts::services::CheckOutcome {
            decision: result.decision,
            deny_code: result.deny_code,
            reason: result.reason,
            trace_id: result.trace_id,
            audit_log_id: result.audit_log_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::Example;

    use super::*;

    fn inline() -> AuthzRequest {
        let mut body = AuthzRequest::example();
        body.grants = Some(vec![InlineGrant {
            role_key: Some("finance_approver".into()),
            role_id: None,
            permission_id: None,
            resource: "invoice".into(),
            action: "approve".into(),
            scope: Scope::GroupTree,
            space_id: None,
            scope_anchor_group_id: None,
            scope_anchor_group_path: Some("finance".into()),
        }]);
        body
    }

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

    #[test]
    fn every_missing_or_blank_field_is_named_at_once() {
        let mut body = AuthzRequest::example();
        body.actor.user_id = " ".into();
        body.actor.member_id = String::new();
        body.actor.user_member_id = None;
        body.actor.space_id = "\t".into();
        body.resource_type = None;
        body.resource_id = None;
        body.action = "  ".into();
        // A blank field is refused even where another one shadows it.
        body.resource = Some(AuthzResource {
            resource_type: None,
            id: None,
            external_id: Some(" ".into()),
            space_id: None,
            group_id: None,
            group_path: None,
            owner_member_id: None,
        });
        let err = parse(body, None).err().unwrap();
        let fields = err.details["fields"].as_object().unwrap();
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "action",
                "actor.member_id",
                "actor.space_id",
                "actor.user_id",
                "actor.user_member_id",
                "resource.external_id",
                "resource_id",
                "resource_type"
            ]
        );
    }

    /// The Finance Reviewer data of `AuthzRequest::example`: alice approves invoices in the
    /// `finance` subtree; `invoice_001` lies in `finance.apac`, `invoice_002` in `sales`.
    fn finance_snapshot() -> Snapshot {
        use plystra_authz_core::Fact;
        let s = |v: &str| v.to_owned();
        let group = |id: &str, path: &str| Fact::Group {
            id: s(id),
            space_id: s("space_acme"),
            path: s(path),
            status: s("active"),
        };
        let invoice = |id: &str, group: &str| Fact::Resource {
            resource_type: s("invoice"),
            id: s(id),
            external_id: s(id),
            space_id: s("space_acme"),
            group_id: Some(s(group)),
            owner_member_id: None,
            status: s("active"),
        };
        crate::index::snapshot_of([
            Fact::User {
                id: s("user_alice"),
                status: s("active"),
            },
            Fact::Space {
                id: s("space_acme"),
                status: s("active"),
            },
            Fact::Member {
                id: s("member_finance_reviewer"),
                space_id: s("space_acme"),
                status: s("active"),
            },
            Fact::UserMember {
                id: s("um_alice_finance_reviewer"),
                user_id: s("user_alice"),
                member_id: s("member_finance_reviewer"),
                status: s("active"),
                expires_at: None,
            },
            group("group_finance", "finance"),
            group("group_apac", "finance.apac"),
            group("group_sales", "sales"),
            Fact::ResourceType {
                id: s("rt_invoice"),
                key: s("invoice"),
                status: s("active"),
            },
            Fact::ResourceAction {
                resource_type: s("invoice"),
                key: s("approve"),
            },
            invoice("invoice_001", "group_apac"),
            invoice("invoice_002", "group_sales"),
            Fact::Role {
                id: s("role_fa"),
                space_id: s("space_acme"),
                key: s("finance_approver"),
                status: s("active"),
            },
            Fact::Permission {
                id: s("perm_approve"),
                resource: s("invoice"),
                action: s("approve"),
                scope: s("group_tree"),
                status: s("active"),
            },
            Fact::RolePermission {
                id: s("rp_1"),
                role_id: s("role_fa"),
                permission_id: s("perm_approve"),
                deleted: false,
            },
            Fact::MemberRole {
                id: s("mr_1"),
                space_id: s("space_acme"),
                member_id: s("member_finance_reviewer"),
                role_id: s("role_fa"),
                scope_anchor_group_id: Some(s("group_finance")),
                status: s("active"),
            },
        ])
    }

    /// The full trace, which `trace_of` returns when not told to skip allows.
    fn traced(traced: Result<Traced, ApiError>) -> ExplainTrace {
        match traced.unwrap() {
            Traced::Full(trace) => trace,
            Traced::Allowed { .. } => panic!("asked for the full trace"),
        }
    }

    fn managed(resource_id: &str) -> Parsed {
        let mut body = AuthzRequest::example();
        body.resource_id = Some(resource_id.into());
        parse(body, None).unwrap()
    }

    #[test]
    fn the_record_keeps_the_trace_the_explain_answer_returns() {
        let snapshot = finance_snapshot();
        let caller = Caller {
            credential: None,
            ip: Some("192.0.2.1".into()),
            user_agent: None,
        };
        let key = Credential::ApiKey { id: "ak_1".into() };
        // Context Mode: the target's group named by path only (its ID is null in the trace).
        let mut inline_in_apac = inline();
        inline_in_apac.resource = Some(AuthzResource {
            resource_type: None,
            id: None,
            external_id: None,
            space_id: None,
            group_id: None,
            group_path: Some("finance.apac".into()),
            owner_member_id: None,
        });
        let cases = [
            (managed("invoice_001"), "allow", None),
            (managed("invoice_002"), "deny", Some("SCOPE_OUT_OF_BOUNDS")),
            (parse(inline_in_apac, Some(&key)).unwrap(), "allow", None),
        ];
        for (parsed, decision, deny_code) in cases {
            let trace = traced(trace_of(&snapshot, &caller, &parsed, 1_800_000_000, false));
            // Where the log skips allows, a check's allow builds no trace and says the same.
            match trace_of(&snapshot, &caller, &parsed, 1_800_000_000, true).unwrap() {
                Traced::Allowed { reason, revision } => {
                    assert_eq!(decision, "allow");
                    assert_eq!(
                        (reason.as_str(), revision),
                        (trace.reason.as_str(), trace.revision)
                    );
                }
                Traced::Full(denied) => {
                    assert_eq!(decision, "deny");
                    assert_eq!(denied.reason, trace.reason);
                }
            }
            let columns = trace.audit_record();
            // What check, batch and the `Authorizer` store (moved out of the typed trace), and
            // what explain stores (poem's `ToJSON` of the same trace).
            let (result, checked) = <CheckResult as Answer>::split(trace.clone());
            let (mut explained, record) = <ExplainTrace as Answer>::split(trace);
            assert_eq!(checked, record);
            // What explain answers once the record is durable: the same trace, which says where
            // the record went; the record's own copy could not know its ID yet.
            explained.audited(AuditRef {
                recorded: true,
                audit_log_id: Some("audit_1".into()),
            });
            let answer = Envelope::new(explained).to_json().unwrap()["data"].clone();
            assert_eq!(
                record["audit"],
                serde_json::json!({"recorded": false, "audit_log_id": null})
            );
            assert_eq!(
                answer["audit"],
                serde_json::json!({"recorded": true, "audit_log_id": "audit_1"})
            );
            let mut record = record;
            record["audit"] = answer["audit"].clone();
            assert_eq!(
                serde_json::to_string(&record).unwrap(),
                serde_json::to_string(&answer).unwrap()
            );
            // Pinned values, so the comparison is of real traces: absent fields are present as
            // null, enums are their names.
            assert_eq!(answer["decision"], decision, "{answer}");
            assert_eq!(answer["deny_code"], serde_json::json!(deny_code));
            assert_eq!(answer["trace_version"], "1.0");
            assert_eq!(answer["request"]["ip"], "192.0.2.1");
            for (object, field) in [
                (&answer["request"], "user_agent"),
                (&answer["target"], "owner_member_id"),
                (&answer["actor"], "user_member_expires_at"),
            ] {
                assert_eq!(object.get(field), Some(&serde_json::Value::Null), "{field}");
            }
            let candidate = &answer["matched_candidates"][0];
            assert_eq!(candidate["role"], "finance_approver");
            assert_eq!(candidate["scope"], "group_tree");
            assert_eq!(candidate["scope_anchor"]["path"], "finance");
            assert_eq!(candidate["scope_check"]["covered"], deny_code.is_none());
            assert_eq!(candidate["scope_check"]["deny_code"], answer["deny_code"]);
            // The answer of check and the record's columns say the same.
            assert_eq!(result.reason, answer["reason"]);
            assert_eq!(result.trace_id, answer["trace_id"]);
            assert_eq!(result.allow, deny_code.is_none());
            assert_eq!(columns.decision.as_deref(), Some(decision));
            assert_eq!(columns.deny_code.as_deref(), deny_code);
            assert_eq!(columns.action, "approve");
            assert_eq!(columns.event_type, "authz.decision");
            assert_eq!(
                columns.resource_id,
                answer["target"]["resource_id"].as_str().map(str::to_owned)
            );
            assert_eq!(columns.ip_address.as_deref(), Some("192.0.2.1"));
        }
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
        };
        let mut body = AuthzRequest::example();
        body.actor.user_id = " ".into();
        body.actor.user_member_id = Some(String::new());
        body.resource_type = Some("\t".into());
        body.action = String::new();
        let refused = managed_request(plugin).err().unwrap();
        let route = parse(body, None).err().unwrap();
        assert_eq!(refused.code, ErrorCode::ValidationFailed);
        assert_eq!(refused.message, route.message);
        assert_eq!(refused.details, route.details);
        let fields = refused.details["fields"].as_object().unwrap();
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
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

        // A well-formed one is managed mode, with the end user's address as the caller.
        let (parsed, caller) = managed_request(alice()).unwrap();
        let Parsed::Managed(managed) = &parsed else {
            panic!("a plugin's request is managed mode");
        };
        assert_eq!(managed.resource_id, "invoice_001");
        assert!(caller.credential.is_none());
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
