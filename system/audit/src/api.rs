//! The audit routes: the log with filters and real cursors, single records, the space-scoped
//! views, chain verification, the streamed export, and the event-type catalog. There is no route
//! that changes a record: PUT, PATCH and DELETE on these paths answer 405.

use futures_util::StreamExt;
use plystra_contracts::pagination::PageRequest;
use plystra_contracts::storage::Database;
use plystra_contracts::{
    ApiError, Decision, DenyCode, Envelope, ErrorCode, ListEnvelope, Pagination, RouteApi,
    ServiceError, ServiceRegistry,
};
use poem::Body;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use time::OffsetDateTime;

use crate::catalog::{AuditEventType, event_types};
use crate::export;
use crate::store::{self, AuditEntry, Filter};

#[derive(Tags)]
enum AuditTag {
    /// The tamper-evident audit log.
    Audit,
}

/// One audit record.
#[derive(Debug, Clone, Object)]
pub struct AuditLog {
    /// `audit_…`.
    pub id: String,
    /// Position in the hash chain, from 1.
    pub seq: i64,
    /// What kind of event this is (see `GET /api/v1/audit/event-types`).
    pub event_type: String,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// The space it happened in.
    pub space_id: Option<String>,
    /// The acting user.
    pub actor_user_id: Option<String>,
    /// The acting member.
    pub actor_member_id: Option<String>,
    /// The user-member binding the actor used.
    pub actor_user_member_id: Option<String>,
    /// The action (`approve`, `users.create`, …).
    pub action: String,
    /// The target's type.
    pub resource_type: Option<String>,
    /// The target's ID.
    pub resource_id: Option<String>,
    /// `allow` or `deny`.
    pub decision: Decision,
    /// Why a decision denied.
    pub deny_code: Option<DenyCode>,
    /// The caller's address, after the PII policy.
    pub ip_address: Option<String>,
    /// The caller's user agent, after the PII policy.
    pub user_agent: Option<String>,
    /// The decision trace or the change's snapshot, as values, redacted.
    pub trace: serde_json::Value,
    /// JSON-pointer paths the redaction policy changed.
    pub redactions: Vec<String>,
    /// The version of the redaction policy that applied.
    pub redaction_version: i64,
    /// The previous record's hash (`genesis` for the first record).
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this record's canonical JSON.
    pub entry_hash: String,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
}

impl From<AuditEntry> for AuditLog {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            seq: e.seq,
            event_type: e.event_type,
            request_id: e.request_id,
            space_id: e.space_id,
            actor_user_id: e.actor_user_id,
            actor_member_id: e.actor_member_id,
            actor_user_member_id: e.actor_user_member_id,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            decision: if e.decision == "deny" {
                Decision::Deny
            } else {
                Decision::Allow
            },
            deny_code: e.deny_code.as_deref().and_then(DenyCode::parse),
            ip_address: e.ip_address,
            user_agent: e.user_agent,
            trace: e.trace,
            redactions: e.redactions,
            redaction_version: e.redaction_version,
            prev_hash: e.prev_hash,
            entry_hash: e.entry_hash,
            created_at: e.created_at,
        }
    }
}

/// The result of walking the hash chain.
#[derive(Debug, Clone, Object)]
pub struct ChainVerification {
    /// True when every record links to the one before it and hashes to its stored hash.
    pub verified: bool,
    /// How many records were checked.
    pub records: u64,
    /// The first broken link, when there is one.
    pub first_broken: Option<BrokenLink>,
}

/// Where the chain breaks.
#[derive(Debug, Clone, Object)]
pub struct BrokenLink {
    /// The position where the break was found.
    pub seq: i64,
    /// The record there, when one exists.
    pub audit_log_id: String,
    /// What is wrong.
    pub reason: String,
}

/// The content type of an audit export: one JSON object a line.
pub const EXPORT_CONTENT_TYPE: &str = "application/x-ndjson";

/// The answer of `GET /api/v1/audit/export`.
#[derive(ApiResponse)]
pub enum AuditExport {
    /// The records from the requested start to the newest, oldest first, one JSON object a line
    /// (each ending in a newline), streamed; empty when no record is in the range.
    #[oai(status = 200, content_type = "application/x-ndjson")]
    Lines(Binary<Body>),
}

/// The two filtered lists of the log (their routes are declared by `audit_lists!` below).
pub struct AuditListsApi {
    db: Database,
}

/// The other audit routes: single records, verification, the export and the catalog.
pub struct AuditRecordsApi {
    db: Database,
}

plystra_contracts::route_set! {
    /// Every audit route, served as one route set.
    pub struct AuditApi((AuditListsApi, AuditRecordsApi));
}

impl RouteApi for AuditApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        let db = (*services.require::<Database>()?).clone();
        Ok(Self((
            AuditListsApi { db: db.clone() },
            AuditRecordsApi { db },
        )))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AuditLogNotFound,
        format!("audit record {id} not found"),
    )
    .with_detail("audit_log_id", id)
}

/// Declares the filters of the two audit lists once: the fields of [`AuditLogQuery`] and the
/// query parameters of `listAuditLogs` and `listSpaceAuditLogs` (the routes this writes), in the
/// order and with the descriptions given. `space_id`, a query parameter of the first and the
/// path of the second, comes first in both and is not listed.
macro_rules! audit_lists {
    ($(#[doc = $doc:tt] $filter:ident: $ty:ty,)*) => {
        /// The filters both audit lists take, as their parameters arrive; [`AuditLogQuery::filter`]
        /// is the one place they are checked and turned into a [`Filter`].
        #[derive(Debug, Clone, Default)]
        pub struct AuditLogQuery {
            /// Only this space.
            pub space_id: Option<String>,
            $(#[doc = $doc] pub $filter: Option<$ty>,)*
        }

        #[OpenApi(tag = "AuditTag::Audit")]
        impl AuditListsApi {
            /// Audit records, newest first, narrowed by every filter given, one page at a time.
            #[allow(clippy::too_many_arguments)]
            #[oai(
                path = "/api/v1/audit/logs",
                method = "get",
                operation_id = "listAuditLogs"
            )]
            async fn list(
                &self,
                /// Only this space.
                space_id: Query<Option<String>>,
                $(#[doc = $doc] $filter: Query<Option<$ty>>,)*
                /// Page size, 1–200 (default 50).
                #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
                limit: Query<Option<i64>>,
                /// The `pagination.cursor` of the previous page.
                cursor: Query<Option<String>>,
            ) -> Result<Json<ListEnvelope<AuditLog>>, ApiError> {
                let query = AuditLogQuery {
                    space_id: space_id.0,
                    $($filter: $filter.0,)*
                };
                self.page(query.filter()?, limit.0, cursor.0).await
            }

            /// A space's audit records, newest first, narrowed by the same filters as
            /// `GET /api/v1/audit/logs` (a space-scoped credential reads its own space's log here).
            #[allow(clippy::too_many_arguments)]
            #[oai(
                path = "/api/v1/spaces/:space_id/audit-logs",
                method = "get",
                operation_id = "listSpaceAuditLogs"
            )]
            async fn list_space(
                &self,
                space_id: Path<String>,
                $(#[doc = $doc] $filter: Query<Option<$ty>>,)*
                /// Page size, 1–200 (default 50).
                #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
                limit: Query<Option<i64>>,
                /// The `pagination.cursor` of the previous page.
                cursor: Query<Option<String>>,
            ) -> Result<Json<ListEnvelope<AuditLog>>, ApiError> {
                let query = AuditLogQuery {
                    space_id: Some(space_id.0),
                    $($filter: $filter.0,)*
                };
                self.page(query.filter()?, limit.0, cursor.0).await
            }
        }
    };
}

audit_lists! {
    /// Only this acting user.
    actor_user_id: String,
    /// Only this acting member.
    actor_member_id: String,
    /// Only this binding.
    actor_user_member_id: String,
    /// Only this target type.
    resource_type: String,
    /// Only this target.
    resource_id: String,
    /// Only allows or only denies.
    decision: Decision,
    /// Only this deny code.
    deny_code: DenyCode,
    /// Only records of this request.
    request_id: String,
    /// Only records at or after this instant (RFC 3339).
    created_at_from: OffsetDateTime,
    /// Only records at or before this instant (RFC 3339).
    created_at_to: OffsetDateTime,
    /// Only this event type.
    event_type: String,
}

impl AuditLogQuery {
    /// The store filter; an empty time range is a 400 naming the field.
    pub fn filter(self) -> Result<Filter, ApiError> {
        let created_from = self.created_at_from;
        let created_to = self.created_at_to;
        if let (Some(from), Some(to)) = (created_from, created_to)
            && from > to
        {
            return Err(ApiError::invalid_field(
                "created_at_from",
                "is after created_at_to",
            ));
        }
        let decision = self
            .decision
            .map(|d| if d == Decision::Deny { "deny" } else { "allow" }.to_owned());
        let equal = [
            ("space_id", self.space_id),
            ("actor_user_id", self.actor_user_id),
            ("actor_member_id", self.actor_member_id),
            ("actor_user_member_id", self.actor_user_member_id),
            ("resource_type", self.resource_type),
            ("resource_id", self.resource_id),
            ("decision", decision),
            ("deny_code", self.deny_code.map(|c| c.as_str().to_owned())),
            ("request_id", self.request_id),
            ("event_type", self.event_type),
        ]
        .into_iter()
        .filter_map(|(column, value)| value.map(|v| (column, v)))
        .collect();
        Ok(Filter {
            equal,
            created_from,
            created_to,
        })
    }
}

impl AuditListsApi {
    async fn page(
        &self,
        filter: Filter,
        limit: Option<i64>,
        cursor: Option<String>,
    ) -> Result<Json<ListEnvelope<AuditLog>>, ApiError> {
        let page = PageRequest::parse(limit, cursor.as_deref())?;
        let after = match &page.after {
            None => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                ApiError::invalid_field("cursor", "is not a cursor this server issued")
            })?),
        };
        let rows = store::list(&self.db, &filter, after, page.fetch()).await?;
        let (rows, pagination): (Vec<AuditEntry>, Pagination) =
            page.page(rows, |r| serde_json::json!(r.seq));
        Ok(Json(ListEnvelope::new(
            rows.into_iter().map(AuditLog::from).collect(),
            pagination,
        )))
    }
}

#[OpenApi(tag = "AuditTag::Audit")]
impl AuditRecordsApi {
    /// One audit record.
    #[oai(
        path = "/api/v1/audit/logs/:audit_log_id",
        method = "get",
        operation_id = "getAuditLog"
    )]
    async fn get(&self, audit_log_id: Path<String>) -> Result<Json<Envelope<AuditLog>>, ApiError> {
        let entry = store::get(&self.db, &audit_log_id.0)
            .await?
            .ok_or_else(|| not_found(&audit_log_id.0))?;
        Ok(Json(Envelope::new(entry.into())))
    }

    /// One audit record of a space; a record of another space is not found here.
    #[oai(
        path = "/api/v1/spaces/:space_id/audit-logs/:audit_log_id",
        method = "get",
        operation_id = "getSpaceAuditLog"
    )]
    async fn get_space(
        &self,
        space_id: Path<String>,
        audit_log_id: Path<String>,
    ) -> Result<Json<Envelope<AuditLog>>, ApiError> {
        let entry = store::get(&self.db, &audit_log_id.0)
            .await?
            .filter(|e| e.space_id.as_deref() == Some(space_id.0.as_str()))
            .ok_or_else(|| not_found(&audit_log_id.0))?;
        Ok(Json(Envelope::new(entry.into())))
    }

    /// Walks the hash chain and reports the first broken link, if any.
    #[oai(
        path = "/api/v1/audit/verify",
        method = "get",
        operation_id = "verifyAuditChain"
    )]
    async fn verify(&self) -> Result<Json<Envelope<ChainVerification>>, ApiError> {
        let v = store::verify(&self.db).await?;
        Ok(Json(Envelope::new(ChainVerification {
            verified: v.first_broken.is_none(),
            records: v.records,
            first_broken: v.first_broken.map(|(seq, id, reason)| BrokenLink {
                seq,
                audit_log_id: id,
                reason,
            }),
        })))
    }

    /// Streams a range of the hash chain as JSON lines, for verifying it offline.
    ///
    /// The body is `application/x-ndjson`: one audit record a line, oldest first, from the
    /// start asked for to the newest record, each line ending in a newline. A line holds every
    /// stored field of its record with its hashes: `seq`, `id`, `event_type`, `request_id`,
    /// `space_id`, the actor fields, `action`, `resource_type`, `resource_id`, `decision`,
    /// `deny_code`, `ip_address`, `user_agent`, `trace`, `redaction_version`, `created_at`,
    /// `redactions`, `prev_hash`, `content_hash` and `entry_hash`. The lines are byte for byte
    /// what `plystractl audit export --format jsonl` writes for the same range.
    ///
    /// It needs `audit:read` across the instance (the chain spans every space). Reading the log
    /// writes no audit record, here as on the other audit reads.
    ///
    /// Start with `since` (the first record created at or after that instant) or `since_seq`
    /// (that `seq`), or neither (the first record); both at once is a 400. A start past the
    /// newest record answers an empty body.
    ///
    /// Verify the file offline with `plystractl audit verify-export FILE`: every line's content
    /// and link are recomputed and each must follow the line before it. A range that does not
    /// start at the first record is chained to its first line's `prev_hash`, which the file
    /// cannot prove: compare it with the `entry_hash` of the record before it in an earlier
    /// export.
    ///
    /// The records are read a page at a time while the body is sent. A database failure before
    /// the first page answers an error as usual; one after the body has begun cannot change the
    /// 200 already sent, so the body then ends with one line that is not a record,
    /// `{"export_cut_off": "…"}`: `verify-export` fails at it, and a reader expecting records
    /// stops there, instead of taking a shorter file for the whole range.
    #[oai(
        path = "/api/v1/audit/export",
        method = "get",
        operation_id = "exportAuditLog"
    )]
    async fn export(
        &self,
        /// Start at the first record created at or after this instant (RFC 3339); not with
        /// `since_seq`.
        since: Query<Option<OffsetDateTime>>,
        /// Start at the record with this `seq`; not with `since`.
        #[oai(validator(minimum(value = "1")))]
        since_seq: Query<Option<i64>>,
    ) -> Result<AuditExport, ApiError> {
        let from_seq = match (since.0, since_seq.0) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_field(
                    "since_seq",
                    "cannot be given with since",
                ));
            }
            (Some(at), None) => match export::first_seq_since(&self.db, at).await? {
                Some(seq) => seq,
                None => return Ok(AuditExport::Lines(Binary(Body::empty()))),
            },
            (None, Some(seq)) => seq,
            (None, None) => 1,
        };
        let mut chunks = Box::pin(export::chunks(self.db.clone(), from_seq, export::PAGE_SIZE));
        // The first page is read before answering, so a failure there is an ordinary error.
        let Some(first) = chunks.next().await.transpose()? else {
            return Ok(AuditExport::Lines(Binary(Body::empty())));
        };
        // A failed read after the 200 has gone out ends the body with the cut-off line (hyper
        // ends a chunked body normally even when its stream fails, so the file says it), then
        // fails the stream, for a transport that does abort.
        let rest = chunks.flat_map(|chunk| {
            let items = match chunk {
                Ok(bytes) => vec![Ok(bytes)],
                Err(e) => {
                    tracing::error!(error = %e, "the audit export failed mid-stream; it ends with its cut-off line");
                    vec![
                        Ok(export::cut_off_line().into_bytes()),
                        Err(std::io::Error::other(e)),
                    ]
                }
            };
            futures_util::stream::iter(items)
        });
        let body = futures_util::stream::once(async { Ok(first) }).chain(rest);
        Ok(AuditExport::Lines(Binary(Body::from_bytes_stream(body))))
    }

    /// The catalog of audit event types that records can carry in `event_type`.
    #[oai(
        path = "/api/v1/audit/event-types",
        method = "get",
        operation_id = "listAuditEventTypes"
    )]
    async fn event_types(&self) -> Result<Json<ListEnvelope<AuditEventType>>, ApiError> {
        let data = event_types();
        let limit = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Ok(Json(ListEnvelope::new(
            data,
            Pagination::single_page(limit),
        )))
    }
}
