//! `plystractl doctor`: one line per check, `name: ok|warn|fail — reason (fix: …)`; exit 1 when
//! any check fails.
//!
//! Checks: environment, configuration (the production guards plystrad enforces), database
//! connectivity, migrations (current and verified), schema drift, linked capabilities, and with
//! `--url` a live server's readiness and capabilities, read through the client generated from the
//! OpenAPI document (plain HTTP; put TLS in front of the server's loopback address, or run doctor
//! next to it).

use std::time::Duration;

use plystra_contracts::schema::linked_models;
use plystra_kernel::config_guards::check_production;
use plystra_kernel::storage::migrations::{
    FileState, MigrationSet, MigrationStatus, schema_version,
};
use plystra_kernel::storage::{self, Database, DatabaseConfig, Dialect, drift, redact_url};
use serde_json::json;

use crate::cli::{dialect_of, owned_namespaces};
use crate::{Outcome, api};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
struct Check {
    name: &'static str,
    level: Level,
    reason: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            level: Level::Ok,
            reason: reason.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            level: Level::Warn,
            reason: reason.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            level: Level::Fail,
            reason: reason.into(),
            fix: Some(fix.into()),
        }
    }

    fn line(&self) -> String {
        match &self.fix {
            Some(fix) => format!(
                "{}: {} — {} (fix: {fix})",
                self.name,
                self.level.as_str(),
                self.reason
            ),
            None => format!("{}: {} — {}", self.name, self.level.as_str(), self.reason),
        }
    }
}

/// Runs every check and prints the report.
pub async fn run(url: &str, server: Option<&str>, json: bool) -> Outcome {
    let env = |name: &str| std::env::var(name).ok();
    let mut checks = checks(url, &env).await;
    if let Some(server) = server {
        checks.extend(server_checks(server, env("PLYSTRA_API_KEY")).await);
    }
    if json {
        let list: Vec<_> = checks
            .iter()
            .map(|c| json!({"name": c.name, "status": c.level.as_str(), "reason": c.reason, "fix": c.fix}))
            .collect();
        out!(
            "{}",
            json!({"ok": !checks.iter().any(|c| c.level == Level::Fail), "checks": list})
        );
    } else {
        for c in &checks {
            out!("{}", c.line());
        }
    }
    if checks.iter().any(|c| c.level == Level::Fail) {
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}

/// The local checks, in report order: environment, configuration, database, migrations, schema,
/// capabilities.
async fn checks(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<Check> {
    let (environment, production) = environment_check(env);
    let mut out = vec![environment];
    out.extend(configuration_checks(env, production));
    out.extend(database_checks(url).await);
    out.push(capabilities_check());
    out
}

/// `PLYSTRA_ENV` (development when unset), and whether it names production.
fn environment_check(env: &dyn Fn(&str) -> Option<String>) -> (Check, bool) {
    let environment = env("PLYSTRA_ENV").unwrap_or_else(|| "development".to_owned());
    match environment.as_str() {
        "production" => (Check::ok("environment", environment), true),
        "development" => (Check::ok("environment", environment), false),
        other => (
            Check::fail(
                "environment",
                format!("PLYSTRA_ENV={other} is neither development nor production"),
                "set PLYSTRA_ENV to development or production",
            ),
            false,
        ),
    }
}

/// The production guards plystrad enforces: each violation fails in production, and all of them
/// are one warning in development.
fn configuration_checks(env: &dyn Fn(&str) -> Option<String>, production: bool) -> Vec<Check> {
    let violations = check_production(env);
    if violations.is_empty() {
        vec![Check::ok("configuration", "production guards pass")]
    } else if production {
        violations
            .iter()
            .map(|v| {
                Check::fail(
                    "configuration",
                    format!("{}: {}", v.setting, v.problem),
                    v.fix.clone(),
                )
            })
            .collect()
    } else {
        let settings: Vec<&str> = violations.iter().map(|v| v.setting).collect();
        vec![Check::warn(
            "configuration",
            format!(
                "development mode; {} production guard(s) would fail: {}",
                violations.len(),
                settings.join(", ")
            ),
            "set them before running with PLYSTRA_ENV=production",
        )]
    }
}

/// The capabilities linked into this binary.
fn capabilities_check() -> Check {
    let linked = plystra_contracts::registration::linked().count();
    if linked == 0 {
        Check::fail(
            "capabilities",
            "no capabilities are linked into this binary",
            "build plystractl with the system bundle",
        )
    } else {
        Check::ok("capabilities", format!("{linked} linked"))
    }
}

/// The database answers; then its migrations and schema (both skipped, as warnings, when it
/// does not).
async fn database_checks(url: &str) -> Vec<Check> {
    let dialect = match dialect_of(url) {
        Ok(d) => d,
        Err(e) => {
            return vec![Check::fail(
                "database",
                format!("{e:#}"),
                "set PLYSTRA_DATABASE_URL to sqlite://… or postgres://…",
            )];
        }
    };
    let mut config = DatabaseConfig::new(url);
    config.acquire_timeout = Duration::from_secs(3);
    let db = match storage::connect(&config).await {
        Ok(db) => db,
        Err(e) => {
            return vec![
                Check::fail(
                    "database",
                    e.to_string(),
                    "check PLYSTRA_DATABASE_URL and that the database is running and reachable",
                ),
                Check::warn(
                    "migrations",
                    "not checked: the database is unreachable",
                    "fix the database check first",
                ),
                Check::warn(
                    "schema",
                    "not checked: the database is unreachable",
                    "fix the database check first",
                ),
            ];
        }
    };
    let out = vec![
        Check::ok(
            "database",
            format!("{dialect} at {} answers", redact_url(url)),
        ),
        migrations_check(&db, dialect).await,
        schema_check(&db).await,
    ];
    db.close().await;
    out
}

/// The embedded migrations: owned by their namespaces, verified against the ledger, none
/// pending.
async fn migrations_check(db: &Database, dialect: Dialect) -> Check {
    let set = MigrationSet::embedded(dialect);
    let expected = set.expected_schema_version().unwrap_or("none").to_owned();
    match (
        set.check_ownership(&owned_namespaces()),
        set.status(db).await,
        set.verify(db).await,
    ) {
        (Err(e), _, _) => Check::fail(
            "migrations",
            e.to_string(),
            "fix the migration files' namespaces",
        ),
        (_, Err(e), _) => Check::fail("migrations", e.to_string(), "check the database"),
        (_, _, Err(e)) => Check::fail(
            "migrations",
            e.to_string(),
            "restore the applied migration files as they were; write changes as new migrations",
        ),
        (Ok(_), Ok(status), Ok(())) => pending_check(db, &status, &expected).await,
    }
}

/// Current (with the schema version) when no migration is pending; a failure naming the
/// pending files otherwise.
async fn pending_check(db: &Database, status: &[MigrationStatus], expected: &str) -> Check {
    let pending: Vec<&str> = status
        .iter()
        .filter(|s| s.state == FileState::Pending)
        .map(|s| s.file.as_str())
        .collect();
    if pending.is_empty() {
        let version = schema_version(db)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| "none".to_owned());
        Check::ok(
            "migrations",
            format!("current and verified (schema version {version})"),
        )
    } else {
        Check::fail(
            "migrations",
            format!(
                "{} pending of {} (expected schema version {expected}): {}",
                pending.len(),
                status.len(),
                pending.join(", ")
            ),
            "run `plystractl migrate up`",
        )
    }
}

/// The live schema against the linked capabilities' table models.
async fn schema_check(db: &Database) -> Check {
    let models = linked_models();
    match drift::check(db, &models).await {
        Err(e) => Check::fail(
            "schema",
            format!("cannot read the live schema: {e}"),
            "check the database",
        ),
        Ok(drifts) if drifts.is_empty() => {
            let tables: usize = models.iter().map(|m| m.tables.len()).sum();
            Check::ok(
                "schema",
                format!("no drift across {tables} modelled tables"),
            )
        }
        Ok(drifts) => Check::fail(
            "schema",
            format!("{} difference(s), first: {}", drifts.len(), drifts[0]),
            "run `plystractl ent check` for the list; apply pending migrations or remove manual changes",
        ),
    }
}

/// Checks a running server through the generated client: `/api/v1/ready`, then
/// `/api/v1/capabilities` with the API key.
async fn server_checks(base: &str, key: Option<String>) -> Vec<Check> {
    let base = base.trim_end_matches('/');
    let key = key.filter(|k| !k.is_empty());
    let client = match api::client(base, key.as_deref()) {
        Ok(client) => client,
        Err(e) => {
            return vec![Check::fail(
                "server",
                e,
                "check the URL and PLYSTRA_API_KEY",
            )];
        }
    };
    let mut out = Vec::new();
    match client.get_readiness().await {
        Ok(ready) => out.push(Check::ok(
            "server ready",
            format!("{base} is ready (schema {})", ready.data.schema_version),
        )),
        Err(e @ api::Error::CommunicationError(_)) => out.push(Check::fail(
            "server ready",
            format!("{base} {}", api::describe(&e)),
            "start plystrad, or pass the URL it listens on (http://host:port)",
        )),
        Err(e) => out.push(Check::fail(
            "server ready",
            format!("{base} {}", api::describe(&e)),
            "fix the reasons it names; `plystractl migrate up` applies pending migrations",
        )),
    }
    if key.is_none() {
        out.push(Check::warn(
            "server capabilities",
            "not checked: PLYSTRA_API_KEY is not set",
            "export PLYSTRA_API_KEY to let doctor read /api/v1/capabilities",
        ));
        return out;
    }
    match client.list_capabilities().await {
        Ok(list) => {
            let not_ready: Vec<String> = list
                .data
                .iter()
                .filter(|c| c.state != api::types::CapabilityState::Ready)
                .map(|c| format!("{} is {}", c.id, c.state))
                .collect();
            if not_ready.is_empty() {
                out.push(Check::ok(
                    "server capabilities",
                    format!("{} capabilities, all ready", list.data.len()),
                ));
            } else {
                out.push(Check::fail(
                    "server capabilities",
                    not_ready.join("; "),
                    "see each capability's state_reason in /api/v1/capabilities",
                ));
            }
        }
        Err(e @ api::Error::CommunicationError(_)) => out.push(Check::fail(
            "server capabilities",
            format!("{base} {}", api::describe(&e)),
            "start plystrad",
        )),
        Err(e) => out.push(Check::fail(
            "server capabilities",
            format!("{base} {}", api::describe(&e)),
            "check that PLYSTRA_API_KEY is a valid key with capabilities:read",
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_report_format() {
        assert_eq!(
            Check::ok("database", "answers").line(),
            "database: ok — answers"
        );
        assert_eq!(
            Check::fail("migrations", "2 pending", "run `plystractl migrate up`").line(),
            "migrations: fail — 2 pending (fix: run `plystractl migrate up`)"
        );
    }
}
