//! Migration runner tests on the backend `PLYSTRA_TEST_BACKEND` selects: embedded files, sums,
//! ownership, ledger, verify, concurrent runners (`pg_advisory_xact_lock` on PostgreSQL,
//! `BEGIN IMMEDIATE` on SQLite).

use plystra_kernel::storage::migrations::{
    FileState, LEDGER_TABLE, MigrationError, MigrationSet, read_ledger, schema_version,
};
use plystra_kernel::storage::testing::{SYSTEM_NAMESPACES, TestDatabase, backend};
use plystra_kernel::storage::{Database, Dialect};

fn embedded() -> MigrationSet {
    MigrationSet::embedded(backend())
}

/// The embedded set plus `extra` files.
fn with_files(extra: &[(&str, &str)]) -> MigrationSet {
    let set = embedded();
    let mut files: Vec<(String, String)> = set
        .migrations()
        .iter()
        .map(|m| (m.file.clone(), m.sql.clone()))
        .collect();
    files.extend(
        extra
            .iter()
            .map(|(f, s)| ((*f).to_owned(), (*s).to_owned())),
    );
    MigrationSet::from_files(set.dialect(), files, None).unwrap()
}

/// The versions of the migration files on disk for `dialect`, sorted: what every embedded set must
/// contain, whatever migrations are added later.
fn versions_on_disk(dialect: Dialect) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect.as_str());
    let mut versions: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.ends_with(".sql").then(|| name[..4].to_owned())
        })
        .collect();
    versions.sort();
    versions
}

#[test]
fn embedded_sets_match_their_sum_files_and_ownership_for_both_dialects() {
    for dialect in Dialect::ALL {
        let set = MigrationSet::embedded(dialect);
        let on_disk = versions_on_disk(dialect);
        assert_eq!(set.migrations().len(), on_disk.len(), "{dialect}");
        set.check_sum().unwrap();
        let namespaces = set.check_ownership(&SYSTEM_NAMESPACES).unwrap();
        assert_eq!(namespaces["0001_sys_audit_init.sql"], "sys_audit");
        assert_eq!(
            set.expected_schema_version(),
            on_disk.last().map(String::as_str)
        );
        let next = on_disk.last().unwrap().parse::<u32>().unwrap() + 1;
        assert_eq!(set.next_version(), format!("{next:04}"));
    }
}

#[tokio::test]
async fn every_migration_applies_on_an_empty_database_and_up_twice_is_a_no_op() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    let set = embedded();
    assert_eq!(schema_version(&t.db).await.unwrap(), None);
    let status = set.status(&t.db).await.unwrap();
    assert!(
        status.iter().all(|s| s.state == FileState::Pending),
        "{status:?}"
    );

    let applied = set.apply_pending(&t.db, &SYSTEM_NAMESPACES).await.unwrap();
    let versions: Vec<&str> = applied.iter().map(|a| a.version.as_str()).collect();
    assert_eq!(versions, versions_on_disk(t.db.dialect()));
    assert_eq!(applied[0].stem, "sys_audit_init");

    let status = set.status(&t.db).await.unwrap();
    assert!(
        status
            .iter()
            .all(|s| s.state == FileState::Applied && s.applied_at.is_some()),
        "{status:?}"
    );
    set.verify(&t.db).await.unwrap();
    assert_eq!(
        schema_version(&t.db).await.unwrap().as_deref(),
        set.expected_schema_version()
    );

    let ledger = read_ledger(&t.db).await.unwrap();
    assert_eq!(ledger.len(), set.migrations().len());
    assert_eq!(
        (ledger[1].namespace.as_str(), ledger[1].name.as_str()),
        ("sys_identity", "init")
    );
    assert_eq!(ledger[1].checksum, set.migrations()[1].checksum);

    assert_eq!(
        set.apply_pending(&t.db, &SYSTEM_NAMESPACES).await.unwrap(),
        []
    );
    assert_eq!(read_ledger(&t.db).await.unwrap(), ledger);
}

#[tokio::test]
async fn a_modified_applied_file_fails_verify_naming_the_file() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    embedded()
        .apply_pending(&t.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap();

    let original = embedded();
    let files = original
        .migrations()
        .iter()
        .map(|m| {
            let sql = if m.file == "0002_sys_identity_init.sql" {
                format!("{}\n-- edited\n", m.sql)
            } else {
                m.sql.clone()
            };
            (m.file.clone(), sql)
        })
        .collect();
    let modified = MigrationSet::from_files(original.dialect(), files, None).unwrap();

    let err = modified.verify(&t.db).await.unwrap_err();
    assert!(
        matches!(err, MigrationError::ChecksumMismatch { ref file, .. } if file == "0002_sys_identity_init.sql")
    );
    assert!(
        err.to_string()
            .starts_with("0002_sys_identity_init.sql: checksum mismatch"),
        "{err}"
    );

    let status = modified.status(&t.db).await.unwrap();
    assert_eq!(status[1].state, FileState::ChecksumMismatch);
    assert!(
        modified
            .apply_pending(&t.db, &SYSTEM_NAMESPACES)
            .await
            .is_err(),
        "applying on a modified history"
    );
}

#[tokio::test]
async fn a_file_touching_another_namespace_is_refused_and_nothing_is_applied() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    let set = with_files(&[(
        "9001_sys_audit_sneaky.sql",
        "CREATE TABLE sys_audit_notes (id TEXT NOT NULL PRIMARY KEY);\nALTER TABLE sys_identity_users ADD COLUMN backdoor TEXT;\n",
    )]);
    let err = set
        .apply_pending(&t.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, MigrationError::Ownership(_)));
    assert!(
        message.contains("9001_sys_audit_sneaky.sql line 2"),
        "{message}"
    );
    assert!(message.contains("sys_identity_users"), "{message}");
    assert_eq!(schema_version(&t.db).await.unwrap(), None);

    let unowned = with_files(&[("9001_notes_init.sql", "CREATE TABLE notes_items (id TEXT);")]);
    let message = unowned
        .apply_pending(&t.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("9001_notes_init.sql: its namespace is not owned"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failing_file_rolls_back_with_its_ledger_row() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    let set = with_files(&[(
        "9001_sys_audit_broken.sql",
        "CREATE TABLE sys_audit_half (id TEXT NOT NULL PRIMARY KEY);\nINSERT INTO sys_audit_missing (id) VALUES ('x');\n",
    )]);
    let err = set
        .apply_pending(&t.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("9001_sys_audit_broken.sql: failed to apply"),
        "{err}"
    );
    assert_eq!(
        schema_version(&t.db).await.unwrap(),
        versions_on_disk(t.db.dialect()).last().cloned()
    );
    let live = plystra_kernel::storage::introspect::read_schema(&t.db)
        .await
        .unwrap();
    assert!(
        !live.tables.contains_key("sys_audit_half"),
        "the failed file's table was rolled back"
    );
}

async fn concurrent_runners_apply_each_file_once(dialect: Dialect) {
    let Some(t) = TestDatabase::on(dialect).await else {
        return;
    };
    let set = MigrationSet::embedded(dialect);
    let (a, b) = (t.reopen().await, t.reopen().await);
    let (ra, rb) = tokio::join!(
        set.apply_pending(&a, &SYSTEM_NAMESPACES),
        set.apply_pending(&b, &SYSTEM_NAMESPACES)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut versions: Vec<String> = ra
        .iter()
        .chain(rb.iter())
        .map(|x| x.version.clone())
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        versions_on_disk(t.db.dialect()),
        "each file applied exactly once"
    );
    assert_eq!(
        read_ledger(&t.db).await.unwrap().len(),
        set.migrations().len()
    );
    set.verify(&t.db).await.unwrap();
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_runners_apply_everything_exactly_once() {
    concurrent_runners_apply_each_file_once(backend()).await;
}

#[tokio::test]
async fn a_set_for_another_dialect_is_refused() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    let other = match backend() {
        Dialect::Sqlite => Dialect::Postgres,
        Dialect::Postgres => Dialect::Sqlite,
    };
    let err = MigrationSet::embedded(other)
        .status(&t.db)
        .await
        .unwrap_err();
    assert!(matches!(err, MigrationError::DialectMismatch { .. }));
}

#[tokio::test]
async fn schema_state_reports_versions_and_pending_files() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    let set = embedded();
    let before = set.schema_state(&t.db).await.unwrap();
    assert_eq!(before.schema_version, None);
    let on_disk = versions_on_disk(t.db.dialect());
    assert_eq!(before.expected_schema_version, on_disk.last().cloned());
    assert_eq!(before.pending.len(), on_disk.len());
    assert!(!before.is_current());
    set.apply_pending(&t.db, &SYSTEM_NAMESPACES).await.unwrap();
    let after = set.schema_state(&t.db).await.unwrap();
    assert_eq!(after.schema_version, on_disk.last().cloned());
    assert!(after.is_current());
}

/// A set reads the ledger in one statement while it expects the table; when the table is gone
/// after all, it answers as on a new database: nothing applied, everything pending.
#[tokio::test]
async fn schema_state_after_the_ledger_is_dropped_reports_nothing_applied() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    let set = embedded();
    set.apply_pending(&t.db, &SYSTEM_NAMESPACES).await.unwrap();
    assert!(set.schema_state(&t.db).await.unwrap().is_current());
    let drop = sqlx::AssertSqlSafe(format!("DROP TABLE {LEDGER_TABLE}"));
    match &t.db {
        Database::Sqlite(pool) => sqlx::raw_sql(drop).execute(pool).await.map(|_| ()),
        Database::Postgres(pool) => sqlx::raw_sql(drop).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    let after = set.schema_state(&t.db).await.unwrap();
    assert_eq!(after.schema_version, None);
    assert_eq!(after.pending.len(), set.migrations().len());
    assert_eq!(
        set.status(&t.db).await.unwrap().len(),
        set.migrations().len()
    );
}

/// The catalog reads a composite primary key, inline unique constraints, a foreign key naming no
/// columns (SQLite leaves them to the referenced primary key) and a CHECK beside a quoted
/// `'check (x)'` as the model states them, on either backend.
#[tokio::test]
async fn keys_and_constraints_are_read_as_the_model_states_them() {
    use plystra_contracts::schema::{Column, ColumnType, ForeignKey, SchemaModel, Table};
    use plystra_kernel::storage::drift::compare;

    const MODEL: SchemaModel = SchemaModel {
        namespace: "sys_audit_keys",
        tables: &[
            Table::new(
                "sys_audit_keys_parent",
                &[
                    Column::required("id", ColumnType::Text),
                    Column::required("code", ColumnType::Text),
                ],
            )
            .unique_constraints(&[&["code"]]),
            Table::new(
                "sys_audit_keys_child",
                &[
                    Column::required("a", ColumnType::Text),
                    Column::required("b", ColumnType::Text),
                    Column::optional("parent_id", ColumnType::Text),
                ],
            )
            .primary_key(&["b", "a"])
            .unique_constraints(&[&["a", "b"]])
            .foreign_keys(&[ForeignKey::new(
                &["parent_id"],
                "sys_audit_keys_parent",
                &["id"],
            )])
            .checks(&["a <> b and length(b) > 0"]),
        ],
    };
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    with_files(&[(
        "9001_sys_audit_keys.sql",
        "CREATE TABLE sys_audit_keys_parent (id TEXT NOT NULL, code TEXT NOT NULL, \
         PRIMARY KEY (id), UNIQUE (code));\n\
         CREATE TABLE sys_audit_keys_child (a TEXT NOT NULL, b TEXT NOT NULL DEFAULT 'check (x)', \
         parent_id TEXT, PRIMARY KEY (b, a), CONSTRAINT sys_audit_keys_child_pair UNIQUE (a, b), \
         FOREIGN KEY (parent_id) REFERENCES sys_audit_keys_parent, \
         CHECK (a <> b AND length(b) > 0));\n",
    )])
    .apply_pending(&t.db, &SYSTEM_NAMESPACES)
    .await
    .unwrap();
    let live = plystra_kernel::storage::introspect::read_schema(&t.db)
        .await
        .unwrap();
    assert_eq!(compare(t.db.dialect(), &[&MODEL], &live), []);
    let child = &live.tables["sys_audit_keys_child"];
    assert_eq!(child.primary_key, ["b", "a"]);
    assert_eq!(child.foreign_keys[0].referenced_columns, ["id"]);
}
