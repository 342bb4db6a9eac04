//! The audit table: appending records under the chain-head lock, reading them back with filters
//! and cursors, and walking the chain to verify it.

use plystra_contracts::services::AuditRecord;
use plystra_contracts::storage::sea_query::Value as SqlValue;
use plystra_contracts::storage::sea_query::{
    Alias, Expr, ExprTrait, Func, Order, Query, SelectStatement,
};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::{Database, StorageError, Transaction};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::chain::{GENESIS, entry_hash};
use crate::redaction::{REDACTION_VERSION, RedactionPolicy};

/// The audit log table.
pub const TABLE: &str = "sys_audit_audit_logs";
/// The chain head table.
pub const HEAD: &str = "sys_audit_chain_head";

const COLUMNS: [&str; 21] = [
    "id",
    "seq",
    "event_type",
    "request_id",
    "space_id",
    "actor_user_id",
    "actor_member_id",
    "actor_user_member_id",
    "action",
    "resource_type",
    "resource_id",
    "decision",
    "deny_code",
    "ip_address",
    "user_agent",
    "trace",
    "prev_hash",
    "entry_hash",
    "redaction_version",
    "created_at",
    "redactions",
];

/// Timestamps are stored and hashed with microsecond precision, in UTC.
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// `audit_…`.
    pub id: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// `authz.decision`, `users.create`, …
    pub event_type: String,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// The space.
    pub space_id: Option<String>,
    /// The acting user.
    pub actor_user_id: Option<String>,
    /// The acting member.
    pub actor_member_id: Option<String>,
    /// The binding.
    pub actor_user_member_id: Option<String>,
    /// The action.
    pub action: String,
    /// The target's type.
    pub resource_type: Option<String>,
    /// The target's ID.
    pub resource_id: Option<String>,
    /// `allow` or `deny`.
    pub decision: String,
    /// The deny code of a deny.
    pub deny_code: Option<String>,
    /// The caller's address (after the PII policy).
    pub ip_address: Option<String>,
    /// The caller's user agent (after the PII policy).
    pub user_agent: Option<String>,
    /// The redacted trace or snapshot.
    pub trace: Value,
    /// The previous record's hash (`genesis` for the first).
    pub prev_hash: String,
    /// This record's hash.
    pub entry_hash: String,
    /// The redaction policy version that applied.
    pub redaction_version: i64,
    /// When it was recorded, microsecond precision.
    pub created_at: OffsetDateTime,
    /// Paths redaction changed.
    pub redactions: Vec<String>,
}

// Decodes a row of [`TABLE`] on either backend.
plystra_contracts::from_rows!(AuditEntry, |row| {
    let redactions: Json<Value> = row.try_get("redactions")?;
    Ok(Self {
        id: row.try_get("id")?,
        seq: row.try_get("seq")?,
        event_type: row.try_get("event_type")?,
        request_id: row.try_get("request_id")?,
        space_id: row.try_get("space_id")?,
        actor_user_id: row.try_get("actor_user_id")?,
        actor_member_id: row.try_get("actor_member_id")?,
        actor_user_member_id: row.try_get("actor_user_member_id")?,
        action: row.try_get("action")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        decision: row.try_get("decision")?,
        deny_code: row.try_get("deny_code")?,
        ip_address: row.try_get("ip_address")?,
        user_agent: row.try_get("user_agent")?,
        trace: row.try_get::<Json<Value>, _>("trace")?.0,
        prev_hash: row
            .try_get::<Option<String>, _>("prev_hash")?
            .unwrap_or_default(),
        entry_hash: row.try_get("entry_hash")?,
        redaction_version: row.try_get("redaction_version")?,
        created_at: row.try_get("created_at")?,
        redactions: serde_json::from_value(redactions.0).unwrap_or_default(),
    })
});

/// Formats a timestamp as stored and hashed.
pub fn format_timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_default()
}

impl AuditEntry {
    /// The JSON the hash covers: every stored field but `entry_hash`.
    pub fn hashed_body(&self) -> Value {
        json!({
            "id": self.id,
            "seq": self.seq,
            "event_type": self.event_type,
            "request_id": self.request_id,
            "space_id": self.space_id,
            "actor_user_id": self.actor_user_id,
            "actor_member_id": self.actor_member_id,
            "actor_user_member_id": self.actor_user_member_id,
            "action": self.action,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "decision": self.decision,
            "deny_code": self.deny_code,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "trace": self.trace,
            "prev_hash": self.prev_hash,
            "redaction_version": self.redaction_version,
            "created_at": format_timestamp(self.created_at),
            "redactions": self.redactions,
        })
    }
}

/// A record redacted and stamped, waiting for its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    entry: AuditEntry,
}

impl Prepared {
    /// The ID the record will have.
    pub fn id(&self) -> &str {
        &self.entry.id
    }
}

/// Redacts and stamps a record. Nothing is written.
pub fn prepare(policy: &RedactionPolicy, record: AuditRecord) -> Prepared {
    let redacted = policy.redact(&record.trace);
    // Round-trip through text so the value hashes exactly as it will read back.
    let trace = serde_json::from_str(&redacted.value.to_string()).unwrap_or(Value::Null);
    Prepared {
        entry: AuditEntry {
            id: plystra_contracts::ids::generate("audit_"),
            seq: 0,
            event_type: record.event_type,
            request_id: Some(record.request_id).filter(|r| !r.is_empty()),
            space_id: record.space_id,
            actor_user_id: record.actor_user_id,
            actor_member_id: record.actor_member_id,
            actor_user_member_id: record.actor_user_member_id,
            action: record.action,
            resource_type: record.resource_type,
            resource_id: record.resource_id,
            decision: record.decision.unwrap_or_else(|| "allow".to_owned()),
            deny_code: record.deny_code,
            ip_address: policy.column("ip_address", record.ip_address),
            user_agent: policy.column("user_agent", record.user_agent),
            trace,
            prev_hash: String::new(),
            entry_hash: String::new(),
            redaction_version: REDACTION_VERSION,
            created_at: plystra_contracts::storage::now(),
            redactions: redacted.redactions,
        },
    }
}

/// Appends `records` to the chain inside `tx`. Updating the head row first takes the chain lock
/// (a row lock on PostgreSQL, the write lock on SQLite) until `tx` ends, so concurrent appenders,
/// in this process or another, take turns and the chain never forks.
pub async fn append(
    tx: &mut Transaction,
    records: Vec<Prepared>,
) -> Result<Vec<String>, StorageError> {
    let mut lock = Query::update();
    lock.table(Alias::new(HEAD))
        .value(Alias::new("seq"), Expr::col(Alias::new("seq")))
        .and_where(Expr::col(Alias::new("id")).eq(1));
    tx.execute(&lock).await?;
    let mut head = Query::select();
    head.columns([Alias::new("seq"), Alias::new("entry_hash")])
        .from(Alias::new(HEAD))
        .and_where(Expr::col(Alias::new("id")).eq(1));
    let (mut seq, mut prev): (i64, String) = tx
        .fetch_optional(&head)
        .await?
        .unwrap_or((0, GENESIS.to_owned()));
    if records.is_empty() {
        return Ok(Vec::new());
    }
    // One multi-row INSERT per call: a batch costs one round trip, not one per record.
    let mut ids = Vec::with_capacity(records.len());
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new(TABLE))
        .columns(COLUMNS.iter().map(|c| Alias::new(*c)));
    for Prepared { mut entry } in records {
        seq += 1;
        entry.seq = seq;
        entry.prev_hash = prev;
        entry.entry_hash = entry_hash(&entry.prev_hash, &entry.hashed_body());
        insert.values_panic(
            [
                SqlValue::from(entry.id.clone()),
                SqlValue::from(entry.seq),
                SqlValue::from(entry.event_type),
                SqlValue::from(entry.request_id),
                SqlValue::from(entry.space_id),
                SqlValue::from(entry.actor_user_id),
                SqlValue::from(entry.actor_member_id),
                SqlValue::from(entry.actor_user_member_id),
                SqlValue::from(entry.action),
                SqlValue::from(entry.resource_type),
                SqlValue::from(entry.resource_id),
                SqlValue::from(entry.decision),
                SqlValue::from(entry.deny_code),
                SqlValue::from(entry.ip_address),
                SqlValue::from(entry.user_agent),
                SqlValue::from(entry.trace),
                SqlValue::from(entry.prev_hash),
                SqlValue::from(entry.entry_hash.clone()),
                SqlValue::from(entry.redaction_version),
                SqlValue::from(entry.created_at),
                SqlValue::from(Value::from(entry.redactions)),
            ]
            .map(Expr::val),
        );
        prev = entry.entry_hash;
        ids.push(entry.id);
    }
    tx.execute(&insert).await?;
    let mut advance = Query::update();
    advance
        .table(Alias::new(HEAD))
        .values([
            (Alias::new("seq"), seq.into()),
            (Alias::new("entry_hash"), prev.into()),
        ])
        .and_where(Expr::col(Alias::new("id")).eq(1));
    tx.execute(&advance).await?;
    Ok(ids)
}

/// Filters for listing records; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Exact-match filters: (column, value).
    pub equal: Vec<(&'static str, String)>,
    /// Records at or after this instant.
    pub created_from: Option<OffsetDateTime>,
    /// Records at or before this instant.
    pub created_to: Option<OffsetDateTime>,
}

fn select_entries() -> SelectStatement {
    let mut select = Query::select();
    select
        .columns(COLUMNS.iter().map(|c| Alias::new(*c)))
        .from(Alias::new(TABLE));
    select
}

/// One page of records, newest first, after the cursor's `seq` when given.
pub async fn list(
    db: &Database,
    filter: &Filter,
    after_seq: Option<i64>,
    fetch: u64,
) -> Result<Vec<AuditEntry>, StorageError> {
    let mut select = select_entries();
    for (column, value) in &filter.equal {
        select.and_where(Expr::col(Alias::new(*column)).eq(value.clone()));
    }
    if let Some(from) = filter.created_from {
        select.and_where(Expr::col(Alias::new("created_at")).gte(from));
    }
    if let Some(to) = filter.created_to {
        select.and_where(Expr::col(Alias::new("created_at")).lte(to));
    }
    if let Some(seq) = after_seq {
        select.and_where(Expr::col(Alias::new("seq")).lt(seq));
    }
    select.order_by(Alias::new("seq"), Order::Desc).limit(fetch);
    db.fetch_all(&select).await
}

/// One record by ID.
pub async fn get(db: &Database, id: &str) -> Result<Option<AuditEntry>, StorageError> {
    let mut select = select_entries();
    select.and_where(Expr::col(Alias::new("id")).eq(id));
    db.fetch_optional(&select).await
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// How many records were checked.
    pub records: u64,
    /// The first broken link: (seq, id, what is wrong).
    pub first_broken: Option<(i64, String, String)>,
}

/// The chain head: how many records the chain holds and the hash of the last one.
async fn chain_head(db: &Database) -> Result<Option<(i64, String)>, StorageError> {
    let mut head = Query::select();
    head.columns([Alias::new("seq"), Alias::new("entry_hash")])
        .from(Alias::new(HEAD))
        .and_where(Expr::col(Alias::new("id")).eq(1));
    db.fetch_optional(&head).await
}

/// The highest `seq` in the table.
async fn highest_seq(db: &Database) -> Result<Option<i64>, StorageError> {
    let mut select = Query::select();
    select
        .expr(Func::max(Expr::col(Alias::new("seq"))))
        .from(Alias::new(TABLE));
    Ok(db
        .fetch_optional::<(Option<i64>,), _>(&select)
        .await?
        .and_then(|(seq,)| seq))
}

/// Walks the chain in `seq` order, in pages, recomputing every hash and link, up to the chain
/// head read first. Every record up to that head committed in the same transaction as it, so the
/// walk sees the chain exactly as it was when verification started, on either backend and
/// however many records commit meanwhile: those have higher `seq`s and are left for the next run.
/// (No read transaction is needed: on SQLite one would take the write lock and stall appenders.)
///
/// The highest `seq` is read before the head: the head only grows and moves with its records, so
/// a table that was already longer than the head read after it holds a row appended outside the
/// chain.
pub async fn verify(db: &Database) -> Result<Verification, StorageError> {
    const PAGE: u64 = 1000;
    let highest = highest_seq(db).await?;
    let head = chain_head(db).await?;
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    let mut records = 0;
    loop {
        let mut select = select_entries();
        select
            .and_where(Expr::col(Alias::new("seq")).gte(expected_seq))
            .order_by(Alias::new("seq"), Order::Asc)
            .limit(PAGE);
        if let Some((last, _)) = &head {
            select.and_where(Expr::col(Alias::new("seq")).lte(*last));
        }
        let page: Vec<AuditEntry> = db.fetch_all(&select).await?;
        if page.is_empty() {
            break;
        }
        for entry in &page {
            records += 1;
            let broken = |reason: String| Some((entry.seq, entry.id.clone(), reason));
            let problem = if entry.seq != expected_seq {
                broken(format!(
                    "seq {} follows {}: a record is missing",
                    entry.seq,
                    expected_seq - 1
                ))
            } else if entry.prev_hash != expected_prev {
                broken("prev_hash does not match the previous record's entry_hash".to_owned())
            } else if entry_hash(&entry.prev_hash, &entry.hashed_body()) != entry.entry_hash {
                broken("entry_hash does not match the record's content: it was altered".to_owned())
            } else {
                None
            };
            if problem.is_some() {
                return Ok(Verification {
                    records,
                    first_broken: problem,
                });
            }
            expected_prev = entry.entry_hash.clone();
            expected_seq += 1;
        }
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    // Removing the newest records leaves a valid prefix; the head remembers how long the chain was.
    let reason = match head {
        None => Some("the chain head is missing: the chain's length cannot be checked".to_owned()),
        Some((seq, hash)) if seq != expected_seq - 1 || hash != expected_prev => Some(format!(
            "the chain head records {seq} entries ending in {hash}, the table ends at {}",
            expected_seq - 1
        )),
        Some((seq, _)) => highest.filter(|h| *h > seq).map(|h| {
            format!("a record with seq {h} lies beyond the chain head ({seq}): it was not appended through the chain")
        }),
    };
    Ok(Verification {
        records,
        first_broken: reason.map(|reason| (expected_seq, String::new(), reason)),
    })
}
