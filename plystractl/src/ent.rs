//! `plystractl ent` (alias `schema`): the schema model against the live database.

use plystra_contracts::schema::linked_models;
use plystra_kernel::storage::drift::{self, Drift};
use plystra_kernel::storage::migrations::schema_version;
use serde_json::json;

use crate::Outcome;
use crate::cli::{EntCommand, open};

/// Runs an `ent` sub-command.
pub async fn run(command: EntCommand, url: &str, json: bool) -> anyhow::Result<Outcome> {
    match command {
        EntCommand::Check => check(url, json).await,
        EntCommand::Status => status(url, json).await,
        EntCommand::Apply => {
            let message = "schema changes are applied through versioned migrations: write one with `plystractl migrate new <namespace> <name>`, then run `plystractl migrate up`";
            if json {
                out!("{}", json!({"error": message}));
            } else {
                eprintln!("{message}");
            }
            Ok(Outcome::Usage)
        }
    }
}

/// The drift of the live database against every linked model.
pub async fn drifts(url: &str) -> anyhow::Result<(usize, Vec<Drift>)> {
    let models = linked_models();
    let tables = models.iter().map(|m| m.tables.len()).sum();
    let db = open(url).await?;
    let result = drift::check(&db, &models).await;
    db.close().await;
    Ok((tables, result?))
}

async fn check(url: &str, json: bool) -> anyhow::Result<Outcome> {
    let (tables, drifts) = drifts(url).await?;
    if json {
        let list: Vec<String> = drifts.iter().map(ToString::to_string).collect();
        out!("{}", json!({"tables": tables, "drift": list}));
    } else if tables == 0 {
        out!("no schema models are linked into this binary");
    } else if drifts.is_empty() {
        out!("no drift: {tables} tables match the schema model");
    } else {
        for d in &drifts {
            out!("drift: {d}");
        }
    }
    Ok(if drifts.is_empty() && tables > 0 {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

async fn status(url: &str, json: bool) -> anyhow::Result<Outcome> {
    let models = linked_models();
    let db = open(url).await?;
    let version = schema_version(&db).await?;
    let drifts = drift::check(&db, &models).await;
    db.close().await;
    let drifts = drifts?;
    let rows: Vec<(&str, &str, &str)> = models
        .iter()
        .flat_map(|m| m.tables.iter().map(move |t| (m.namespace, t.name)))
        .map(|(namespace, table)| {
            let state = if drifts
                .iter()
                .any(|d| d.table == table && d.kind == drift::DriftKind::MissingTable)
            {
                "missing"
            } else if drifts.iter().any(|d| d.table == table) {
                "drift"
            } else {
                "ok"
            };
            (namespace, table, state)
        })
        .collect();
    if json {
        let tables: Vec<_> = rows
            .iter()
            .map(|(n, t, s)| json!({"namespace": n, "table": t, "state": s}))
            .collect();
        out!("{}", json!({"schema_version": version, "tables": tables}));
    } else {
        out!("schema version: {}", version.as_deref().unwrap_or("none"));
        for (namespace, table, state) in rows {
            out!("{namespace} {table} {state}");
        }
    }
    Ok(Outcome::Ok)
}
