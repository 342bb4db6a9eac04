//! `plystractl backup create|verify`: a consistent copy of the database taken while plystrad runs
//! (SQLite: `VACUUM INTO`; PostgreSQL: `pg_dump --format=custom`), and its check: the copy opens,
//! its migrations match this build's files, SQLite's integrity check passes, and its audit chain
//! verifies. A PostgreSQL dump is checked by restoring it into a scratch database on the server
//! `--database-url` names, which is dropped afterwards.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use plystra_kernel::storage::migrations::{FileState, MigrationSet};
use plystra_kernel::storage::{Database, Dialect, probe, redact_url};
use plystra_system_audit::store;

use crate::Outcome;
use crate::cli::{dialect_of, open};

/// Writes a copy of the database at `url` to `output`, which must not exist.
pub async fn create(url: &str, output: &Path) -> anyhow::Result<Outcome> {
    if output.exists() {
        bail!(
            "{} exists: a backup never overwrites a file",
            output.display()
        );
    }
    match dialect_of(url)? {
        Dialect::Sqlite => {
            let db = open(url).await?;
            probe::sqlite_copy_to(&db, output)
                .await
                .with_context(|| format!("copying into {}", output.display()))?;
            db.close().await;
        }
        Dialect::Postgres => {
            let status = Command::new("pg_dump")
                .args(["--format=custom", "--no-owner", "--file"])
                .arg(output)
                .arg(url)
                .status();
            match status {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "pg_dump is not installed: install the PostgreSQL client tools (the server's \
                     major version or newer), or back up with your own PostgreSQL tooling"
                ),
                Err(e) => bail!("running pg_dump: {e}"),
                Ok(status) if !status.success() => bail!("pg_dump failed ({status})"),
                Ok(_) => {}
            }
        }
    }
    eprintln!(
        "backup of {} written to {}",
        redact_url(url),
        output.display()
    );
    Ok(Outcome::Ok)
}

/// Checks the backup at `file`: a SQLite file by itself, a PostgreSQL dump restored into a
/// scratch database on the server `url` names.
pub async fn verify(url: &str, file: &Path, json: bool) -> anyhow::Result<Outcome> {
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    match dialect_of(url)? {
        Dialect::Sqlite => {
            let copy = format!("sqlite://{}", file.display());
            let db = open(&copy).await?;
            let outcome = report(&db, json).await;
            db.close().await;
            outcome
        }
        Dialect::Postgres => {
            let scratch = format!(
                "plystra_backup_check_{}_{}",
                std::process::id(),
                time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
            );
            let admin = open(url).await?;
            probe::create_database(&admin, &scratch).await.context(
                "backup verify restores the dump into a scratch database: run it as a role \
                     that may create databases (CREATEDB), not as plystrad's runtime role",
            )?;
            let scratch_url = with_database(url, &scratch);
            let restored = Command::new("pg_restore")
                .args(["--no-owner", "--exit-on-error", "--dbname"])
                .arg(&scratch_url)
                .arg(file)
                .status();
            let outcome = match restored {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(anyhow::anyhow!(
                    "pg_restore is not installed: install the PostgreSQL client tools"
                )),
                Err(e) => Err(anyhow::anyhow!("running pg_restore: {e}")),
                Ok(status) if !status.success() => Err(anyhow::anyhow!(
                    "pg_restore failed ({status}): the dump is not a restorable PostgreSQL backup"
                )),
                Ok(_) => {
                    let db = open(&scratch_url).await?;
                    let outcome = report(&db, json).await;
                    db.close().await;
                    outcome
                }
            };
            probe::drop_database(&admin, &scratch).await?;
            admin.close().await;
            outcome
        }
    }
}

/// `url` naming the database `name` on the same server.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |at| {
        at + 3 + base[at + 3..].find('/').unwrap_or(base.len() - at - 3)
    });
    let server = &base[..authority_end];
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// The copy's migrations, integrity and audit chain, one line each; failed when any fails.
async fn report(db: &Database, json: bool) -> anyhow::Result<Outcome> {
    let set = MigrationSet::embedded(db.dialect());
    let migrations = match (set.verify(db).await, set.status(db).await) {
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(e.to_string()),
        (Ok(()), Ok(status)) => {
            let applied = status
                .iter()
                .filter(|s| s.state == FileState::Applied)
                .count();
            let pending = status.len() - applied;
            Ok(format!(
                "{applied} applied and verified, {pending} newer in this build"
            ))
        }
    };
    let integrity = match probe::integrity_problems(db).await {
        Ok(None) => Ok("ok".to_owned()),
        Ok(Some(problems)) => Err(problems),
        Err(e) => Err(e.to_string()),
    };
    let chain = match store::verify(db).await {
        Ok(v) => match v.first_broken {
            None => Ok(format!("verified ({} records)", v.records)),
            Some((seq, id, reason)) => Err(format!("broken at seq {seq} ({id}): {reason}")),
        },
        Err(e) => Err(e.to_string()),
    };
    let checks = [
        ("migrations", migrations),
        ("integrity", integrity),
        ("audit chain", chain),
    ];
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    if json {
        let list: Vec<_> = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(text) => serde_json::json!({"name": name, "status": "ok", "reason": text}),
                Err(text) => serde_json::json!({"name": name, "status": "fail", "reason": text}),
            })
            .collect();
        out!("{}", serde_json::json!({"ok": ok, "checks": list}));
    } else {
        for (name, r) in &checks {
            match r {
                Ok(text) => out!("backup {name}: ok — {text}"),
                Err(text) => out!("backup {name}: fail — {text}"),
            }
        }
    }
    Ok(if ok { Outcome::Ok } else { Outcome::Failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_pointed_at_another_database_on_the_same_server() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/plystra?sslmode=require", "x"),
            "postgres://u:p@h:5432/x?sslmode=require"
        );
        assert_eq!(with_database("postgres://u@h/db", "x"), "postgres://u@h/x");
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
