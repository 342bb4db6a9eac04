//! The Finance Reviewer conformance table over HTTP (managed mode): the fixture is created through
//! the identity, registry and grant routes, every expected decision is checked through
//! `authz/check` and `authz/explain`, and the audit log holds exactly one record per decision.

// Links the system capabilities, as the server binary does.
extern crate plystrad as _;

use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::testing::TestDatabase;
use plystra_kernel::{CapabilitySource, KernelConfig, boot};
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};

const KEY: &str = "authz-check-test-key-0123456789abcdef";
type Client = TestClient<poem::endpoint::BoxEndpoint<'static>>;

async fn app() -> Option<(TestDatabase, Client)> {
    let database = TestDatabase::new().await?;
    let config = KernelConfig {
        bootstrap_api_key: Some(KEY.to_owned()),
        database: Some(DatabaseConfig::new(database.url.clone())),
        settings: [("PLYSTRA_API_KEY_PERMISSIONS".to_owned(), "*".to_owned())].into(),
        ..KernelConfig::default()
    };
    let booted = boot(config, CapabilitySource::linked()).await.unwrap();
    Some((database, TestClient::new(booted.app)))
}

async fn call(
    cli: &Client,
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, poem::http::HeaderMap, Value) {
    let req = match method {
        "GET" => cli.get(path),
        _ => cli.post(path).body_json(&body),
    };
    let resp = req.header("X-Plystra-API-Key", KEY).send().await;
    let status = resp.0.status();
    let headers = resp.0.headers().clone();
    let text = resp.0.into_body().into_string().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn create(cli: &Client, path: &str, body: Value) -> Value {
    let (status, _, json) = call(cli, "POST", path, body).await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::OK,
        "{path}: {status} {json}"
    );
    json
}

async fn fixture(cli: &Client) {
    for (id, email) in [
        ("user_alice", "alice@example.com"),
        ("user_bob", "bob@example.com"),
    ] {
        create(
            cli,
            "/api/v1/users",
            json!({"id": id, "email": email, "password": "correct horse battery"}),
        )
        .await;
    }
    for (id, name) in [("space_acme", "Acme"), ("space_other", "Other")] {
        create(cli, "/api/v1/spaces", json!({"id": id, "name": name})).await;
    }
    for (id, path) in [
        ("group_finance", "finance"),
        ("group_finance_apac", "finance.apac"),
        ("group_finance_emea", "finance.emea"),
        ("group_legal", "legal"),
        ("group_legal_emea", "legal.emea"),
    ] {
        create(
            cli,
            "/api/v1/spaces/space_acme/groups",
            json!({"id": id, "path": path}),
        )
        .await;
    }
    create(
        cli,
        "/api/v1/spaces/space_other/groups",
        json!({"id": "group_other_ops", "path": "ops"}),
    )
    .await;
    for (space, id, name) in [
        ("space_acme", "member_finance_reviewer", "Finance reviewer"),
        ("space_acme", "member_invoice_creator", "Invoice creator"),
        ("space_other", "member_other_clerk", "Other clerk"),
    ] {
        create(
            cli,
            &format!("/api/v1/spaces/{space}/members"),
            json!({"id": id, "display_name": name}),
        )
        .await;
    }
    for (id, user, relation, expires) in [
        ("um_alice_finance_reviewer", "user_alice", "delegate", None),
        ("um_bob_finance_reviewer", "user_bob", "login", None),
        (
            "um_alice_finance_reviewer_revoked",
            "user_alice",
            "delegate",
            None,
        ),
        (
            "um_alice_finance_reviewer_expired",
            "user_alice",
            "delegate",
            Some("2020-01-01T00:00:00Z"),
        ),
    ] {
        let mut body = json!({"id": id, "user_id": user, "member_id": "member_finance_reviewer", "relation_type": relation});
        if let Some(at) = expires {
            body["expires_at"] = json!(at);
        }
        create(cli, "/api/v1/spaces/space_acme/user-members", body).await;
    }
    create(
        cli,
        "/api/v1/spaces/space_acme/user-members/um_alice_finance_reviewer_revoked/revoke",
        json!({"revoked_reason": "rotated"}),
    )
    .await;

    create(
        cli,
        "/api/v1/resource-types",
        json!({"key": "invoice", "display_name": "Invoice"}),
    )
    .await;
    for (key, risk) in [
        ("read", "normal"),
        ("create", "normal"),
        ("approve", "high"),
        ("reject", "high"),
        ("delete", "critical"),
    ] {
        create(
            cli,
            "/api/v1/resource-types/invoice/actions",
            json!({"key": key, "risk_level": risk}),
        )
        .await;
    }
    create(
        cli,
        "/api/v1/resource-types/invoice/mapping",
        json!({"storage_kind": "internal_table"}),
    )
    .await;
    for (id, group) in [
        ("invoice_001", "group_finance_apac"),
        ("invoice_002", "group_legal_emea"),
    ] {
        create(
            cli,
            "/api/v1/spaces/space_acme/resources",
            json!({"id": id, "resource_type": "invoice", "group_id": group, "owner_member_id": "member_invoice_creator"}),
        )
        .await;
    }
    create(
        cli,
        "/api/v1/spaces/space_other/resources",
        json!({"id": "invoice_other", "resource_type": "invoice", "group_id": "group_other_ops", "owner_member_id": "member_other_clerk"}),
    )
    .await;

    create(cli, "/api/v1/spaces/space_acme/roles", json!({"id": "role_finance_approver", "key": "finance_approver", "name": "Finance approver"})).await;
    create(
        cli,
        "/api/v1/spaces/space_acme/roles",
        json!({"id": "role_global_deleter", "key": "global_deleter", "name": "Global deleter"}),
    )
    .await;
    for (role, action, scope) in [
        ("role_finance_approver", "approve", "group_tree"),
        ("role_global_deleter", "delete", "global"),
    ] {
        let permission = create(
            cli,
            "/api/v1/permissions",
            json!({"resource": "invoice", "action": action, "scope": scope}),
        )
        .await;
        let permission_id = permission["data"]["id"].as_str().unwrap().to_owned();
        create(
            cli,
            "/api/v1/role-permissions",
            json!({"role_id": role, "permission_id": permission_id}),
        )
        .await;
    }
    create(
        cli,
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver", "scope_anchor_group_id": "group_finance"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_finance_reviewer", "role_id": "role_global_deleter"}),
    )
    .await;
}

fn request(
    user: &str,
    binding: &str,
    space: &str,
    resource_type: &str,
    resource: &str,
    action: &str,
) -> Value {
    json!({
        "actor": {"user_id": user, "member_id": "member_finance_reviewer", "user_member_id": binding, "space_id": space},
        "resource_type": resource_type,
        "resource_id": resource,
        "action": action,
    })
}

#[tokio::test]
async fn the_finance_reviewer_table_holds_with_one_audit_record_per_decision() {
    let Some((_db, cli)) = app().await else {
        return;
    };
    fixture(&cli).await;
    let alice = "um_alice_finance_reviewer";
    let table: Vec<(Value, Option<&str>)> = vec![
        (
            request(
                "user_alice",
                alice,
                "space_acme",
                "invoice",
                "invoice_001",
                "approve",
            ),
            None,
        ),
        (
            request(
                "user_alice",
                alice,
                "space_acme",
                "invoice",
                "invoice_002",
                "approve",
            ),
            Some("SCOPE_OUT_OF_BOUNDS"),
        ),
        (
            request(
                "user_bob",
                "um_bob_finance_reviewer",
                "space_acme",
                "invoice",
                "invoice_001",
                "approve",
            ),
            None,
        ),
        (
            request(
                "user_alice",
                "um_alice_finance_reviewer_revoked",
                "space_acme",
                "invoice",
                "invoice_001",
                "approve",
            ),
            Some("USER_MEMBER_REVOKED"),
        ),
        (
            request(
                "user_alice",
                "um_alice_finance_reviewer_expired",
                "space_acme",
                "invoice",
                "invoice_001",
                "approve",
            ),
            Some("USER_MEMBER_EXPIRED"),
        ),
        (
            request(
                "user_alice",
                alice,
                "space_acme",
                "invoice",
                "invoice_001",
                "reject",
            ),
            Some("NO_MATCHING_PERMISSION"),
        ),
        (
            request(
                "user_alice",
                alice,
                "space_acme",
                "purchase_order",
                "po_1",
                "approve",
            ),
            Some("INVALID_RESOURCE_TYPE"),
        ),
        (
            request(
                "user_alice",
                alice,
                "space_acme",
                "invoice",
                "invoice_001",
                "teleport",
            ),
            Some("INVALID_RESOURCE_ACTION"),
        ),
        (
            request(
                "user_alice",
                alice,
                "space_acme",
                "invoice",
                "invoice_001",
                "delete",
            ),
            Some("GLOBAL_SCOPE_DISABLED"),
        ),
        (
            request(
                "user_alice",
                alice,
                "space_other",
                "invoice",
                "invoice_001",
                "approve",
            ),
            Some("CROSS_SPACE_VIOLATION"),
        ),
        (
            request(
                "user_alice",
                alice,
                "space_acme",
                "invoice",
                "invoice_other",
                "approve",
            ),
            Some("CROSS_SPACE_VIOLATION"),
        ),
    ];
    let mut expected_denies = Vec::new();
    for (i, (body, deny)) in table.iter().enumerate() {
        let (status, headers, json) = call(&cli, "POST", "/api/v1/authz/check", body.clone()).await;
        assert_eq!(status, StatusCode::OK, "row {i}: {json}");
        let data = &json["data"];
        assert_eq!(data["deny_code"].as_str(), *deny, "row {i}: {json}");
        assert_eq!(data["allow"], deny.is_none(), "row {i}");
        assert_eq!(
            data["decision"],
            if deny.is_none() { "allow" } else { "deny" },
            "row {i}"
        );
        let audit_id = data["audit_log_id"].as_str().unwrap();
        assert_eq!(headers.get("x-plystra-audit-log-id").unwrap(), audit_id);
        assert_eq!(
            headers.get("x-plystra-trace-id").unwrap(),
            data["trace_id"].as_str().unwrap()
        );
        if let Some(code) = deny {
            expected_denies.push((audit_id.to_owned(), *code));
        }
        let (status, _, explained) =
            call(&cli, "POST", "/api/v1/authz/explain", body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            explained["data"]["decision"], data["decision"],
            "row {i}: explain decides like check"
        );
        assert_eq!(explained["data"]["deny_code"], data["deny_code"], "row {i}");
        if let Some(code) = deny {
            expected_denies.push((
                explained["data"]["audit"]["audit_log_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                *code,
            ));
        }
    }

    // Bob's allow keeps who acted, as values.
    let (_, _, bob) = call(&cli, "POST", "/api/v1/authz/explain", table[2].0.clone()).await;
    let trace = &bob["data"];
    assert_eq!(trace["trace_version"], "1.0");
    assert_eq!(trace["actor"]["user_id"], "user_bob");
    assert_eq!(trace["actor"]["member_id"], "member_finance_reviewer");
    assert_eq!(trace["target"]["group"]["path"], "finance.apac");
    assert_eq!(trace["matched_candidates"][0]["role"], "finance_approver");
    assert_eq!(
        trace["matched_candidates"][0]["scope_anchor"]["path"],
        "finance"
    );
    assert_eq!(
        trace["matched_candidates"][0]["scope_check"]["covered"],
        true
    );

    // Exactly one audit record per decision: 2 per table row plus Bob's extra explain.
    let (_, _, decisions) = call(
        &cli,
        "GET",
        "/api/v1/audit/logs?event_type=authz.decision&limit=200",
        Value::Null,
    )
    .await;
    assert_eq!(
        decisions["data"].as_array().unwrap().len(),
        table.len() * 2 + 1
    );
    let (_, _, denies) = call(
        &cli,
        "GET",
        "/api/v1/audit/logs?decision=deny&limit=200",
        Value::Null,
    )
    .await;
    let mut found: Vec<(String, String)> = denies["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["deny_code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut wanted: Vec<(String, String)> = expected_denies
        .into_iter()
        .map(|(id, c)| (id, c.to_owned()))
        .collect();
    found.sort();
    wanted.sort();
    assert_eq!(
        found, wanted,
        "the denies of the table, each with its code, and nothing else"
    );
    let one = &denies["data"][0];
    assert!(
        one["trace"]["actor"]["user_status"].is_string(),
        "the trace holds values: {one}"
    );
}

#[tokio::test]
async fn bad_requests_and_unknown_ids_are_4xx_never_500() {
    let Some((_db, cli)) = app().await else {
        return;
    };
    fixture(&cli).await;
    let (status, _, json) = call(
        &cli,
        "POST",
        "/api/v1/authz/check",
        json!({"action": "approve"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "VALIDATION_FAILED");
    for field in [
        "actor.user_id",
        "actor.member_id",
        "actor.user_member_id",
        "actor.space_id",
        "resource_type",
        "resource_id",
    ] {
        assert!(
            json["error"]["details"]["fields"][field].is_string(),
            "{field}: {json}"
        );
    }
    let (status, _, json) = call(
        &cli,
        "POST",
        "/api/v1/authz/check",
        request(
            "user_nobody",
            "um_alice_finance_reviewer",
            "space_acme",
            "invoice",
            "invoice_001",
            "approve",
        ),
    )
    .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("USER_NOT_FOUND"))
    );
    let (status, _, json) = call(
        &cli,
        "POST",
        "/api/v1/authz/check",
        request(
            "user_alice",
            "um_alice_finance_reviewer",
            "space_acme",
            "invoice",
            "invoice_999",
            "approve",
        ),
    )
    .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("RESOURCE_NOT_FOUND"))
    );
    let mut inline = request(
        "user_alice",
        "um_alice_finance_reviewer",
        "space_acme",
        "invoice",
        "invoice_001",
        "approve",
    );
    inline["grants"] = json!([{"role_key": "finance_approver", "resource": "invoice", "action": "approve", "scope": "group_tree"}]);
    let (status, _, json) = call(&cli, "POST", "/api/v1/authz/check", inline).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "Context Mode is refused, not silently ignored: {json}"
    );
    let (_, _, decisions) = call(
        &cli,
        "GET",
        "/api/v1/audit/logs?event_type=authz.decision",
        Value::Null,
    )
    .await;
    assert!(
        decisions["data"].as_array().unwrap().is_empty(),
        "a request that was not decided leaves no decision record"
    );
}
