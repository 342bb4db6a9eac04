//! Audit export: the chain's records as JSON lines, each with its `seq`, `prev_hash`,
//! `content_hash` and `entry_hash`, and the offline check of such a file. A third party verifies an
//! exported range without the database: every record's content and link are recomputed (the rule
//! in `chain`), and every record must follow the one before it. A range that does not start at
//! the first record is chained to the `prev_hash` of its first line, which the file cannot prove:
//! the report names it, so it can be compared with an earlier export or a published head.
//!
//! `plystractl audit export` and `GET /api/v1/audit/export` both write [`file_line`]s read
//! [`PAGE_SIZE`] records at a time, so a file from either is the same bytes for the same range.

use futures_util::Stream;
use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Order};
use plystra_contracts::storage::{Database, StorageError};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::store::{self, AuditEntry, format_timestamp};

/// One record as an export line: every stored field, the hashes included.
pub fn line(entry: &AuditEntry) -> Value {
    json!({
        "seq": entry.seq,
        "id": entry.id,
        "event_type": entry.event_type,
        "request_id": entry.request_id,
        "space_id": entry.space_id,
        "actor_user_id": entry.actor_user_id,
        "actor_member_id": entry.actor_member_id,
        "actor_user_member_id": entry.actor_user_member_id,
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "decision": entry.decision,
        "deny_code": entry.deny_code,
        "ip_address": entry.ip_address,
        "user_agent": entry.user_agent,
        "trace": entry.trace,
        "redaction_version": entry.redaction_version,
        "created_at": format_timestamp(entry.created_at),
        "redactions": entry.redactions,
        "prev_hash": entry.prev_hash,
        "content_hash": entry.content_hash,
        "entry_hash": entry.entry_hash,
    })
}

/// How many records an export reads at a time.
pub const PAGE_SIZE: u64 = 1000;

/// One record as an export file holds it: [`line`] as compact JSON, then a newline.
pub fn file_line(entry: &AuditEntry) -> String {
    let mut text = line(entry).to_string();
    text.push('\n');
    text
}

/// An export line read back into the record it was made from.
pub fn entry(line: &Value) -> Result<AuditEntry, String> {
    let text = |name: &str| -> Result<String, String> {
        line.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("`{name}` is missing or not a string"))
    };
    let optional = |name: &str| -> Result<Option<String>, String> {
        match line.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    let integer = |name: &str| -> Result<i64, String> {
        line.get(name)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("`{name}` is missing or not an integer"))
    };
    let created_at = OffsetDateTime::parse(&text("created_at")?, store::TIMESTAMP)
        .or_else(|_| {
            OffsetDateTime::parse(
                &text("created_at")?,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("`created_at`: {e}"))?;
    let redactions = match line.get("redactions") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or("`redactions` holds a non-string")?,
        _ => return Err("`redactions` is missing or not an array".to_owned()),
    };
    Ok(AuditEntry {
        id: text("id")?,
        seq: integer("seq")?,
        event_type: text("event_type")?,
        request_id: optional("request_id")?,
        space_id: optional("space_id")?,
        actor_user_id: optional("actor_user_id")?,
        actor_member_id: optional("actor_member_id")?,
        actor_user_member_id: optional("actor_user_member_id")?,
        action: text("action")?,
        resource_type: optional("resource_type")?,
        resource_id: optional("resource_id")?,
        decision: text("decision")?,
        deny_code: optional("deny_code")?,
        ip_address: optional("ip_address")?,
        user_agent: optional("user_agent")?,
        trace: line.get("trace").cloned().unwrap_or(Value::Null),
        prev_hash: text("prev_hash")?,
        entry_hash: text("entry_hash")?,
        redaction_version: integer("redaction_version")?,
        created_at,
        redactions,
        content_hash: optional("content_hash")?,
    })
}

/// The key of the line that ends an export cut off by a failed read.
pub const CUT_OFF_KEY: &str = "export_cut_off";

/// The line that ends an export a failed read cut off: `{"export_cut_off": "…"}`, which is no
/// record, so [`check_lines`] (and any reader expecting records) stops at it instead of taking
/// the records before it for the whole range. It names no cause: a database error is for the
/// server's log, not for the client. (Over HTTP/1.1 the server cannot be relied on to abort a
/// chunked body whose stream fails: hyper ends it normally, so the file must say it itself.)
pub fn cut_off_line() -> String {
    format!(
        "{}\n",
        serde_json::json!({
            CUT_OFF_KEY: "a read failed while the export was written: the records after this \
                          point are missing (the server log has the cause)"
        })
    )
}

/// What checking an export found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCheck {
    /// The records checked, and the first and last `seq`.
    pub records: u64,
    /// The first and last `seq` checked.
    pub range: Option<(i64, i64)>,
    /// The `prev_hash` the range is chained to (`genesis` when it starts at the first record).
    pub chained_to: Option<String>,
    /// The first broken line: (line number from 1, seq, id, what is wrong).
    pub first_broken: Option<(usize, i64, String, String)>,
}

/// Checks exported lines in order: each parses, recomputes to its own hashes, and follows the
/// line before it (the next `seq`, and its `prev_hash` the previous `entry_hash`).
pub fn check_lines<'l>(lines: impl IntoIterator<Item = &'l str>) -> ExportCheck {
    let mut out = ExportCheck {
        records: 0,
        range: None,
        chained_to: None,
        first_broken: None,
    };
    let mut previous: Option<(i64, String)> = None;
    for (at, text) in lines.into_iter().enumerate() {
        let number = at + 1;
        if text.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
        if let Some(reason) = parsed
            .as_ref()
            .ok()
            .and_then(|v| v.get(CUT_OFF_KEY))
            .and_then(Value::as_str)
        {
            out.first_broken = Some((
                number,
                0,
                String::new(),
                format!("the export was cut off: {reason}"),
            ));
            return out;
        }
        let parsed = parsed.and_then(|v| entry(&v));
        let record = match parsed {
            Ok(record) => record,
            Err(e) => {
                out.first_broken = Some((number, 0, String::new(), format!("unreadable: {e}")));
                return out;
            }
        };
        let problem = match &previous {
            Some((seq, _)) if record.seq != seq + 1 => Some(format!(
                "seq {} follows {seq}: a record is missing",
                record.seq
            )),
            Some((_, hash)) if record.prev_hash != *hash => {
                Some("prev_hash does not match the previous record's entry_hash".to_owned())
            }
            _ => store::altered(&record).map(str::to_owned),
        };
        if let Some(problem) = problem {
            out.first_broken = Some((number, record.seq, record.id, problem));
            return out;
        }
        if previous.is_none() {
            out.chained_to = Some(record.prev_hash.clone());
        }
        out.records += 1;
        out.range = Some((out.range.map_or(record.seq, |(first, _)| first), record.seq));
        previous = Some((record.seq, record.entry_hash));
    }
    out
}

/// The `seq` of the first record created at or after `since`, if any.
pub async fn first_seq_since(
    db: &Database,
    since: OffsetDateTime,
) -> Result<Option<i64>, StorageError> {
    let mut select = store::select_entries();
    select
        .and_where(Expr::col(Alias::new("created_at")).gte(since))
        .order_by(Alias::new("seq"), Order::Asc)
        .limit(1);
    let first: Option<AuditEntry> = db.fetch_optional(&select).await?;
    Ok(first.map(|e| e.seq))
}

/// The newest record's `seq`, or `None` for an empty log: where an export started now will end,
/// for a progress display (records appended meanwhile take it further).
pub async fn newest_seq(db: &Database) -> Result<Option<i64>, StorageError> {
    store::highest_seq(db).await
}

/// Up to `limit` records from `from_seq` on, in `seq` order.
pub async fn page(
    db: &Database,
    from_seq: i64,
    limit: u64,
) -> Result<Vec<AuditEntry>, StorageError> {
    let mut select = store::select_entries();
    select
        .and_where(Expr::col(Alias::new("seq")).gte(from_seq))
        .order_by(Alias::new("seq"), Order::Asc)
        .limit(limit);
    db.fetch_all(&select).await
}

/// The chain from `from_seq` on as export bytes, one chunk of [`file_line`]s per `page_size`
/// records. A page is read only when the chunk before it has been taken, so a reader that keeps
/// up holds one page at a time however long the chain is. The stream ends after the first short
/// page; a failed read is its last item, so a caller can tell a cut-off export from a whole one.
pub fn chunks(
    db: Database,
    from_seq: i64,
    page_size: u64,
) -> impl Stream<Item = Result<Vec<u8>, StorageError>> + Send + 'static {
    futures_util::stream::unfold(Some(from_seq), move |next| {
        let db = db.clone();
        async move {
            let from = next?;
            let records = match page(&db, from, page_size).await {
                Ok(records) => records,
                Err(e) => return Some((Err(e), None)),
            };
            let last = records.last()?;
            let more = (records.len() as u64 == page_size).then_some(last.seq + 1);
            let chunk = records.iter().map(file_line).collect::<String>();
            Some((Ok(chunk.into_bytes()), more))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{GENESIS, link_hash};

    fn record(seq: i64, prev: &str) -> AuditEntry {
        let mut e = AuditEntry {
            id: format!("audit_{seq}"),
            seq,
            event_type: "users.create".into(),
            request_id: Some("req_1".into()),
            space_id: None,
            actor_user_id: None,
            actor_member_id: None,
            actor_user_member_id: None,
            action: "users.create".into(),
            resource_type: None,
            resource_id: None,
            decision: "allow".into(),
            deny_code: None,
            ip_address: None,
            user_agent: None,
            trace: json!({"n": seq, "f": 0.5}),
            prev_hash: prev.into(),
            entry_hash: String::new(),
            redaction_version: 3,
            created_at: OffsetDateTime::UNIX_EPOCH,
            redactions: vec![],
            content_hash: None,
        };
        let content = e.computed_content_hash();
        e.entry_hash = link_hash(prev, seq, &content);
        e.content_hash = Some(content);
        e
    }

    fn chain(n: i64) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let e = record(seq, &prev);
                prev.clone_from(&e.entry_hash);
                line(&e).to_string()
            })
            .collect()
    }

    #[test]
    fn an_exported_range_verifies_and_each_kind_of_change_is_named() {
        let lines = chain(4);
        let whole = check_lines(lines.iter().map(String::as_str));
        assert_eq!(whole.first_broken, None);
        assert_eq!((whole.records, whole.range), (4, Some((1, 4))));
        assert_eq!(whole.chained_to.as_deref(), Some(GENESIS));
        // A later range chains to what its first line says.
        let tail = check_lines(lines[2..].iter().map(String::as_str));
        assert_eq!((tail.records, tail.range), (2, Some((3, 4))));
        assert_ne!(tail.chained_to.as_deref(), Some(GENESIS));

        let mut altered = lines.clone();
        altered[1] = altered[1].replace("\"n\":2", "\"n\":20");
        let found = check_lines(altered.iter().map(String::as_str));
        let (line, seq, id, why) = found.first_broken.unwrap();
        assert_eq!((line, seq, id.as_str()), (2, 2, "audit_2"));
        assert!(why.contains("altered"), "{why}");

        let mut dropped = lines.clone();
        dropped.remove(2);
        let found = check_lines(dropped.iter().map(String::as_str));
        assert_eq!(found.first_broken.unwrap().1, 4);

        let garbage = check_lines(["{not json"]);
        assert!(garbage.first_broken.unwrap().3.starts_with("unreadable"));
    }
}
