//! Least privilege on PostgreSQL: the grants plystrad's runtime role needs, derived from the
//! schema model, and what a role actually holds, for `plystractl doctor`.
//!
//! Two roles: the migration (owner) role runs `plystractl migrate up` and owns every table; the
//! runtime role, which plystrad connects as, owns nothing. It reads and writes the modelled
//! tables, but only reads and inserts on append-only ones (the audit log), and reads the
//! migration ledger. Not owning a table, it cannot alter it, drop it or disable its triggers;
//! without `UPDATE`, `DELETE`, `TRUNCATE` and `TRIGGER` on the audit log, it cannot rewrite it.
//! The grants come from the linked models, so a capability's new table is covered by the same
//! command that covers the system's.

use plystra_contracts::schema::{SchemaModel, Table};

use super::migrations::LEDGER_TABLE;
use super::{Database, StorageError};

/// What the runtime role needs on `table`.
pub fn runtime_privileges(table: &Table) -> &'static [&'static str] {
    if table.append_only {
        &["SELECT", "INSERT"]
    } else {
        &["SELECT", "INSERT", "UPDATE", "DELETE"]
    }
}

/// What the runtime role must not hold on `table`: whatever could change or remove what an
/// append-only table already holds. Nothing is forbidden on other tables beyond ownership.
pub fn forbidden_privileges(table: &Table) -> &'static [&'static str] {
    if table.append_only {
        &["UPDATE", "DELETE", "TRUNCATE", "TRIGGER"]
    } else {
        &[]
    }
}

/// `name` as a quoted PostgreSQL identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements that give `role` exactly the runtime's privileges in `schema`: usage of the
/// schema, then for each modelled table (and the ledger) everything revoked and what it needs
/// granted, so running them again also takes back what was granted by hand.
pub fn runtime_grants(models: &[&SchemaModel], schema: &str, role: &str) -> Vec<String> {
    let role = quote_identifier(role);
    let mut statements = vec![format!(
        "GRANT USAGE ON SCHEMA {} TO {role}",
        quote_identifier(schema)
    )];
    let tables = models.iter().flat_map(|m| m.tables.iter());
    for table in tables {
        let name = quote_identifier(table.name);
        statements.push(format!("REVOKE ALL ON TABLE {name} FROM {role}"));
        statements.push(format!(
            "GRANT {} ON TABLE {name} TO {role}",
            runtime_privileges(table).join(", ")
        ));
    }
    let ledger = quote_identifier(LEDGER_TABLE);
    statements.push(format!("REVOKE ALL ON TABLE {ledger} FROM {role}"));
    statements.push(format!("GRANT SELECT ON TABLE {ledger} TO {role}"));
    statements
}

/// The schema unqualified names resolve to (`current_schema()`); an error on SQLite.
pub async fn current_schema(db: &Database) -> Result<String, StorageError> {
    match db {
        Database::Postgres(pool) => Ok(sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(pool)
            .await?),
        Database::Sqlite(_) => Err(no_roles()),
    }
}

/// Whether `role` exists (asked before granting, for a clear error).
pub async fn role_exists(db: &Database, role: &str) -> Result<bool, StorageError> {
    match db {
        Database::Postgres(pool) => Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
        )
        .bind(role)
        .fetch_one(pool)
        .await?),
        Database::Sqlite(_) => Err(no_roles()),
    }
}

/// The modelled tables `role` owns or may become the owner of (membership), by name: such a
/// role is not a runtime role, and revoking its privileges would take them from the owner.
pub async fn tables_owned_by(
    db: &Database,
    models: &[&SchemaModel],
    role: &str,
) -> Result<Vec<String>, StorageError> {
    match db {
        Database::Postgres(pool) => {
            let names: Vec<String> = models
                .iter()
                .flat_map(|m| m.tables.iter().map(|t| t.name.to_owned()))
                .collect();
            Ok(sqlx::query_scalar(
                "SELECT t.name FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord) \
                 JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name)) \
                 WHERE pg_has_role($2, c.relowner, 'MEMBER') ORDER BY t.ord",
            )
            .bind(&names)
            .bind(role)
            .fetch_all(pool)
            .await?)
        }
        Database::Sqlite(_) => Err(no_roles()),
    }
}

/// Runs `statements` in one transaction: all of them take effect, or none.
pub async fn apply(db: &Database, statements: &[String]) -> Result<(), StorageError> {
    match db {
        Database::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
        Database::Sqlite(_) => Err(no_roles()),
    }
}

fn no_roles() -> StorageError {
    StorageError::from_sqlx(sqlx::Error::Protocol(
        "SQLite has no roles: the database file's permissions are its access control".into(),
    ))
}

/// What the connected role holds, measured against what the runtime role should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleFindings {
    /// The role (`current_user`).
    pub role: String,
    /// The schema, when the role owns it or may become its owner (`SET ROLE`): it could drop the
    /// tables in it.
    pub owned_schema: Option<String>,
    /// Modelled tables the role owns or may become the owner of (membership, inherited or not).
    pub owned_tables: Vec<String>,
    /// Needed privileges it lacks, as `PRIVILEGE on table`.
    pub missing: Vec<String>,
    /// Forbidden privileges it holds, as `PRIVILEGE on table`.
    pub forbidden: Vec<String>,
}

impl RoleFindings {
    /// Whether the role is exactly a runtime role: owns nothing, lacks nothing, holds nothing
    /// forbidden.
    pub fn is_least_privilege(&self) -> bool {
        self.owned_schema.is_none()
            && self.owned_tables.is_empty()
            && self.missing.is_empty()
            && self.forbidden.is_empty()
    }
}

/// What the connected role holds on the modelled tables that exist (a missing table is drift,
/// reported elsewhere) and the ledger; `None` on SQLite. Asked of the catalog, so a superuser
/// appears to own and hold everything.
pub async fn runtime_role_findings(
    db: &Database,
    models: &[&SchemaModel],
) -> Result<Option<RoleFindings>, StorageError> {
    let Database::Postgres(pool) = db else {
        return Ok(None);
    };
    let (role, schema, owns_schema): (String, String, bool) = sqlx::query_as(
        "SELECT current_user::text, n.nspname::text, pg_has_role(current_user, n.nspowner, 'MEMBER') \
         FROM pg_namespace n WHERE n.nspname = current_schema()",
    )
    .fetch_one(pool)
    .await?;
    let mut findings = RoleFindings {
        role,
        owned_schema: owns_schema.then_some(schema),
        ..RoleFindings::default()
    };
    let tables: Vec<&Table> = models.iter().flat_map(|m| m.tables.iter()).collect();
    let mut names: Vec<String> = tables.iter().map(|t| t.name.to_owned()).collect();
    names.push(LEDGER_TABLE.to_owned());
    type Row = (String, bool, bool, bool, bool, bool, bool, bool);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT t.name, pg_has_role(current_user, c.relowner, 'MEMBER'), \
            has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'), \
            has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'), \
            has_table_privilege(c.oid, 'TRUNCATE'), has_table_privilege(c.oid, 'TRIGGER') \
         FROM unnest($1::text[]) WITH ORDINALITY AS t(name, ord) \
         JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name)) \
         ORDER BY t.ord",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    for (name, owns, select, insert, update, delete, truncate, trigger) in rows {
        if owns {
            findings.owned_tables.push(name.clone());
        }
        let held = |privilege: &str| match privilege {
            "SELECT" => select,
            "INSERT" => insert,
            "UPDATE" => update,
            "DELETE" => delete,
            "TRUNCATE" => truncate,
            "TRIGGER" => trigger,
            _ => false,
        };
        let (needed, forbidden): (&[&str], &[&str]) = match tables.iter().find(|t| t.name == name) {
            Some(table) => (runtime_privileges(table), forbidden_privileges(table)),
            None => (&["SELECT"], &[]),
        };
        for privilege in needed {
            if !held(privilege) {
                findings.missing.push(format!("{privilege} on {name}"));
            }
        }
        // Ownership implies every privilege; it is reported once, as ownership.
        if !owns {
            for privilege in forbidden {
                if held(privilege) {
                    findings.forbidden.push(format!("{privilege} on {name}"));
                }
            }
        }
    }
    Ok(Some(findings))
}

#[cfg(test)]
mod tests {
    use plystra_contracts::schema::{Column, ColumnType};

    use super::*;

    const ID: &[Column] = &[Column::required("id", ColumnType::Text)];

    // Tables of one `id` column, their primary key.
    const LOG: Table = Table::new("ns_log", ID).append_only();
    const ROWS: Table = Table::new("ns_rows", ID);
    const MODEL: SchemaModel = SchemaModel {
        namespace: "ns",
        tables: &[LOG, ROWS],
    };

    #[test]
    fn an_append_only_table_is_read_and_inserted_only() {
        let grants = runtime_grants(&[&MODEL], "public", "app");
        assert_eq!(
            grants,
            [
                r#"GRANT USAGE ON SCHEMA "public" TO "app""#,
                r#"REVOKE ALL ON TABLE "ns_log" FROM "app""#,
                r#"GRANT SELECT, INSERT ON TABLE "ns_log" TO "app""#,
                r#"REVOKE ALL ON TABLE "ns_rows" FROM "app""#,
                r#"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "ns_rows" TO "app""#,
                r#"REVOKE ALL ON TABLE "plystra_schema_migrations" FROM "app""#,
                r#"GRANT SELECT ON TABLE "plystra_schema_migrations" TO "app""#,
            ]
        );
        for privilege in forbidden_privileges(&LOG) {
            assert!(!runtime_privileges(&LOG).contains(privilege));
        }
        assert!(forbidden_privileges(&ROWS).is_empty());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier(r#"a"b; DROP"#), r#""a""b; DROP""#);
    }
}
