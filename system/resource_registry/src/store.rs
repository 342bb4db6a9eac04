//! The registry's handle on the services it uses (the database, the audit recorder, the event
//! substrate), the audited-mutation protocol every write follows, and the table and column names.
//!
//! A mutation opens a transaction, writes, reads its own result back, hands the audit recorder a
//! record (`plystra_contracts::entity::change_record`: the caller and the state after) in the
//! same transaction and commits; an audit failure rolls everything back and answers
//! 503 `AUDIT_UNAVAILABLE`. Only after the commit is `resource.registry_updated` published.

use std::sync::Arc;

use plystra_contracts::events::{Event, EventPublisher};
use plystra_contracts::services::{AuditRecorder, Caller};
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query};
use plystra_contracts::storage::{Database, Transaction};
use plystra_contracts::{ApiError, ErrorCode, ServiceRegistry};

use crate::ID;

/// The event published after every committed registry change.
pub const REGISTRY_UPDATED: &str = "resource.registry_updated";

/// Table names.
pub(crate) mod table {
    use plystra_system_schema::{identity, resource};

    pub const TYPES: &str = resource::RESOURCE_TYPES.name;
    pub const ACTIONS: &str = resource::RESOURCE_ACTIONS.name;
    pub const MAPPINGS: &str = resource::RESOURCE_MAPPINGS.name;
    pub const RESOURCES: &str = resource::RESOURCES.name;
    /// Identity's tables a resource's group and owner live in, joined and checked through the
    /// shared schema.
    pub const SPACES: &str = identity::SPACES.name;
    pub const GROUPS: &str = identity::GROUPS.name;
    pub const MEMBERS: &str = identity::MEMBERS.name;
}

pub(crate) use plystra_contracts::entity::{col, name};

/// What changed, for the audit record and the event.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The audit event type (`resource_types.upsert`, `resources.create`, …).
    pub event_type: &'static str,
    /// The audit action (`resource_actions.upsert`, …).
    pub action: &'static str,
    /// The entity kind in the event payload (`resource_type`, `resource_action`, …).
    pub entity: &'static str,
    /// `created`, `updated` or `archived`.
    pub change: &'static str,
    /// The space, for resources.
    pub space_id: Option<String>,
    /// The resource type's key.
    pub resource_type: String,
    /// The changed entity's ID.
    pub resource_id: String,
    /// The entity after the change.
    pub snapshot: serde_json::Value,
    /// What authorization's index learns from the change.
    pub facts: Vec<plystra_contracts::facts::Fact>,
}

/// The services the registry works with. Each is optional so the capability boots (and serves
/// its vocabulary) without a database; operations that need a missing one answer 503.
#[derive(Clone)]
pub struct Registry {
    db: Option<Arc<Database>>,
    audit: Option<Arc<dyn AuditRecorder>>,
    events: Option<Arc<dyn EventPublisher>>,
    feed: Option<Arc<dyn plystra_contracts::feed::FactsFeed>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("database", &self.db.as_ref().map(|d| d.dialect()))
            .field("audit", &self.audit.is_some())
            .field("events", &self.events.is_some())
            .finish()
    }
}

impl Registry {
    /// The registry over whatever of its services `services` holds.
    pub fn from_services(services: &ServiceRegistry) -> Self {
        Self {
            db: services.require::<Database>().ok(),
            audit: services.require::<dyn AuditRecorder>().ok(),
            events: services.require::<dyn EventPublisher>().ok(),
            feed: services
                .require::<dyn plystra_contracts::feed::FactsFeed>()
                .ok(),
        }
    }

    /// A registry over explicit services (tests).
    pub fn new(
        db: Option<Arc<Database>>,
        audit: Option<Arc<dyn AuditRecorder>>,
        events: Option<Arc<dyn EventPublisher>>,
    ) -> Self {
        Self {
            db,
            audit,
            events,
            feed: None,
        }
    }

    /// The database, or 503 when none is configured.
    pub(crate) fn db(&self) -> Result<&Database, ApiError> {
        self.db.as_deref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::DatabaseUnavailable,
                "no database is configured for the resource registry",
            )
        })
    }

    /// Opens the transaction of an audited mutation. Fails closed (503) before writing anything
    /// when the audit recorder is missing.
    pub(crate) async fn begin(&self) -> Result<Mutation, ApiError> {
        let audit = self.audit.clone().ok_or_else(|| {
            ApiError::new(
                ErrorCode::AuditUnavailable,
                "the audit recorder is not available, so no change is made",
            )
        })?;
        let tx = self.db()?.begin().await?;
        Ok(Mutation { tx, audit })
    }

    /// Publishes `resource.registry_updated` for a committed change.
    fn publish(events: Option<&Arc<dyn EventPublisher>>, change: &Change) {
        if let Some(events) = events {
            events.publish(Event {
                name: REGISTRY_UPDATED.to_owned(),
                source: ID.to_owned(),
                payload: serde_json::json!({
                    "entity": change.entity,
                    "change": change.change,
                    "resource_type": change.resource_type,
                    "id": change.resource_id,
                    "space_id": change.space_id,
                    "data": change.snapshot,
                    "facts": plystra_contracts::facts::facts_value(&change.facts),
                }),
            });
        }
    }

    /// Records `change` in the mutation's transaction, commits, then publishes the event.
    pub(crate) async fn commit(
        &self,
        mutation: Mutation,
        caller: Caller<'_>,
        change: Change,
    ) -> Result<(), ApiError> {
        let Mutation { tx, audit } = mutation;
        let mut record = plystra_contracts::entity::change_record(
            caller,
            change.action,
            &change.resource_type,
            &change.resource_id,
            change.space_id.as_deref(),
            change.snapshot.clone(),
        );
        record.event_type = change.event_type.to_owned();
        let events = self.events.clone();
        let facts = change.facts.clone();
        plystra_contracts::feed::commit_audited(
            tx,
            audit.as_ref(),
            vec![record],
            facts,
            self.feed.as_ref(),
            move || Self::publish(events.as_ref(), &change),
        )
        .await?;
        Ok(())
    }
}

/// Whether `e` is a unique violation raised by the database rather than by the registry's own
/// checks (which always name a `field`): a concurrent writer inserted the same key first.
fn is_insert_race(e: &ApiError) -> bool {
    e.code == ErrorCode::Conflict && !e.details.contains_key("field")
}

/// Runs an upsert, and once more when a concurrent writer inserted the same key first.
/// PostgreSQL reports that race as a unique violation; the second attempt finds the row and
/// updates it, so concurrent upserts of one key all succeed.
pub(crate) async fn retry_insert_race<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    match attempt().await {
        Err(e) if is_insert_race(&e) => attempt().await,
        other => other,
    }
}

/// An open audited mutation.
pub(crate) struct Mutation {
    /// The transaction every statement of the mutation runs in.
    pub tx: Transaction,
    audit: Arc<dyn AuditRecorder>,
}

/// Whether the space exists (and is not deleted).
pub(crate) async fn space_exists(tx: &mut Transaction, space_id: &str) -> Result<bool, ApiError> {
    let q = Query::select()
        .column(name("id"))
        .from(name(table::SPACES))
        .and_where(Expr::col(name("id")).eq(space_id))
        .and_where(Expr::col(name("deleted_at")).is_null())
        .to_owned();
    Ok(tx.fetch_optional::<(String,), _>(&q).await?.is_some())
}

/// Checks that `id` names a live row of `table` (a group or a member) in `space_id`: 404 with
/// `not_found` when it names nothing, 400 naming `field` when it lives in another space.
pub(crate) async fn same_space(
    tx: &mut Transaction,
    table: &str,
    field: &str,
    id: &str,
    space_id: &str,
    not_found: ErrorCode,
) -> Result<(), ApiError> {
    let q = Query::select()
        .column(name("space_id"))
        .from(name(table))
        .and_where(Expr::col(name("id")).eq(id))
        .and_where(Expr::col(name("deleted_at")).is_null())
        .to_owned();
    let found: Vec<(String,)> = tx.fetch_all(&q).await?;
    if found.is_empty() {
        let entity = if table == table::GROUPS {
            "group"
        } else {
            "member"
        };
        return Err(
            ApiError::new(not_found, format!("no {entity} has the ID {id:?}"))
                .with_detail("field", field)
                .with_detail("id", id),
        );
    }
    if found.iter().any(|(s,)| s == space_id) {
        return Ok(());
    }
    // A well-formed reference to a record of another space contradicts the resource's space: a
    // conflict, as a cross-space reference is for grants.
    Err(ApiError::new(
        plystra_contracts::ErrorCode::Conflict,
        format!(
            "{field}: {id:?} belongs to another space than the resource's space {space_id:?}; a resource's group and owner must be in its space"
        ),
    )
    .with_detail("field", field))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use plystra_contracts::events::Event;
    use plystra_contracts::services::{AuditRecord, AuditUnavailable, ResolveError};
    use plystra_contracts::storage::sqlx::sqlite::SqlitePoolOptions;
    use plystra_contracts::storage::sqlx::{self, AssertSqlSafe};

    use super::*;
    use crate::resource_types::ResourceTypeMutationRequest;
    use plystra_contracts::services::Credential;
    use plystra_contracts::services::ResourceLookup;
    use poem_openapi::types::MaybeUndefined;

    /// The registry's schema, from the migration files, in one in-memory SQLite database.
    async fn database() -> Arc<Database> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        for sql in [
            include_str!("../../../migrations/sqlite/0002_sys_identity_init.sql"),
            include_str!("../../../migrations/sqlite/0003_sys_resource_init.sql"),
            include_str!("../../../migrations/sqlite/0020_sys_resource_registry.sql"),
            include_str!("../../../migrations/sqlite/0030_plystra_feed_init.sql"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        Arc::new(Database::Sqlite(pool))
    }

    #[derive(Default)]
    struct Recorder {
        refuse: bool,
        records: Mutex<Vec<AuditRecord>>,
    }

    #[async_trait::async_trait]
    impl AuditRecorder for Recorder {
        async fn record(&self, _: AuditRecord) -> Result<Option<String>, AuditUnavailable> {
            unreachable!("mutations record in their transaction")
        }
        async fn record_in(
            &self,
            _tx: &mut Transaction,
            record: AuditRecord,
        ) -> Result<String, AuditUnavailable> {
            if self.refuse {
                return Err(AuditUnavailable("the disk is full".to_owned()));
            }
            self.records.lock().unwrap().push(record);
            Ok("audit_1".to_owned())
        }
    }

    #[derive(Default)]
    struct Events(Mutex<Vec<Event>>);

    impl EventPublisher for Events {
        fn publish(&self, event: Event) {
            self.0.lock().unwrap().push(event);
        }
        fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
            tokio::sync::broadcast::channel(1).1
        }
        fn observe(&self, _observer: plystra_contracts::events::EventObserver) {}
    }

    fn invoice() -> ResourceTypeMutationRequest {
        ResourceTypeMutationRequest {
            id: None,
            key: "invoice".to_owned(),
            display_name: None,
            description: MaybeUndefined::Undefined,
            status: None,
            source: None,
            metadata: None,
        }
    }

    async fn type_count(db: &Database) -> i64 {
        let q = Query::select()
            .expr(Expr::col(name("id")).count())
            .from(name(table::TYPES))
            .to_owned();
        db.fetch_one::<(i64,), _>(&q).await.unwrap().0
    }

    #[tokio::test]
    async fn a_mutation_commits_with_its_audit_record_then_publishes() {
        let db = database().await;
        let audit = Arc::new(Recorder::default());
        let events = Arc::new(Events::default());
        let registry = Registry::new(Some(db.clone()), Some(audit.clone()), Some(events.clone()));
        let alice = Credential::Session {
            user_id: "user_alice".to_owned(),
            session_id: "ses_1".to_owned(),
        };
        let caller = Caller {
            credential: Some(&alice),
            request_id: "req_1",
        };
        let (created, t) = registry.upsert_type(caller, invoice()).await.unwrap();
        assert!(created);
        assert_eq!(type_count(&db).await, 1);

        let records = audit.records.lock().unwrap().clone();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.event_type, "resource_types.upsert");
        assert_eq!(r.request_id, "req_1");
        assert_eq!(r.actor_user_id.as_deref(), Some("user_alice"));
        assert_eq!(r.resource_type.as_deref(), Some("invoice"));
        assert_eq!(r.resource_id.as_deref(), Some(t.id.as_str()));
        assert_eq!(r.decision.as_deref(), Some("allow"));
        assert_eq!(r.trace["caller"]["kind"], "session");
        assert_eq!(r.trace["caller"]["user_id"], "user_alice");
        assert_eq!(r.trace["after"]["resource_type"]["key"], "invoice");

        let published = events.0.lock().unwrap().clone();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].name, REGISTRY_UPDATED);
        assert_eq!(published[0].source, ID);
        assert_eq!(published[0].payload["entity"], "resource_type");
        assert_eq!(published[0].payload["change"], "created");
        assert_eq!(published[0].payload["data"]["resource_type"]["id"], t.id);
    }

    #[tokio::test]
    async fn a_plugin_names_its_request_and_a_bad_one_is_refused_by_name() {
        use plystra_contracts::services::{NewResource, ResourceRegistrar};
        let db = database().await;
        let audit = Arc::new(Recorder::default());
        let registry = Registry::new(Some(db.clone()), Some(audit.clone()), None);
        for bad in ["", "  ", "req_\u{0}1", &"r".repeat(129)] {
            let err = ResourceRegistrar::create_resource(
                &registry,
                NewResource {
                    resource_type: "invoice".into(),
                    id: None,
                    space_id: "space_acme".into(),
                    group_id: None,
                    owner_member_id: None,
                    metadata: None,
                    credential: None,
                    request_id: bad.to_owned(),
                },
            )
            .await
            .unwrap_err();
            assert_eq!(err.code, ErrorCode::ValidationFailed, "{bad:?}");
            assert!(
                err.details["fields"].get("request_id").is_some(),
                "{bad:?}: {err:?}"
            );
        }
        assert!(audit.records.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_audit_failure_rolls_the_change_back_and_answers_503() {
        let db = database().await;
        let audit = Arc::new(Recorder {
            refuse: true,
            ..Recorder::default()
        });
        let events = Arc::new(Events::default());
        let registry = Registry::new(Some(db.clone()), Some(audit), Some(events.clone()));
        let err = registry
            .upsert_type(Caller::internal(), invoice())
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::AuditUnavailable);
        assert_eq!(err.status().as_u16(), 503);
        assert_eq!(type_count(&db).await, 0);
        assert!(events.0.lock().unwrap().is_empty());

        // Without an audit recorder at all, nothing is attempted.
        let registry = Registry::new(Some(db.clone()), None, None);
        let err = registry
            .upsert_type(Caller::internal(), invoice())
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::AuditUnavailable);
        assert_eq!(type_count(&db).await, 0);
    }

    #[tokio::test]
    async fn without_a_database_reads_answer_503_and_facts_are_unavailable() {
        let registry = Registry::new(None, None, None);
        let err = registry.get_type("invoice").await.unwrap_err();
        assert_eq!(err.code, ErrorCode::DatabaseUnavailable);
        let err = registry.facts().await.unwrap_err();
        assert!(matches!(err, ResolveError::Unavailable(_)), "{err:?}");
        // And with one, an empty registry has no facts, without failing.
        let registry = Registry::new(Some(database().await), None, None);
        assert!(registry.facts().await.unwrap().is_empty());
    }
}
