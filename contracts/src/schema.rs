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
    /// A JSON document kept as it was written: `TEXT` on SQLite, `JSON` on PostgreSQL, which
    /// checks the syntax but does not convert it to `JSONB` on every insert. For a large document
    /// written often and never searched inside by SQL (the audit log's decision traces).
    JsonText,
}

impl ColumnType {
    /// The type as the migration files declare it and as the catalog reports it: SQLite's declared
    /// type (upper case), PostgreSQL's `format_type` text.
    pub const fn sql(self, dialect: Dialect) -> &'static str {
        match (dialect, self) {
            (Dialect::Sqlite, Self::Text | Self::Timestamp | Self::Json | Self::JsonText) => "TEXT",
            (Dialect::Sqlite, Self::BigInt | Self::Boolean) => "INTEGER",
            (Dialect::Postgres, Self::Text) => "text",
            (Dialect::Postgres, Self::BigInt) => "bigint",
            (Dialect::Postgres, Self::Boolean) => "boolean",
            (Dialect::Postgres, Self::Timestamp) => "timestamp with time zone",
            (Dialect::Postgres, Self::Json) => "jsonb",
            (Dialect::Postgres, Self::JsonText) => "json",
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

/// The columns a table's rows carry after their own, the same in every table that has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamps {
    /// None: the table declares all its columns itself.
    None,
    /// `metadata` (free-form JSON, nullable), `created_at` and `updated_at`.
    Changes,
    /// Those, and `deleted_at` (nullable): rows that are marked deleted, not removed.
    SoftDeleted,
}

impl Stamps {
    /// The columns, in this order after the table's own.
    pub const fn columns(self) -> &'static [Column] {
        const SOFT_DELETED: &[Column] = &[
            Column::optional("metadata", ColumnType::Json),
            Column::required("created_at", ColumnType::Timestamp),
            Column::required("updated_at", ColumnType::Timestamp),
            Column::optional("deleted_at", ColumnType::Timestamp),
        ];
        match self {
            Self::None => &[],
            Self::Changes => SOFT_DELETED.split_at(3).0,
            Self::SoftDeleted => SOFT_DELETED,
        }
    }
}

/// One table, declared with [`Table::new`] and the builder methods after it:
///
/// ```
/// # use plystra_contracts::schema::{Column, ColumnType, Index, Stamps, Table};
/// const NOTES: Table = Table::new(
///     "app_notes",
///     &[
///         Column::required("id", ColumnType::Text),
///         Column::required("title", ColumnType::Text),
///     ],
/// )
/// .stamped(Stamps::SoftDeleted)
/// .indexes(&[Index::unique("app_notes_title", &["title"])]);
/// assert_eq!(NOTES.all_columns().count(), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The table's name, prefixed with its namespace (`sys_identity_users`).
    pub name: &'static str,
    /// Its own columns, in declaration order; [`Table::all_columns`] adds the stamps.
    pub columns: &'static [Column],
    /// The shared columns that follow its own.
    pub stamps: Stamps,
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
    /// A table named `name` with `columns`, keyed by `id`, with no stamps, indexes, constraints
    /// or triggers: the methods below add them.
    pub const fn new(name: &'static str, columns: &'static [Column]) -> Self {
        Self {
            name,
            columns,
            stamps: Stamps::None,
            indexes: &[],
            primary_key: &["id"],
            unique_constraints: &[],
            foreign_keys: &[],
            checks: &[],
            append_only: false,
        }
    }

    /// The same table, its rows carrying `stamps` after their own columns.
    pub const fn stamped(self, stamps: Stamps) -> Self {
        Self { stamps, ..self }
    }

    /// The same table, with these indexes.
    pub const fn indexes(self, indexes: &'static [Index]) -> Self {
        Self { indexes, ..self }
    }

    /// The same table, keyed by these columns instead of `id`.
    pub const fn primary_key(self, primary_key: &'static [&'static str]) -> Self {
        Self {
            primary_key,
            ..self
        }
    }

    /// The same table, with these unique constraints.
    pub const fn unique_constraints(
        self,
        unique_constraints: &'static [&'static [&'static str]],
    ) -> Self {
        Self {
            unique_constraints,
            ..self
        }
    }

    /// The same table, with these foreign keys.
    pub const fn foreign_keys(self, foreign_keys: &'static [ForeignKey]) -> Self {
        Self {
            foreign_keys,
            ..self
        }
    }

    /// The same table, with these CHECK constraints.
    pub const fn checks(self, checks: &'static [&'static str]) -> Self {
        Self { checks, ..self }
    }

    /// The same table, its rows never updated or deleted (triggers refuse both).
    pub const fn append_only(self) -> Self {
        Self {
            append_only: true,
            ..self
        }
    }

    /// Every column: its own, then its stamps.
    pub fn all_columns(&self) -> impl Iterator<Item = &'static Column> + use<> {
        self.columns.iter().chain(self.stamps.columns())
    }

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
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.all_columns().find(|c| c.name == name)
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
/// pub const USERS: Table = Table::new("sys_identity_users", &[...]).stamped(Stamps::SoftDeleted);
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

    const LOG: Table = Table::new(
        "t_log",
        &[
            Column::required("id", ColumnType::Text),
            Column::optional("payload", ColumnType::Json),
        ],
    )
    .indexes(&[Index::plain("t_log_payload", &["payload"])])
    .append_only();

    #[test]
    fn stamps_follow_a_tables_own_columns() {
        let names = |t: Table| t.all_columns().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(LOG), ["id", "payload"]);
        assert_eq!(
            names(LOG.stamped(Stamps::Changes)),
            ["id", "payload", "metadata", "created_at", "updated_at"]
        );
        let soft = LOG.stamped(Stamps::SoftDeleted);
        assert_eq!(names(soft).last(), Some(&"deleted_at"));
        assert!(soft.column("deleted_at").unwrap().nullable);
        assert!(!soft.column("created_at").unwrap().nullable);
        assert!(LOG.column("deleted_at").is_none());
    }

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
        assert_eq!(ColumnType::JsonText.sql(Dialect::Sqlite), "TEXT");
        assert_eq!(ColumnType::JsonText.sql(Dialect::Postgres), "json");
        assert_eq!(
            ColumnType::Timestamp.sql(Dialect::Postgres),
            "timestamp with time zone"
        );
    }
}
