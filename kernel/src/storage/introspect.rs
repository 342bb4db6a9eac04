//! Reads the live schema from the database catalog: tables, columns (declared type, nullability),
//! explicitly created indexes, primary keys, unique constraints, foreign keys, CHECK constraints
//! and triggers.
//!
//! SQLite: `pragma_table_info` (its `pk` column), `pragma_index_list` (origin `c` for created
//! indexes, `u` for unique constraints), `pragma_foreign_key_list`, and the CHECK constraints
//! found in the table's `CREATE TABLE` text in `sqlite_master` (SQLite keeps no other record of
//! them). PostgreSQL: `pg_attribute`, `pg_index`, `pg_trigger` and `pg_constraint` (`p`, `u`, `f`,
//! `c`, with `conkey`/`confkey` resolved to column names in order).
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

/// One live foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveForeignKey {
    /// The referencing columns, in order.
    pub columns: Vec<String>,
    /// The referenced table.
    pub references: String,
    /// The referenced columns, paired in order with `columns`.
    pub referenced_columns: Vec<String>,
}

/// One live table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveTable {
    /// Columns in order.
    pub columns: Vec<LiveColumn>,
    /// Explicit indexes, by name.
    pub indexes: Vec<LiveIndex>,
    /// The primary key's columns, in order; empty when there is none.
    pub primary_key: Vec<String>,
    /// Unique constraints (not `CREATE UNIQUE INDEX` indexes), each its columns in order.
    pub unique_constraints: Vec<Vec<String>>,
    /// Foreign keys.
    pub foreign_keys: Vec<LiveForeignKey>,
    /// CHECK constraints, each its expression: as written (SQLite), or as `pg_get_expr` renders it
    /// without its enclosing parentheses (PostgreSQL).
    pub checks: Vec<String>,
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
            let tables: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            for (table, sql) in tables {
                let live = read_sqlite_table(pool, &table, sql.as_deref().unwrap_or("")).await?;
                schema.tables.insert(table, live);
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
                let live = read_postgres_table(pool, &table).await?;
                schema.tables.insert(table, live);
            }
        }
    }
    Ok(schema)
}

/// One SQLite table; `sql` is its `CREATE TABLE` text from `sqlite_master`.
async fn read_sqlite_table(
    pool: &sqlx::SqlitePool,
    table: &str,
    sql: &str,
) -> Result<LiveTable, StorageError> {
    let columns: Vec<(String, String, i64, i64)> = sqlx::query_as(
        r#"SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid"#,
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    let mut key_columns: Vec<(i64, String)> = columns
        .iter()
        .filter(|(_, _, _, pk)| *pk > 0)
        .map(|(name, _, _, pk)| (*pk, name.clone()))
        .collect();
    key_columns.sort();
    let primary_key = key_columns.into_iter().map(|(_, name)| name).collect();
    let index_list: Vec<(String, i64, String)> = sqlx::query_as(
        r#"SELECT name, "unique", origin FROM pragma_index_list(?) WHERE origin IN ('c', 'u') ORDER BY name"#,
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    let mut indexes = Vec::new();
    let mut unique_constraints = Vec::new();
    for (name, unique, origin) in index_list {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                .bind(&name)
                .fetch_all(pool)
                .await?;
        if origin == "u" {
            unique_constraints.push(columns);
        } else {
            indexes.push(LiveIndex {
                name,
                columns,
                unique: unique != 0,
            });
        }
    }
    let references: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
        r#"SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq"#,
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    let mut foreign_keys: Vec<(i64, LiveForeignKey)> = Vec::new();
    for (id, referenced, from, to) in references {
        let to = to.unwrap_or_default();
        match foreign_keys.last_mut() {
            Some((last, fk)) if *last == id => {
                fk.columns.push(from);
                fk.referenced_columns.push(to);
            }
            _ => foreign_keys.push((
                id,
                LiveForeignKey {
                    columns: vec![from],
                    references: referenced,
                    referenced_columns: vec![to],
                },
            )),
        }
    }
    for (_, fk) in &mut foreign_keys {
        // `REFERENCES t` without columns names t's primary key; the pragma leaves `to` NULL.
        if fk.referenced_columns.iter().any(String::is_empty) {
            fk.referenced_columns = sqlx::query_scalar(
                "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
            )
            .bind(&fk.references)
            .fetch_all(pool)
            .await?;
        }
    }
    let foreign_keys = foreign_keys.into_iter().map(|(_, fk)| fk).collect();
    let found: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? ORDER BY name",
    )
    .bind(table)
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
        .map(|(name, ty, notnull, _)| LiveColumn {
            name,
            ty,
            nullable: notnull == 0,
        })
        .collect();
    Ok(LiveTable {
        columns,
        indexes,
        primary_key,
        unique_constraints,
        foreign_keys,
        checks: check_expressions(sql),
        triggers,
        inert_triggers,
    })
}

/// A `pg_constraint` row: its kind (`p`, `u`, `f`, `c`), columns, referenced table and columns
/// (a foreign key's), expression (a CHECK's).
type ConstraintRow = (
    String,
    Vec<String>,
    Option<String>,
    Vec<String>,
    Option<String>,
);

/// One PostgreSQL table of the current schema.
async fn read_postgres_table(pool: &sqlx::PgPool, table: &str) -> Result<LiveTable, StorageError> {
    let columns: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull \
         FROM pg_attribute a \
         WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(table)
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
    .bind(table)
    .fetch_all(pool)
    .await?;
    let constraints: Vec<ConstraintRow> =
        sqlx::query_as(
            "SELECT c.contype::text, \
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                      ORDER BY k.ord), \
                r.relname::text, \
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum \
                      ORDER BY k.ord), \
                CASE WHEN c.contype = 'c' THEN pg_get_expr(c.conbin, c.conrelid) END \
             FROM pg_constraint c LEFT JOIN pg_class r ON r.oid = c.confrelid \
             WHERE c.conrelid = to_regclass(quote_ident($1)) AND c.contype IN ('p', 'u', 'f', 'c') \
             ORDER BY c.conname",
        )
        .bind(table)
        .fetch_all(pool)
        .await?;
    let found: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.tgname::text, t.tgenabled::text, p.prosrc FROM pg_trigger t \
         JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE t.tgrelid = to_regclass(quote_ident($1)) AND NOT t.tgisinternal \
         ORDER BY t.tgname",
    )
    .bind(table)
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
    let mut live = LiveTable {
        columns: columns
            .into_iter()
            .map(|(name, ty, nullable)| LiveColumn { name, ty, nullable })
            .collect(),
        indexes: indexes
            .into_iter()
            .map(|(name, unique, columns)| LiveIndex {
                name,
                columns,
                unique,
            })
            .collect(),
        triggers,
        inert_triggers,
        ..LiveTable::default()
    };
    for (kind, columns, referenced, referenced_columns, expression) in constraints {
        match (kind.as_str(), referenced, expression) {
            ("p", _, _) => live.primary_key = columns,
            ("u", _, _) => live.unique_constraints.push(columns),
            ("f", Some(references), _) => live.foreign_keys.push(LiveForeignKey {
                columns,
                references,
                referenced_columns,
            }),
            ("c", _, Some(expression)) => live
                .checks
                .push(without_enclosing_parentheses(&expression).to_owned()),
            _ => {}
        }
    }
    Ok(live)
}

/// `text` without one pair of parentheses enclosing all of it (`(id = 1)` → `id = 1`), as
/// `pg_get_expr` wraps a CHECK's expression; `text` itself when there is none.
fn without_enclosing_parentheses(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(inner) = trimmed
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
    else {
        return trimmed;
    };
    // `(a) AND (b)` starts and ends with parentheses that do not pair with each other.
    let mut depth = 0_i32;
    for c in inner.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return trimmed;
        }
    }
    inner.trim()
}

/// The expressions of the `CHECK (…)` constraints in a `CREATE TABLE` statement, as written,
/// in order. Quoted strings and identifiers and comments are skipped, so `'check (x)'` is not one.
fn check_expressions(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => i = skip_quoted(bytes, i, quote),
            b'[' => i = skip_quoted(bytes, i, b']'),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |end| i + end + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 2);
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'$'))
                {
                    i += 1;
                }
                if !sql[start..i].eq_ignore_ascii_case("check") {
                    continue;
                }
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if bytes.get(i) != Some(&b'(') {
                    continue;
                }
                let open = i;
                let mut depth = 0_usize;
                while i < bytes.len() {
                    match bytes[i] {
                        quote @ (b'\'' | b'"' | b'`') => {
                            i = skip_quoted(bytes, i, quote);
                            continue;
                        }
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                found.push(sql[open + 1..i].trim().to_owned());
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// The index just past the quoted text opening at `start` and closed by `close` (a doubled
/// closing quote inside it is an escaped one, and stays inside).
fn skip_quoted(bytes: &[u8], start: usize, close: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_expressions_are_found_in_create_table_text() {
        let sql = "CREATE TABLE t (\n    id INTEGER NOT NULL CHECK (id = 1), -- check (x)\n    \
                   \"check\" TEXT DEFAULT 'check (y)',\n    checked INTEGER,\n    \
                   CONSTRAINT t_pair CHECK((a > 0) AND (b IN (1, 2)))\n)";
        assert_eq!(
            check_expressions(sql),
            ["id = 1", "(a > 0) AND (b IN (1, 2))"]
        );
    }

    #[test]
    fn enclosing_parentheses_are_removed_once() {
        assert_eq!(without_enclosing_parentheses("(id = 1)"), "id = 1");
        assert_eq!(
            without_enclosing_parentheses("((a > 0) AND (b > 0))"),
            "(a > 0) AND (b > 0)"
        );
        assert_eq!(
            without_enclosing_parentheses("(a > 0) AND (b > 0)"),
            "(a > 0) AND (b > 0)"
        );
    }
}
