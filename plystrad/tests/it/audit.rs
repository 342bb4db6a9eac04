//! End-to-end tests of audit.explainable through the real router and a real database: records
//! written through the service contract by a test plugin, every filter, real pagination, bad
//! filters, redaction, the hash chain and its tamper detection, the streamed export, 405 on
//! changes, and fail-closed callers when the store cannot commit.

use plystra_contracts::storage::Database;
use poem::http::StatusCode;
use serde_json::{Value, json};

use plystra_kernel::storage::testing::TestDatabase;

use crate::support::app::{self, Auth, Client, all_pages, call, log_to_test_output};
use crate::support::audit_writer;

/// Whether a sent record should match a query.
type Matcher = Box<dyn Fn(&Value) -> bool>;

/// The app with the audit-writing plugin and `settings`, its logs in the test's output.
async fn app(settings: &[(&str, &str)]) -> Option<(TestDatabase, Client)> {
    log_to_test_output();
    app::app_with(settings, &[&audit_writer::PLUGIN]).await
}

fn record(i: usize) -> Value {
    let deny = i.is_multiple_of(3);
    json!({
        "event_type": if i.is_multiple_of(2) { "authz.decision" } else { "users.create" },
        "action": if deny { "approve" } else { "read" },
        "space_id": if i.is_multiple_of(4) { "space_other" } else { "space_acme" },
        "actor_user_id": format!("user_{}", i % 5),
        "actor_member_id": format!("member_{}", i % 2),
        "actor_user_member_id": format!("um_{}", i % 3),
        "resource_type": "invoice",
        "resource_id": format!("invoice_{:03}", i % 7),
        "decision": if deny { "deny" } else { "allow" },
        "deny_code": if deny { Some("SCOPE_OUT_OF_BOUNDS") } else { None },
        "trace": {"n": i},
    })
}

/// Every record of the audit log that `query` finds, `limit` at a time.
async fn log_pages(cli: &Client, query: &str, limit: usize) -> Vec<Value> {
    if query.is_empty() {
        all_pages(cli, "/api/v1/audit/logs", limit).await
    } else {
        all_pages(cli, &format!("/api/v1/audit/logs?{query}"), limit).await
    }
}

#[tokio::test]
async fn records_are_found_by_every_filter_and_pages_have_no_gaps_or_repeats() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let n = 37;
    for i in 0..n {
        let path = if i % 2 == 0 {
            "/test/audit"
        } else {
            "/test/audit/in-transaction"
        };
        let (status, body) = call(&cli, "POST", path, Some(record(i))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["data"].as_str().unwrap().starts_with("audit_"));
    }
    let everything = log_pages(&cli, "", 5).await;
    assert_eq!(everything.len(), n);
    let seqs: Vec<i64> = everything
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=n as i64).rev().collect();
    assert_eq!(seqs, expected, "newest first, every record exactly once");

    let records: Vec<Value> = (0..n).map(record).collect();
    let filters: Vec<(&str, Matcher)> = vec![
        (
            "space_id=space_other",
            Box::new(|r: &Value| r["space_id"] == "space_other"),
        ),
        (
            "actor_user_id=user_3",
            Box::new(|r: &Value| r["actor_user_id"] == "user_3"),
        ),
        (
            "actor_member_id=member_1",
            Box::new(|r: &Value| r["actor_member_id"] == "member_1"),
        ),
        (
            "actor_user_member_id=um_2",
            Box::new(|r: &Value| r["actor_user_member_id"] == "um_2"),
        ),
        (
            "resource_type=invoice",
            Box::new(|r: &Value| r["resource_type"] == "invoice"),
        ),
        (
            "resource_id=invoice_004",
            Box::new(|r: &Value| r["resource_id"] == "invoice_004"),
        ),
        (
            "decision=deny",
            Box::new(|r: &Value| r["decision"] == "deny"),
        ),
        (
            "deny_code=SCOPE_OUT_OF_BOUNDS",
            Box::new(|r: &Value| r["deny_code"] == "SCOPE_OUT_OF_BOUNDS"),
        ),
        (
            "event_type=users.create",
            Box::new(|r: &Value| r["event_type"] == "users.create"),
        ),
        (
            "decision=allow&space_id=space_acme",
            Box::new(|r: &Value| r["decision"] == "allow" && r["space_id"] == "space_acme"),
        ),
    ];
    for (query, matches) in filters {
        let found = log_pages(&cli, query, 4).await;
        let wanted = records.iter().filter(|r| matches(r)).count();
        assert!(wanted > 0, "{query} selects something");
        assert_eq!(found.len(), wanted, "{query}");
        assert!(
            found.iter().all(|r| r["trace"]["n"]
                .as_u64()
                .is_some_and(|i| matches(&records[i as usize]))),
            "{query}"
        );
    }
    let first = &everything[0];
    let by_request = log_pages(
        &cli,
        &format!("request_id={}", first["request_id"].as_str().unwrap()),
        50,
    )
    .await;
    assert_eq!(by_request.len(), 1);

    let from = first["created_at"].as_str().unwrap();
    let recent = log_pages(
        &cli,
        &format!("created_at_from={}", from.replace('+', "%2B")),
        50,
    )
    .await;
    assert!(
        !recent.is_empty()
            && recent
                .iter()
                .all(|r| r["created_at"].as_str().unwrap() >= from)
    );
    let none = log_pages(&cli, "created_at_to=2000-01-01T00:00:00Z", 50).await;
    assert!(none.is_empty());

    let id = first["id"].as_str().unwrap();
    let (status, one) = call(&cli, "GET", &format!("/api/v1/audit/logs/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["data"]["entry_hash"], first["entry_hash"]);
    let (status, body) = call(&cli, "GET", "/api/v1/audit/logs/audit_missing", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("AUDIT_LOG_NOT_FOUND"))
    );

    let (status, space) = call(
        &cli,
        "GET",
        "/api/v1/spaces/space_other/audit-logs?limit=200",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let in_space = records
        .iter()
        .filter(|r| r["space_id"] == "space_other")
        .count();
    assert_eq!(space["data"].as_array().unwrap().len(), in_space);
    let other_id = space["data"][0]["id"].as_str().unwrap();
    let (status, _) = call(
        &cli,
        "GET",
        &format!("/api/v1/spaces/space_other/audit-logs/{other_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &cli,
        "GET",
        &format!("/api/v1/spaces/space_acme/audit-logs/{other_id}"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a record of another space is not found in this one"
    );

    let (status, verified) = call(&cli, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["data"]["verified"], true, "{verified}");
    assert_eq!(verified["data"]["records"], n);
}

#[tokio::test]
async fn bad_filters_are_400_naming_the_field() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    for (query, field) in [
        ("decision=maybe", None),
        ("deny_code=NOT_A_CODE", None),
        ("created_at_from=yesterday", Some("created_at_from")),
        (
            "created_at_from=2026-02-01T00:00:00Z&created_at_to=2026-01-01T00:00:00Z",
            Some("created_at_from"),
        ),
        ("limit=0", Some("limit")),
        ("limit=201", Some("limit")),
        ("cursor=garbage", Some("cursor")),
    ] {
        let (status, body) = call(&cli, "GET", &format!("/api/v1/audit/logs?{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{query}");
        if let Some(field) = field {
            assert!(
                body["error"]["details"]["fields"][field].is_string(),
                "{query}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn no_route_changes_a_record() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let (_, body) = call(&cli, "POST", "/test/audit", Some(record(1))).await;
    let id = body["data"].as_str().unwrap().to_owned();
    for method in ["PUT", "PATCH", "DELETE"] {
        for path in [
            format!("/api/v1/audit/logs/{id}"),
            "/api/v1/audit/logs".to_owned(),
        ] {
            let (status, body) = call(&cli, method, &path, Some(json!({}))).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
        }
    }
}

#[tokio::test]
async fn secrets_never_reach_a_record_and_pii_is_hashed() {
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    let mut r = record(1);
    r["trace"] = json!({
        "user": {"email": "alice@example.com", "password": "correct horse battery", "password_hash": "$argon2id$secret"},
        "credentials": [{"api_key": "ply_ak_ak_1.SECRETSECRET"}, {"Authorization": "Bearer ply_at_TOKEN"}],
        "session": {"refresh_token": "ply_rt_REFRESH"},
        "metadata": {"reason": "kept", "ssn": "123-45-6789"},
    });
    let (status, body) = call(&cli, "POST", "/test/audit", Some(r)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["data"].as_str().unwrap().to_owned();
    let (_, stored) = call(&cli, "GET", &format!("/api/v1/audit/logs/{id}"), None).await;
    let text = stored.to_string();
    for secret in [
        "correct horse",
        "$argon2id",
        "SECRETSECRET",
        "ply_at_TOKEN",
        "ply_rt_REFRESH",
        "123-45-6789",
        "alice@example.com",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} reached the record: {text}"
        );
    }
    assert_eq!(stored["data"]["trace"]["metadata"]["reason"], "kept");
    assert!(
        stored["data"]["trace"]["user"]["email"]
            .as_str()
            .unwrap()
            .starts_with("hmac:")
    );
    assert!(
        stored["data"]["redactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/user/password")
    );
    // And in the table itself, whatever the API shows.
    let raw: Vec<(String,)> = database
        .db
        .fetch_all(
            plystra_contracts::storage::sea_query::Query::select()
                .expr(plystra_contracts::storage::sea_query::Expr::cust(
                    "CAST(trace AS TEXT)",
                ))
                .from(plystra_contracts::storage::sea_query::Alias::new(
                    "sys_audit_audit_logs",
                )),
        )
        .await
        .unwrap();
    assert!(
        raw.iter()
            .all(|(t,)| !t.contains("correct horse") && !t.contains("SECRETSECRET"))
    );
}

#[tokio::test]
async fn a_tampered_row_is_found_by_verify() {
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    for i in 0..6 {
        call(&cli, "POST", "/test/audit", Some(record(i))).await;
    }
    let (_, ok) = call(&cli, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(ok["data"]["verified"], true, "{ok}");
    let db = &database.db;
    let (disable, enable): (&[&str], &[&str]) = match db.dialect() {
        plystra_contracts::storage::Dialect::Postgres => (
            &["ALTER TABLE sys_audit_audit_logs DISABLE TRIGGER USER"],
            &["ALTER TABLE sys_audit_audit_logs ENABLE TRIGGER USER"],
        ),
        plystra_contracts::storage::Dialect::Sqlite => {
            (&["DROP TRIGGER sys_audit_audit_logs_no_update"], &[])
        }
    };
    let exec = |sql: &str| {
        let sql = sql.to_owned();
        async move {
            match db {
                Database::Sqlite(pool) => plystra_contracts::storage::sqlx::raw_sql(
                    plystra_contracts::storage::sqlx::AssertSqlSafe(sql),
                )
                .execute(pool)
                .await
                .map(|_| ()),
                Database::Postgres(pool) => plystra_contracts::storage::sqlx::raw_sql(
                    plystra_contracts::storage::sqlx::AssertSqlSafe(sql),
                )
                .execute(pool)
                .await
                .map(|_| ()),
            }
        }
    };
    assert!(
        exec("UPDATE sys_audit_audit_logs SET action = 'forged' WHERE seq = 3")
            .await
            .is_err(),
        "the trigger refuses"
    );
    for sql in disable {
        exec(sql).await.unwrap();
    }
    exec("UPDATE sys_audit_audit_logs SET action = 'forged' WHERE seq = 3")
        .await
        .unwrap();
    for sql in enable {
        exec(sql).await.unwrap();
    }
    let (_, broken) = call(&cli, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(broken["data"]["verified"], false, "{broken}");
    assert_eq!(broken["data"]["first_broken"]["seq"], 3);
    assert!(
        broken["data"]["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("altered")
    );
}

#[tokio::test]
async fn callers_fail_closed_when_the_store_cannot_commit() {
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    let (status, _) = call(&cli, "POST", "/test/audit", Some(record(1))).await;
    assert_eq!(status, StatusCode::OK);
    let drop = "DROP TABLE sys_audit_chain_head";
    match &database.db {
        Database::Sqlite(pool) => plystra_contracts::storage::sqlx::raw_sql(
            plystra_contracts::storage::sqlx::AssertSqlSafe(drop),
        )
        .execute(pool)
        .await
        .unwrap(),
        Database::Postgres(pool) => plystra_contracts::storage::sqlx::raw_sql(
            plystra_contracts::storage::sqlx::AssertSqlSafe(drop),
        )
        .execute(pool)
        .await
        .map(|_| Default::default())
        .unwrap(),
    };
    for path in ["/test/audit", "/test/audit/in-transaction"] {
        let (status, body) = call(&cli, "POST", path, Some(record(2))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(body["error"]["code"], "AUDIT_UNAVAILABLE");
    }
}

#[tokio::test]
async fn deny_only_mode_skips_allowed_decisions_only() {
    let Some((_db, cli)) = app(&[("PLYSTRA_AUDIT_WRITE_MODE", "deny_only")]).await else {
        return;
    };
    let allow =
        json!({"event_type": "authz.decision", "action": "read", "decision": "allow", "trace": {}});
    let (_, body) = call(&cli, "POST", "/test/audit", Some(allow)).await;
    assert!(
        body["data"].is_null(),
        "an allowed decision is skipped: {body}"
    );
    let deny = json!({"event_type": "authz.decision", "action": "read", "decision": "deny", "deny_code": "NO_MATCHING_PERMISSION", "trace": {}});
    let (_, body) = call(&cli, "POST", "/test/audit", Some(deny)).await;
    assert!(body["data"].is_string());
    let mutation = json!({"event_type": "users.create", "action": "users.create", "trace": {}});
    let (_, body) = call(&cli, "POST", "/test/audit", Some(mutation)).await;
    assert!(
        body["data"].is_string(),
        "management records are always written"
    );
}

/// Verify reads the chain up to a head taken at its start, so records committed while it walks
/// never look like a broken chain (issue 15, item 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_under_concurrent_writes_always_finds_the_chain_intact() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let cli = std::sync::Arc::new(cli);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let cli = cli.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut written = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = if (w + written).is_multiple_of(2) {
                        "/test/audit"
                    } else {
                        "/test/audit/in-transaction"
                    };
                    let (status, body) = call(&cli, "POST", path, Some(record(written))).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    written += 1;
                }
                written
            })
        })
        .collect();
    // Verify again and again while the writers run, until the chain has grown between calls
    // several times (a bound on the rounds keeps a stalled writer from hanging the test).
    let mut counts: Vec<u64> = Vec::new();
    let mut round = 0;
    while round < 12 || counts.windows(2).filter(|p| p[1] > p[0]).count() < 5 {
        assert!(round < 2000, "the writers made no progress: {counts:?}");
        let (status, body) = call(&cli, "GET", "/api/v1/audit/verify", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["data"]["verified"], true,
            "verify call {round} under write load: {body}"
        );
        counts.push(body["data"]["records"].as_u64().unwrap());
        round += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    let (_, body) = call(&cli, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(body["data"]["verified"], true, "{body}");
    assert_eq!(body["data"]["records"], written, "{body}");
}

/// The filters of `/audit/logs` other than `space_id`, each with what it selects among
/// [`record`]s.
fn space_filters() -> Vec<(&'static str, Matcher)> {
    vec![
        (
            "actor_user_id=user_3",
            Box::new(|r: &Value| r["actor_user_id"] == "user_3"),
        ),
        (
            "actor_member_id=member_1",
            Box::new(|r: &Value| r["actor_member_id"] == "member_1"),
        ),
        (
            "actor_user_member_id=um_2",
            Box::new(|r: &Value| r["actor_user_member_id"] == "um_2"),
        ),
        (
            "resource_type=invoice",
            Box::new(|r: &Value| r["resource_type"] == "invoice"),
        ),
        (
            "resource_id=invoice_004",
            Box::new(|r: &Value| r["resource_id"] == "invoice_004"),
        ),
        (
            "decision=deny",
            Box::new(|r: &Value| r["decision"] == "deny"),
        ),
        (
            "deny_code=SCOPE_OUT_OF_BOUNDS",
            Box::new(|r: &Value| r["deny_code"] == "SCOPE_OUT_OF_BOUNDS"),
        ),
        (
            "event_type=users.create",
            Box::new(|r: &Value| r["event_type"] == "users.create"),
        ),
        (
            "decision=allow&event_type=authz.decision",
            Box::new(|r: &Value| r["decision"] == "allow" && r["event_type"] == "authz.decision"),
        ),
        (
            "created_at_to=2000-01-01T00:00:00Z",
            Box::new(|_: &Value| false),
        ),
        (
            "created_at_from=2000-01-01T00:00:00Z",
            Box::new(|_: &Value| true),
        ),
    ]
}

/// `GET /spaces/{space_id}/audit-logs` narrows by the same filters as `/audit/logs`, and refuses
/// the same bad values (issue 15, item 14).
#[tokio::test]
async fn the_space_log_applies_every_filter_of_the_audit_log() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let n = 37;
    for i in 0..n {
        let (status, body) = call(&cli, "POST", "/test/audit", Some(record(i))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let records: Vec<Value> = (0..n).map(record).collect();
    for (query, matches) in space_filters() {
        let (status, body) = call(
            &cli,
            "GET",
            &format!("/api/v1/spaces/space_acme/audit-logs?{query}&limit=200"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let found = body["data"].as_array().unwrap();
        let wanted = records
            .iter()
            .filter(|r| r["space_id"] == "space_acme" && matches(r))
            .count();
        assert_eq!(found.len(), wanted, "{query}: {body}");
        assert!(
            found.iter().all(|r| r["space_id"] == "space_acme"
                && matches(&records[r["trace"]["n"].as_u64().unwrap() as usize])),
            "{query}"
        );
        let everywhere = log_pages(&cli, &format!("space_id=space_acme&{query}"), 200).await;
        assert_eq!(
            everywhere.len(),
            found.len(),
            "{query}: the same answer as /audit/logs?space_id="
        );
    }
    for (query, field) in [
        ("decision=maybe", None),
        ("deny_code=NOT_A_CODE", None),
        ("created_at_from=yesterday", Some("created_at_from")),
        ("created_at_to=tomorrow", Some("created_at_to")),
        (
            "created_at_from=2026-02-01T00:00:00Z&created_at_to=2026-01-01T00:00:00Z",
            Some("created_at_from"),
        ),
        ("limit=0", Some("limit")),
        ("cursor=garbage", Some("cursor")),
    ] {
        let (status, body) = call(
            &cli,
            "GET",
            &format!("/api/v1/spaces/space_acme/audit-logs?{query}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{query}");
        if let Some(field) = field {
            assert!(
                body["error"]["details"]["fields"][field].is_string(),
                "{query}: {body}"
            );
        }
    }
}

/// Verify stops at the head it read first, yet a row appended outside the chain (beyond the head,
/// without moving it) is still found.
#[tokio::test]
async fn a_row_appended_outside_the_chain_is_found_by_verify() {
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    for i in 0..4 {
        call(&cli, "POST", "/test/audit", Some(record(i))).await;
    }
    let (_, ok) = call(&cli, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(ok["data"]["verified"], true, "{ok}");
    let forge = "INSERT INTO sys_audit_audit_logs (id, seq, event_type, action, decision, trace, \
                 prev_hash, entry_hash, redaction_version, created_at, redactions) \
                 SELECT 'audit_forged', seq + 1, event_type, action, decision, trace, entry_hash, \
                 'forged', redaction_version, created_at, redactions FROM sys_audit_audit_logs \
                 WHERE seq = 4";
    match &database.db {
        Database::Sqlite(pool) => plystra_contracts::storage::sqlx::raw_sql(
            plystra_contracts::storage::sqlx::AssertSqlSafe(forge),
        )
        .execute(pool)
        .await
        .map(drop),
        Database::Postgres(pool) => plystra_contracts::storage::sqlx::raw_sql(
            plystra_contracts::storage::sqlx::AssertSqlSafe(forge),
        )
        .execute(pool)
        .await
        .map(drop),
    }
    .unwrap();
    let (_, broken) = call(&cli, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(broken["data"]["verified"], false, "{broken}");
    assert_eq!(broken["data"]["first_broken"]["seq"], 5, "{broken}");
    assert!(
        broken["data"]["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("beyond the chain head"),
        "{broken}"
    );
}

#[tokio::test]
async fn each_record_names_the_request_that_caused_it() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    crate::support::finance_reviewer::seed(&cli).await;
    // A change, a decision (an allow and a deny) and a plugin's own record: each names the
    // request the caller sent, passed to it explicitly, not read from ambient state.
    let sent = [
        (
            "req-audited-change",
            "/api/v1/users",
            json!({"email": "rid@example.com", "username": "rid", "password": "correct horse battery staple"}),
        ),
        (
            "req-audited-allow",
            "/api/v1/authz/check",
            crate::support::processes::alice_approves_001(),
        ),
        (
            "req-audited-deny",
            "/api/v1/authz/check",
            crate::support::processes::check(
                "user_alice",
                "um_alice_finance_reviewer",
                "invoice_002",
                "approve",
            ),
        ),
        ("req-audited-plugin", "/test/audit", record(1)),
    ];
    for (request_id, path, body) in sent {
        let resp = cli
            .post(path)
            .header("X-Plystra-API-Key", app::KEY)
            .header("X-Request-ID", request_id)
            .body_json(&body)
            .send()
            .await;
        assert!(resp.0.status().is_success(), "{path}: {}", resp.0.status());
        let found = log_pages(&cli, &format!("request_id={request_id}"), 10).await;
        assert_eq!(found.len(), 1, "{request_id}: {found:?}");
        assert_eq!(found[0]["request_id"], request_id);
        if path.ends_with("/check") {
            assert_eq!(found[0]["event_type"], "authz.decision");
            assert_eq!(found[0]["trace"]["request"]["request_id"], request_id);
        }
    }
}

/// `GET /api/v1/audit/export` with the bootstrap key: (status, content type, body as sent).
async fn export_over_http(cli: &Client, query: &str) -> (StatusCode, String, String) {
    let resp = cli
        .get(format!("/api/v1/audit/export{query}"))
        .header("X-Plystra-API-Key", app::KEY)
        .send()
        .await;
    let status = resp.0.status();
    let content_type = resp
        .0
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        resp.0.into_body().into_string().await.unwrap(),
    )
}

/// `plystractl audit export` on `database` with `args`, as the file it writes.
fn export_with_plystractl(database: &TestDatabase, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let mut all = vec!["--database-url", &database.url, "audit", "export"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", file.to_str().unwrap()]);
    let (code, text) = crate::support::processes::ctl(&all, &[]);
    assert_eq!(code, 0, "{text}");
    std::fs::read_to_string(&file).unwrap()
}

/// The HTTP export streams more than a page of records as the very file `plystractl audit
/// export` writes for the same range, from the start, from `since_seq` and from `since`; each
/// line reads back as a record and the file verifies offline (with `plystractl audit
/// verify-export` too). Reading the log does not write to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_export_is_the_file_plystractl_writes_and_verifies_offline() {
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    for i in 0..3 {
        let (status, body) = call(&cli, "POST", "/test/audit", Some(record(i))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // More than one page of the export (1,000 records), written as another process would.
    let service = crate::support::super_admin::audit_service(&database.db);
    let mut tasks = Vec::new();
    for i in 0..1_001 {
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            use plystra_contracts::services::{AuditRecord, AuditRecorder};
            let record = AuditRecord {
                trace: json!({"i": i, "amount": 12.5}),
                ..AuditRecord::new("req_export", "users.create", "users.create")
            };
            service.record(record).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    service.shutdown().await;
    let (status, body) = call(&cli, "POST", "/test/audit/in-transaction", Some(record(3))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let total = 1_005;

    let (status, content_type, whole) = export_over_http(&cli, "").await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(whole, export_with_plystractl(&database, &[]));
    let records: Vec<_> = whole
        .lines()
        .map(|l| plystra_system_audit::export::entry(&serde_json::from_str(l).unwrap()).unwrap())
        .collect();
    assert_eq!(records.len(), total);
    assert!(whole.ends_with('\n'));
    let check = plystra_system_audit::export::check_lines(whole.lines());
    assert_eq!(check.first_broken, None);
    assert_eq!(check.range, Some((1, total as i64)));
    assert_eq!(check.chained_to.as_deref(), Some("genesis"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("http.jsonl");
    std::fs::write(&file, &whole).unwrap();
    let (code, text) =
        crate::support::processes::ctl(&["audit", "verify-export", file.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("seq 1 to {total} ({total} records)")),
        "{text}"
    );

    // A suffix by seq: the whole file's lines from that seq on, chained to the line before.
    let (status, _, suffix) = export_over_http(&cli, "?since_seq=998").await;
    assert_eq!(status, StatusCode::OK);
    let expected: String = whole.lines().skip(997).map(|l| format!("{l}\n")).collect();
    assert_eq!(suffix, expected);
    let check = plystra_system_audit::export::check_lines(suffix.lines());
    assert_eq!(
        (check.first_broken, check.range),
        (None, Some((998, total as i64)))
    );
    assert_eq!(
        check.chained_to.as_deref(),
        Some(records[996].entry_hash.as_str())
    );

    // A suffix by instant: what `plystractl audit export --since` writes.
    let since = plystra_system_audit::store::format_timestamp(records[total - 2].created_at);
    let (status, _, by_time) =
        export_over_http(&cli, &format!("?since={}", since.replace('+', "%2B"))).await;
    assert_eq!(status, StatusCode::OK, "{by_time}");
    assert_eq!(
        by_time,
        export_with_plystractl(&database, &["--since", &since])
    );
    assert!(by_time.lines().count() >= 2, "{by_time}");

    // Past the end: an empty export, not an error.
    for query in [
        format!("?since_seq={}", total + 1),
        "?since=2999-01-01T00:00:00Z".to_owned(),
    ] {
        let (status, _, empty) = export_over_http(&cli, &query).await;
        assert_eq!((status, empty.as_str()), (StatusCode::OK, ""), "{query}");
    }

    // Reading the log, exports included, writes nothing to it.
    let (_, verified) = call(&cli, "GET", "/api/v1/audit/verify", None).await;
    assert_eq!(verified["data"]["records"], total, "{verified}");
}

/// Bad export parameters are a 400 envelope naming the parameter, never a 500.
#[tokio::test]
async fn bad_export_parameters_are_400_naming_the_parameter() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    call(&cli, "POST", "/test/audit", Some(record(0))).await;
    for (query, field) in [
        ("since=2026-01-01T00:00:00Z&since_seq=1", "since_seq"),
        ("since=yesterday", "since"),
        ("since_seq=0", "since_seq"),
        ("since_seq=-5", "since_seq"),
        ("since_seq=first", "since_seq"),
    ] {
        let (status, body) =
            call(&cli, "GET", &format!("/api/v1/audit/export?{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{query}");
        assert!(
            body["error"]["details"]["fields"][field].is_string(),
            "{query}: {body}"
        );
    }
}

/// The export needs a credential holding `audit:read`, instance-wide: a key without it, and a
/// space's key with it (the export spans every space), are refused.
#[tokio::test]
async fn the_export_needs_audit_read_across_the_instance() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    call(&cli, "POST", "/test/audit", Some(record(0))).await;
    let (status, body) = app::send(&cli, Auth::None, "GET", "/api/v1/audit/export", None).await;
    assert_eq!(
        (status, app::code(&body)),
        (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED")
    );
    let (status, body) = call(
        &cli,
        "POST",
        "/api/v1/spaces",
        Some(json!({"id": "space_acme", "name": "Acme"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for key in [
        json!({"name": "metrics", "level": "instance", "permission_keys": ["metrics:read"]}),
        json!({"name": "acme auditor", "level": "space", "space_id": "space_acme", "permission_keys": ["audit:read"]}),
    ] {
        let (status, created) = call(&cli, "POST", "/api/v1/api-keys", Some(key.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let plaintext = created["data"]["api_key"].as_str().unwrap();
        let (status, body) = app::send(
            &cli,
            Auth::Key(plaintext),
            "GET",
            "/api/v1/audit/export",
            None,
        )
        .await;
        assert_eq!(
            (status, app::code(&body)),
            (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED"),
            "{key}: {body}"
        );
        assert_eq!(body["error"]["details"]["permission"], "audit:read");
    }
}
