//! The lookup routes: which resources of a type an actor may act on
//! (`authz/lookup/resources`), who may act on one resource (`authz/lookup/subjects`) and which
//! actions an actor may perform on one resource (`authz/lookup/actions`). Each is answered from
//! the index (`plystra_authz_core::index::lookup`), every result decided by the engine as its
//! check would be, and audited once: the query and the number of results, not each result.
//!
//! Pages are in ID order and resume after an opaque cursor, signed for its query: a cursor that
//! was altered, or that belongs to another query, is refused with a 400 naming `cursor`.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use plystra_contracts::body::JsonBody;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::services::{ActorRef, AuditRecord, AuditRecorder, RuntimeInfo};
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope, Pagination};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use sha2::Sha256;

use crate::AuthorizationService;
use crate::check::Caller;
use crate::index::{Request, ResourceLookup, SubjectLookup};

#[derive(Tags)]
enum LookupTag {
    /// Authorization decisions.
    Authorization,
}

/// The actor of a lookup, by IDs (managed mode, as a check names it).
#[derive(Debug, Clone, Object)]
pub struct LookupActor {
    /// The user.
    pub user_id: NotBlank,
    /// The member the user acts as.
    pub member_id: NotBlank,
    /// The user-member binding.
    pub user_member_id: NotBlank,
    /// The space the actor acts in.
    pub space_id: NotBlank,
}

/// Which resources of a type may the actor perform the action on?
#[derive(Debug, Clone, Object)]
pub struct LookupResourcesRequest {
    /// Who acts.
    pub actor: LookupActor,
    /// The resource type, by key or ID.
    pub resource_type: NotBlank,
    /// The action.
    pub action: NotBlank,
    /// Page size, from 1 to `PLYSTRA_AUTHZ_MAX_PAGE` (1000 by default; more is a 400 naming
    /// `limit`; `maximum` is the most any deployment may set); 100 when absent.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub limit: Option<i64>,
    /// The `pagination.cursor` of the previous page of this same query; absent or empty for
    /// the first page.
    pub cursor: Option<String>,
}

/// Who may perform the action on the resource?
#[derive(Debug, Clone, Object)]
pub struct LookupSubjectsRequest {
    /// The resource type, by key or ID.
    pub resource_type: NotBlank,
    /// The resource, by ID or external ID.
    pub resource_id: NotBlank,
    /// The action.
    pub action: NotBlank,
    /// Page size, from 1 to `PLYSTRA_AUTHZ_MAX_PAGE` (1000 by default; more is a 400 naming
    /// `limit`; `maximum` is the most any deployment may set); 100 when absent.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub limit: Option<i64>,
    /// The `pagination.cursor` of the previous page of this same query; absent or empty for
    /// the first page.
    pub cursor: Option<String>,
}

/// Which actions of the type may the actor perform on the resource?
#[derive(Debug, Clone, Object)]
pub struct LookupActionsRequest {
    /// Who acts.
    pub actor: LookupActor,
    /// The resource type, by key or ID.
    pub resource_type: NotBlank,
    /// The resource, by ID or external ID.
    pub resource_id: NotBlank,
}

/// A resource the actor may act on.
#[derive(Debug, Clone, Object)]
pub struct LookedUpResource {
    /// The resource's ID.
    pub id: String,
}

/// An actor who may act on the resource: a user acting as a member through a binding.
#[derive(Debug, Clone, Object)]
pub struct LookedUpSubject {
    /// The user.
    pub user_id: String,
    /// The member.
    pub member_id: String,
    /// The binding.
    pub user_member_id: String,
}

/// The actions the actor may perform on the resource, by key.
#[derive(Debug, Clone, Object)]
pub struct LookedUpActions {
    /// The action keys, in order.
    pub actions: Vec<String>,
    /// The index revision the answer was decided on.
    pub revision: u64,
}

/// A resource lookup's page.
#[derive(ApiResponse)]
pub enum ResourcesResponse {
    /// The resources, in ID order.
    #[oai(status = 200)]
    Found(
        Json<ListEnvelope<LookedUpResource>>,
        #[oai(header = "X-Plystra-Authz-Revision")] u64,
        /// The permissions (IDs, comma-separated) whose condition reads what only a request
        /// brings (`context`, the subject's or the action's properties): a lookup has no
        /// request, so their grants count as not met here, and a check that brings those
        /// attributes may allow more. Absent when there are none.
        #[oai(header = "X-Plystra-Undecided-Conditions")]
        Option<String>,
    ),
}

/// A subject lookup's page.
#[derive(ApiResponse)]
pub enum SubjectsResponse {
    /// The actors, by member ID then binding ID.
    #[oai(status = 200)]
    Found(
        Json<ListEnvelope<LookedUpSubject>>,
        #[oai(header = "X-Plystra-Authz-Revision")] u64,
        /// The permissions (IDs, comma-separated) whose condition reads what only a request
        /// brings (`context`, the subject's or the action's properties): a lookup has no
        /// request, so their grants count as not met here, and a check that brings those
        /// attributes may allow more. Absent when there are none.
        #[oai(header = "X-Plystra-Undecided-Conditions")]
        Option<String>,
    ),
}

/// An action lookup's answer.
#[derive(ApiResponse)]
pub enum ActionsResponse {
    /// The actions.
    #[oai(status = 200)]
    Found(
        Json<Envelope<LookedUpActions>>,
        #[oai(header = "X-Plystra-Authz-Revision")] u64,
        /// The permissions (IDs, comma-separated) whose condition reads what only a request
        /// brings (`context`, the subject's or the action's properties): a lookup has no
        /// request, so their grants count as not met here, and a check that brings those
        /// attributes may allow more. Absent when there are none.
        #[oai(header = "X-Plystra-Undecided-Conditions")]
        Option<String>,
    ),
}

/// The key lookup cursors are signed with: derived from `PLYSTRA_SESSION_SECRET`, so every
/// process of a deployment accepts the others' cursors (rotating the secret ends outstanding
/// cursors: their next page is a 400, and the caller starts over); without one (development
/// only), a key of this process's own.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(redacted)")
    }
}

impl CursorKey {
    /// The key of this deployment.
    pub fn from_runtime(runtime: &dyn RuntimeInfo) -> Self {
        let secret = runtime
            .setting("PLYSTRA_SESSION_SECRET")
            .filter(|s| !s.is_empty())
            .map_or_else(
                || plystra_contracts::ids::generate("cursor_key_").into_bytes(),
                String::into_bytes,
            );
        Self::derived(&secret)
    }

    /// The key derived from `secret`.
    pub fn derived(secret: &[u8]) -> Self {
        Self(mac(secret, &[b"plystra lookup cursor v1"]))
    }

    /// A cursor resuming `query` after `after`.
    pub(crate) fn seal(&self, query: &[&str], after: &[&str]) -> String {
        let payload = serde_json::to_vec(after).unwrap_or_default();
        let tag = self.tag(query, &payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..16])
        )
    }

    /// Where `cursor` resumes `query`, or a 400 when it was altered or is another query's.
    fn open(&self, query: &[&str], cursor: &str, parts: usize) -> Result<Vec<String>, ApiError> {
        self.open_field("cursor", query, cursor, parts)
    }

    /// [`Self::open`], the 400 naming `field`.
    pub(crate) fn open_field(
        &self,
        field: &str,
        query: &[&str],
        cursor: &str,
        parts: usize,
    ) -> Result<Vec<String>, ApiError> {
        let refused = || {
            ApiError::invalid_field(
                field,
                "is not a cursor of this query (altered, from another query, or from before the \
                 server's secret changed): start again without one",
            )
        };
        let (payload, tag) = cursor.split_once('.').ok_or_else(refused)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| refused())?;
        let expected = self.tag(query, &payload);
        if !subtle_eq(&expected[..16], &tag) {
            return Err(refused());
        }
        let after: Vec<String> = serde_json::from_slice(&payload).map_err(|_| refused())?;
        if after.len() != parts {
            return Err(refused());
        }
        Ok(after)
    }

    fn tag(&self, query: &[&str], payload: &[u8]) -> [u8; 32] {
        let mut parts: Vec<&[u8]> = query.iter().map(|q| q.as_bytes()).collect();
        parts.push(payload);
        mac(&self.0, &parts)
    }
}

/// HMAC-SHA256 of `parts`, each length-prefixed so that no two lists of parts collide.
fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length: this never fails. Were it to, every tag would be zeros
    // and a forged cursor would only skip ahead among results that are each decided anyway.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Compares in time independent of where they differ.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The lookup routes.
pub struct LookupApi {
    /// The index and what loads it.
    pub service: Arc<AuthorizationService>,
    /// audit.explainable: one record per lookup.
    pub audit: Arc<dyn AuditRecorder>,
    /// What cursors are signed with.
    pub cursors: CursorKey,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A lookup's resolve error as the check of the same IDs answers it.
pub(crate) fn lookup_error(e: plystra_authz_core::ResolveError) -> ApiError {
    crate::check::resolve_error(crate::boundary::resolve_error(e))
}

/// Makes a lookup's (or an AuthZEN search page's) one audit record durable before the answer:
/// event `authz.lookup`, action `action` (`lookup.resources`, `search.subject`, …), the actor
/// when the query names one, the type and resource, and `trace`: the query and how many were
/// found. The record's ID, when the log keeps it.
pub(crate) async fn record_lookup(
    audit: &dyn AuditRecorder,
    req: &poem::Request,
    action: String,
    actor: Option<&ActorRef>,
    target: (&str, Option<&str>),
    trace: serde_json::Value,
) -> Result<Option<String>, ApiError> {
    let caller = Caller::of(req);
    let mut record = AuditRecord::new(&caller.request_id, "authz.lookup", action);
    if let Some(actor) = actor {
        record.space_id = Some(actor.space_id.clone());
        record.actor_user_id = Some(actor.user_id.clone());
        record.actor_member_id = Some(actor.member_id.clone());
        record.actor_user_member_id = Some(actor.user_member_id.clone());
    }
    record.resource_type = Some(target.0.to_owned());
    record.resource_id = target.1.map(str::to_owned);
    record.ip_address = caller.ip;
    record.user_agent = caller.user_agent;
    record.trace = trace;
    audit
        .record(record)
        .await
        .map_err(|e| ApiError::new(ErrorCode::AuditUnavailable, e.to_string()))
}

/// The permissions for the type and action (every action of the type when `None`) whose
/// condition a lookup cannot decide, comma-separated; `None` when there are none.
pub(crate) fn undecided_conditions(
    snapshot: &crate::index::Snapshot,
    resource_type: &str,
    action: Option<&str>,
) -> Option<String> {
    let ids = snapshot.conditions_needing_request(resource_type, action);
    (!ids.is_empty()).then(|| ids.join(","))
}

impl LookupApi {
    /// Makes the lookup's one audit record durable (see [`record_lookup`]), action
    /// `lookup.<what>`.
    async fn audit(
        &self,
        req: &poem::Request,
        what: &str,
        actor: Option<&LookupActor>,
        target: (&str, Option<&str>),
        trace: serde_json::Value,
    ) -> Result<(), ApiError> {
        let actor = actor.map(|a| ActorRef {
            user_id: a.user_id.to_string(),
            member_id: a.member_id.to_string(),
            user_member_id: a.user_member_id.to_string(),
            space_id: a.space_id.to_string(),
        });
        let action = format!("lookup.{what}");
        record_lookup(&*self.audit, req, action, actor.as_ref(), target, trace)
            .await
            .map(|_| ())
    }
}

#[OpenApi(tag = "LookupTag::Authorization")]
impl LookupApi {
    /// Lists, a page at a time in ID order, the resources of a type the actor may perform the
    /// action on: exactly those a check would allow, found from the actor's grants rather than by
    /// checking every resource. Audited once per page (the query and how many were found).
    #[oai(
        path = "/api/v1/authz/lookup/resources",
        method = "post",
        operation_id = "lookupResources"
    )]
    async fn lookup_resources(
        &self,
        req: &poem::Request,
        body: JsonBody<LookupResourcesRequest>,
    ) -> Result<ResourcesResponse, ApiError> {
        let body = body.0;
        let actor = &body.actor;
        let query = [
            "resources",
            &*actor.user_id,
            &*actor.member_id,
            &*actor.user_member_id,
            &*actor.space_id,
            &*body.resource_type,
            &*body.action,
        ];
        let after = match body.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(cursor) => self.cursors.open(&query, cursor, 1)?.pop(),
            None => None,
        };
        let limit = self.service.limits.page("limit", body.limit)?;
        let snapshot = self.service.snapshot(None).await?;
        let page = snapshot
            .lookup_resources(
                &ResourceLookup {
                    request: Request {
                        user_id: &actor.user_id,
                        member_id: &actor.member_id,
                        user_member_id: &actor.user_member_id,
                        space_id: &actor.space_id,
                        resource_type: &body.resource_type,
                        resource_id: "",
                        action: &body.action,
                    },
                    after: after.as_deref(),
                    limit: limit as usize,
                },
                now(),
            )
            .map_err(lookup_error)?;
        let undecided = undecided_conditions(&snapshot, &body.resource_type, Some(&body.action));
        let trace = serde_json::json!({
            "lookup": "resources",
            "undecided_conditions": undecided,
            "action": &*body.action,
            "after": after,
            "limit": limit,
            "found": page.ids.len(),
            "more": page.more,
            "revision": page.revision,
        });
        self.audit(
            req,
            "resources",
            Some(actor),
            (&body.resource_type, None),
            trace,
        )
        .await?;
        let cursor = page
            .ids
            .last()
            .filter(|_| page.more)
            .map(|last| self.cursors.seal(&query, &[last]));
        let pagination = Pagination {
            limit,
            cursor,
            has_more: page.more,
        };
        let data = page
            .ids
            .into_iter()
            .map(|id| LookedUpResource { id })
            .collect();
        Ok(ResourcesResponse::Found(
            Json(ListEnvelope::new(data, pagination)),
            page.revision,
            undecided,
        ))
    }

    /// Lists, a page at a time by member ID then binding ID, the actors (a user acting as a
    /// member) who may perform the action on the resource, each in the member's own space:
    /// exactly those whose check would allow. Audited once per page.
    #[oai(
        path = "/api/v1/authz/lookup/subjects",
        method = "post",
        operation_id = "lookupSubjects"
    )]
    async fn lookup_subjects(
        &self,
        req: &poem::Request,
        body: JsonBody<LookupSubjectsRequest>,
    ) -> Result<SubjectsResponse, ApiError> {
        let body = body.0;
        let query = [
            "subjects",
            &*body.resource_type,
            &*body.resource_id,
            &*body.action,
        ];
        let after = match body.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(cursor) => Some(self.cursors.open(&query, cursor, 2)?),
            None => None,
        };
        let limit = self.service.limits.page("limit", body.limit)?;
        let snapshot = self.service.snapshot(None).await?;
        let page = snapshot
            .lookup_subjects(
                &SubjectLookup {
                    resource_type: &body.resource_type,
                    resource_id: &body.resource_id,
                    action: &body.action,
                    after: after.as_deref().map(|a| (a[0].as_str(), a[1].as_str())),
                    limit: limit as usize,
                },
                now(),
            )
            .map_err(lookup_error)?;
        let undecided = undecided_conditions(&snapshot, &body.resource_type, Some(&body.action));
        let trace = serde_json::json!({
            "lookup": "subjects",
            "undecided_conditions": undecided,
            "action": &*body.action,
            "after": after,
            "limit": limit,
            "found": page.subjects.len(),
            "more": page.more,
            "revision": page.revision,
        });
        let target = (&*body.resource_type, Some(&*body.resource_id));
        self.audit(req, "subjects", None, target, trace).await?;
        let cursor = page.subjects.last().filter(|_| page.more).map(|last| {
            self.cursors
                .seal(&query, &[&last.member_id, &last.user_member_id])
        });
        let pagination = Pagination {
            limit,
            cursor,
            has_more: page.more,
        };
        let data = page
            .subjects
            .into_iter()
            .map(|s| LookedUpSubject {
                user_id: s.user_id,
                member_id: s.member_id,
                user_member_id: s.user_member_id,
            })
            .collect();
        Ok(SubjectsResponse::Found(
            Json(ListEnvelope::new(data, pagination)),
            page.revision,
            undecided,
        ))
    }

    /// The actions of the resource's type that the actor may perform on it, by key: exactly
    /// those whose check would allow. Audited once.
    #[oai(
        path = "/api/v1/authz/lookup/actions",
        method = "post",
        operation_id = "lookupActions"
    )]
    async fn lookup_actions(
        &self,
        req: &poem::Request,
        body: JsonBody<LookupActionsRequest>,
    ) -> Result<ActionsResponse, ApiError> {
        let body = body.0;
        let actor = &body.actor;
        let snapshot = self.service.snapshot(None).await?;
        let request = Request {
            user_id: &actor.user_id,
            member_id: &actor.member_id,
            user_member_id: &actor.user_member_id,
            space_id: &actor.space_id,
            resource_type: &body.resource_type,
            resource_id: &body.resource_id,
            action: "",
        };
        let actions = snapshot
            .lookup_actions(&request, now())
            .map_err(lookup_error)?;
        let revision = snapshot.revision();
        let undecided = undecided_conditions(&snapshot, &body.resource_type, None);
        let trace = serde_json::json!({
            "lookup": "actions",
            "undecided_conditions": undecided,
            "found": actions.len(),
            "revision": revision,
        });
        let target = (&*body.resource_type, Some(&*body.resource_id));
        self.audit(req, "actions", Some(actor), target, trace)
            .await?;
        Ok(ActionsResponse::Found(
            Json(Envelope::new(LookedUpActions { actions, revision })),
            revision,
            undecided,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_for_its_own_query_and_unaltered() {
        let key = CursorKey::derived(b"a secret of this deployment, long enough");
        let query = ["resources", "user_alice", "invoice", "approve"];
        let cursor = key.seal(&query, &["invoice_002"]);
        assert_eq!(key.open(&query, &cursor, 1).unwrap(), ["invoice_002"]);
        // Another process of the deployment derives the same key.
        let same = CursorKey::derived(b"a secret of this deployment, long enough");
        assert_eq!(same.open(&query, &cursor, 1).unwrap(), ["invoice_002"]);
        // Another query, another secret, an altered position, garbage: refused by name.
        let other = ["resources", "user_bob", "invoice", "approve"];
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"["invoice_999"]"#),
            cursor.split_once('.').unwrap().1
        );
        for (query, cursor, key) in [
            (&other, cursor.clone(), &key),
            (&query, cursor.clone(), &CursorKey::derived(b"rotated")),
            (&query, forged, &key),
            (&query, "nonsense".to_owned(), &key),
            (&query, format!("{cursor}x"), &key),
        ] {
            let refused = key.open(query, &cursor, 1).unwrap_err();
            assert_eq!(refused.code, ErrorCode::ValidationFailed);
            assert!(
                refused.details["fields"]["cursor"].is_string(),
                "{refused:?}"
            );
        }
        // A subject cursor is not a resource cursor.
        let two = key.seal(&query, &["member_a", "um_a"]);
        assert!(key.open(&query, &two, 1).is_err());
    }
}
