//! The declared schema model: each capability's tables, columns, types, nullability, indexes,
//! primary keys, unique constraints, foreign keys, CHECK constraints and append-only triggers, as
//! `const` data collected at link time.
//!
//! Migrations change the database; the model says what the database should look like after them.
//! `plystractl ent check` compares the live database with every linked [`SchemaModel`] and reports
//! drift. A capability crate declares its tables once with [`declare_tables!`](crate::declare_tables).

use crate::storage::Dialect;

/// A column's logical type, rendered per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Text of any length.
    Text,
    /// A 64-bit integer.
    BigInt,
    /// A boolean (`INTEGER` 0/1 on SQLite).
    Boolean,
    /// An instant: `TEXT` (RFC 3339, UTC) on SQLite, `TIMESTAMPTZ` on PostgreSQL.
    Timestamp,
    /// A JSON document: `TEXT` on SQLite, `JSONB` on PostgreSQL.
    Json,
}

impl ColumnType {
    /// The type as the migration files declare it and as the catalog reports it: SQLite's declared
    /// type (upper case), PostgreSQL's `format_type` text.
    pub const fn sql(self, dialect: Dialect) -> &'static str {
        match (dialect, self) {
            (Dialect::Sqlite, Self::Text | Self::Timestamp | Self::Json) => "TEXT",
            (Dialect::Sqlite, Self::BigInt | Self::Boolean) => "INTEGER",
            (Dialect::Postgres, Self::Text) => "text",
            (Dialect::Postgres, Self::BigInt) => "bigint",
            (Dialect::Postgres, Self::Boolean) => "boolean",
            (Dialect::Postgres, Self::Timestamp) => "timestamp with time zone",
            (Dialect::Postgres, Self::Json) => "jsonb",
        }
    }
}

/// One column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: &'static str,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it accepts NULL.
    pub nullable: bool,
}

impl Column {
    /// A `NOT NULL` column.
    pub const fn required(name: &'static str, ty: ColumnType) -> Self {
        Self {
            name,
            ty,
            nullable: false,
        }
    }

    /// A nullable column.
    pub const fn optional(name: &'static str, ty: ColumnType) -> Self {
        Self {
            name,
            ty,
            nullable: true,
        }
    }
}

/// One explicitly created index (`CREATE [UNIQUE] INDEX`). Indexes that back a primary key are not
/// listed; unique keys are written as unique indexes so both dialects report them the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// The index's name (prefixed with the namespace, like its table).
    pub name: &'static str,
    /// The indexed columns, in order.
    pub columns: &'static [&'static str],
    /// Whether it is unique.
    pub unique: bool,
}

impl Index {
    /// A non-unique index.
    pub const fn plain(name: &'static str, columns: &'static [&'static str]) -> Self {
        Self {
            name,
            columns,
            unique: false,
        }
    }

    /// A unique index.
    pub const fn unique(name: &'static str, columns: &'static [&'static str]) -> Self {
        Self {
            name,
            columns,
            unique: true,
        }
    }
}

/// One foreign key: columns of a table whose values must name a row of the referenced table.
/// Foreign keys are identified by what they say, not by name (SQLite's have no usable name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignKey {
    /// The referencing columns, in order.
    pub columns: &'static [&'static str],
    /// The referenced table's name.
    pub references: &'static str,
    /// The referenced columns, paired in order with `columns`.
    pub referenced_columns: &'static [&'static str],
}

impl ForeignKey {
    /// `FOREIGN KEY (columns) REFERENCES references (referenced_columns)`.
    pub const fn new(
        columns: &'static [&'static str],
        references: &'static str,
        referenced_columns: &'static [&'static str],
    ) -> Self {
        Self {
            columns,
            references,
            referenced_columns,
        }
    }
}

/// One table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The table's name, prefixed with its namespace (`sys_identity_users`).
    pub name: &'static str,
    /// Its columns, in declaration order.
    pub columns: &'static [Column],
    /// Its explicit indexes.
    pub indexes: &'static [Index],
    /// The primary key's columns, in order; empty for a table without one.
    pub primary_key: &'static [&'static str],
    /// Unique constraints written in the table's definition (`UNIQUE (a, b)`), each its columns in
    /// order. Unique keys created with `CREATE UNIQUE INDEX` are in `indexes`.
    pub unique_constraints: &'static [&'static [&'static str]],
    /// Its foreign keys.
    pub foreign_keys: &'static [ForeignKey],
    /// Its CHECK constraints, each the expression inside `CHECK (…)` as written (`id = 1`). They
    /// are compared with the catalog's text lowercased, without whitespace and parentheses.
    pub checks: &'static [&'static str],
    /// Whether triggers reject `UPDATE` and `DELETE` (the audit log).
    pub append_only: bool,
}

impl Table {
    /// The trigger names an append-only table carries: `<table>_no_update`, `<table>_no_delete`,
    /// and on PostgreSQL `<table>_no_truncate`.
    pub fn expected_triggers(&self, dialect: Dialect) -> Vec<String> {
        if !self.append_only {
            return Vec::new();
        }
        let mut names = vec![
            format!("{}_no_update", self.name),
            format!("{}_no_delete", self.name),
        ];
        if dialect == Dialect::Postgres {
            names.push(format!("{}_no_truncate", self.name));
        }
        names
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The tables one migration namespace owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaModel {
    /// The namespace (`sys_identity`).
    pub namespace: &'static str,
    /// Its tables.
    pub tables: &'static [Table],
}

/// Every schema model linked into this binary.
#[linkme::distributed_slice]
pub static SCHEMA_MODELS: [SchemaModel];

/// Every linked schema model, sorted by namespace.
pub fn linked_models() -> Vec<&'static SchemaModel> {
    let mut models: Vec<_> = SCHEMA_MODELS.iter().collect();
    models.sort_by_key(|m| m.namespace);
    models
}

/// Registers a namespace's tables with the schema model.
///
/// ```ignore
/// pub const USERS: Table = Table {
///     name: "sys_identity_users", columns: &[...], indexes: &[], primary_key: &["id"],
///     unique_constraints: &[], foreign_keys: &[], checks: &[], append_only: false,
/// };
/// plystra_contracts::declare_tables! { namespace: "sys_identity", tables: [USERS, SPACES] }
/// ```
#[macro_export]
macro_rules! declare_tables {
    (namespace: $namespace:expr, tables: [$($table:expr),* $(,)?] $(,)?) => {
        #[$crate::__private::linkme::distributed_slice($crate::schema::SCHEMA_MODELS)]
        #[linkme(crate = $crate::__private::linkme)]
        static __PLYSTRA_SCHEMA_MODEL: $crate::schema::SchemaModel = $crate::schema::SchemaModel {
            namespace: $namespace,
            tables: &[$($table),*],
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: Table = Table {
        name: "t_log",
        columns: &[
            Column::required("id", ColumnType::Text),
            Column::optional("payload", ColumnType::Json),
        ],
        indexes: &[Index::plain("t_log_payload", &["payload"])],
        primary_key: &["id"],
        unique_constraints: &[],
        foreign_keys: &[],
        checks: &[],
        append_only: true,
    };

    // linkme's element is a `link_section` static, which the workspace's `unsafe_code` lint flags
    // only when the macro expands inside this crate.
    #[allow(unsafe_code)]
    mod declared {
        crate::declare_tables! { namespace: "t", tables: [super::LOG] }
    }

    #[test]
    fn declared_models_are_collected() {
        let model = linked_models()
            .into_iter()
            .find(|m| m.namespace == "t")
            .unwrap();
        assert_eq!(model.tables[0].name, "t_log");
        assert_eq!(
            model.tables[0].expected_triggers(Dialect::Sqlite),
            ["t_log_no_update", "t_log_no_delete"]
        );
        assert_eq!(
            model.tables[0].expected_triggers(Dialect::Postgres).len(),
            3
        );
        assert!(model.tables[0].column("payload").unwrap().nullable);
    }

    #[test]
    fn types_render_per_dialect() {
        assert_eq!(ColumnType::Json.sql(Dialect::Sqlite), "TEXT");
        assert_eq!(ColumnType::Json.sql(Dialect::Postgres), "jsonb");
        assert_eq!(
            ColumnType::Timestamp.sql(Dialect::Postgres),
            "timestamp with time zone"
        );
    }
}
