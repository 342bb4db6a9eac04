//! Schema drift: how the live database differs from the declared schema model.
//!
//! For every modelled table it compares columns (presence, type, nullability), explicit indexes
//! (presence, columns, uniqueness), the primary key (its columns in order), unique constraints
//! (by their columns), foreign keys (by their columns, referenced table and referenced columns,
//! not by name: SQLite's have none worth using), CHECK constraints (by their expression,
//! lowercased, without whitespace and parentheses) and triggers; tables carrying a modelled
//! namespace's prefix that the model does not know are reported too. Other tables (the migration
//! ledger, foreign schemas' tables) are ignored.

use std::fmt;

use plystra_contracts::schema::{ForeignKey, SchemaModel, Table};
use plystra_contracts::storage::{Database, Dialect, StorageError};

use super::introspect::{LiveForeignKey, LiveSchema, LiveTable, read_schema};

/// One difference between the model and the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The table.
    pub table: String,
    /// What differs.
    pub kind: DriftKind,
}

/// The kinds of drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftKind {
    /// A modelled table does not exist.
    MissingTable,
    /// A table with a modelled namespace's prefix is not in the model.
    ExtraTable,
    /// A modelled column does not exist.
    MissingColumn(String),
    /// A column the model does not declare.
    ExtraColumn(String),
    /// A column's type differs.
    ColumnType {
        /// The column.
        column: String,
        /// The model's type.
        expected: String,
        /// The database's.
        actual: String,
    },
    /// A column's nullability differs.
    Nullability {
        /// The column.
        column: String,
        /// Whether the model says nullable.
        expected_nullable: bool,
    },
    /// A modelled index does not exist.
    MissingIndex(String),
    /// An index the model does not declare.
    ExtraIndex(String),
    /// An index's columns or uniqueness differ.
    IndexDefinition(String),
    /// The modelled primary key (its columns) does not exist.
    MissingPrimaryKey(Vec<String>),
    /// A primary key (its columns) on a table the model gives none.
    ExtraPrimaryKey(Vec<String>),
    /// The primary key's columns differ.
    PrimaryKeyColumns {
        /// The model's columns.
        expected: Vec<String>,
        /// The database's.
        actual: Vec<String>,
    },
    /// A modelled unique constraint (its columns) does not exist.
    MissingUniqueConstraint(Vec<String>),
    /// A unique constraint (its columns) the model does not declare.
    ExtraUniqueConstraint(Vec<String>),
    /// A modelled foreign key, rendered `(columns) REFERENCES table (columns)`, does not exist.
    MissingForeignKey(String),
    /// A foreign key, rendered as above, the model does not declare.
    ExtraForeignKey(String),
    /// A foreign key on the modelled columns references other columns or another table.
    ForeignKeyTarget {
        /// The referencing columns.
        columns: Vec<String>,
        /// What the model says they reference, rendered `table (columns)`.
        expected: String,
        /// What they reference in the database.
        actual: String,
    },
    /// A modelled CHECK constraint (its expression as the model writes it) does not exist.
    MissingCheck(String),
    /// A CHECK constraint (its expression as the catalog gives it) the model does not declare.
    ExtraCheck(String),
    /// A modelled trigger does not exist.
    MissingTrigger(String),
    /// A trigger the model does not declare.
    ExtraTrigger(String),
    /// A modelled trigger exists but would stop nothing (disabled, or it raises no error).
    InertTrigger(String, String),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.table;
        match &self.kind {
            DriftKind::MissingTable => write!(f, "{t}: table is missing"),
            DriftKind::ExtraTable => write!(f, "{t}: table is not in the schema model"),
            DriftKind::MissingColumn(c) => write!(f, "{t}: column `{c}` is missing"),
            DriftKind::ExtraColumn(c) => {
                write!(f, "{t}: extra column `{c}` is not in the schema model")
            }
            DriftKind::ColumnType {
                column,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{t}: column `{column}` has type {actual}, the model says {expected}"
                )
            }
            DriftKind::Nullability {
                column,
                expected_nullable,
            } => write!(
                f,
                "{t}: column `{column}` is {}, the model says {}",
                if *expected_nullable {
                    "NOT NULL"
                } else {
                    "nullable"
                },
                if *expected_nullable {
                    "nullable"
                } else {
                    "NOT NULL"
                }
            ),
            DriftKind::MissingIndex(i) => write!(f, "{t}: index `{i}` is missing"),
            DriftKind::ExtraIndex(i) => {
                write!(f, "{t}: extra index `{i}` is not in the schema model")
            }
            DriftKind::IndexDefinition(i) => {
                write!(
                    f,
                    "{t}: index `{i}` differs from the model (columns or uniqueness)"
                )
            }
            DriftKind::MissingPrimaryKey(c) => {
                write!(f, "{t}: primary key ({}) is missing", c.join(", "))
            }
            DriftKind::ExtraPrimaryKey(c) => write!(
                f,
                "{t}: extra primary key ({}) is not in the schema model",
                c.join(", ")
            ),
            DriftKind::PrimaryKeyColumns { expected, actual } => write!(
                f,
                "{t}: primary key is ({}), the model says ({})",
                actual.join(", "),
                expected.join(", ")
            ),
            DriftKind::MissingUniqueConstraint(c) => {
                write!(f, "{t}: unique constraint ({}) is missing", c.join(", "))
            }
            DriftKind::ExtraUniqueConstraint(c) => write!(
                f,
                "{t}: extra unique constraint ({}) is not in the schema model",
                c.join(", ")
            ),
            DriftKind::MissingForeignKey(k) => write!(f, "{t}: foreign key {k} is missing"),
            DriftKind::ExtraForeignKey(k) => {
                write!(f, "{t}: extra foreign key {k} is not in the schema model")
            }
            DriftKind::ForeignKeyTarget {
                columns,
                expected,
                actual,
            } => write!(
                f,
                "{t}: foreign key ({}) references {actual}, the model says {expected}",
                columns.join(", ")
            ),
            DriftKind::MissingCheck(e) => write!(f, "{t}: CHECK ({e}) is missing"),
            DriftKind::ExtraCheck(e) => {
                write!(f, "{t}: extra CHECK ({e}) is not in the schema model")
            }
            DriftKind::MissingTrigger(g) => write!(f, "{t}: trigger `{g}` is missing"),
            DriftKind::InertTrigger(g, why) => {
                write!(f, "{t}: trigger `{g}` stops nothing: {why}")
            }
            DriftKind::ExtraTrigger(g) => {
                write!(f, "{t}: extra trigger `{g}` is not in the schema model")
            }
        }
    }
}

/// Reads the live schema and compares it with `models`.
pub async fn check(db: &Database, models: &[&SchemaModel]) -> Result<Vec<Drift>, StorageError> {
    let live = read_schema(db).await?;
    Ok(compare(db.dialect(), models, &live))
}

/// Compares a live schema with `models`.
pub fn compare(dialect: Dialect, models: &[&SchemaModel], live: &LiveSchema) -> Vec<Drift> {
    let mut drifts = Vec::new();
    for model in models {
        for table in model.tables {
            match live.tables.get(table.name) {
                None => drifts.push(Drift {
                    table: table.name.to_owned(),
                    kind: DriftKind::MissingTable,
                }),
                Some(found) => compare_table(dialect, table, found, &mut drifts),
            }
        }
        let prefix = format!("{}_", model.namespace);
        for name in live.tables.keys() {
            let modelled = models
                .iter()
                .any(|m| m.tables.iter().any(|t| t.name == name));
            if name.starts_with(&prefix) && !modelled {
                drifts.push(Drift {
                    table: name.clone(),
                    kind: DriftKind::ExtraTable,
                });
            }
        }
    }
    drifts
}

fn compare_table(dialect: Dialect, table: &Table, live: &LiveTable, drifts: &mut Vec<Drift>) {
    let mut push = |kind| {
        drifts.push(Drift {
            table: table.name.to_owned(),
            kind,
        })
    };
    for column in table.all_columns() {
        match live.columns.iter().find(|c| c.name == column.name) {
            None => push(DriftKind::MissingColumn(column.name.to_owned())),
            Some(found) => {
                let expected = column.ty.sql(dialect);
                if !found.ty.eq_ignore_ascii_case(expected) {
                    push(DriftKind::ColumnType {
                        column: column.name.to_owned(),
                        expected: expected.to_owned(),
                        actual: found.ty.clone(),
                    });
                }
                if found.nullable != column.nullable {
                    push(DriftKind::Nullability {
                        column: column.name.to_owned(),
                        expected_nullable: column.nullable,
                    });
                }
            }
        }
    }
    for found in &live.columns {
        if table.column(&found.name).is_none() {
            push(DriftKind::ExtraColumn(found.name.clone()));
        }
    }
    for index in table.indexes {
        match live.indexes.iter().find(|i| i.name == index.name) {
            None => push(DriftKind::MissingIndex(index.name.to_owned())),
            Some(found) => {
                if found.unique != index.unique
                    || found
                        .columns
                        .iter()
                        .map(String::as_str)
                        .ne(index.columns.iter().copied())
                {
                    push(DriftKind::IndexDefinition(index.name.to_owned()));
                }
            }
        }
    }
    for found in &live.indexes {
        if !table.indexes.iter().any(|i| i.name == found.name) {
            push(DriftKind::ExtraIndex(found.name.clone()));
        }
    }
    compare_keys(table, live, &mut push);
    let expected = table.expected_triggers(dialect);
    for trigger in &expected {
        if !live.triggers.contains(trigger) {
            push(DriftKind::MissingTrigger(trigger.clone()));
        } else if let Some((_, why)) = live.inert_triggers.iter().find(|(t, _)| t == trigger) {
            push(DriftKind::InertTrigger(trigger.clone(), why.clone()));
        }
    }
    for trigger in &live.triggers {
        if !expected.contains(trigger) {
            push(DriftKind::ExtraTrigger(trigger.clone()));
        }
    }
}

/// The primary key, unique constraints, foreign keys and CHECK constraints.
fn compare_keys(table: &Table, live: &LiveTable, push: &mut impl FnMut(DriftKind)) {
    let owned = |columns: &[&str]| columns.iter().map(|&c| c.to_owned()).collect::<Vec<_>>();
    match (table.primary_key, live.primary_key.as_slice()) {
        ([], []) => {}
        (expected, []) => push(DriftKind::MissingPrimaryKey(owned(expected))),
        ([], actual) => push(DriftKind::ExtraPrimaryKey(actual.to_vec())),
        (expected, actual)
            if actual
                .iter()
                .map(String::as_str)
                .ne(expected.iter().copied()) =>
        {
            push(DriftKind::PrimaryKeyColumns {
                expected: owned(expected),
                actual: actual.to_vec(),
            });
        }
        _ => {}
    }
    // Each live constraint answers one modelled one, so a duplicate made beside it is reported.
    let mut unmatched: Vec<&Vec<String>> = live.unique_constraints.iter().collect();
    for &unique in table.unique_constraints {
        match unmatched.iter().position(|found| **found == unique) {
            Some(at) => {
                unmatched.remove(at);
            }
            None => push(DriftKind::MissingUniqueConstraint(owned(unique))),
        }
    }
    for found in unmatched {
        push(DriftKind::ExtraUniqueConstraint(found.clone()));
    }
    let mut unmatched: Vec<&LiveForeignKey> = live.foreign_keys.iter().collect();
    let mut missing: Vec<&ForeignKey> = Vec::new();
    for model in table.foreign_keys {
        let same = |found: &&LiveForeignKey| {
            found.columns == model.columns
                && found.references == model.references
                && found.referenced_columns == model.referenced_columns
        };
        match unmatched.iter().position(same) {
            Some(at) => {
                unmatched.remove(at);
            }
            None => missing.push(model),
        }
    }
    for model in missing {
        let target = format!(
            "{} ({})",
            model.references,
            model.referenced_columns.join(", ")
        );
        // A foreign key on the same columns that points elsewhere is one difference, not two.
        match unmatched
            .iter()
            .position(|found| found.columns == model.columns)
        {
            Some(at) => {
                let found = unmatched.remove(at);
                push(DriftKind::ForeignKeyTarget {
                    columns: owned(model.columns),
                    expected: target,
                    actual: format!(
                        "{} ({})",
                        found.references,
                        found.referenced_columns.join(", ")
                    ),
                });
            }
            None => push(DriftKind::MissingForeignKey(format!(
                "({}) REFERENCES {target}",
                model.columns.join(", ")
            ))),
        }
    }
    for found in unmatched {
        push(DriftKind::ExtraForeignKey(format!(
            "({}) REFERENCES {} ({})",
            found.columns.join(", "),
            found.references,
            found.referenced_columns.join(", ")
        )));
    }
    let mut unmatched: Vec<&String> = live.checks.iter().collect();
    for &check in table.checks {
        let expected = normalized_check(check);
        match unmatched
            .iter()
            .position(|found| normalized_check(found) == expected)
        {
            Some(at) => {
                unmatched.remove(at);
            }
            None => push(DriftKind::MissingCheck(check.to_owned())),
        }
    }
    for found in unmatched {
        push(DriftKind::ExtraCheck(found.clone()));
    }
}

/// A CHECK expression as it is compared: lowercased, without whitespace and parentheses, so the
/// model's `id = 1` equals PostgreSQL's `(id = 1)`.
fn normalized_check(expression: &str) -> String {
    expression
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '(' | ')'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use plystra_contracts::schema::{Column, ColumnType, Index, Stamps};

    use super::super::introspect::{LiveColumn, LiveIndex};
    use super::*;

    const T: Table = Table::new(
        "ns_t",
        &[
            Column::required("id", ColumnType::Text),
            Column::optional("at", ColumnType::Timestamp),
        ],
    )
    .indexes(&[Index::unique("ns_t_at", &["at"])])
    .unique_constraints(&[&["id", "at"]])
    .foreign_keys(&[
        ForeignKey::new(&["id"], "ns_parent", &["id"]),
        ForeignKey::new(&["id", "at"], "ns_other", &["id", "at"]),
    ])
    .checks(&["length(id) > 0"])
    .append_only();
    const MODEL: SchemaModel = SchemaModel {
        namespace: "ns",
        tables: &[T],
    };

    fn live() -> LiveSchema {
        let mut schema = LiveSchema::default();
        schema.tables.insert(
            "ns_t".into(),
            LiveTable {
                columns: vec![
                    LiveColumn {
                        name: "id".into(),
                        ty: "TEXT".into(),
                        nullable: false,
                    },
                    LiveColumn {
                        name: "at".into(),
                        ty: "TEXT".into(),
                        nullable: true,
                    },
                ],
                indexes: vec![LiveIndex {
                    name: "ns_t_at".into(),
                    columns: vec!["at".into()],
                    unique: true,
                }],
                primary_key: vec!["id".into()],
                unique_constraints: vec![vec!["id".into(), "at".into()]],
                foreign_keys: vec![
                    LiveForeignKey {
                        columns: vec!["id".into(), "at".into()],
                        references: "ns_other".into(),
                        referenced_columns: vec!["id".into(), "at".into()],
                    },
                    LiveForeignKey {
                        columns: vec!["id".into()],
                        references: "ns_parent".into(),
                        referenced_columns: vec!["id".into()],
                    },
                ],
                // As PostgreSQL renders it.
                checks: vec!["(LENGTH(id) > 0)".into()],
                triggers: vec!["ns_t_no_delete".into(), "ns_t_no_update".into()],
                inert_triggers: Vec::new(),
            },
        );
        schema
            .tables
            .insert("plystra_schema_migrations".into(), LiveTable::default());
        schema
    }

    #[test]
    fn a_matching_schema_has_no_drift() {
        assert_eq!(compare(Dialect::Sqlite, &[&MODEL], &live()), []);
    }

    #[test]
    fn a_tables_stamps_are_compared_as_its_own_columns_are() {
        const STAMPED: SchemaModel = SchemaModel {
            namespace: "ns",
            tables: &[T.stamped(Stamps::SoftDeleted)],
        };
        let mut schema = live();
        let t = schema.tables.get_mut("ns_t").unwrap();
        for (name, ty, nullable) in [
            ("metadata", "TEXT", true),
            ("created_at", "TEXT", false),
            ("updated_at", "TEXT", true),
        ] {
            t.columns.push(LiveColumn {
                name: name.into(),
                ty: ty.into(),
                nullable,
            });
        }
        let drifts: Vec<String> = compare(Dialect::Sqlite, &[&STAMPED], &schema)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            drifts,
            [
                "ns_t: column `updated_at` is nullable, the model says NOT NULL",
                "ns_t: column `deleted_at` is missing",
            ]
        );
        // Without stamps in the model, the same columns are extra.
        let drifts = compare(Dialect::Sqlite, &[&MODEL], &schema);
        assert_eq!(drifts.len(), 3, "{drifts:?}");
    }

    #[test]
    fn reports_each_kind_of_drift() {
        let mut schema = live();
        let t = schema.tables.get_mut("ns_t").unwrap();
        t.columns[1].nullable = false;
        t.columns.push(LiveColumn {
            name: "extra".into(),
            ty: "TEXT".into(),
            nullable: true,
        });
        t.indexes.clear();
        t.triggers.pop();
        t.inert_triggers
            .push(("ns_t_no_delete".into(), "it is disabled".into()));
        schema
            .tables
            .insert("ns_other".into(), LiveTable::default());
        let drifts: Vec<String> = compare(Dialect::Sqlite, &[&MODEL], &schema)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            drifts,
            [
                "ns_t: column `at` is NOT NULL, the model says nullable",
                "ns_t: extra column `extra` is not in the schema model",
                "ns_t: index `ns_t_at` is missing",
                "ns_t: trigger `ns_t_no_update` is missing",
                "ns_t: trigger `ns_t_no_delete` stops nothing: it is disabled",
                "ns_other: table is not in the schema model",
            ]
        );
        // On PostgreSQL the types and the truncate trigger differ.
        let pg: Vec<String> = compare(Dialect::Postgres, &[&MODEL], &live())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(!pg.iter().any(|d| d.contains("`id`")), "{pg:?}");
        assert!(pg.iter().any(|d| d.contains("ns_t_no_truncate")));
        assert!(
            pg.iter()
                .any(|d| d.contains("has type TEXT, the model says timestamp with time zone"))
        );
    }

    #[test]
    fn reports_each_kind_of_constraint_drift() {
        let report = |schema: &LiveSchema| -> Vec<String> {
            compare(Dialect::Sqlite, &[&MODEL], schema)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let mut schema = live();
        let t = schema.tables.get_mut("ns_t").unwrap();
        t.primary_key.clear();
        t.unique_constraints = vec![vec!["at".into()]];
        // The composite key is dropped, the single-column one points elsewhere, one is added.
        t.foreign_keys.remove(0);
        t.foreign_keys[0].references = "ns_elsewhere".into();
        t.foreign_keys.push(LiveForeignKey {
            columns: vec!["at".into()],
            references: "ns_parent".into(),
            referenced_columns: vec!["at".into()],
        });
        t.checks = vec!["id <> ''".into()];
        assert_eq!(
            report(&schema),
            [
                "ns_t: primary key (id) is missing",
                "ns_t: unique constraint (id, at) is missing",
                "ns_t: extra unique constraint (at) is not in the schema model",
                "ns_t: foreign key (id) references ns_elsewhere (id), the model says ns_parent (id)",
                "ns_t: foreign key (id, at) REFERENCES ns_other (id, at) is missing",
                "ns_t: extra foreign key (at) REFERENCES ns_parent (at) is not in the schema model",
                "ns_t: CHECK (length(id) > 0) is missing",
                "ns_t: extra CHECK (id <> '') is not in the schema model",
            ]
        );

        // A duplicate made beside a modelled constraint is one too many.
        let mut schema = live();
        let t = schema.tables.get_mut("ns_t").unwrap();
        t.primary_key = vec!["at".into(), "id".into()];
        t.foreign_keys.push(t.foreign_keys[1].clone());
        t.checks.push("length(id)>0".into());
        assert_eq!(
            report(&schema),
            [
                "ns_t: primary key is (at, id), the model says (id)",
                "ns_t: extra foreign key (id) REFERENCES ns_parent (id) is not in the schema model",
                "ns_t: extra CHECK (length(id)>0) is not in the schema model",
            ]
        );
        const UNKEYED: SchemaModel = SchemaModel {
            namespace: "ns",
            tables: &[T.primary_key(&[])],
        };
        let drifts: Vec<String> = compare(Dialect::Sqlite, &[&UNKEYED], &live())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            drifts,
            ["ns_t: extra primary key (id) is not in the schema model"]
        );
    }
}
