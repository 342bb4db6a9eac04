//! What every identity entity shares: the context handlers run in (database, audit, sessions),
//! row decoding for both backends, audited transactions, status lifecycles, field validation and
//! list pages.

use std::sync::Arc;

use plystra_contracts::envelope::Pagination;
use plystra_contracts::pagination::PageRequest;
use plystra_contracts::services::{AuditRecord, AuditRecorder, Credential};
use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Order, SelectStatement};
use plystra_contracts::storage::{Database, Transaction};
use plystra_contracts::{ApiError, ErrorCode};
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, Enum};

use crate::sessions::Sessions;

/// The answer to a create: 201 with the new entity.
#[derive(ApiResponse)]
pub enum Created<T: ParseFromJSON + ToJSON + Send + Sync> {
    /// Created; the body is the new entity.
    #[oai(status = 201)]
    Created(Json<plystra_contracts::Envelope<T>>),
}

/// Table names.
pub(crate) const USERS: &str = "sys_identity_users";
pub(crate) const SPACES: &str = "sys_identity_spaces";
pub(crate) const GROUPS: &str = "sys_identity_groups";
pub(crate) const MEMBERS: &str = "sys_identity_members";
pub(crate) const USER_MEMBERS: &str = "sys_identity_user_members";
pub(crate) const SESSIONS: &str = "sys_identity_sessions";

/// Everything a handler needs, shared by every route group of the capability.
pub(crate) struct Ctx {
    pub(crate) db: Database,
    pub(crate) audit: Arc<dyn AuditRecorder>,
    pub(crate) sessions: Arc<Sessions>,
    /// The bus `identity.facts_changed` goes out on.
    pub(crate) events: Option<Arc<dyn plystra_contracts::events::EventPublisher>>,
    /// The change feed facts go out on; `None` without a database.
    pub(crate) feed: Option<Arc<dyn plystra_contracts::feed::FactsFeed>>,
}

impl Ctx {
    /// Begins a transaction for a mutation.
    pub(crate) async fn begin(&self) -> Result<Transaction, ApiError> {
        Ok(self.db.begin().await?)
    }

    /// Records `record` inside `tx` and commits both; an audit failure is a 503 and rolls back.
    /// Once committed, `fact` (the entity's new state) is in the change feed and goes out as
    /// `identity.facts_changed`.
    pub(crate) async fn commit_audited(
        &self,
        mut tx: Transaction,
        mut record: AuditRecord,
        fact: plystra_contracts::facts::Fact,
    ) -> Result<(), ApiError> {
        acting_binding(&mut tx, &mut record).await?;
        self.commit_facts(tx, vec![record], vec![fact]).await
    }

    /// Commits `records` and `facts` with `tx` through the one commit path
    /// (`plystra_contracts::feed::commit_audited`), then publishes `identity.facts_changed`.
    pub(crate) async fn commit_facts(
        &self,
        tx: Transaction,
        records: Vec<AuditRecord>,
        facts: Vec<plystra_contracts::facts::Fact>,
    ) -> Result<(), ApiError> {
        let events = self.events.clone();
        let published = facts.clone();
        plystra_contracts::feed::commit_audited(
            tx,
            self.audit.as_ref(),
            records,
            facts,
            self.feed.as_ref(),
            move || crate::facts::publish(events.as_ref(), published),
        )
        .await?;
        Ok(())
    }
}

/// Completes a session caller's actor with the binding and member the session acts through.
pub(crate) async fn acting_binding(
    tx: &mut Transaction,
    record: &mut AuditRecord,
) -> Result<(), ApiError> {
    let Some(session) = record.trace["caller"]["session"]
        .as_str()
        .filter(|s| !s.is_empty())
    else {
        return Ok(());
    };
    let mut q = plystra_contracts::storage::sea_query::Query::select();
    q.columns([
        (a(USER_MEMBERS), a("id")),
        (a(USER_MEMBERS), a("member_id")),
    ])
    .from(a(SESSIONS))
    .inner_join(
        a(USER_MEMBERS),
        Expr::col((a(USER_MEMBERS), a("id"))).equals((a(SESSIONS), a("user_member_id"))),
    )
    .and_where(Expr::col((a(SESSIONS), a("id"))).eq(session));
    if let Some((binding, member)) = tx.fetch_optional::<(String, String), _>(&q).await? {
        record.actor_user_member_id = Some(binding);
        record.actor_member_id = Some(member);
    }
    Ok(())
}

/// An `Alias` for a name.
pub(crate) fn a(name: &str) -> Alias {
    Alias::new(name)
}

pub(crate) use plystra_contracts::storage::now;

pub(crate) use plystra_contracts::from_rows;

pub(crate) use plystra_contracts::storage::JsonColumn;

pub use plystra_contracts::storage::Metadata;

pub(crate) use plystra_contracts::storage::metadata_out;

pub(crate) use plystra_contracts::storage::metadata_in;

/// The status of users, spaces, groups and members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "EntityStatus")]
pub enum Status {
    /// In use.
    Active,
    /// Switched off; can be restored.
    Disabled,
}

impl Status {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    /// Parses the stored form; anything unknown reads as disabled (fail closed).
    pub fn parse(s: &str) -> Self {
        if s == "active" {
            Self::Active
        } else {
            Self::Disabled
        }
    }
}

/// Checks a lifecycle move: `to` must differ from `from` when `strict` (the dedicated
/// disable/restore/revoke routes), and a disallowed move is a 409.
pub(crate) fn transition<S: PartialEq + Copy>(
    entity: &str,
    from: S,
    to: S,
    allowed: &[(S, S)],
    name: impl Fn(S) -> &'static str,
) -> Result<(), ApiError> {
    if allowed.contains(&(from, to)) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Conflict,
            format!("{entity} is {}; it cannot become {}", name(from), name(to)),
        )
        .with_detail("status", name(from))
        .with_detail("requested_status", name(to)))
    }
}

/// The moves between `active` and `disabled`.
pub(crate) const STATUS_MOVES: &[(Status, Status)] = &[
    (Status::Active, Status::Disabled),
    (Status::Disabled, Status::Active),
];

/// A 404 with an entity code.
pub(crate) fn not_found(code: ErrorCode, entity: &str, id: &str) -> ApiError {
    ApiError::not_found(code, entity, id)
}

pub(crate) use plystra_contracts::input::entity_id;

/// A trimmed text field of 1..=max characters.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

pub(crate) use plystra_contracts::input::keyword;

/// Who made a change, for the audit record.
pub(crate) fn audit_record(
    credential: Option<&Credential>,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    space_id: Option<&str>,
    snapshot: serde_json::Value,
) -> AuditRecord {
    let mut record = AuditRecord::new(action, action);
    record.resource_type = Some(resource_type.to_owned());
    record.resource_id = Some(resource_id.to_owned());
    record.space_id = space_id.map(str::to_owned);
    record.decision = Some("allow".into());
    let caller = match credential {
        Some(Credential::BootstrapKey) => serde_json::json!({"kind": "bootstrap_key"}),
        Some(Credential::ApiKey { id }) => serde_json::json!({"kind": "api_key", "id": id}),
        Some(Credential::Session {
            user_id,
            session_id,
        }) => {
            record.actor_user_id = Some(user_id.clone());
            serde_json::json!({"kind": "session", "user_id": user_id, "session": session_id})
        }
        None => serde_json::json!({"kind": "anonymous"}),
    };
    record.trace = serde_json::json!({"caller": caller, "after": snapshot});
    record
}

/// The caller's credential, as the kernel put it in the request.
pub(crate) fn credential(req: &poem::Request) -> Option<&Credential> {
    Credential::of(req)
}

/// A page request over a string key (IDs or paths).
pub(crate) struct Page {
    pub(crate) request: PageRequest,
    pub(crate) after: Option<String>,
}

impl Page {
    /// Parses `limit` and `cursor`; the cursor must carry a string key.
    pub(crate) fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let request = PageRequest::parse(limit, cursor)?;
        let after = match &request.after {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "cursor",
                    "is not a cursor this list issued",
                ));
            }
        };
        Ok(Self { request, after })
    }

    /// Adds the keyset condition, order and limit on `column` of `table` to `select`.
    pub(crate) fn apply(&self, select: &mut SelectStatement, table: &str, column: &str) {
        if let Some(after) = &self.after {
            select.and_where(Expr::col((a(table), a(column))).gt(after.as_str()));
        }
        select
            .order_by((a(table), a(column)), Order::Asc)
            .limit(self.request.fetch());
    }

    /// Cuts the rows to the page.
    pub(crate) fn finish<T>(
        &self,
        rows: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Pagination) {
        self.request
            .page(rows, |row| serde_json::Value::String(key(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_allow_only_listed_moves() {
        assert!(
            transition(
                "user",
                Status::Active,
                Status::Disabled,
                STATUS_MOVES,
                Status::as_str
            )
            .is_ok()
        );
        let err = transition(
            "user",
            Status::Active,
            Status::Active,
            STATUS_MOVES,
            Status::as_str,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
    }

    #[test]
    fn ids_are_generated_or_checked() {
        assert!(entity_id("user_", None).unwrap().starts_with("user_"));
        assert_eq!(
            entity_id("user_", Some("user_alice")).unwrap(),
            "user_alice"
        );
        let err = entity_id("user_", Some("space_x")).unwrap_err();
        assert!(err.details["fields"]["id"].is_string());
    }

    #[test]
    fn keywords_and_text_are_validated() {
        assert!(keyword("name", "finance_2").is_ok());
        for bad in ["", "Finance", "2x", "a-b", "a.b"] {
            assert!(keyword("name", bad).is_err(), "{bad}");
        }
        assert_eq!(text("name", "  Acme ", 10).unwrap(), "Acme");
        assert!(text("name", "   ", 10).is_err());
        assert!(text("name", "abcdefghijk", 10).is_err());
    }

    #[test]
    fn cursors_must_carry_string_keys() {
        let cursor = plystra_contracts::pagination::encode(&serde_json::json!(5));
        assert!(Page::parse(None, Some(&cursor)).is_err());
        let cursor = plystra_contracts::pagination::encode(&serde_json::json!("user_a"));
        assert_eq!(
            Page::parse(None, Some(&cursor)).unwrap().after.as_deref(),
            Some("user_a")
        );
    }
}
