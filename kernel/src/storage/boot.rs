//! The database's part of the boot: open it, apply pending migrations in development only, and
//! report the schema to readiness. Production never migrates implicitly: `/api/v1/ready` names
//! the pending files and the command that applies them.

use std::sync::Arc;

use crate::config::Environment;
use crate::runtime::{ReadinessProbe, Runtime};
use crate::storage::migrations::{MigrationSet, SchemaState};
use crate::storage::{ConnectError, Database, DatabaseConfig, redact_url};

/// What the boot found.
#[derive(Debug)]
pub struct PreparedDatabase {
    /// The open handle, when the database could be reached.
    pub database: Option<Database>,
    /// The readiness probe to register.
    pub probe: Arc<SchemaProbe>,
    /// The schema state, when migrating read it (the probe need not read it again).
    pub state: Option<SchemaState>,
}

/// Takes the database `config` names as opened (`connected`, what
/// [`crate::storage::connect`] returned: the boot opens it while it validates the manifests)
/// and, in development, applies what is pending for `namespaces`. Problems never stop the
/// boot; the probe reports them.
pub async fn prepare(
    config: &DatabaseConfig,
    connected: Result<Database, ConnectError>,
    environment: Environment,
    namespaces: &[&str],
) -> PreparedDatabase {
    let url = redact_url(&config.url);
    let database = match connected {
        Ok(db) => db,
        Err(e) => {
            tracing::error!(step = "database", %url, error = %e, "database unreachable");
            let problem = format!("database unreachable ({url}): {e}; check PLYSTRA_DATABASE_URL");
            return PreparedDatabase {
                database: None,
                probe: Arc::new(SchemaProbe {
                    db: None,
                    set: None,
                    fixed: Some(problem),
                }),
                state: None,
            };
        }
    };
    let set = MigrationSet::embedded(database.dialect());
    tracing::info!(step = "database", %url, dialect = %database.dialect(), "database open");
    let mut state = None;
    if environment == Environment::Development {
        match set.apply_pending_then_state(&database, namespaces).await {
            Ok((applied, after)) => {
                for a in &applied {
                    tracing::info!(step = "migrate", version = %a.version, name = %a.stem, ms = a.execution_ms, "applied migration");
                }
                state = Some(after);
            }
            Err(e) => {
                tracing::error!(step = "migrate", error = %e, "migrations could not be applied")
            }
        }
    }
    PreparedDatabase {
        database: Some(database.clone()),
        probe: Arc::new(SchemaProbe {
            db: Some(database),
            set: Some(set),
            fixed: None,
        }),
        state,
    }
}

/// Reports the database and schema to readiness, and keeps the runtime's schema versions current.
#[derive(Debug)]
pub struct SchemaProbe {
    db: Option<Database>,
    set: Option<MigrationSet>,
    fixed: Option<String>,
}

impl SchemaProbe {
    /// The schema state, or why it cannot be read.
    pub async fn state(&self) -> Result<SchemaState, String> {
        if let Some(problem) = &self.fixed {
            return Err(problem.clone());
        }
        let (Some(db), Some(set)) = (&self.db, &self.set) else {
            return Err("no database".to_owned());
        };
        // The ledger's read shows that the database answers; the ping only tells an unreachable
        // database from a schema problem once that read has failed.
        match set.schema_state(db).await {
            Ok(state) => Ok(state),
            Err(e) => match db.ping().await {
                Err(unreachable) => Err(format!("database unreachable: {unreachable}")),
                Ok(()) => Err(format!("schema: {e}")),
            },
        }
    }

    /// Records the versions in the runtime and says what is wrong, if anything.
    pub async fn refresh(&self, runtime: &Runtime) -> Option<String> {
        match self.state().await {
            Ok(state) => record(&state, runtime),
            Err(problem) => Some(problem),
        }
    }
}

/// Records `state`'s versions in the runtime and says what is pending, if anything.
pub fn record(state: &SchemaState, runtime: &Runtime) -> Option<String> {
    runtime.set_schema_versions(
        state
            .schema_version
            .clone()
            .unwrap_or_else(|| "none".to_owned()),
        state
            .expected_schema_version
            .clone()
            .unwrap_or_else(|| "none".to_owned()),
    );
    (!state.is_current()).then(|| {
        format!(
            "migrations pending: {}; run `plystractl migrate up`",
            state.pending.join(", ")
        )
    })
}

/// The probe as the runtime sees it, bound to the runtime whose versions it updates.
pub(crate) struct BoundProbe {
    pub(crate) probe: Arc<SchemaProbe>,
    pub(crate) runtime: std::sync::Weak<Runtime>,
}

#[async_trait::async_trait]
impl ReadinessProbe for BoundProbe {
    async fn problem(&self) -> Option<String> {
        let runtime = self.runtime.upgrade()?;
        self.probe.refresh(&runtime).await
    }

    fn subject(&self) -> &'static str {
        "database (unreachable or overloaded)"
    }
}
