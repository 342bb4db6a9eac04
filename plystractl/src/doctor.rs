//! `plystractl doctor`: one line per check, `name: ok|warn|fail — reason (fix: …)`; exit 1 when
//! any check fails.
//!
//! Checks: environment, configuration (the production guards plystrad enforces), database
//! connectivity (creating nothing: a SQLite file that is not there is reported), whether it takes
//! writes, SQLite's integrity check, whether a PostgreSQL login is a superuser and whether it is
//! a least-privilege runtime role (owns nothing; reads and inserts only on the audit log),
//! migrations (current and verified), schema drift, the audit log's hash chain (walked for a
//! bounded time), linked capabilities, and with
//! `--url` a live server's readiness and capabilities, read through the client generated from the
//! OpenAPI document (plain HTTP; put TLS in front of the server's loopback address, or run doctor
//! next to it).

use std::time::Duration;

use plystra_contracts::schema::linked_models;
use plystra_kernel::Environment;
use plystra_kernel::config_guards::{check_production, production_advice};
use plystra_kernel::storage::migrations::{
    FileState, MigrationSet, MigrationStatus, schema_version,
};
use plystra_kernel::storage::{
    self, Database, DatabaseConfig, Dialect, drift, probe, redact_url, roles,
};
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
pub async fn run(url: &str, server: Option<&str>, api_key: Option<String>, json: bool) -> Outcome {
    let env = |name: &str| std::env::var(name).ok();
    let mut checks = checks(url, &env).await;
    if let Some(server) = server {
        checks.extend(server_checks(server, api::key(api_key)).await);
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
    out.extend(database_checks(url, production).await);
    out.push(capabilities_check());
    out
}

/// `PLYSTRA_ENV` (development when unset), and whether it names production.
/// Read as plystrad reads it: blank is unset, and `dev`/`prod` and any case are accepted.
fn environment_check(env: &dyn Fn(&str) -> Option<String>) -> (Check, bool) {
    let Some(value) = env("PLYSTRA_ENV").filter(|v| !v.trim().is_empty()) else {
        return (Check::ok("environment", "development (unset)"), false);
    };
    match Environment::parse(&value) {
        Some(environment) => (
            Check::ok("environment", environment.as_str()),
            environment == Environment::Production,
        ),
        None => (
            Check::fail(
                "environment",
                format!("PLYSTRA_ENV={value} is neither development nor production"),
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
    let advice = production_advice(env)
        .into_iter()
        .filter(|_| production)
        .map(|a| {
            Check::warn(
                "configuration",
                format!("{}: {}", a.setting, a.problem),
                a.fix,
            )
        });
    let mut out = configuration_verdict(violations, production);
    out.extend(advice);
    out
}

/// The production guards' verdict: each violation a failure in production, all of them one
/// warning in development.
fn configuration_verdict(
    violations: Vec<plystra_kernel::config_guards::GuardViolation>,
    production: bool,
) -> Vec<Check> {
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
async fn database_checks(url: &str, production: bool) -> Vec<Check> {
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
    // Doctor creates nothing: a SQLite file that is not there is reported, not made.
    if let Some(file) = probe::sqlite_file(url)
        && !file.is_file()
    {
        return vec![Check::fail(
            "database",
            format!("{} does not exist", file.display()),
            "check PLYSTRA_DATABASE_URL (a new database is made by plystrad in development, or \
             by `plystractl migrate up`)",
        )];
    }
    // Nor does it open a file it cannot write: SQLite would make -wal/-shm files beside it.
    if let Some(file) = probe::sqlite_file(url)
        && let Some(reason) = probe::sqlite_unwritable(&file)
    {
        let skipped = |name| {
            Check::warn(
                name,
                "not checked: opening a database this user cannot write would make -wal and -shm \
                 files beside it",
                "fix the database writable check first",
            )
        };
        return vec![
            Check::ok("database", format!("{} exists", file.display())),
            Check::fail(
                "database writable",
                reason,
                "make the file and its directory writable by the user plystrad runs as, and run \
                 doctor as that user",
            ),
            skipped("migrations"),
            skipped("schema"),
            skipped("audit chain"),
        ];
    }
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
    let mut state = vec![writable_check(&db).await];
    state.extend(integrity_check(&db).await);
    state.extend(role_check(&db, production).await);
    let migrations = migrations_check(&db, dialect).await;
    let chain = if migrations.level == Level::Ok {
        audit_chain_check(&db, AUDIT_CHAIN_BUDGET).await
    } else {
        Check::warn(
            "audit chain",
            "not checked: the migrations are not current",
            "fix the migrations check first",
        )
    };
    let mut out = vec![Check::ok(
        "database",
        format!("{dialect} at {} answers", redact_url(url)),
    )];
    out.extend(state);
    out.extend([migrations, schema_check(&db).await, chain]);
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

/// Whether the database takes writes, tried without writing (`Database::check_writable`): a
/// read-only file or a full database fails here instead of as 500s or 503s once plystrad runs.
async fn writable_check(db: &Database) -> Check {
    match db.check_writable().await {
        Ok(()) => Check::ok("database writable", "takes writes"),
        Err(e) => {
            let fix = match e.unwritable_reason() {
                Some(plystra_contracts::storage::Unwritable::Full) => {
                    "free disk space (or raise the database's size limit)"
                }
                _ => {
                    "make the database (for SQLite: the file and its directory) writable by the \
                     user plystrad runs as, or point it at a primary rather than a standby"
                }
            };
            Check::fail("database writable", e.to_string(), fix)
        }
    }
}

/// SQLite's own integrity check of its pages.
async fn integrity_check(db: &Database) -> Option<Check> {
    match probe::integrity_problems(db).await {
        Ok(None) if db.dialect() == Dialect::Sqlite => {
            Some(Check::ok("database integrity", "quick_check: ok"))
        }
        Ok(None) => None,
        Ok(Some(problems)) => Some(Check::fail(
            "database integrity",
            format!("quick_check: {problems}"),
            "restore the database from a backup; do not start plystrad on it",
        )),
        Err(e) => Some(Check::fail(
            "database integrity",
            format!("quick_check could not run: {e}"),
            "restore the database from a backup; do not start plystrad on it",
        )),
    }
}

/// Whether the PostgreSQL login is a superuser (asked of the database, whatever the URL says):
/// a superuser can disable the audit log's append-only triggers. A failure in production, a
/// warning in development. For any other login, its privileges follow.
async fn role_check(db: &Database, production: bool) -> Vec<Check> {
    let check = match probe::login_role(db).await {
        Ok(None) => None,
        Ok(Some((role, false))) => {
            return vec![
                Check::ok("database role", format!("{role} is not a superuser")),
                privileges_check(db, production).await,
            ];
        }
        Ok(Some((role, true))) => {
            let reason = format!(
                "{role} is a superuser: it can disable the audit log's append-only triggers"
            );
            let fix = "connect as a dedicated role without SUPERUSER";
            Some(if production {
                Check::fail("database role", reason, fix)
            } else {
                Check::warn("database role", reason, fix)
            })
        }
        Err(e) => Some(Check::fail(
            "database role",
            format!("cannot read the login's role: {e}"),
            "check the database",
        )),
    };
    check.into_iter().collect()
}

/// Whether a (non-superuser) PostgreSQL login is a least-privilege runtime role: it owns no
/// table nor the schema (an owner can alter or drop the tables and disable the audit log's
/// triggers), holds what plystrad needs, and cannot update, delete, truncate or add triggers to
/// the audit log. Missing privileges fail anywhere (plystrad's writes would fail); ownership and
/// forbidden privileges fail in production and warn in development, where one role often does
/// everything.
async fn privileges_check(db: &Database, production: bool) -> Check {
    const NAME: &str = "database privileges";
    let findings = match roles::runtime_role_findings(db, &linked_models()).await {
        Ok(Some(findings)) => findings,
        Ok(None) => return Check::ok(NAME, "no roles on this backend"),
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot read the login's privileges: {e}"),
                "check the database",
            );
        }
    };
    let role = &findings.role;
    let grants = format!(
        "as the owner role: `plystractl --database-url <owner URL> migrate grants --role {role} \
         --apply` (README, \"Least privilege\")"
    );
    if !findings.missing.is_empty() {
        return Check::fail(
            NAME,
            format!("{role} lacks {}", list(&findings.missing)),
            grants,
        );
    }
    let mut excess = Vec::new();
    if let Some(schema) = &findings.owned_schema {
        excess.push(format!("owns the schema {schema}"));
    }
    if !findings.owned_tables.is_empty() {
        excess.push(format!(
            "owns {} of the tables ({})",
            findings.owned_tables.len(),
            list(&findings.owned_tables)
        ));
    }
    if !findings.forbidden.is_empty() {
        excess.push(format!("holds {}", list(&findings.forbidden)));
    }
    if excess.is_empty() {
        return Check::ok(
            NAME,
            format!(
                "{role} owns nothing, holds what plystrad needs, and can only read and insert on \
                 the audit log"
            ),
        );
    }
    let reason = format!(
        "{role} {}: it can rewrite the audit log or disable its triggers",
        excess.join("; ")
    );
    let fix = if findings.owned_schema.is_some() || !findings.owned_tables.is_empty() {
        format!(
            "run migrations as an owner role and plystrad as a role that owns nothing; then {grants}"
        )
    } else {
        grants
    };
    if production {
        Check::fail(NAME, reason, fix)
    } else {
        Check::warn(NAME, reason, fix)
    }
}

/// The first few of `items`, and how many more.
fn list(items: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

/// How long doctor walks the audit chain before it reports how far it got.
const AUDIT_CHAIN_BUDGET: Duration = Duration::from_secs(20);

/// The audit log's hash chain, walked as `plystractl audit verify` walks it for at most
/// `budget`: a broken link fails, naming the record; a walk cut short by the budget warns. On a
/// terminal, the count of records checked is shown as it goes.
async fn audit_chain_check(db: &Database, budget: Duration) -> Check {
    use std::io::{IsTerminal, Write};
    let started = std::time::Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let progress = |records: u64| {
        if terminal && started.elapsed() > Duration::from_secs(1) {
            let mut err = std::io::stderr();
            let _ = write!(err, "\raudit chain: {records} records checked…");
            let _ = err.flush();
        }
    };
    let verified =
        plystra_system_audit::store::verify_until(db, Some(started + budget), progress).await;
    if terminal && started.elapsed() > Duration::from_secs(1) {
        eprint!("\r\x1b[K");
    }
    match verified {
        Err(e) => Check::fail(
            "audit chain",
            format!("cannot read the audit log: {e}"),
            "check the database",
        ),
        Ok(v) => match v.first_broken {
            Some((seq, id, reason)) => {
                let at = if id.is_empty() {
                    format!("seq {seq}")
                } else {
                    format!("seq {seq} ({id})")
                };
                Check::fail(
                    "audit chain",
                    format!("broken at {at}: {reason}"),
                    "restore the audit log from a backup taken before the change, and find who \
                     could write to it (the append-only triggers were bypassed)",
                )
            }
            None if v.complete => {
                Check::ok("audit chain", format!("verified ({} records)", v.records))
            }
            None => Check::warn(
                "audit chain",
                format!(
                    "the first {} records verified in {}s; the rest not checked",
                    v.records,
                    budget.as_secs()
                ),
                "run `plystractl audit verify` for the whole chain",
            ),
        },
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

/// The fix line for a server that answers but is not ready, from the reasons it gives.
fn ready_fix(reasons: &str) -> &'static str {
    if reasons.contains("checksum mismatch") || reasons.contains("no migration file provides it") {
        "restore the applied migration files as they were (write changes as new migrations); \
         `plystractl migrate status` names them"
    } else if reasons.contains("pending") {
        "run `plystractl migrate up` to apply the pending migrations"
    } else if reasons.contains("DATABASE") || reasons.contains("database") {
        "the server cannot use its database: run `plystractl doctor` with the server's \
         PLYSTRA_DATABASE_URL, and check the database is running"
    } else {
        "fix the reasons it names; /api/v1/capabilities has each capability's state_reason"
    }
}

/// The fix line for a server that refused or failed a request made with the key from `source`.
fn answer_fix(error: &api::Error, source: &str) -> String {
    match api::status(error) {
        Some(401) => format!(
            "the key from {source} is not accepted: pass a valid managed key (ply_ak_…) with \
             --api-key or PLYSTRACTL_API_KEY (in production the bootstrap key is refused once a \
             super admin exists)"
        ),
        Some(403) => format!("give the key from {source} the capabilities:read permission"),
        Some(503) => ready_fix(&api::describe(error)).to_owned(),
        _ => "see the server's log for this request".to_owned(),
    }
}

/// Checks a running server through the generated client: `/api/v1/ready`, then
/// `/api/v1/capabilities` with the API key (`--api-key`, `PLYSTRACTL_API_KEY` or
/// `PLYSTRA_API_KEY`, with where it came from).
async fn server_checks(base: &str, key: Option<(String, &'static str)>) -> Vec<Check> {
    let base = base.trim_end_matches('/');
    let client = match api::client(base, key.as_ref().map(|(k, _)| k.as_str())) {
        Ok(client) => client,
        Err(e) => {
            return vec![Check::fail(
                "server",
                e,
                "check the URL and the API key (--api-key, PLYSTRACTL_API_KEY or PLYSTRA_API_KEY)",
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
        Err(e) => {
            let described = api::describe(&e);
            out.push(Check::fail(
                "server ready",
                format!("{base} {described}"),
                ready_fix(&described),
            ));
        }
    }
    let Some((_, source)) = key else {
        out.push(Check::warn(
            "server capabilities",
            "not checked: no API key",
            "pass --api-key or set PLYSTRACTL_API_KEY to a managed key with capabilities:read",
        ));
        return out;
    };
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
            answer_fix(&e, source),
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_read_as_plystrad_reads_it() {
        for (value, production) in [
            (None, false),
            (Some(""), false),
            (Some("dev"), false),
            (Some("Development"), false),
            (Some("prod"), true),
            (Some(" production "), true),
        ] {
            let env = |name: &str| {
                (name == "PLYSTRA_ENV")
                    .then(|| value.map(str::to_owned))
                    .flatten()
            };
            let (check, is_production) = environment_check(&env);
            assert_eq!(check.level, Level::Ok, "{value:?}: {}", check.line());
            assert_eq!(is_production, production, "{value:?}");
        }
        let env = |_: &str| Some("staging".to_owned());
        assert_eq!(environment_check(&env).0.level, Level::Fail);
    }

    #[test]
    fn a_not_ready_server_gets_the_fix_its_reasons_call_for() {
        assert!(ready_fix("0003_x.sql: checksum mismatch: the file changed").contains("restore"));
        assert!(ready_fix("2 pending migrations").contains("migrate up"));
        assert!(ready_fix("answers 503: DATABASE_UNAVAILABLE cannot connect").contains("database"));
        assert!(!ready_fix("answers 503: DATABASE_UNAVAILABLE").contains("API_KEY"));
    }

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
