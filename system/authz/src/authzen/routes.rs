//! The AuthZEN routes: Access Evaluation, Access Evaluations (defaults merged into each item;
//! `execute_all`, `deny_on_first_deny` and `permit_on_first_permit`), Subject, Resource and
//! Action Search, and the PDP metadata. Every evaluation is a Plystra decision (the engine,
//! one audit record, a trace `authz/explain` and the audit log can show); a search is the
//! matching lookup, audited once per page. Errors are the specification's: a status and a
//! message string (the manifest declares these operations' errors as text).

use std::sync::Arc;

use plystra_contracts::body::OpenJsonBody;
use plystra_contracts::error::TextError;
use plystra_contracts::services::{ActorRef, AuditRecorder};
use plystra_contracts::{ApiError, ErrorCode};
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{OpenApi, Tags};

use super::mapping::{self, SUBJECT_TYPES};
use super::wire::{
    AuthzenAction, AuthzenActionSearchRequest, AuthzenActionSearchResponse, AuthzenDecision,
    AuthzenDecisionContext, AuthzenEvaluationError, AuthzenEvaluationRequest,
    AuthzenEvaluationsRequest, AuthzenEvaluationsResponse, AuthzenFoundAction,
    AuthzenFoundResource, AuthzenFoundSubject, AuthzenMetadata, AuthzenPageRequest,
    AuthzenPageResponse, AuthzenResource, AuthzenResourceSearchRequest,
    AuthzenResourceSearchResponse, AuthzenSearchContext, AuthzenSubject,
    AuthzenSubjectSearchRequest, AuthzenSubjectSearchResponse, EvaluationsSemantic, Properties,
};
use crate::check::{Caller, CheckResult, Decider};
use crate::index::{Request, ResourceLookup, SubjectLookup};
use crate::lookup::CursorKey;

/// The paths, as the metadata names them.
pub const EVALUATION_PATH: &str = "/access/v1/evaluation";
/// Access Evaluations.
pub const EVALUATIONS_PATH: &str = "/access/v1/evaluations";
/// Subject Search.
pub const SUBJECT_SEARCH_PATH: &str = "/access/v1/search/subject";
/// Resource Search.
pub const RESOURCE_SEARCH_PATH: &str = "/access/v1/search/resource";
/// Action Search.
pub const ACTION_SEARCH_PATH: &str = "/access/v1/search/action";

#[derive(Tags)]
enum AuthzenTag {
    /// OpenID AuthZEN Authorization API 1.0: evaluations and searches in the standard's shapes,
    /// decided and audited as `authz/check` and the lookups are.
    #[oai(rename = "AuthZEN")]
    Authzen,
}

/// The AuthZEN routes.
pub struct AuthzenApi {
    /// The decision path `authz/check` takes.
    pub decider: Arc<Decider>,
    /// audit.explainable: one record per search page.
    pub audit: Arc<dyn AuditRecorder>,
    /// What page tokens are signed with (the lookups' key).
    pub cursors: CursorKey,
    /// `PLYSTRA_PUBLIC_URL`, when set: the PDP's identifier.
    pub public_url: Option<String>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The decision `authz/check` made, in AuthZEN's shape.
fn decided(result: CheckResult) -> AuthzenDecision {
    let reason_admin = result
        .deny_code
        .map(|_| std::collections::BTreeMap::from([("403".to_owned(), result.reason.clone())]));
    AuthzenDecision {
        decision: result.allow,
        context: Some(AuthzenDecisionContext {
            reason: Some(result.reason),
            deny_code: result.deny_code,
            reason_admin,
            trace_id: Some(result.trace_id),
            audit_log_id: result.audit_log_id,
            revision: Some(result.revision),
            error: None,
        }),
    }
}

/// An evaluation that could not be decided: `false`, the error in the context.
fn undecided(error: AuthzenEvaluationError) -> AuthzenDecision {
    AuthzenDecision {
        decision: false,
        context: Some(AuthzenDecisionContext {
            error: Some(error),
            ..AuthzenDecisionContext::default()
        }),
    }
}

fn error_of(e: &ApiError) -> AuthzenEvaluationError {
    AuthzenEvaluationError {
        status: e.status().as_u16(),
        message: e.text(),
        code: e.code.as_str().to_owned(),
    }
}

/// One evaluation, its entities merged.
struct Evaluation<'a> {
    subject: &'a AuthzenSubject,
    action: &'a AuthzenAction,
    resource: &'a AuthzenResource,
    context: Option<&'a Properties>,
}

impl Evaluation<'_> {
    /// What it brings for conditions: the three entities' properties and the context.
    fn attributes(&self) -> Result<crate::engine::RequestAttributes, ApiError> {
        crate::check::request_attributes(
            [
                self.subject.properties.clone(),
                self.resource.properties.clone(),
                self.action.properties.clone(),
                self.context.cloned(),
            ],
            [
                "subject.properties",
                "resource.properties",
                "action.properties",
                "context",
            ],
        )
    }
}

/// What a search answers when it cannot: no results, the error in the context.
fn search_error(e: AuthzenEvaluationError) -> (AuthzenPageResponse, AuthzenSearchContext) {
    (
        AuthzenPageResponse {
            next_token: String::new(),
            count: 0,
        },
        AuthzenSearchContext {
            error: Some(e),
            ..AuthzenSearchContext::default()
        },
    )
}

/// Where a search resumes and how much it answers.
struct PageAsk {
    /// The signed query: the request as sent, less the token and the IDs it ignores.
    query: String,
    after: Option<Vec<String>>,
    limit: u32,
}

/// Keys in order, paged: those after `after`, at most `limit`, and whether more follow.
fn page_of<T>(
    sorted: Vec<(String, T)>,
    after: Option<&str>,
    limit: u32,
) -> (Vec<(String, T)>, bool) {
    let mut rest = sorted
        .into_iter()
        .skip_while(|(key, _)| after.is_some_and(|a| key.as_str() <= a));
    let page: Vec<(String, T)> = rest.by_ref().take(limit as usize).collect();
    let more = rest.next().is_some();
    (page, more)
}

impl AuthzenApi {
    fn limits(&self) -> crate::limits::Limits {
        self.decider.service.limits
    }

    /// Decides one evaluation as `authz/check` would. `Err` only for what fails the whole
    /// request (the facts or the audit log unavailable: 5xx); anything else undecidable is a
    /// `false` decision carrying the error.
    async fn evaluate(
        &self,
        caller: &Caller,
        e: Evaluation<'_>,
    ) -> Result<AuthzenDecision, ApiError> {
        let attributes = match e.attributes() {
            Ok(attributes) => attributes,
            Err(refused) => return Ok(undecided(error_of(&refused))),
        };
        let actor = {
            let snapshot = self.decider.service.snapshot(None).await?;
            match mapping::actor(&snapshot, e.subject, now()) {
                Ok(actor) => actor,
                Err(unmapped) => return Ok(undecided(error_of(&unmapped))),
            }
        };
        match self
            .decider
            .decide_managed(
                caller,
                actor,
                (
                    e.resource.kind.to_string(),
                    e.resource.id.to_string(),
                    e.action.name.to_string(),
                ),
                attributes,
            )
            .await
        {
            Ok(result) => Ok(decided(result)),
            Err(err) if err.status().is_server_error() => Err(err),
            Err(err) => Ok(undecided(error_of(&err))),
        }
    }

    /// Decides one evaluation; an error that fails a lone request is one item's `false` here.
    async fn evaluate_item(&self, caller: &Caller, e: Evaluation<'_>) -> AuthzenDecision {
        self.evaluate(caller, e)
            .await
            .unwrap_or_else(|err| undecided(error_of(&err)))
    }

    /// The page a search asks for, its token opened against `signed` (the request less
    /// `page.token`) and holding `parts` keys.
    fn page_ask(
        &self,
        kind: &str,
        mut signed: serde_json::Value,
        page: Option<&AuthzenPageRequest>,
        parts: usize,
    ) -> Result<PageAsk, ApiError> {
        let limit = self
            .limits()
            .page("page.limit", page.and_then(|p| p.limit))?;
        if let Some(page) = signed.get_mut("page").and_then(|p| p.as_object_mut()) {
            page.remove("token");
        }
        let query = format!("authzen.{kind}:{signed}");
        let after = match page
            .and_then(|p| p.token.as_deref())
            .filter(|t| !t.is_empty())
        {
            Some(token) => Some(
                self.cursors
                    .open_field("page.token", &[&query], token, parts)?,
            ),
            None => None,
        };
        Ok(PageAsk {
            query,
            after,
            limit,
        })
    }

    fn next_token(&self, ask: &PageAsk, more: bool, last: Option<&[&str]>) -> String {
        match last {
            Some(last) if more => self.cursors.seal(&[&ask.query], last),
            _ => String::new(),
        }
    }

    /// Runs one search page: `find` on the current snapshot, then the page's one audit record
    /// (the query, the position and how many were found), then the page and the context.
    async fn search<'q, T>(
        &self,
        req: &poem::Request,
        what: &str,
        ask: &PageAsk,
        find: impl FnOnce(&crate::index::Snapshot, i64) -> Result<Found<'q, T>, Unanswered>,
    ) -> Result<(AuthzenPageResponse, AuthzenSearchContext, Vec<T>), ApiError> {
        let snapshot = self.decider.service.snapshot(None).await?;
        let found = match find(&snapshot, now()) {
            Ok(found) => found,
            Err(Unanswered::Answer(error)) => {
                let (page, context) = search_error(error);
                return Ok((page, context, Vec::new()));
            }
            Err(Unanswered::Fail(e)) => return Err(e),
        };
        let revision = snapshot.revision();
        let undecided =
            crate::lookup::undecided_conditions(&snapshot, found.target.0, found.action);
        drop(snapshot);
        let mut trace = serde_json::json!({
            "search": what,
            "undecided_conditions": undecided,
            "after": ask.after,
            "limit": ask.limit,
            "found": found.results.len(),
            "more": found.more,
            "revision": revision,
        });
        if let (Some(trace), Some(query)) = (trace.as_object_mut(), found.query.as_object()) {
            trace.extend(query.clone());
        }
        let audit_log_id = crate::lookup::record_lookup(
            &*self.audit,
            req,
            format!("search.{what}"),
            found.actor.as_ref(),
            found.target,
            trace,
        )
        .await?;
        let last: Vec<&str> = found.last.iter().map(String::as_str).collect();
        let page = AuthzenPageResponse {
            next_token: self.next_token(ask, found.more, Some(&last)),
            count: found.results.len() as u64,
        };
        let context = AuthzenSearchContext {
            revision: Some(revision),
            audit_log_id,
            undecided_conditions: undecided.map(|ids| ids.split(',').map(str::to_owned).collect()),
            error: None,
        };
        Ok((page, context, found.results))
    }
}

/// What one search page found, before it is audited and answered.
struct Found<'q, T> {
    /// The results, in order.
    results: Vec<T>,
    /// Whether more follow.
    more: bool,
    /// The keys of the last result (what the next token resumes after).
    last: Vec<String>,
    /// The actor the search names, for the audit record.
    actor: Option<ActorRef>,
    /// The type and the resource, for the audit record.
    target: (&'q str, Option<&'q str>),
    /// The action searched for (`None`: every action of the type), for the conditions the
    /// search cannot decide.
    action: Option<&'q str>,
    /// What the audit record's trace says of the query beyond the page.
    query: serde_json::Value,
}

/// Why a search found nothing to answer with.
enum Unanswered {
    /// An error the caller can act on: no results, the error in the context.
    Answer(AuthzenEvaluationError),
    /// The facts or the audit log unavailable: the request fails.
    Fail(ApiError),
}

impl Unanswered {
    /// A lookup's error as the check of the same IDs answers it.
    fn of(e: plystra_authz_core::ResolveError) -> Self {
        let e = crate::lookup::lookup_error(e);
        if e.status().is_server_error() {
            Self::Fail(e)
        } else {
            Self::Answer(error_of(&e))
        }
    }
}

/// A managed-mode request of `actor`.
fn request_of<'a>(
    actor: &'a ActorRef,
    resource_type: &'a str,
    resource_id: &'a str,
    action: &'a str,
) -> Request<'a> {
    Request {
        user_id: &actor.user_id,
        member_id: &actor.member_id,
        user_member_id: &actor.user_member_id,
        space_id: &actor.space_id,
        resource_type,
        resource_id,
        action,
    }
}

/// What a subject search asks.
struct SubjectQuery<'a> {
    kind: &'a str,
    resource_type: &'a str,
    resource_id: &'a str,
    action: &'a str,
}

/// A subject search's page: each subject's key with its ID as sent back and its space, in key
/// order; whether more follow; the keys of the last (what the next token resumes after).
struct SubjectsFound {
    found: Vec<(String, (String, String))>,
    more: bool,
    last: Vec<String>,
}

/// The page of subjects `query` finds on `snapshot`: `user_member` straight from the subject
/// lookup's page; `user` and `member` distinct, from the whole lookup, in ID order.
fn subjects_page(
    snapshot: &crate::index::Snapshot,
    query: &SubjectQuery<'_>,
    ask: &PageAsk,
    now: i64,
) -> Result<SubjectsFound, plystra_authz_core::ResolveError> {
    let space_of = |binding: &str| {
        snapshot
            .binding_view(binding, now)
            .and_then(|b| b.space_id)
            .unwrap_or_default()
            .to_owned()
    };
    let lookup = |after: Option<(&str, &str)>, limit: usize| {
        snapshot.lookup_subjects(
            &SubjectLookup {
                resource_type: query.resource_type,
                resource_id: query.resource_id,
                action: query.action,
                after,
                limit,
            },
            now,
        )
    };
    if query.kind == "user_member" {
        let after = ask.after.as_ref().map(|a| (a[0].as_str(), a[1].as_str()));
        let page = lookup(after, ask.limit as usize)?;
        let last = page
            .subjects
            .last()
            .map(|s| vec![s.member_id.clone(), s.user_member_id.clone()])
            .unwrap_or_default();
        let found = page
            .subjects
            .into_iter()
            .map(|s| {
                let space = space_of(&s.user_member_id);
                (s.user_member_id.clone(), (s.user_member_id, space))
            })
            .collect();
        return Ok(SubjectsFound {
            found,
            more: page.more,
            last,
        });
    }
    let users = query.kind == "user";
    let mut distinct = std::collections::BTreeMap::new();
    for s in lookup(None, usize::MAX)?.subjects {
        let key = if users { s.user_id } else { s.member_id };
        distinct
            .entry(key)
            .or_insert_with(|| space_of(&s.user_member_id));
    }
    let sorted: Vec<(String, String)> = distinct.into_iter().collect();
    let (page, more) = page_of(sorted, ask.after.as_ref().map(|a| a[0].as_str()), ask.limit);
    let last = page
        .last()
        .map(|(k, _)| vec![k.clone()])
        .unwrap_or_default();
    let found = page
        .into_iter()
        .map(|(key, space)| {
            let id = if users {
                // The username, where it names this user back.
                snapshot
                    .username_of(&key)
                    .filter(|name| snapshot.user_named(name) == Some(key.as_str()))
                    .map_or_else(|| key.clone(), str::to_owned)
            } else {
                key.clone()
            };
            (key, (id, space))
        })
        .collect();
    Ok(SubjectsFound { found, more, last })
}

#[OpenApi(tag = "AuthzenTag::Authzen")]
impl AuthzenApi {
    /// AuthZEN Access Evaluation: may the subject perform the action on the resource? Decided,
    /// audited and traced exactly as `authz/check` (a `user_member` subject with
    /// `properties.space_id` is that check's actor). `decision` is `true` only for an allow; the
    /// context carries the deny code and reason, the trace and audit record IDs and the index
    /// revision, or, for a subject or resource that names nothing, the error (`false`). Errors
    /// of the request itself are a status with a message string.
    #[oai(
        path = "/access/v1/evaluation",
        method = "post",
        operation_id = "authzenEvaluation"
    )]
    async fn evaluation(
        &self,
        req: &poem::Request,
        body: OpenJsonBody<AuthzenEvaluationRequest>,
    ) -> Result<Json<AuthzenDecision>, TextError> {
        let body = body.0;
        let evaluation = Evaluation {
            subject: &body.subject,
            action: &body.action,
            resource: &body.resource,
            context: body.context.as_ref(),
        };
        Ok(Json(self.evaluate(&Caller::of(req), evaluation).await?))
    }

    /// AuthZEN Access Evaluations: up to `PLYSTRA_AUTHZ_MAX_BATCH` evaluations (100 by
    /// default), each item's missing `subject`, `action`, `resource` and `context` taken from
    /// the top level. `options.evaluations_semantic`: `execute_all` (the default) decides every
    /// item; `deny_on_first_deny` decides in order and stops after the first `false`;
    /// `permit_on_first_permit` stops after the first `true`. Items after the stop are neither
    /// decided nor audited, and the answer ends there. Each decided item is one audited
    /// decision; one that cannot be decided is `false` with its error in the context. Without
    /// items, the top-level entities are one evaluation, answered as `decision` and `context`.
    #[oai(
        path = "/access/v1/evaluations",
        method = "post",
        operation_id = "authzenEvaluations"
    )]
    async fn evaluations(
        &self,
        req: &poem::Request,
        body: OpenJsonBody<AuthzenEvaluationsRequest>,
    ) -> Result<Json<AuthzenEvaluationsResponse>, TextError> {
        let body = body.0;
        let caller = Caller::of(req);
        let items = body.evaluations.unwrap_or_default();
        if items.is_empty() {
            let mut missing = serde_json::Map::new();
            for (field, present) in [
                ("subject", body.subject.is_some()),
                ("action", body.action.is_some()),
                ("resource", body.resource.is_some()),
            ] {
                if !present {
                    missing.insert(field.to_owned(), "is required without evaluations".into());
                }
            }
            let (Some(subject), Some(action), Some(resource)) =
                (&body.subject, &body.action, &body.resource)
            else {
                return Err(ApiError::new(ErrorCode::ValidationFailed, "invalid fields")
                    .with_detail("fields", serde_json::Value::Object(missing))
                    .into());
            };
            let one = self
                .evaluate(
                    &caller,
                    Evaluation {
                        subject,
                        action,
                        resource,
                        context: body.context.as_ref(),
                    },
                )
                .await?;
            return Ok(Json(AuthzenEvaluationsResponse {
                decision: Some(one.decision),
                context: one.context,
                evaluations: None,
            }));
        }
        self.limits().batch("evaluations", items.len())?;
        let mut missing = serde_json::Map::new();
        let mut merged = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let subject = item.subject.as_ref().or(body.subject.as_ref());
            let action = item.action.as_ref().or(body.action.as_ref());
            let resource = item.resource.as_ref().or(body.resource.as_ref());
            let context = item.context.as_ref().or(body.context.as_ref());
            for (field, present) in [
                ("subject", subject.is_some()),
                ("action", action.is_some()),
                ("resource", resource.is_some()),
            ] {
                if !present {
                    missing.insert(
                        format!("evaluations[{i}].{field}"),
                        "is required, here or at the top level".into(),
                    );
                }
            }
            if let (Some(subject), Some(action), Some(resource)) = (subject, action, resource) {
                merged.push(Evaluation {
                    subject,
                    action,
                    resource,
                    context,
                });
            }
        }
        if !missing.is_empty() {
            let names: Vec<&str> = missing.keys().map(String::as_str).collect();
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                format!("invalid fields: {}", names.join(", ")),
            )
            .with_detail("fields", serde_json::Value::Object(missing))
            .into());
        }
        let semantic = body
            .options
            .and_then(|o| o.evaluations_semantic)
            .unwrap_or(EvaluationsSemantic::ExecuteAll);
        let decisions = match semantic {
            // Decided concurrently so their audit records share group commits; joined in order.
            EvaluationsSemantic::ExecuteAll => {
                let caller = &caller;
                futures_util::future::join_all(
                    merged.into_iter().map(|e| self.evaluate_item(caller, e)),
                )
                .await
            }
            EvaluationsSemantic::DenyOnFirstDeny | EvaluationsSemantic::PermitOnFirstPermit => {
                let stop_on = semantic == EvaluationsSemantic::PermitOnFirstPermit;
                let mut decisions = Vec::new();
                for e in merged {
                    let decision = self.evaluate_item(&caller, e).await;
                    let stop = decision.decision == stop_on;
                    decisions.push(decision);
                    if stop {
                        break;
                    }
                }
                decisions
            }
        };
        Ok(Json(AuthzenEvaluationsResponse {
            decision: None,
            context: None,
            evaluations: Some(decisions),
        }))
    }

    /// AuthZEN Subject Search: the subjects of `subject.type` (`user`, `member` or
    /// `user_member`) that may perform the action on the resource, exactly those an evaluation
    /// would allow, each named so it can be sent back in one (a user by its username, with the
    /// space it acts in as `properties.space_id`). `user_member` results come straight from the
    /// subject lookup a page at a time; `user` and `member` results are each distinct, in ID
    /// order. Paged by `page.limit` and `page.token`; audited once per page.
    #[oai(
        path = "/access/v1/search/subject",
        method = "post",
        operation_id = "authzenSubjectSearch"
    )]
    async fn search_subject(
        &self,
        req: &poem::Request,
        body: OpenJsonBody<AuthzenSubjectSearchRequest>,
    ) -> Result<Json<AuthzenSubjectSearchResponse>, TextError> {
        let body = body.0;
        let mut signed = body.to_json().unwrap_or_default();
        if let Some(subject) = signed.get_mut("subject").and_then(|s| s.as_object_mut()) {
            subject.remove("id");
        }
        let kind = body.subject.kind.as_str();
        let parts = if kind == "user_member" { 2 } else { 1 };
        let ask = self.page_ask("subject", signed, body.page.as_ref(), parts)?;
        let query = SubjectQuery {
            kind,
            resource_type: body.resource.kind.as_str(),
            resource_id: body.resource.id.as_str(),
            action: body.action.name.as_str(),
        };
        let (page, context, results) = self
            .search(req, "subject", &ask, |snapshot, now| {
                if !SUBJECT_TYPES.contains(&kind) {
                    return Err(Unanswered::Answer(error_of(&mapping::unsupported_type(
                        kind,
                    ))));
                }
                let found = subjects_page(snapshot, &query, &ask, now).map_err(Unanswered::of)?;
                let results = found
                    .found
                    .into_iter()
                    .map(|(_, (id, space))| AuthzenFoundSubject {
                        kind: kind.to_owned(),
                        id,
                        properties: std::collections::BTreeMap::from([(
                            "space_id".to_owned(),
                            serde_json::Value::String(space),
                        )]),
                    })
                    .collect();
                Ok(Found {
                    results,
                    more: found.more,
                    last: found.last,
                    actor: None,
                    target: (query.resource_type, Some(query.resource_id)),
                    action: Some(query.action),
                    query: serde_json::json!({"subject_type": kind, "action": query.action}),
                })
            })
            .await?;
        Ok(Json(AuthzenSubjectSearchResponse {
            page,
            context,
            results,
        }))
    }

    /// AuthZEN Resource Search: the resources of `resource.type` the subject may perform the
    /// action on, exactly those an evaluation would allow, found from the subject's grants
    /// (never by checking every resource), in ID order, each named by its external ID where that
    /// names it alone (else its ID). Paged by `page.limit` and `page.token`; audited once per
    /// page.
    #[oai(
        path = "/access/v1/search/resource",
        method = "post",
        operation_id = "authzenResourceSearch"
    )]
    async fn search_resource(
        &self,
        req: &poem::Request,
        body: OpenJsonBody<AuthzenResourceSearchRequest>,
    ) -> Result<Json<AuthzenResourceSearchResponse>, TextError> {
        let body = body.0;
        let mut signed = body.to_json().unwrap_or_default();
        if let Some(resource) = signed.get_mut("resource").and_then(|s| s.as_object_mut()) {
            resource.remove("id");
        }
        let ask = self.page_ask("resource", signed, body.page.as_ref(), 1)?;
        let (resource_type, action) = (body.resource.kind.as_str(), body.action.name.as_str());
        let (page, context, results) = self
            .search(req, "resource", &ask, |snapshot, now| {
                let actor = mapping::actor(snapshot, &body.subject, now)
                    .map_err(|u| Unanswered::Answer(error_of(&u)))?;
                let lookup = ResourceLookup {
                    request: request_of(&actor, resource_type, "", action),
                    after: ask.after.as_ref().map(|a| a[0].as_str()),
                    limit: ask.limit as usize,
                };
                let page = snapshot
                    .lookup_resources(&lookup, now)
                    .map_err(Unanswered::of)?;
                let results = page
                    .ids
                    .iter()
                    .map(|id| AuthzenFoundResource {
                        kind: resource_type.to_owned(),
                        id: snapshot
                            .resource_name(resource_type, id)
                            .map_or_else(|| id.clone(), str::to_owned),
                    })
                    .collect();
                Ok(Found {
                    results,
                    more: page.more,
                    last: page.ids.last().cloned().into_iter().collect(),
                    actor: Some(actor),
                    target: (resource_type, None),
                    action: Some(action),
                    query: serde_json::json!({"action": action}),
                })
            })
            .await?;
        Ok(Json(AuthzenResourceSearchResponse {
            page,
            context,
            results,
        }))
    }

    /// AuthZEN Action Search: the actions of the resource's type that the subject may perform
    /// on it, exactly those an evaluation would allow, by key in key order. Paged by
    /// `page.limit` and `page.token`; audited once per page.
    #[oai(
        path = "/access/v1/search/action",
        method = "post",
        operation_id = "authzenActionSearch"
    )]
    async fn search_action(
        &self,
        req: &poem::Request,
        body: OpenJsonBody<AuthzenActionSearchRequest>,
    ) -> Result<Json<AuthzenActionSearchResponse>, TextError> {
        let body = body.0;
        let signed = body.to_json().unwrap_or_default();
        let ask = self.page_ask("action", signed, body.page.as_ref(), 1)?;
        let (resource_type, resource_id) = (body.resource.kind.as_str(), body.resource.id.as_str());
        let (page, context, results) = self
            .search(req, "action", &ask, |snapshot, now| {
                let actor = mapping::actor(snapshot, &body.subject, now)
                    .map_err(|u| Unanswered::Answer(error_of(&u)))?;
                let actions = snapshot
                    .lookup_actions(&request_of(&actor, resource_type, resource_id, ""), now)
                    .map_err(Unanswered::of)?;
                let sorted = actions.into_iter().map(|a| (a, ())).collect();
                let (found, more) =
                    page_of(sorted, ask.after.as_ref().map(|a| a[0].as_str()), ask.limit);
                let last = found.last().map(|(k, _)| k.clone()).into_iter().collect();
                Ok(Found {
                    results: found
                        .into_iter()
                        .map(|(name, ())| AuthzenFoundAction { name })
                        .collect(),
                    more,
                    last,
                    actor: Some(actor),
                    target: (resource_type, Some(resource_id)),
                    action: None,
                    query: serde_json::json!({}),
                })
            })
            .await?;
        Ok(Json(AuthzenActionSearchResponse {
            page,
            context,
            results,
        }))
    }

    /// AuthZEN PDP metadata: this PDP's identifier (`PLYSTRA_PUBLIC_URL`, else `http://` and the
    /// request's `Host`) and its five endpoints. Public: a gateway
    /// reads it before it holds a credential.
    #[oai(
        path = "/.well-known/authzen-configuration",
        method = "get",
        operation_id = "authzenMetadata"
    )]
    async fn metadata(&self, req: &poem::Request) -> Result<Json<AuthzenMetadata>, TextError> {
        let base = match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = req
                    .header(poem::http::header::HOST)
                    .filter(|h| !h.is_empty())
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        Ok(Json(AuthzenMetadata {
            access_evaluation_endpoint: format!("{base}{EVALUATION_PATH}"),
            access_evaluations_endpoint: format!("{base}{EVALUATIONS_PATH}"),
            search_subject_endpoint: format!("{base}{SUBJECT_SEARCH_PATH}"),
            search_resource_endpoint: format!("{base}{RESOURCE_SEARCH_PATH}"),
            search_action_endpoint: format!("{base}{ACTION_SEARCH_PATH}"),
            policy_decision_point: base,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_sorted_keys_resumes_after_the_last_and_says_whether_more_follow() {
        let keys = |n: &[&str]| n.iter().map(|k| ((*k).to_owned(), ())).collect::<Vec<_>>();
        let all = keys(&["a", "b", "c", "d", "e"]);
        let (first, more) = page_of(all.clone(), None, 2);
        assert_eq!(first, keys(&["a", "b"]));
        assert!(more);
        let (second, more) = page_of(all.clone(), Some("b"), 2);
        assert_eq!(second, keys(&["c", "d"]));
        assert!(more);
        let (last, more) = page_of(all.clone(), Some("d"), 2);
        assert_eq!(last, keys(&["e"]));
        assert!(!more);
        let (exact, more) = page_of(all, Some("c"), 2);
        assert_eq!(exact, keys(&["d", "e"]));
        assert!(!more);
    }
}
