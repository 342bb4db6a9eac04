//! Schema drift: how the live database differs from the declared schema model.
//!
//! For every modelled table it compares columns (presence, type, nullability), explicit indexes
//! (presence, columns, uniqueness) and triggers; tables carrying a modelled namespace's prefix
//! that the model does not know are reported too. Other tables (the migration ledger, foreign
//! schemas' tables) are ignored.

use std::fmt;

use plystra_contracts::schema::{SchemaModel, Table};
use plystra_contracts::storage::{Database, Dialect, StorageError};

use super::introspect::{LiveSchema, LiveTable, read_schema};

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
    for column in table.columns {
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

#[cfg(test)]
mod tests {
    use plystra_contracts::schema::{Column, ColumnType, Index};

    use super::super::introspect::{LiveColumn, LiveIndex};
    use super::*;

    const T: Table = Table {
        name: "ns_t",
        columns: &[
            Column::required("id", ColumnType::Text),
            Column::optional("at", ColumnType::Timestamp),
        ],
        indexes: &[Index::unique("ns_t_at", &["at"])],
        append_only: true,
    };
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
}
