//! Reads the live schema from the database catalog: tables, columns (declared type, nullability),
//! explicitly created indexes and triggers.
//!
//! Catalog queries are raw SQL (sea-query does not model `pragma_*` functions or `pg_catalog`);
//! they are the only hand-written statements of the storage layer besides the migration ledger's.

use std::collections::BTreeMap;

use plystra_contracts::storage::{Database, StorageError};

/// One live column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    /// Its name.
    pub name: String,
    /// SQLite: the declared type as written; PostgreSQL: `format_type`.
    pub ty: String,
    /// Whether it accepts NULL.
    pub nullable: bool,
}

/// One live index (only indexes created with `CREATE INDEX`, not those backing a primary key or
/// a constraint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveIndex {
    /// Its name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
}

/// One live table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveTable {
    /// Columns in order.
    pub columns: Vec<LiveColumn>,
    /// Explicit indexes, by name.
    pub indexes: Vec<LiveIndex>,
    /// Trigger names.
    pub triggers: Vec<String>,
    /// Triggers present that would not stop anything, with why: disabled (PostgreSQL), or a
    /// body (SQLite) or function (PostgreSQL) that raises no error.
    pub inert_triggers: Vec<(String, String)>,
}

/// The live schema: every table of the main schema (SQLite `main`, PostgreSQL `current_schema()`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveSchema {
    /// Tables by name.
    pub tables: BTreeMap<String, LiveTable>,
}

/// Reads the live schema.
pub async fn read_schema(db: &Database) -> Result<LiveSchema, StorageError> {
    let mut schema = LiveSchema::default();
    match db {
        Database::Sqlite(pool) => {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            for table in names {
                let columns: Vec<(String, String, i64)> = sqlx::query_as(
                    r#"SELECT name, type, "notnull" FROM pragma_table_info(?) ORDER BY cid"#,
                )
                .bind(&table)
                .fetch_all(pool)
                .await?;
                let index_list: Vec<(String, i64)> = sqlx::query_as(
                    r#"SELECT name, "unique" FROM pragma_index_list(?) WHERE origin = 'c' ORDER BY name"#,
                )
                .bind(&table)
                .fetch_all(pool)
                .await?;
                let mut indexes = Vec::new();
                for (name, unique) in index_list {
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                            .bind(&name)
                            .fetch_all(pool)
                            .await?;
                    indexes.push(LiveIndex {
                        name,
                        columns,
                        unique: unique != 0,
                    });
                }
                let found: Vec<(String, Option<String>)> = sqlx::query_as(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? ORDER BY name",
                )
                .bind(&table)
                .fetch_all(pool)
                .await?;
                let inert_triggers = found
                    .iter()
                    .filter(|(_, sql)| {
                        !sql.as_deref()
                            .is_some_and(|sql| sql.to_ascii_uppercase().contains("RAISE("))
                    })
                    .map(|(name, _)| (name.clone(), "its body raises no error".to_owned()))
                    .collect();
                let triggers = found.into_iter().map(|(name, _)| name).collect();
                let columns = columns
                    .into_iter()
                    .map(|(name, ty, notnull)| LiveColumn {
                        name,
                        ty,
                        nullable: notnull == 0,
                    })
                    .collect();
                schema.tables.insert(
                    table,
                    LiveTable {
                        columns,
                        indexes,
                        triggers,
                        inert_triggers,
                    },
                );
            }
        }
        Database::Postgres(pool) => {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
            )
            .fetch_all(pool)
            .await?;
            for table in names {
                let columns: Vec<(String, String, bool)> = sqlx::query_as(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull \
                     FROM pg_attribute a \
                     WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY a.attnum",
                )
                .bind(&table)
                .fetch_all(pool)
                .await?;
                let indexes: Vec<(String, bool, Vec<String>)> = sqlx::query_as(
                    "SELECT i.relname::text, ix.indisunique, \
                        ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
                              JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum \
                              ORDER BY k.ord) \
                     FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid \
                     WHERE ix.indrelid = to_regclass(quote_ident($1)) \
                       AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                                       WHERE c.conindid = ix.indexrelid AND c.conrelid = ix.indrelid \
                                         AND c.contype IN ('p', 'u', 'x')) \
                     ORDER BY i.relname",
                )
                .bind(&table)
                .fetch_all(pool)
                .await?;
                let found: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT t.tgname::text, t.tgenabled::text, p.prosrc FROM pg_trigger t \
                     JOIN pg_proc p ON p.oid = t.tgfoid \
                     WHERE t.tgrelid = to_regclass(quote_ident($1)) AND NOT t.tgisinternal \
                     ORDER BY t.tgname",
                )
                .bind(&table)
                .fetch_all(pool)
                .await?;
                let inert_triggers = found
                    .iter()
                    .filter_map(|(name, enabled, source)| {
                        let why = if enabled == "D" {
                            "it is disabled"
                        } else if !source.to_ascii_uppercase().contains("RAISE") {
                            "its function raises no error"
                        } else {
                            return None;
                        };
                        Some((name.clone(), why.to_owned()))
                    })
                    .collect();
                let triggers = found.into_iter().map(|(name, _, _)| name).collect();
                let columns = columns
                    .into_iter()
                    .map(|(name, ty, nullable)| LiveColumn { name, ty, nullable })
                    .collect();
                let indexes = indexes
                    .into_iter()
                    .map(|(name, unique, columns)| LiveIndex {
                        name,
                        columns,
                        unique,
                    })
                    .collect();
                schema.tables.insert(
                    table,
                    LiveTable {
                        columns,
                        indexes,
                        triggers,
                        inert_triggers,
                    },
                );
            }
        }
    }
    Ok(schema)
}
