//! `authz/check` and `authz/explain` in managed mode: resolve the actor through identity, the
//! target through the registry, the candidate grants from this capability's own tables; decide
//! with the engine; make exactly one audit record durable; answer.
//!
//! An error anywhere on this path is an error response, never an allow. The decision is returned
//! only after its audit record has committed (503 `AUDIT_UNAVAILABLE` otherwise).
//!
//! This first version reads through the identity and registry services on every check; the
//! in-memory index the issue asks for replaces those reads without changing this file's contract.

use std::sync::Arc;

use plystra_contracts::services::{
    ActorRef, ActorResolver, AuditRecord, AuditRecorder, Credential, ResolveError, ResourceLookup,
};
use plystra_contracts::storage::Database;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, JoinType, Order, Query};
use plystra_contracts::{ApiError, Decision, DenyCode, Envelope, ErrorCode};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::Scope;
use crate::engine::{self, ActorFacts, Candidate, Facts, GroupFacts, TargetFacts};
use crate::store::a;

/// The trace format version.
pub const TRACE_VERSION: &str = "1.0";

#[derive(Tags)]
enum CheckTag {
    /// Authorization decisions.
    Authorization,
}

/// Who acts.
#[derive(Debug, Clone, Object)]
pub struct AuthzActor {
    /// The user.
    pub user_id: Option<String>,
    /// The member the user acts as.
    pub member_id: Option<String>,
    /// The user-member binding.
    pub user_member_id: Option<String>,
    /// Upstream's name for `user_member_id`.
    pub binding_id: Option<String>,
    /// The space the request is made in.
    pub space_id: Option<String>,
}

/// The target, as an object instead of `resource_type` and `resource_id`.
#[derive(Debug, Clone, Object)]
pub struct AuthzResource {
    /// The resource type.
    #[oai(rename = "type")]
    pub resource_type: Option<String>,
    /// The resource ID.
    pub id: Option<String>,
}

/// A check or explain request (managed mode).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct AuthzRequest {
    /// Who acts.
    pub actor: Option<AuthzActor>,
    /// The target's type (or `resource.type`).
    pub resource_type: Option<String>,
    /// The target's ID (or `resource.id`).
    pub resource_id: Option<String>,
    /// The target as an object.
    pub resource: Option<AuthzResource>,
    /// The action, for example `approve`.
    pub action: Option<String>,
    /// Inline grants (Context Mode); not supported by this server yet.
    pub grants: Option<Vec<serde_json::Value>>,
}

impl poem_openapi::types::Example for AuthzRequest {
    fn example() -> Self {
        Self {
            actor: Some(AuthzActor {
                user_id: Some("user_alice".into()),
                member_id: Some("member_finance_reviewer".into()),
                user_member_id: Some("um_alice_finance_reviewer".into()),
                binding_id: None,
                space_id: Some("space_acme".into()),
            }),
            resource_type: Some("invoice".into()),
            resource_id: Some("invoice_001".into()),
            resource: None,
            action: Some("approve".into()),
            grants: None,
        }
    }
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

/// The full trace of a decision.
#[derive(Debug, Clone, Object)]
pub struct ExplainTrace {
    /// `1.0`.
    pub trace_version: String,
    /// The trace's ID.
    pub trace_id: String,
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
    ),
}

/// The check and explain routes.
pub struct CheckApi {
    /// The database (this capability's grant tables).
    pub db: Database,
    /// identity.business.
    pub actors: Arc<dyn ActorResolver>,
    /// resource.registry.
    pub lookup: Arc<dyn ResourceLookup>,
    /// audit.explainable.
    pub audit: Arc<dyn AuditRecorder>,
}

fn required(field: &str, value: Option<String>) -> Result<String, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::invalid_field(field, "is required"))
}

/// The request's fields, validated; every missing field is named.
struct Parsed {
    actor: ActorRef,
    resource_type: String,
    resource_id: String,
    action: String,
}

fn parse(body: AuthzRequest, credential: Option<&Credential>) -> Result<Parsed, ApiError> {
    if body.grants.as_ref().is_some_and(|g| !g.is_empty()) {
        if matches!(credential, Some(Credential::Session { .. })) {
            return Err(ApiError::new(
                ErrorCode::InlineContextRequiresApiKey,
                "inline grants (Context Mode) are accepted from API keys only",
            ));
        }
        return Err(ApiError::invalid_field(
            "grants",
            "inline grants (Context Mode) are not supported by this server yet",
        ));
    }
    let mut missing = serde_json::Map::new();
    let mut take = |field: &str, value: Option<String>| match required(field, value) {
        Ok(v) => v,
        Err(_) => {
            missing.insert(field.to_owned(), "is required".into());
            String::new()
        }
    };
    let actor = body.actor.unwrap_or(AuthzActor {
        user_id: None,
        member_id: None,
        user_member_id: None,
        binding_id: None,
        space_id: None,
    });
    let resource = body.resource.unwrap_or(AuthzResource {
        resource_type: None,
        id: None,
    });
    let parsed = Parsed {
        actor: ActorRef {
            user_id: take("actor.user_id", actor.user_id),
            member_id: take("actor.member_id", actor.member_id),
            user_member_id: take(
                "actor.user_member_id",
                actor.user_member_id.or(actor.binding_id),
            ),
            space_id: take("actor.space_id", actor.space_id),
        },
        resource_type: take(
            "resource_type",
            body.resource_type.or(resource.resource_type),
        ),
        resource_id: take("resource_id", body.resource_id.or(resource.id)),
        action: take("action", body.action),
    };
    if missing.is_empty() {
        Ok(parsed)
    } else {
        let names: Vec<&str> = missing.keys().map(String::as_str).collect();
        Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("missing: {}", names.join(", ")),
        )
        .with_detail("fields", serde_json::Value::Object(missing)))
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

type CandidateRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
);

impl CheckApi {
    /// The member's active grants for (type, action), in a stable order.
    async fn candidates(
        &self,
        member_id: &str,
        resource_type: &str,
        action: &str,
    ) -> Result<Vec<CandidateRow>, ApiError> {
        let mut q = Query::select();
        q.columns([
            (a("mr"), a("id")),
            (a("mr"), a("space_id")),
            (a("mr"), a("scope_anchor_group_id")),
            (a("r"), a("id")),
            (a("r"), a("key")),
            (a("r"), a("space_id")),
            (a("p"), a("id")),
            (a("p"), a("scope")),
        ])
        .from_as(a("sys_authz_member_roles"), a("mr"))
        .join_as(
            JoinType::InnerJoin,
            a("sys_authz_roles"),
            a("r"),
            Expr::col((a("r"), a("id"))).equals((a("mr"), a("role_id"))),
        )
        .join_as(
            JoinType::InnerJoin,
            a("sys_authz_role_permissions"),
            a("rp"),
            Expr::col((a("rp"), a("role_id"))).equals((a("r"), a("id"))),
        )
        .join_as(
            JoinType::InnerJoin,
            a("sys_authz_permissions"),
            a("p"),
            Expr::col((a("p"), a("id"))).equals((a("rp"), a("permission_id"))),
        )
        .and_where(Expr::col((a("mr"), a("member_id"))).eq(member_id))
        .and_where(Expr::col((a("mr"), a("status"))).eq("active"))
        .and_where(Expr::col((a("mr"), a("deleted_at"))).is_null())
        .and_where(Expr::col((a("r"), a("status"))).eq("active"))
        .and_where(Expr::col((a("r"), a("deleted_at"))).is_null())
        .and_where(Expr::col((a("rp"), a("deleted_at"))).is_null())
        .and_where(Expr::col((a("p"), a("status"))).eq("active"))
        .and_where(Expr::col((a("p"), a("deleted_at"))).is_null())
        .and_where(Expr::col((a("p"), a("resource"))).eq(resource_type))
        .and_where(Expr::col((a("p"), a("action"))).eq(action))
        .order_by((a("mr"), a("id")), Order::Asc)
        .order_by((a("p"), a("id")), Order::Asc);
        Ok(self.db.fetch_all(&q).await?)
    }

    /// Decides, audits once, and returns the trace.
    async fn decide(
        &self,
        req: &poem::Request,
        body: AuthzRequest,
    ) -> Result<ExplainTrace, ApiError> {
        let parsed = parse(body, Credential::of(req))?;
        let snapshot = self
            .actors
            .resolve(&parsed.actor)
            .await
            .map_err(resolve_error)?;
        let lookup = self
            .lookup
            .lookup(&parsed.resource_type, &parsed.action, &parsed.resource_id)
            .await
            .map_err(resolve_error)?;
        let rows = if lookup.resource_type_known && lookup.action_known {
            self.candidates(
                &parsed.actor.member_id,
                &parsed.resource_type,
                &parsed.action,
            )
            .await?
        } else {
            Vec::new()
        };
        let mut candidates = Vec::with_capacity(rows.len());
        for (mr_id, mr_space, anchor_id, role_id, role_key, role_space, permission_id, scope) in
            rows
        {
            let Some(scope) = Scope::parse(&scope) else {
                continue;
            };
            let anchor = match &anchor_id {
                Some(id) => self
                    .actors
                    .group(id)
                    .await
                    .map_err(resolve_error)?
                    .map(|g| GroupFacts {
                        id: Some(g.id),
                        path: g.path,
                        space_id: Some(g.space_id),
                    }),
                None => None,
            };
            candidates.push(Candidate {
                role_key,
                role_id,
                role_space_id: role_space,
                permission_id,
                scope,
                member_role_id: mr_id,
                member_role_space_id: mr_space,
                anchor_named: anchor_id.is_some(),
                anchor,
            });
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expires_at = snapshot
            .user_member_expires_at
            .as_deref()
            .and_then(|e| {
                time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| t.unix_timestamp());
        let target_space = lookup
            .space_id
            .clone()
            .unwrap_or_else(|| snapshot.actor.space_id.clone());
        let facts = Facts {
            actor: ActorFacts {
                user_id: snapshot.actor.user_id.clone(),
                user_active: snapshot.user_status == "active",
                member_id: snapshot.actor.member_id.clone(),
                member_active: snapshot.member_status == "active",
                member_space_id: snapshot.member_space_id.clone(),
                user_member_id: snapshot.actor.user_member_id.clone(),
                binding_revoked: snapshot.user_member_status == "revoked",
                binding_expires_at: expires_at,
                space_id: snapshot.actor.space_id.clone(),
                space_active: snapshot.space_status == "active",
            },
            target: TargetFacts {
                resource_type: parsed.resource_type.clone(),
                resource_id: parsed.resource_id.clone(),
                space_id: target_space.clone(),
                group: lookup.group.clone().map(|(id, path)| GroupFacts {
                    id: Some(id),
                    path,
                    space_id: Some(target_space.clone()),
                }),
                owner_member_id: lookup.owner_member_id.clone(),
            },
            action: parsed.action.clone(),
            resource_type_known: lookup.resource_type_known,
            action_known: lookup.action_known,
            candidates,
            now,
        };
        // The trace is always built: the audit record keeps it, and explain returns it.
        let evaluation = engine::evaluate(&facts, true);
        let group_trace = |g: &GroupFacts| GroupTrace {
            id: g.id.clone(),
            path: g.path.clone(),
            space_id: g.space_id.clone(),
        };
        let decision = if evaluation.allow() {
            Decision::Allow
        } else {
            Decision::Deny
        };
        let mut trace = ExplainTrace {
            trace_version: TRACE_VERSION.to_owned(),
            trace_id: plystra_contracts::ids::generate("trace_"),
            decision,
            deny_code: evaluation.deny_code,
            reason: evaluation.reason.clone(),
            actor: ActorTrace {
                user_id: facts.actor.user_id.clone(),
                user_status: snapshot.user_status.clone(),
                member_id: facts.actor.member_id.clone(),
                member_status: snapshot.member_status.clone(),
                member_space_id: snapshot.member_space_id.clone(),
                user_member_id: facts.actor.user_member_id.clone(),
                user_member_status: snapshot.user_member_status.clone(),
                user_member_expires_at: snapshot.user_member_expires_at.clone(),
                space_id: facts.actor.space_id.clone(),
                space_status: snapshot.space_status.clone(),
            },
            target: TargetTrace {
                resource_type: parsed.resource_type.clone(),
                resource_id: parsed.resource_id.clone(),
                space_id: lookup.space_id.clone(),
                group: facts.target.group.as_ref().map(group_trace),
                owner_member_id: lookup.owner_member_id.clone(),
            },
            resource_registry: RegistryTrace {
                resource_type: parsed.resource_type.clone(),
                resource_type_known: lookup.resource_type_known,
                action: parsed.action.clone(),
                action_known: lookup.action_known,
            },
            matched_candidates: evaluation
                .checks
                .iter()
                .map(|(i, check)| {
                    let c = &facts.candidates[*i];
                    CandidateTrace {
                        role: c.role_key.clone(),
                        role_id: c.role_id.clone(),
                        role_space_id: c.role_space_id.clone(),
                        permission: c.permission_id.clone(),
                        scope: c.scope,
                        scope_anchor: c.anchor.as_ref().map(group_trace),
                        scope_check: ScopeCheckTrace {
                            covered: check.covered,
                            rule: check.rule.clone(),
                            reason: check.reason.clone(),
                            deny_code: check.deny_code,
                        },
                        member_role_id: c.member_role_id.clone(),
                        member_role_space_id: c.member_role_space_id.clone(),
                    }
                })
                .collect(),
            request: RequestTrace {
                request_id: plystra_contracts::current_request_id(),
                ip: req
                    .remote_addr()
                    .as_socket_addr()
                    .map(|a| a.ip().to_string()),
                user_agent: req.header("User-Agent").map(str::to_owned),
            },
            audit: AuditRef {
                recorded: false,
                audit_log_id: None,
            },
        };
        let record = AuditRecord {
            space_id: Some(facts.actor.space_id.clone()),
            actor_user_id: Some(facts.actor.user_id.clone()),
            actor_member_id: Some(facts.actor.member_id.clone()),
            actor_user_member_id: Some(facts.actor.user_member_id.clone()),
            resource_type: Some(parsed.resource_type.clone()),
            resource_id: Some(parsed.resource_id.clone()),
            decision: Some(if evaluation.allow() { "allow" } else { "deny" }.to_owned()),
            deny_code: evaluation.deny_code.map(|c| c.as_str().to_owned()),
            ip_address: trace.request.ip.clone(),
            user_agent: trace.request.user_agent.clone(),
            trace: poem_openapi::types::ToJSON::to_json(&trace).unwrap_or(serde_json::Value::Null),
            ..AuditRecord::new("authz.decision", parsed.action.clone())
        };
        let audit_log_id = self
            .audit
            .record(record)
            .await
            .map_err(|e| ApiError::new(ErrorCode::AuditUnavailable, e.to_string()))?;
        trace.audit = AuditRef {
            recorded: audit_log_id.is_some(),
            audit_log_id,
        };
        Ok(trace)
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
        body: Json<AuthzRequest>,
    ) -> Result<CheckResponse, ApiError> {
        let trace = self.decide(req, body.0).await?;
        let result = CheckResult {
            allow: trace.decision == Decision::Allow,
            decision: trace.decision,
            deny_code: trace.deny_code,
            reason: trace.reason.clone(),
            trace_id: trace.trace_id.clone(),
            audit_log_id: trace.audit.audit_log_id.clone(),
            audit: trace.audit.clone(),
        };
        Ok(CheckResponse::Decided(
            Json(Envelope::new(result)),
            trace.trace_id,
            trace.audit.audit_log_id,
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
        body: Json<AuthzRequest>,
    ) -> Result<ExplainResponse, ApiError> {
        let trace = self.decide(req, body.0).await?;
        let trace_id = trace.trace_id.clone();
        let audit_log_id = trace.audit.audit_log_id.clone();
        Ok(ExplainResponse::Explained(
            Json(Envelope::new(trace)),
            trace_id,
            audit_log_id,
        ))
    }
}
