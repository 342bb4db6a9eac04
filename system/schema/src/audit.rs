//! The tables of the `sys_audit` migration namespace, as the schema model declares them.
//!
//! The migrations `migrations/{sqlite,postgres}/*_sys_audit_*.sql` create them; `plystractl ent check`
//! compares this model with the live database. Keep both in step.

use plystra_contracts::schema::{Column, ColumnType, Index, Table};

/// The migration namespace these tables belong to.
pub const NAMESPACE: &str = "sys_audit";

/// The hash-chained audit log; append-only (triggers reject UPDATE and DELETE).
pub const AUDIT_LOGS: Table = Table::new(
    "sys_audit_audit_logs",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("seq", ColumnType::BigInt),
        Column::required("event_type", ColumnType::Text),
        Column::optional("request_id", ColumnType::Text),
        Column::optional("space_id", ColumnType::Text),
        Column::optional("actor_user_id", ColumnType::Text),
        Column::optional("actor_member_id", ColumnType::Text),
        Column::optional("actor_user_member_id", ColumnType::Text),
        Column::required("action", ColumnType::Text),
        Column::optional("resource_type", ColumnType::Text),
        Column::optional("resource_id", ColumnType::Text),
        Column::required("decision", ColumnType::Text),
        Column::optional("deny_code", ColumnType::Text),
        Column::optional("ip_address", ColumnType::Text),
        Column::optional("user_agent", ColumnType::Text),
        Column::required("trace", ColumnType::JsonText),
        Column::optional("prev_hash", ColumnType::Text),
        Column::required("entry_hash", ColumnType::Text),
        Column::required("redaction_version", ColumnType::BigInt),
        Column::required("created_at", ColumnType::Timestamp),
        Column::required("redactions", ColumnType::Json),
        Column::optional("content_hash", ColumnType::Text),
    ],
)
.indexes(&[
    Index::unique("sys_audit_audit_logs_seq", &["seq"]),
    Index::plain(
        "sys_audit_audit_logs_space_created",
        &["space_id", "created_at"],
    ),
    Index::plain("sys_audit_audit_logs_request", &["request_id"]),
    Index::plain(
        "sys_audit_audit_logs_actor_user",
        &["actor_user_id", "created_at"],
    ),
    Index::plain(
        "sys_audit_audit_logs_resource",
        &["resource_type", "resource_id"],
    ),
])
.append_only();

/// The head of the chain: one row, updated by every appending transaction before it reads the
/// head, which serializes appends on both backends.
pub const CHAIN_HEAD: Table = Table::new(
    "sys_audit_chain_head",
    &[
        Column::required("id", ColumnType::BigInt),
        Column::required("seq", ColumnType::BigInt),
        Column::required("entry_hash", ColumnType::Text),
    ],
)
.checks(&["id = 1"]);
