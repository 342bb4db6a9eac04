//! The kit a capability's stored entities are written with: the table handle (`Stored`: select,
//! get, require, list a page, insert, update; `InSpace`: require under a space's path), statuses and their lifecycle moves, field
//! validation re-exported from [`crate::input`], the one audit record shape of a change, and the
//! 201 answer of a create.
//!
//! A new entity is one `Stored` implementation (table, columns, 404 code, row decoding with
//! [`crate::from_rows!`]), one route set whose handlers call these functions, and one migration;
//! ARCHITECTURE.md walks through it.

use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON};

use crate::envelope::{Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorCode};
use crate::pagination::KeyPage;
use crate::services::{AuditRecord, Caller, Credential};
use crate::storage::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement, Value};
use crate::storage::{Conn, Record, Transaction};

pub use crate::input::{entity_id, keyword, reference, text};

/// The answer to a create: 201 with the new entity in the envelope.
#[derive(ApiResponse)]
pub enum Created<T: ParseFromJSON + ToJSON + Send + Sync> {
    /// Created; the body is the new entity.
    #[oai(status = 201)]
    Created(Json<Envelope<T>>),
}

impl<T: ParseFromJSON + ToJSON + Send + Sync> Created<T> {
    /// 201 with `entity`.
    pub fn new(entity: T) -> Self {
        Self::Created(Json(Envelope::new(entity)))
    }
}

/// An `Alias` for a table or column name, for sea-query.
pub fn name(n: &str) -> Alias {
    Alias::new(n)
}

/// A column of a table, for sea-query.
pub fn col(table: &str, column: &str) -> (Alias, Alias) {
    (Alias::new(table), Alias::new(column))
}

/// An entity stored in one table, keyed by a text `id` column, and shown as it is stored.
pub trait Stored: Record + ParseFromJSON + ToJSON + Send + Sync + 'static {
    /// The table.
    const TABLE: &'static str;
    /// The columns a row is decoded from, in the order they are selected.
    const COLUMNS: &'static [&'static str];
    /// The entity's name for people (`space`, `role`), in 404 messages.
    const ENTITY: &'static str;
    /// The code of its 404 (`SPACE_NOT_FOUND`, …).
    const NOT_FOUND: ErrorCode;

    /// The entity's ID, the key lists are paged by.
    fn id(&self) -> &str;

    /// Every column of the table, no condition.
    fn select() -> SelectStatement {
        let mut select = Query::select();
        select
            .columns(Self::COLUMNS.iter().map(|c| col(Self::TABLE, c)))
            .from(name(Self::TABLE));
        select
    }

    /// [`Stored::select`] of the row with `id`.
    fn select_id(id: &str) -> SelectStatement {
        let mut select = Self::select();
        select.and_where(Expr::col(col(Self::TABLE, "id")).eq(id));
        select
    }

    /// The 404 for `id`.
    fn not_found(id: &str) -> ApiError {
        ApiError::not_found(Self::NOT_FOUND, Self::ENTITY, id)
    }
}

/// The entity with `id`, if it exists.
pub async fn get<'c, T: Stored>(
    conn: impl Into<Conn<'c>>,
    id: &str,
) -> Result<Option<T>, ApiError> {
    Ok(conn.into().fetch_optional(&T::select_id(id)).await?)
}

/// The entity with `id`, or its 404.
pub async fn require<'c, T: Stored>(conn: impl Into<Conn<'c>>, id: &str) -> Result<T, ApiError> {
    get(conn, id).await?.ok_or_else(|| T::not_found(id))
}

/// An entity that belongs to one space, addressed under its space's path.
pub trait InSpace: Stored {
    /// The space the entity belongs to.
    fn space_id(&self) -> &str;
}

/// The entity with `id` in `space_id`, or its 404: an entity of another space is as unknown to
/// this path as one that does not exist. The space itself is the caller's to check first.
pub async fn require_in<'c, T: InSpace>(
    conn: impl Into<Conn<'c>>,
    space_id: &str,
    id: &str,
) -> Result<T, ApiError> {
    match get::<T>(conn, id).await? {
        Some(entity) if entity.space_id() == space_id => Ok(entity),
        _ => Err(T::not_found(id)),
    }
}

/// One page of the entities `select` (from [`Stored::select`], with the caller's conditions)
/// finds, in ID order after the page's cursor.
pub async fn list<'c, T: Stored>(
    conn: impl Into<Conn<'c>>,
    mut select: SelectStatement,
    page: &KeyPage,
) -> Result<ListEnvelope<T>, ApiError> {
    page.apply(&mut select, T::TABLE, "id");
    let rows: Vec<T> = conn.into().fetch_all(&select).await?;
    let (rows, pagination) = page.finish(rows, |row| row.id().to_owned());
    Ok(ListEnvelope::new(rows, pagination))
}

/// Inserts one row of `columns` into `table`.
pub async fn insert(
    tx: &mut Transaction,
    table: &str,
    columns: Vec<(&str, Value)>,
) -> Result<(), ApiError> {
    let (columns, values): (Vec<_>, Vec<_>) = columns
        .into_iter()
        .map(|(column, value)| (name(column), Expr::val(value)))
        .unzip();
    let mut q = Query::insert();
    q.into_table(name(table))
        .columns(columns)
        .values(values)
        .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
    tx.execute(&q).await?;
    Ok(())
}

/// Sets `columns` on the row of `table` with `id`.
pub async fn update(
    tx: &mut Transaction,
    table: &str,
    id: &str,
    columns: Vec<(&str, Value)>,
) -> Result<(), ApiError> {
    let mut q = Query::update();
    q.table(name(table))
        .values(
            columns
                .into_iter()
                .map(|(column, value)| (name(column), Expr::val(value))),
        )
        .and_where(Expr::col(name("id")).eq(id));
    tx.execute(&q).await?;
    Ok(())
}

/// A stored status with a fixed set of values.
pub trait Lifecycle: Copy + PartialEq + 'static {
    /// Every value with its stored form.
    const ALL: &'static [(Self, &'static str)];
    /// What an unknown stored form reads as: the value that grants nothing (fail closed).
    const UNKNOWN: Self;

    /// The stored form.
    fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(value, _)| *value == self)
            .map_or("", |(_, stored)| stored)
    }

    /// Parses the stored form; anything unknown reads as [`Lifecycle::UNKNOWN`].
    fn parse(stored: &str) -> Self {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == stored)
            .map_or(Self::UNKNOWN, |(value, _)| *value)
    }
}

/// Checks a lifecycle move of `entity` from `from` to `to`; a move not in `allowed` is a 409
/// naming both statuses.
pub fn transition<S: Lifecycle>(
    entity: &str,
    from: S,
    to: S,
    allowed: &[(S, S)],
) -> Result<(), ApiError> {
    if allowed.contains(&(from, to)) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the {entity} is {}; it cannot become {}",
                from.as_str(),
                to.as_str()
            ),
        )
        .with_detail("status", from.as_str())
        .with_detail("requested_status", to.as_str()))
    }
}

/// The status change a request asks for: `strict` (the dedicated disable/restore/revoke routes,
/// which must move) or a different `requested` status (an update, where the same status is no
/// change); checked against `allowed`.
pub fn status_change<S: Lifecycle>(
    entity: &str,
    current: S,
    requested: Option<S>,
    strict: Option<S>,
    allowed: &[(S, S)],
) -> Result<Option<S>, ApiError> {
    match strict.or(requested) {
        Some(to) if strict.is_some() || to != current => {
            transition(entity, current, to, allowed)?;
            Ok(Some(to))
        }
        _ => Ok(None),
    }
}

/// A 409 for a duplicate or a contradiction in `field`.
pub fn conflict(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::new(ErrorCode::Conflict, message).with_detail("field", field)
}

/// Who made a change, as the audit trace's `caller` object.
pub fn caller_trace(credential: Option<&Credential>) -> serde_json::Value {
    match credential {
        Some(Credential::BootstrapKey) => serde_json::json!({"kind": "bootstrap_key"}),
        Some(Credential::ApiKey { id }) => serde_json::json!({"kind": "api_key", "id": id}),
        Some(Credential::Session {
            user_id,
            session_id,
        }) => serde_json::json!({"kind": "session", "user_id": user_id, "session": session_id}),
        None => serde_json::json!({"kind": "anonymous"}),
    }
}

/// The one audit record of a change `caller` made: its request, `action` as event type and
/// action, the changed entity as target, the session's user as actor, and the trace
/// `{"caller": …, "after": snapshot}`.
pub fn change_record(
    caller: Caller<'_>,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    space_id: Option<&str>,
    snapshot: serde_json::Value,
) -> AuditRecord {
    let credential = caller.credential;
    let mut record = AuditRecord::new(caller.request_id, action, action);
    record.resource_type = Some(resource_type.to_owned());
    record.resource_id = Some(resource_id.to_owned());
    record.space_id = space_id.map(str::to_owned);
    record.decision = Some("allow".into());
    if let Some(Credential::Session { user_id, .. }) = credential {
        record.actor_user_id = Some(user_id.clone());
    }
    record.trace = serde_json::json!({"caller": caller_trace(credential), "after": snapshot});
    record
}

/// An entity whose changes are audited: what its change record names and keeps.
pub trait Audited: Stored {
    /// The record's resource type (`space`, `user_member`).
    const RESOURCE_TYPE: &'static str;

    /// The space the change happened in, if any.
    fn audit_space(&self) -> Option<&str>;

    /// The entity as its change record keeps it (no secrets).
    fn snapshot(&self) -> serde_json::Value;
}

/// An entity of a space whose changes are audited in that space. Implementing it implements
/// [`Audited`], with the entity's own space ([`InSpace::space_id`]) as the space of every change,
/// so a space-scoped entity cannot file its changes under another space, or under none.
pub trait AuditedInSpace: InSpace {
    /// The record's resource type (`member`, `group`).
    const RESOURCE_TYPE: &'static str;

    /// The entity as its change record keeps it (no secrets).
    fn snapshot(&self) -> serde_json::Value;
}

impl<T: AuditedInSpace> Audited for T {
    const RESOURCE_TYPE: &'static str = <T as AuditedInSpace>::RESOURCE_TYPE;

    fn audit_space(&self) -> Option<&str> {
        Some(self.space_id())
    }

    fn snapshot(&self) -> serde_json::Value {
        <T as AuditedInSpace>::snapshot(self)
    }
}

/// The change record of `entity` after `action` by `caller` ([`change_record`] with the
/// entity's type, ID, space and snapshot).
pub fn change_of<T: Audited>(caller: Caller<'_>, action: &str, entity: &T) -> AuditRecord {
    change_record(
        caller,
        action,
        T::RESOURCE_TYPE,
        entity.id(),
        entity.audit_space(),
        entity.snapshot(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Lamp {
        On,
        Off,
    }

    impl Lifecycle for Lamp {
        const ALL: &'static [(Self, &'static str)] = &[(Self::On, "on"), (Self::Off, "off")];
        const UNKNOWN: Self = Self::Off;
    }

    const MOVES: &[(Lamp, Lamp)] = &[(Lamp::On, Lamp::Off), (Lamp::Off, Lamp::On)];

    #[test]
    fn statuses_round_trip_and_unknown_fails_closed() {
        for s in [Lamp::On, Lamp::Off] {
            assert_eq!(Lamp::parse(s.as_str()), s);
        }
        assert_eq!(Lamp::parse("broken"), Lamp::Off);
    }

    #[test]
    fn transitions_allow_only_listed_moves() {
        assert!(transition("lamp", Lamp::On, Lamp::Off, MOVES).is_ok());
        let err = transition("lamp", Lamp::Off, Lamp::Off, MOVES).unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(err.details["status"], "off");
        assert_eq!(err.details["requested_status"], "off");
    }

    #[test]
    fn a_status_change_is_strict_only_on_the_dedicated_routes() {
        // An update to the current status is no change.
        assert_eq!(
            status_change("lamp", Lamp::On, Some(Lamp::On), None, MOVES).unwrap(),
            None
        );
        assert_eq!(
            status_change("lamp", Lamp::On, Some(Lamp::Off), None, MOVES).unwrap(),
            Some(Lamp::Off)
        );
        // A dedicated route must move.
        assert!(status_change("lamp", Lamp::Off, None, Some(Lamp::Off), MOVES).is_err());
        assert_eq!(
            status_change("lamp", Lamp::On, None, None, MOVES).unwrap(),
            None
        );
    }

    #[test]
    fn a_change_record_names_its_caller_and_the_state_after() {
        let session = Credential::Session {
            user_id: "user_alice".into(),
            session_id: "ses_1".into(),
        };
        let record = change_record(
            Caller {
                credential: Some(&session),
                request_id: "req_1",
            },
            "roles.create",
            "role",
            "role_a",
            Some("space_acme"),
            serde_json::json!({"id": "role_a"}),
        );
        assert_eq!(record.request_id, "req_1");
        assert_eq!(record.event_type, "roles.create");
        assert_eq!(record.action, "roles.create");
        assert_eq!(record.resource_type.as_deref(), Some("role"));
        assert_eq!(record.resource_id.as_deref(), Some("role_a"));
        assert_eq!(record.space_id.as_deref(), Some("space_acme"));
        assert_eq!(record.actor_user_id.as_deref(), Some("user_alice"));
        assert_eq!(record.decision.as_deref(), Some("allow"));
        assert_eq!(record.trace["caller"]["kind"], "session");
        assert_eq!(record.trace["caller"]["session"], "ses_1");
        assert_eq!(record.trace["after"]["id"], "role_a");
        let key = Credential::ApiKey { id: "key_1".into() };
        let record = change_record(
            Caller {
                credential: Some(&key),
                request_id: "req_2",
            },
            "roles.create",
            "role",
            "role_a",
            None,
            serde_json::Value::Null,
        );
        assert_eq!(record.actor_user_id, None);
        assert_eq!(
            record.trace["caller"],
            serde_json::json!({"kind": "api_key", "id": "key_1"})
        );
        assert_eq!(record.request_id, "req_2");
        assert_eq!(caller_trace(None)["kind"], "anonymous");
        assert_eq!(
            caller_trace(Some(&Credential::BootstrapKey))["kind"],
            "bootstrap_key"
        );
    }
}
