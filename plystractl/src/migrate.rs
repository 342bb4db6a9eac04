//! `plystractl migrate`: status, plan, up, verify, hash, new, and the runtime role's grants.

use std::path::Path;

use anyhow::{Context as _, bail};
use plystra_contracts::schema::linked_models;
use plystra_kernel::storage::migrations::{FileState, MigrationSet, parse_file_name};
use plystra_kernel::storage::{Dialect, roles};
use serde_json::json;

use crate::Outcome;
use crate::cli::{MigrateCommand, Source, dialect_of, open, owned_namespaces};

/// The migration set for `dialect`: embedded, or read from `source.dir`.
fn load(source: &Source, dialect: Dialect) -> anyhow::Result<MigrationSet> {
    match &source.dir {
        None => Ok(MigrationSet::embedded(dialect)),
        Some(dir) => Ok(MigrationSet::from_dir(
            dialect,
            &dir.join(dialect.as_str()),
        )?),
    }
}

/// Runs a `migrate` sub-command.
pub async fn run(command: MigrateCommand, url: &str, json: bool) -> anyhow::Result<Outcome> {
    match command {
        MigrateCommand::Status(source) => status(&source, url, json).await,
        MigrateCommand::Plan(source) => plan(&source, url, json).await,
        MigrateCommand::Up { source, grant_to } => {
            up(&source, url, grant_to.as_deref(), json).await
        }
        MigrateCommand::Grants { role, apply } => grants(url, &role, apply, json).await,
        MigrateCommand::Verify(source) => verify(&source, url, json).await,
        MigrateCommand::Hash { check, dir } => hash(&dir, check, json),
        MigrateCommand::New {
            namespace,
            name,
            dir,
        } => new(&dir, &namespace, &name, json),
    }
}

async fn status(source: &Source, url: &str, json: bool) -> anyhow::Result<Outcome> {
    let set = load(source, dialect_of(url)?)?;
    let db = open(url).await?;
    let status = set.status(&db).await?;
    let failed = status.iter().any(|s| {
        matches!(
            s.state,
            FileState::ChecksumMismatch | FileState::MissingFile
        )
    });
    if json {
        let files: Vec<_> = status
            .iter()
            .map(|s| json!({"version": s.version, "file": s.file, "state": s.state.as_str(), "applied_at": s.applied_at}))
            .collect();
        out!(
            "{}",
            json!({"dialect": set.dialect().as_str(), "files": files})
        );
    } else {
        for s in &status {
            match &s.applied_at {
                Some(at) => out!(
                    "{} {} {} (applied {at})",
                    s.version,
                    s.file,
                    s.state.as_str()
                ),
                None => out!("{} {} {}", s.version, s.file, s.state.as_str()),
            }
        }
        if status.is_empty() {
            out!("no migrations");
        }
    }
    db.close().await;
    Ok(if failed { Outcome::Failed } else { Outcome::Ok })
}

async fn plan(source: &Source, url: &str, json: bool) -> anyhow::Result<Outcome> {
    let set = load(source, dialect_of(url)?)?;
    let ownership = set.check_ownership(&owned_namespaces());
    let db = open(url).await?;
    let pending = set.pending(&db).await?;
    let verified = set.verify(&db).await;
    db.close().await;
    if json {
        let files: Vec<_> = pending
            .iter()
            .map(|m| json!({"version": m.version, "name": m.stem, "file": m.file}))
            .collect();
        out!(
            "{}",
            json!({
                "pending": files,
                "ownership": ownership.as_ref().err().map(ToString::to_string),
                "verify": verified.as_ref().err().map(ToString::to_string),
            })
        );
    } else {
        for m in &pending {
            out!("pending {} {}", m.version, m.stem);
        }
        if pending.is_empty() {
            out!("no pending migrations");
        }
        if let Err(e) = &ownership {
            out!("refused: {e}");
        }
        if let Err(e) = &verified {
            out!("refused: {e}");
        }
    }
    Ok(if ownership.is_ok() && verified.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// Applies what is pending and, with `grant_to`, then grants that runtime role what it needs
/// (PostgreSQL only: refused on SQLite before anything is applied). With `--json`, one object
/// says both.
async fn up(
    source: &Source,
    url: &str,
    grant_to: Option<&str>,
    json: bool,
) -> anyhow::Result<Outcome> {
    if grant_to.is_some() && !grants_apply_to(url)? {
        return Ok(Outcome::Usage);
    }
    let set = load(source, dialect_of(url)?)?;
    let db = open(url).await?;
    let result = set.apply_pending(&db, &owned_namespaces()).await;
    db.close().await;
    let applied = result?;
    let files: Vec<_> = applied
        .iter()
        .map(|a| json!({"version": a.version, "name": a.stem, "execution_ms": a.execution_ms}))
        .collect();
    if !json {
        for a in &applied {
            out!("applied {} {}", a.version, a.stem);
        }
        if applied.is_empty() {
            out!("no pending migrations");
        }
    }
    let Some(role) = grant_to else {
        if json {
            out!("{}", json!({"applied": files}));
        }
        return Ok(Outcome::Ok);
    };
    match runtime_grants(url, role, true).await {
        Ok(statements) => {
            if json {
                out!(
                    "{}",
                    json!({"applied": files, "grants": grants_json(role, true, &statements)})
                );
            } else {
                print_grants(role, true, &statements);
            }
            Ok(Outcome::Ok)
        }
        Err(e) => {
            // The migrations are applied; say so before the error.
            if json {
                out!("{}", json!({"applied": files, "grants": null}));
            }
            Err(e)
        }
    }
}

/// Whether `url` is a database whose roles take grants; says why not on standard error.
fn grants_apply_to(url: &str) -> anyhow::Result<bool> {
    if dialect_of(url)? == Dialect::Postgres {
        return Ok(true);
    }
    eprintln!(
        "error: grants are PostgreSQL's; on SQLite the database file's permissions are its \
         access control"
    );
    Ok(false)
}

/// Prints, or runs as the connected (owner) role, the runtime role's grants.
async fn grants(url: &str, role: &str, apply: bool, json: bool) -> anyhow::Result<Outcome> {
    if !grants_apply_to(url)? {
        return Ok(Outcome::Usage);
    }
    let statements = runtime_grants(url, role, apply).await?;
    if json {
        out!("{}", grants_json(role, apply, &statements));
    } else {
        print_grants(role, apply, &statements);
    }
    Ok(Outcome::Ok)
}

/// The runtime role's grant statements, run when `apply` (as the connected owner role).
async fn runtime_grants(url: &str, role: &str, apply: bool) -> anyhow::Result<Vec<String>> {
    let db = open(url).await?;
    let result = async {
        if !roles::role_exists(&db, role).await? {
            anyhow::bail!(
                "role `{role}` does not exist: create it first (CREATE ROLE {} LOGIN PASSWORD …)",
                roles::quote_identifier(role)
            );
        }
        let models = linked_models();
        let owned = roles::tables_owned_by(&db, &models, role).await?;
        if let Some(first) = owned.first() {
            anyhow::bail!(
                "role `{role}` owns {first} (or may become its owner): the runtime role must be \
                 another role, which owns nothing (granting would revoke the owner's own \
                 privileges)"
            );
        }
        let schema = roles::current_schema(&db).await?;
        let statements = roles::runtime_grants(&models, &schema, role);
        if apply {
            roles::apply(&db, &statements)
                .await
                .context("granting (run this as the role that owns the tables)")?;
        }
        Ok(statements)
    }
    .await;
    db.close().await;
    result
}

fn grants_json(role: &str, apply: bool, statements: &[String]) -> serde_json::Value {
    json!({"role": role, "applied": apply, "statements": statements})
}

fn print_grants(role: &str, apply: bool, statements: &[String]) {
    if apply {
        out!(
            "granted {role} the runtime's privileges ({} statements)",
            statements.len()
        );
    } else {
        for statement in statements {
            out!("{statement};");
        }
    }
}

async fn verify(source: &Source, url: &str, json: bool) -> anyhow::Result<Outcome> {
    let set = load(source, dialect_of(url)?)?;
    let db = open(url).await?;
    let result = set.verify(&db).await;
    db.close().await;
    let failure = result.err().map(|e| e.to_string());
    if json {
        out!(
            "{}",
            json!({"verified": failure.is_none(), "error": failure})
        );
    } else {
        match &failure {
            None => out!("migrations verified"),
            Some(e) => out!("verify failed: {e}"),
        }
    }
    Ok(if failure.is_none() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

fn hash(dir: &Path, check: bool, json: bool) -> anyhow::Result<Outcome> {
    let mut report = Vec::new();
    let mut ok = true;
    for dialect in Dialect::ALL {
        let sub = dir.join(dialect.as_str());
        if !sub.is_dir() {
            continue;
        }
        let set = MigrationSet::from_dir(dialect, &sub)?;
        if let Err(e) = set.check_ownership(&owned_namespaces()) {
            ok = false;
            report.push(json!({"dialect": dialect.as_str(), "ok": false, "error": e.to_string()}));
            if !json {
                out!("{}: {e}", sub.display());
            }
        }
        let sum_path = sub.join("plystra.sum");
        let computed = set.computed_sum().render();
        if check {
            let result = set.check_sum();
            if let Err(e) = &result {
                ok = false;
                report.push(
                    json!({"dialect": dialect.as_str(), "ok": false, "error": e.to_string()}),
                );
                if !json {
                    out!("{}: {e}", sum_path.display());
                }
            } else {
                report.push(json!({"dialect": dialect.as_str(), "ok": true}));
                if !json {
                    out!("{}: ok", sum_path.display());
                }
            }
        } else {
            let current = std::fs::read_to_string(&sum_path).unwrap_or_default();
            let changed = current != computed;
            if changed {
                std::fs::write(&sum_path, &computed)
                    .with_context(|| format!("write {}", sum_path.display()))?;
            }
            report.push(json!({"dialect": dialect.as_str(), "written": changed}));
            if !json {
                out!(
                    "{}: {}",
                    sum_path.display(),
                    if changed { "written" } else { "up to date" }
                );
            }
        }
    }
    if report.is_empty() {
        bail!("{} holds neither sqlite/ nor postgres/", dir.display());
    }
    if json {
        out!("{}", json!({"check": check, "dialects": report}));
    }
    Ok(if ok { Outcome::Ok } else { Outcome::Failed })
}

fn new(dir: &Path, namespace: &str, name: &str, json: bool) -> anyhow::Result<Outcome> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if !valid(namespace) || !valid(name) {
        eprintln!("error: namespace and name must be snake_case ([a-z0-9_]+)");
        return Ok(Outcome::Usage);
    }
    let owned = owned_namespaces();
    if !owned.contains(&namespace) {
        eprintln!(
            "warning: no linked capability owns namespace `{namespace}` (owned: {}); `migrate up` will refuse the file until one does",
            owned.join(", ")
        );
    }
    // One version across dialects, above the highest in any of them.
    let mut next = 1u64;
    let mut width = 4;
    for dialect in Dialect::ALL {
        let sub = dir.join(dialect.as_str());
        if sub.is_dir() {
            for entry in std::fs::read_dir(&sub)? {
                let file = entry?.file_name().to_string_lossy().into_owned();
                if let Some((version, _)) = parse_file_name(&file) {
                    width = width.max(version.len());
                    next = next.max(version.parse::<u64>().unwrap_or(0) + 1);
                }
            }
        }
    }
    let file = format!("{next:0width$}_{namespace}_{name}.sql");
    let mut created = Vec::new();
    for dialect in Dialect::ALL {
        let sub = dir.join(dialect.as_str());
        std::fs::create_dir_all(&sub)?;
        let path = sub.join(&file);
        std::fs::write(
            &path,
            format!(
                "-- {namespace}: {name} ({dialect}).\n-- Only CREATE/ALTER/DROP tables, indexes and triggers named `{namespace}_*`.\n"
            ),
        )?;
        let set = MigrationSet::from_dir(dialect, &sub)?;
        std::fs::write(sub.join("plystra.sum"), set.computed_sum().render())?;
        created.push(path.display().to_string());
    }
    if json {
        out!("{}", json!({"created": created}));
    } else {
        for path in &created {
            out!("created {path}");
        }
    }
    Ok(Outcome::Ok)
}
