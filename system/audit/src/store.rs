//! The audit table: appending records under the chain-head lock, reading them back with filters
//! and cursors, and walking the chain to verify it.

use plystra_contracts::services::AuditRecord;
use plystra_contracts::storage::sea_query::{
    Alias, Expr, ExprTrait, Func, Order, Query, SelectStatement,
};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::sqlx::{self, AssertSqlSafe};
use plystra_contracts::storage::{Database, StorageError, Transaction};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::chain::{ContentField, GENESIS, content_hash, legacy_entry_hash, link_hash};
use crate::redaction::{REDACTION_VERSION, RedactionPolicy};

/// The audit log table.
pub const TABLE: &str = crate::schema::AUDIT_LOGS.name;
/// The chain head table.
pub const HEAD: &str = crate::schema::CHAIN_HEAD.name;

const COLUMNS: [&str; 22] = [
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
    "content_hash",
];

/// Timestamps are stored and hashed with microsecond precision, in UTC.
pub(crate) const TIMESTAMP: &[BorrowedFormatItem<'static>] =
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
    /// SHA-256 of the record's content (see `chain`); `None` on records written before
    /// migration 0040, which the legacy rule covers.
    pub content_hash: Option<String>,
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
        content_hash: row.try_get("content_hash")?,
    })
});

/// Formats a timestamp as stored and hashed.
pub fn format_timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_default()
}

impl AuditEntry {
    /// The JSON the legacy rule covers: every stored field but `entry_hash` (and `content_hash`,
    /// which legacy records do not have).
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

    /// The content hash of the record as stored (see `chain`): what its `content_hash` must be.
    pub fn computed_content_hash(&self) -> String {
        content_hash_of(&Content {
            id: &self.id,
            event_type: &self.event_type,
            request_id: self.request_id.as_deref(),
            space_id: self.space_id.as_deref(),
            actor_user_id: self.actor_user_id.as_deref(),
            actor_member_id: self.actor_member_id.as_deref(),
            actor_user_member_id: self.actor_user_member_id.as_deref(),
            action: &self.action,
            resource_type: self.resource_type.as_deref(),
            resource_id: self.resource_id.as_deref(),
            decision: &self.decision,
            deny_code: self.deny_code.as_deref(),
            ip_address: self.ip_address.as_deref(),
            user_agent: self.user_agent.as_deref(),
            trace: &self.trace,
            redaction_version: self.redaction_version,
            created_at: &format_timestamp(self.created_at),
            redactions: &self.redactions,
        })
    }
}

/// The fields the content hash covers, borrowed.
struct Content<'a> {
    id: &'a str,
    event_type: &'a str,
    request_id: Option<&'a str>,
    space_id: Option<&'a str>,
    actor_user_id: Option<&'a str>,
    actor_member_id: Option<&'a str>,
    actor_user_member_id: Option<&'a str>,
    action: &'a str,
    resource_type: Option<&'a str>,
    resource_id: Option<&'a str>,
    decision: &'a str,
    deny_code: Option<&'a str>,
    ip_address: Option<&'a str>,
    user_agent: Option<&'a str>,
    trace: &'a Value,
    redaction_version: i64,
    created_at: &'a str,
    redactions: &'a [String],
}

/// The one definition of which fields the content hash covers, under which names.
fn content_hash_of(c: &Content<'_>) -> String {
    use ContentField::{Integer, Json, Text, TextList};
    content_hash(&mut [
        ("id", Text(Some(c.id))),
        ("event_type", Text(Some(c.event_type))),
        ("request_id", Text(c.request_id)),
        ("space_id", Text(c.space_id)),
        ("actor_user_id", Text(c.actor_user_id)),
        ("actor_member_id", Text(c.actor_member_id)),
        ("actor_user_member_id", Text(c.actor_user_member_id)),
        ("action", Text(Some(c.action))),
        ("resource_type", Text(c.resource_type)),
        ("resource_id", Text(c.resource_id)),
        ("decision", Text(Some(c.decision))),
        ("deny_code", Text(c.deny_code)),
        ("ip_address", Text(c.ip_address)),
        ("user_agent", Text(c.user_agent)),
        ("trace", Json(c.trace)),
        ("redaction_version", Integer(c.redaction_version)),
        ("created_at", Text(Some(c.created_at))),
        ("redactions", TextList(c.redactions)),
    ])
}

/// A record redacted, stamped, serialized and content-hashed on the caller's task, waiting for
/// its place in the chain: the writer only numbers, links and binds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    id: String,
    event_type: String,
    request_id: Option<String>,
    space_id: Option<String>,
    actor_user_id: Option<String>,
    actor_member_id: Option<String>,
    actor_user_member_id: Option<String>,
    action: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    decision: String,
    deny_code: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    /// The redacted trace as JSON text.
    trace: String,
    redaction_version: i64,
    created_at: OffsetDateTime,
    /// The changed paths as a JSON array.
    redactions: String,
    content_hash: String,
}

impl Prepared {
    /// The ID the record will have.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The content hash the record will store.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }
}

/// Redacts, stamps, serializes and content-hashes a record. Nothing is written.
///
/// The trace is redacted in place and hashed as it is: no text round trip is needed for it to
/// hash as it reads back. Without `arbitrary_precision` a `serde_json::Value` holds `u64`, `i64`
/// and finite `f64` numbers; serde_json writes floats in their shortest round-trip form and, with
/// the `float_roundtrip` feature this crate enables, parses them back to the same bits; strings
/// and keys are escaped and unescaped losslessly; maps hold each key once. What PostgreSQL's
/// JSONB changed in the traces stored before they became `json` (member order, whitespace,
/// number notation, `-0`) the content hash's canonical form ignores (see `chain`).
/// `tests/it/content_hash.rs` stores awkward values on both backends.
pub fn prepare(policy: &RedactionPolicy, record: AuditRecord) -> Prepared {
    let redacted = policy.redact_owned(record.trace);
    let trace = redacted.value;
    let id = plystra_contracts::ids::generate("audit_");
    let request_id = Some(record.request_id).filter(|r| !r.is_empty());
    let decision = record.decision.unwrap_or_else(|| "allow".to_owned());
    let ip_address = policy.column("ip_address", record.ip_address);
    let user_agent = policy.column("user_agent", record.user_agent);
    let created_at = plystra_contracts::storage::now();
    let content_hash = content_hash_of(&Content {
        id: &id,
        event_type: &record.event_type,
        request_id: request_id.as_deref(),
        space_id: record.space_id.as_deref(),
        actor_user_id: record.actor_user_id.as_deref(),
        actor_member_id: record.actor_member_id.as_deref(),
        actor_user_member_id: record.actor_user_member_id.as_deref(),
        action: &record.action,
        resource_type: record.resource_type.as_deref(),
        resource_id: record.resource_id.as_deref(),
        decision: &decision,
        deny_code: record.deny_code.as_deref(),
        ip_address: ip_address.as_deref(),
        user_agent: user_agent.as_deref(),
        trace: &trace,
        redaction_version: REDACTION_VERSION,
        created_at: &format_timestamp(created_at),
        redactions: &redacted.redactions,
    });
    Prepared {
        id,
        event_type: record.event_type,
        request_id,
        space_id: record.space_id,
        actor_user_id: record.actor_user_id,
        actor_member_id: record.actor_member_id,
        actor_user_member_id: record.actor_user_member_id,
        action: record.action,
        resource_type: record.resource_type,
        resource_id: record.resource_id,
        decision,
        deny_code: record.deny_code,
        ip_address,
        user_agent,
        trace: trace.to_string(),
        redaction_version: REDACTION_VERSION,
        created_at,
        redactions: Value::from(redacted.redactions).to_string(),
        content_hash,
    }
}

/// SQLite: the rows go in through multi-row INSERTs of constant text, one for each power of two
/// up to `SQLITE_CHUNK` rows (so sqlx prepares each once per connection and caches it): a batch
/// of n rows takes at most n / 32 + 5 statements, each a round trip to sqlx's SQLite worker
/// thread, where one INSERT per row measured slower (see BENCHMARKS.md) and one statement for the
/// whole batch would have a different text, to prepare again, for every batch size.
const SQLITE_CHUNK: usize = 32;

/// The row counts of the SQLite INSERTs, largest first.
const SQLITE_SIZES: [usize; 6] = [SQLITE_CHUNK, 16, 8, 4, 2, 1];

/// The INSERT of `rows` rows on SQLite.
fn sqlite_insert(rows: usize) -> String {
    let row = format!("({})", ["?"; 22].join(", "));
    format!(
        "INSERT INTO sys_audit_audit_logs (id, seq, event_type, request_id, space_id, \
         actor_user_id, actor_member_id, actor_user_member_id, action, resource_type, \
         resource_id, decision, deny_code, ip_address, user_agent, trace, prev_hash, entry_hash, \
         redaction_version, created_at, redactions, content_hash) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// PostgreSQL: the whole batch in one statement of constant text, one array per column, so the
/// statement is prepared once per connection and a batch binds 24 parameters, not 22 per row;
/// the same statement advances the chain's head to `$23`, `$24` (one round trip fewer).
const POSTGRES_INSERT: &str = "WITH inserted AS (INSERT INTO sys_audit_audit_logs (id, seq, event_type, \
    request_id, space_id, actor_user_id, actor_member_id, actor_user_member_id, action, \
    resource_type, resource_id, decision, deny_code, ip_address, user_agent, trace, prev_hash, \
    entry_hash, redaction_version, created_at, redactions, content_hash) \
    SELECT id, seq, event_type, request_id, space_id, actor_user_id, actor_member_id, \
    actor_user_member_id, action, resource_type, resource_id, decision, deny_code, ip_address, \
    user_agent, trace::json, prev_hash, entry_hash, redaction_version, created_at, \
    redactions::jsonb, content_hash \
    FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
    $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::bigint[], \
    $20::timestamptz[], $21::text[], $22::text[]) \
    AS batch(id, seq, event_type, request_id, space_id, actor_user_id, actor_member_id, \
    actor_user_member_id, action, resource_type, resource_id, decision, deny_code, ip_address, \
    user_agent, trace, prev_hash, entry_hash, redaction_version, created_at, redactions, \
    content_hash) RETURNING 1) \
    UPDATE sys_audit_chain_head SET seq = $23, entry_hash = $24 WHERE id = 1";

/// A prepared record with its place in the chain.
struct Linked {
    record: Prepared,
    seq: i64,
    prev_hash: String,
    entry_hash: String,
}

/// Appends `records` to the chain inside `tx`. Updating the head row first takes the chain lock
/// (a row lock on PostgreSQL, the write lock on SQLite) until `tx` ends, so concurrent appenders,
/// in this process or another, take turns and the chain never forks.
///
/// Under the lock only the links are computed (`chain::link_hash` of each record's content hash,
/// which its producer computed); the rows go in with one array-bound statement on PostgreSQL and
/// one cached single-row statement per record on SQLite.
pub async fn append(
    tx: &mut Transaction,
    records: Vec<Prepared>,
) -> Result<Vec<String>, StorageError> {
    // Takes the chain's head row lock (writers of every process and in-transaction records line
    // up here) and reads the head, in one statement.
    let mut lock = Query::update();
    lock.table(Alias::new(HEAD))
        .value(Alias::new("seq"), Expr::col(Alias::new("seq")))
        .and_where(Expr::col(Alias::new("id")).eq(1))
        .returning(Query::returning().columns([Alias::new("seq"), Alias::new("entry_hash")]));
    let (mut seq, mut prev): (i64, String) = tx
        .fetch_optional(&lock)
        .await?
        .unwrap_or((0, GENESIS.to_owned()));
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(records.len());
    let mut linked = Vec::with_capacity(records.len());
    for record in records {
        seq += 1;
        let entry_hash = link_hash(&prev, seq, &record.content_hash);
        ids.push(record.id.clone());
        linked.push(Linked {
            record,
            seq,
            prev_hash: std::mem::replace(&mut prev, entry_hash.clone()),
            entry_hash,
        });
    }
    match tx {
        Transaction::Sqlite(conn) => {
            insert_sqlite(conn, linked).await?;
            let mut advance = Query::update();
            advance
                .table(Alias::new(HEAD))
                .values([
                    (Alias::new("seq"), seq.into()),
                    (Alias::new("entry_hash"), prev.into()),
                ])
                .and_where(Expr::col(Alias::new("id")).eq(1));
            tx.execute(&advance).await?;
        }
        Transaction::Postgres(conn) => insert_postgres(conn, linked, seq, prev).await?,
    }
    Ok(ids)
}

/// The SQLite INSERT of each of `SQLITE_SIZES`' row counts, built once.
fn sqlite_statements() -> &'static [(usize, String)] {
    static STATEMENTS: std::sync::OnceLock<Vec<(usize, String)>> = std::sync::OnceLock::new();
    STATEMENTS.get_or_init(|| {
        SQLITE_SIZES
            .iter()
            .map(|&rows| (rows, sqlite_insert(rows)))
            .collect()
    })
}

/// The largest SQLite INSERT for `left` rows still to go in (`None` when none are left).
fn sqlite_statement_for(left: usize) -> Option<&'static (usize, String)> {
    sqlite_statements().iter().find(|(size, _)| *size <= left)
}

async fn insert_sqlite(
    conn: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    rows: Vec<Linked>,
) -> Result<(), StorageError> {
    let mut rows = rows.into_iter();
    loop {
        let Some((take, sql)) = sqlite_statement_for(rows.len()) else {
            return Ok(());
        };
        let take = *take;
        let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
        for row in rows.by_ref().take(take) {
            let r = row.record;
            query = query
                .bind(r.id)
                .bind(row.seq)
                .bind(r.event_type)
                .bind(r.request_id)
                .bind(r.space_id)
                .bind(r.actor_user_id)
                .bind(r.actor_member_id)
                .bind(r.actor_user_member_id)
                .bind(r.action)
                .bind(r.resource_type)
                .bind(r.resource_id)
                .bind(r.decision)
                .bind(r.deny_code)
                .bind(r.ip_address)
                .bind(r.user_agent)
                .bind(r.trace)
                .bind(row.prev_hash)
                .bind(row.entry_hash)
                .bind(r.redaction_version)
                .bind(r.created_at)
                .bind(r.redactions)
                .bind(r.content_hash);
        }
        query.execute(&mut **conn).await?;
    }
}

async fn insert_postgres(
    conn: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    rows: Vec<Linked>,
    head_seq: i64,
    head_hash: String,
) -> Result<(), StorageError> {
    let n = rows.len();
    let texts = || Vec::<String>::with_capacity(n);
    let optionals = || Vec::<Option<String>>::with_capacity(n);
    let (mut id, mut event_type, mut action, mut decision, mut trace) =
        (texts(), texts(), texts(), texts(), texts());
    let (mut prev_hash, mut entry_hash, mut redactions, mut content_hash) =
        (texts(), texts(), texts(), texts());
    let (mut request_id, mut space_id, mut actor_user_id, mut actor_member_id) =
        (optionals(), optionals(), optionals(), optionals());
    let (mut actor_user_member_id, mut resource_type, mut resource_id) =
        (optionals(), optionals(), optionals());
    let (mut deny_code, mut ip_address, mut user_agent) = (optionals(), optionals(), optionals());
    let mut seq = Vec::with_capacity(n);
    let mut redaction_version = Vec::with_capacity(n);
    let mut created_at = Vec::with_capacity(n);
    for row in rows {
        let r = row.record;
        id.push(r.id);
        seq.push(row.seq);
        event_type.push(r.event_type);
        request_id.push(r.request_id);
        space_id.push(r.space_id);
        actor_user_id.push(r.actor_user_id);
        actor_member_id.push(r.actor_member_id);
        actor_user_member_id.push(r.actor_user_member_id);
        action.push(r.action);
        resource_type.push(r.resource_type);
        resource_id.push(r.resource_id);
        decision.push(r.decision);
        deny_code.push(r.deny_code);
        ip_address.push(r.ip_address);
        user_agent.push(r.user_agent);
        trace.push(r.trace);
        prev_hash.push(row.prev_hash);
        entry_hash.push(row.entry_hash);
        redaction_version.push(r.redaction_version);
        created_at.push(r.created_at);
        redactions.push(r.redactions);
        content_hash.push(r.content_hash);
    }
    sqlx::query(AssertSqlSafe(POSTGRES_INSERT))
        .bind(id)
        .bind(seq)
        .bind(event_type)
        .bind(request_id)
        .bind(space_id)
        .bind(actor_user_id)
        .bind(actor_member_id)
        .bind(actor_user_member_id)
        .bind(action)
        .bind(resource_type)
        .bind(resource_id)
        .bind(decision)
        .bind(deny_code)
        .bind(ip_address)
        .bind(user_agent)
        .bind(trace)
        .bind(prev_hash)
        .bind(entry_hash)
        .bind(redaction_version)
        .bind(created_at)
        .bind(redactions)
        .bind(content_hash)
        .bind(head_seq)
        .bind(head_hash)
        .execute(&mut **conn)
        .await?;
    Ok(())
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

pub(crate) fn select_entries() -> SelectStatement {
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
    /// Whether the walk reached the chain head (it stops early only at a deadline, or at the
    /// first broken link).
    pub complete: bool,
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
pub(crate) async fn highest_seq(db: &Database) -> Result<Option<i64>, StorageError> {
    let mut select = Query::select();
    select
        .expr(Func::max(Expr::col(Alias::new("seq"))))
        .from(Alias::new(TABLE));
    Ok(db
        .fetch_optional::<(Option<i64>,), _>(&select)
        .await?
        .and_then(|(seq,)| seq))
}

/// Why `entry`'s hashes do not match its fields, if they do not. A record with a `content_hash`
/// (the current rule) must carry the content hash of its fields and the link of its `prev_hash`,
/// `seq` and that content hash; one without (written before migration 0040) the legacy hash.
pub(crate) fn altered(entry: &AuditEntry) -> Option<&'static str> {
    match &entry.content_hash {
        Some(stored) => {
            if entry.computed_content_hash() != *stored {
                Some("content_hash does not match the record's content: it was altered")
            } else if link_hash(&entry.prev_hash, entry.seq, stored) != entry.entry_hash {
                Some("entry_hash does not match the record's link: it was altered")
            } else {
                None
            }
        }
        None => (legacy_entry_hash(&entry.prev_hash, &entry.hashed_body()) != entry.entry_hash)
            .then_some("entry_hash does not match the record's content: it was altered"),
    }
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
    verify_until(db, None, |_| {}).await
}

/// [`verify`], stopping after the first page that ends past `deadline` (then `complete` is
/// false and nothing past the records checked is claimed), and telling `progress` how many
/// records it has checked after each page.
pub async fn verify_until(
    db: &Database,
    deadline: Option<std::time::Instant>,
    mut progress: impl FnMut(u64),
) -> Result<Verification, StorageError> {
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
            } else {
                altered(entry).map(|reason| (entry.seq, entry.id.clone(), reason.to_owned()))
            };
            if problem.is_some() {
                return Ok(Verification {
                    records,
                    first_broken: problem,
                    complete: false,
                });
            }
            expected_prev = entry.entry_hash.clone();
            expected_seq += 1;
        }
        progress(records);
        if (page.len() as u64) < PAGE {
            break;
        }
        if deadline.is_some_and(|at| std::time::Instant::now() >= at) {
            return Ok(Verification {
                records,
                first_broken: None,
                complete: false,
            });
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
        complete: reason.is_none(),
        first_broken: reason.map(|reason| (expected_seq, String::new(), reason)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_insert_advances_the_chain_head_it_locked() {
        assert!(
            POSTGRES_INSERT.contains(&format!("UPDATE {HEAD} SET seq = $23, entry_hash = $24"))
        );
    }

    #[test]
    fn any_sqlite_batch_goes_in_with_few_statements_that_add_up() {
        for n in 1..=crate::writer::MAX_BATCH {
            let (mut left, mut statements) = (n, 0);
            while let Some((rows, sql)) = sqlite_statement_for(left) {
                assert_eq!(sql.matches("(?").count(), *rows);
                left -= rows;
                statements += 1;
            }
            assert_eq!(left, 0);
            assert!(
                statements <= n / SQLITE_CHUNK + 5,
                "{n} rows took {statements}"
            );
        }
    }
}
