//! The Finance Reviewer conformance table over HTTP (managed mode): the fixture is created through
//! the identity, registry and grant routes, every expected decision is checked through
//! `authz/check` and `authz/explain`, and the audit log holds exactly one record per decision.

use poem::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::support::app::{Auth, Client, KEY, app, create, exchange, login};
use crate::support::finance_reviewer::{seed as fixture, seed_conditions};
use crate::support::processes::{check, request};
use crate::support::super_admin::bootstrap_super_admin;

/// GETs, or POSTs `body`, with the bootstrap key; the answer with its headers (the revision).
async fn call(
    cli: &Client,
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, HeaderMap, Value) {
    let (method, body) = match method {
        "GET" => (Method::GET, None),
        _ => (Method::POST, Some(body.to_string())),
    };
    let answer = exchange(cli, Auth::Boot, method, path, body).await;
    (answer.status, answer.headers, answer.body)
}

/// Alice, through her binding in `space_acme`, doing `action` on the invoice `resource`.
fn alice_request(resource: &str, action: &str) -> Value {
    check("user_alice", "um_alice_finance_reviewer", resource, action)
}

/// The deny code of alice approving the invoice `resource` (null for an allow).
async fn alice_approval(cli: &Client, resource: &str) -> Value {
    let (status, _, json) = call(
        cli,
        "POST",
        "/api/v1/authz/check",
        alice_request(resource, "approve"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json["data"]["deny_code"].clone()
}

/// The fixture's Context Mode request (an external actor, the target and one grant inline),
/// changed by `edit`.
fn context(edit: impl FnOnce(&mut Value)) -> Value {
    let mut body = json!({
        "actor": {
            "user_id": "user_external_alice",
            "member_id": "member_finance_reviewer",
            "binding_id": "binding_external_alice_finance",
            "space_id": "space_acme",
        },
        "resource": {
            "type": "invoice",
            "id": "invoice_001",
            "group_path": "finance.apac",
            "owner_member_id": "member_invoice_creator",
        },
        "action": "approve",
        "grants": [{
            "role_key": "finance_approver",
            "resource": "invoice",
            "action": "approve",
            "scope": "group_tree",
            "scope_anchor_group_path": "finance",
        }],
    });
    edit(&mut body);
    body
}

#[tokio::test]
async fn the_finance_reviewer_table_holds_with_one_audit_record_per_decision() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    seed_conditions(&cli).await;
    let alice = "um_alice_finance_reviewer";
    let dana = |invoice: &str| {
        let mut body = check("user_dana", "um_dana_junior_approver", invoice, "approve");
        body["actor"]["member_id"] = json!("member_junior_approver");
        body
    };
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
        // The member acted as belongs to another space than the request.
        (
            json!({
                "actor": {"user_id": "user_alice", "member_id": "member_other_clerk", "user_member_id": "um_alice_other_clerk", "space_id": "space_acme"},
                "resource_type": "invoice",
                "resource_id": "invoice_001",
                "action": "approve",
            }),
            Some("CROSS_SPACE_VIOLATION"),
        ),
        // Context Mode: the fixture's inline request is allowed…
        (context(|_| {}), None),
        // …and each remaining space mutation is refused: the target's group (named by ID, so
        // its space comes from identity), the role (named by ID), the grant's own space, and the
        // anchor group.
        (
            context(|b| b["resource"]["group_id"] = json!("group_other_ops")),
            Some("CROSS_SPACE_VIOLATION"),
        ),
        (
            context(|b| b["grants"][0]["role_id"] = json!("role_other_approver")),
            Some("CROSS_SPACE_VIOLATION"),
        ),
        (
            context(|b| b["grants"][0]["space_id"] = json!("space_other")),
            Some("CROSS_SPACE_VIOLATION"),
        ),
        (
            context(|b| b["grants"][0]["scope_anchor_group_id"] = json!("group_other_ops")),
            Some("CROSS_SPACE_VIOLATION"),
        ),
        // Inline context still answers to the registry and to inline actor statuses.
        (
            context(|b| b["action"] = json!("teleport")),
            Some("INVALID_RESOURCE_ACTION"),
        ),
        (
            context(|b| b["actor"]["binding_status"] = json!("revoked")),
            Some("USER_MEMBER_REVOKED"),
        ),
        (
            context(|b| b["resource"]["group_path"] = json!("legal.emea")),
            Some("SCOPE_OUT_OF_BOUNDS"),
        ),
        // The junior approver's conditional grant: approve under `finance` when the stored
        // amount is at most 10,000 and the invoice is not archived.
        (dana("invoice_small"), None),
        (dana("invoice_large"), Some("CONDITION_NOT_MET")),
        (dana("invoice_archived"), Some("CONDITION_NOT_MET")),
        // No stored amount: the condition cannot be evaluated, which is not met.
        (dana("invoice_001"), Some("CONDITION_NOT_MET")),
        // Out of the grant's scope, the scope names the deny (the condition is not evaluated).
        (dana("invoice_002"), Some("SCOPE_OUT_OF_BOUNDS")),
        // The request's properties overlay the stored metadata, either way.
        (
            {
                let mut vouched = dana("invoice_large");
                vouched["resource"] = json!({"properties": {"amount": 5000}});
                vouched
            },
            None,
        ),
        (
            {
                let mut vouched = dana("invoice_small");
                vouched["resource"] = json!({"properties": {"amount": 10001}});
                vouched
            },
            Some("CONDITION_NOT_MET"),
        ),
        // Context Mode: an inline grant's condition reads the request's context.
        (
            context(|b| {
                b["grants"][0]["condition"] = json!("context.channel == 'web'");
                b["context"] = json!({"channel": "web"});
            }),
            None,
        ),
        (
            context(|b| {
                b["grants"][0]["condition"] = json!("context.channel == 'web'");
                b["context"] = json!({"channel": "email"});
            }),
            Some("CONDITION_NOT_MET"),
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
    assert_eq!(trace["trace_version"], "1.1");
    // The server reports the trace format its decisions write.
    let (_, _, version) = call(&cli, "GET", "/api/v1/version", Value::Null).await;
    assert_eq!(
        version["data"]["trace_version"], trace["trace_version"],
        "{version}"
    );
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
    assert_eq!(trace["mode"], "managed");

    // Context Mode explains itself the same way, with the inline grant as the candidate.
    let (_, _, inline) = call(&cli, "POST", "/api/v1/authz/explain", context(|_| {})).await;
    let trace = &inline["data"];
    assert_eq!(trace["mode"], "context", "{inline}");
    assert_eq!(trace["decision"], "allow");
    assert_eq!(trace["actor"]["user_id"], "user_external_alice");
    assert_eq!(trace["target"]["group"]["path"], "finance.apac");
    assert_eq!(
        trace["matched_candidates"][0]["scope_anchor"]["path"],
        "finance"
    );

    // Exactly one audit record per decision: 2 per table row plus the two extra explains.
    let (_, _, decisions) = call(
        &cli,
        "GET",
        "/api/v1/audit/logs?event_type=authz.decision&limit=200",
        Value::Null,
    )
    .await;
    assert_eq!(
        decisions["data"].as_array().unwrap().len(),
        table.len() * 2 + 2
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
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    // The schema's required fields are named first; then the handler names the alternatives
    // (the schema's `anyOf`) that none of the fields meets.
    for (body, fields) in [
        (json!({"action": "approve"}), &["actor"][..]),
        (
            json!({"action": "approve", "actor": {}}),
            &["actor.user_id", "actor.member_id", "actor.space_id"][..],
        ),
        (
            json!({"action": "approve", "actor": {"user_id": "user_alice", "member_id": "m", "space_id": "s"}}),
            &["actor.user_member_id", "resource_type", "resource_id"][..],
        ),
    ] {
        let (status, _, json) = call(&cli, "POST", "/api/v1/authz/check", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"]["code"], "VALIDATION_FAILED");
        for field in fields {
            assert!(
                json["error"]["details"]["fields"][field].is_string(),
                "{field}: {json}"
            );
        }
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
    inline["grants"] =
        json!([{"role_key": "finance_approver", "resource": "invoice", "action": "approve"}]);
    let (status, _, json) = call(&cli, "POST", "/api/v1/authz/check", inline).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "VALIDATION_FAILED");
    assert!(
        json["error"]["details"]["fields"]["grants[0].scope"].is_string(),
        "an inline grant without a scope is named: {json}"
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

fn revision(headers: &poem::http::HeaderMap) -> u64 {
    headers
        .get("x-plystra-authz-revision")
        .expect("every decision names the index revision")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn each_committed_write_is_seen_by_the_very_next_check() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    let alice = |resource: &str| alice_request(resource, "approve");
    let check = |body: Value| {
        let cli = &cli;
        async move {
            let (status, headers, json) = call(cli, "POST", "/api/v1/authz/check", body).await;
            assert_eq!(status, StatusCode::OK, "{json}");
            (json["data"]["deny_code"].clone(), revision(&headers))
        }
    };
    let (code, first) = check(alice("invoice_001")).await;
    assert_eq!(code, Value::Null);
    assert!(first > 0, "a loaded index has a revision");

    // A resource created a moment ago is decided on at once.
    create(
        &cli,
        "/api/v1/spaces/space_acme/resources",
        json!({"id": "invoice_003", "resource_type": "invoice", "group_id": "group_finance_emea", "owner_member_id": "member_invoice_creator"}),
    )
    .await;
    let (code, after_resource) = check(alice("invoice_003")).await;
    assert_eq!(code, Value::Null);
    assert!(after_resource > first, "{after_resource} > {first}");

    // Revoking the grant takes effect for the next check.
    let (_, _, grants) = call(
        &cli,
        "GET",
        "/api/v1/spaces/space_acme/member-roles?member_id=member_finance_reviewer",
        Value::Null,
    )
    .await;
    let mr = grants["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["role_id"] == "role_finance_approver")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    create(
        &cli,
        &format!("/api/v1/spaces/space_acme/member-roles/{mr}/revoke"),
        json!({}),
    )
    .await;
    let (code, after_revoke) = check(alice("invoice_001")).await;
    assert_eq!(code, "NO_MATCHING_PERMISSION");
    assert!(after_revoke > after_resource);

    // So does a new grant, anchored lower in the tree.
    create(
        &cli,
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver", "scope_anchor_group_id": "group_finance_emea"}),
    )
    .await;
    assert_eq!(check(alice("invoice_003")).await.0, Value::Null);
    assert_eq!(check(alice("invoice_001")).await.0, "SCOPE_OUT_OF_BOUNDS");

    // And identity changes: a disabled user is refused by the next check.
    create(&cli, "/api/v1/users/user_alice/disable", json!({})).await;
    assert_eq!(check(alice("invoice_003")).await.0, "ACTOR_USER_INACTIVE");
}

#[tokio::test]
async fn a_batch_decides_each_item_on_its_own_in_request_order() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    let alice = alice_request;
    let mut unknown_user = alice("invoice_001", "approve");
    unknown_user["actor"]["user_id"] = json!("user_nobody");
    let body = json!({"checks": [
        alice("invoice_001", "approve"),
        alice("invoice_002", "approve"),
        unknown_user,
        {"actor": {"user_id": "user_alice"}},
        alice("invoice_001", "reject"),
    ]});
    // A check that is not well-formed fails the whole batch, naming it, and decides nothing.
    let (status, _, json) = call(&cli, "POST", "/api/v1/authz/check/batch", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(
        json["error"]["details"]["fields"]["checks[3].actor.member_id"].is_string(),
        "{json}"
    );
    let body = json!({"checks": [
        alice("invoice_001", "approve"),
        alice("invoice_002", "approve"),
        unknown_user,
        alice("invoice_999", "approve"),
        alice("invoice_001", "reject"),
    ]});
    let (status, _, json) = call(&cli, "POST", "/api/v1/authz/check/batch", body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let results = json["data"]["results"].as_array().unwrap();
    let summary: Vec<(u64, u64, Value, Value)> = results
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["status"].as_u64().unwrap(),
                r["result"]["deny_code"].clone(),
                r["error"]["code"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 200, Value::Null, Value::Null),
            (1, 200, json!("SCOPE_OUT_OF_BOUNDS"), Value::Null),
            (2, 404, Value::Null, json!("USER_NOT_FOUND")),
            (3, 404, Value::Null, json!("RESOURCE_NOT_FOUND")),
            (4, 200, json!("NO_MATCHING_PERMISSION"), Value::Null),
        ]
    );
    assert_eq!(
        (
            &json["data"]["allowed"],
            &json["data"]["denied"],
            &json["data"]["failed"]
        ),
        (&json!(1), &json!(2), &json!(2))
    );
    // One audit record per decided item, each its own.
    let ids: std::collections::BTreeSet<&str> = results
        .iter()
        .filter_map(|r| r["result"]["audit_log_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3);
    let (_, _, decisions) = call(
        &cli,
        "GET",
        "/api/v1/audit/logs?event_type=authz.decision&limit=200",
        Value::Null,
    )
    .await;
    assert_eq!(decisions["data"].as_array().unwrap().len(), 3);

    for checks in [json!([]), json!(vec![alice("invoice_001", "approve"); 101])] {
        let (status, _, json) = call(
            &cli,
            "POST",
            "/api/v1/authz/check/batch",
            json!({ "checks": checks }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert!(json["error"]["details"]["fields"]["checks"].is_string());
    }
}

/// Concurrent writes of one entity leave the index on the state the database committed last:
/// each writer publishes its facts in its commit's turn, so a writer that committed first can
/// never publish last. Eight writers at a time disable and restore alice, round after round;
/// after each round the next check must agree with the user's status as the API reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_of_one_entity_leave_the_index_on_the_last_commit() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    let cli = std::sync::Arc::new(cli);
    for round in 0..25 {
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let cli = cli.clone();
                tokio::spawn(async move {
                    let verb = if (i + round) % 2 == 0 {
                        "disable"
                    } else {
                        "restore"
                    };
                    let (status, _, json) = call(
                        &cli,
                        "POST",
                        &format!("/api/v1/users/user_alice/{verb}"),
                        json!({}),
                    )
                    .await;
                    // Restoring an active user (or disabling a disabled one) may be refused; either
                    // way nothing may be left half-done.
                    assert!(
                        status.is_success() || status.is_client_error(),
                        "{verb}: {status} {json}"
                    );
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        let (_, _, user) = call(&cli, "GET", "/api/v1/users/user_alice", Value::Null).await;
        let active = user["data"]["status"] == "active";
        let expected = if active {
            Value::Null
        } else {
            json!("ACTOR_USER_INACTIVE")
        };
        assert_eq!(
            alice_approval(&cli, "invoice_001").await,
            expected,
            "round {round}: the user is {}",
            user["data"]["status"]
        );
    }
}

/// Every write that changes a fact answers the change-feed revision it committed at, strictly
/// increasing, and the feed holds its facts under that revision; the next check decides on at
/// least that revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_answers_its_feed_revision_in_commit_order() {
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    let writes = [
        ("/api/v1/users/user_alice/disable", json!({}), "user"),
        (
            "/api/v1/spaces/space_acme/resources",
            json!({"id": "invoice_009", "resource_type": "invoice", "group_id": "group_finance_apac"}),
            "resource",
        ),
        (
            "/api/v1/spaces/space_acme/roles",
            json!({"id": "role_feed", "key": "feed_reader", "name": "Feed reader"}),
            "role",
        ),
    ];
    let mut last = 0;
    for (path, body, kind) in writes {
        let (code, headers, json) = call(&cli, "POST", path, body).await;
        assert!(code.is_success(), "{path}: {code} {json}");
        let committed = revision(&headers);
        assert!(committed > last, "{path}: {committed} after {last}");
        last = committed;
        let changes = plystra_contracts::feed::changes_after(&database.db, committed - 1, 1)
            .await
            .unwrap();
        assert_eq!(changes[0].revision, committed);
        assert!(
            changes[0]
                .facts
                .iter()
                .any(|f| serde_json::to_value(f).unwrap()["kind"] == kind),
            "{path}: {:?}",
            changes[0].facts
        );
        let (_, headers, _) = call(
            &cli,
            "POST",
            "/api/v1/authz/check",
            alice_request("invoice_001", "approve"),
        )
        .await;
        assert!(revision(&headers) >= committed);
    }
    assert_eq!(
        plystra_contracts::feed::head(&database.db).await.unwrap(),
        last
    );
    assert_eq!(
        alice_approval(&cli, "invoice_009").await,
        "ACTOR_USER_INACTIVE"
    );
}

/// A change committed behind this process's back (another plystrad, a restore script: nothing
/// hands it over in process) reaches the index through the feed alone: at once for a check
/// that carries its revision as a consistency token, and within the poll interval without one.
/// A token past the newest committed revision is refused at once with 409, never decided on
/// older facts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_elsewhere_reaches_the_index_through_the_feed() {
    use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Query};
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    assert_eq!(alice_approval(&cli, "invoice_001").await, Value::Null);
    let mut tx = database.db.begin().await.unwrap();
    let mut disable = Query::update();
    disable
        .table(Alias::new("sys_identity_users"))
        .value(Alias::new("status"), "disabled")
        .and_where(Expr::col(Alias::new("id")).eq("user_alice"));
    tx.execute(&disable).await.unwrap();
    let revision_elsewhere = plystra_contracts::feed::append(
        &mut tx,
        &[plystra_contracts::facts::Fact::User {
            id: "user_alice".into(),
            status: "disabled".into(),
            username: Some("alice@example.com".into()),
            metadata: None,
        }],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut body = alice_request("invoice_001", "approve");
    body["consistency"] = json!({"at_least_revision": revision_elsewhere});
    let (status, headers, json) = call(&cli, "POST", "/api/v1/authz/check", body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["data"]["deny_code"], "ACTOR_USER_INACTIVE");
    assert!(revision(&headers) >= revision_elsewhere);

    // The header asks the same of any protected operation. A revision the database never
    // committed (a token from another deployment, a made-up number) conflicts with the server's
    // state, and waiting would not help: 409 at once, naming the head, for the header and the
    // body alike.
    let resp = cli
        .post("/api/v1/authz/check")
        .header("X-Plystra-API-Key", KEY)
        .header(
            "X-Plystra-At-Least-Revision",
            (revision_elsewhere + 1000).to_string(),
        )
        .body_json(&alice_request("invoice_001", "approve"))
        .send()
        .await;
    resp.assert_status(StatusCode::CONFLICT);
    resp.assert_header("x-plystra-error-code", "REVISION_NOT_ISSUED");
    let json: Value =
        serde_json::from_str(&resp.0.into_body().into_string().await.unwrap()).unwrap();
    assert_eq!(
        json["error"]["details"]["head"],
        json!(revision_elsewhere),
        "{json}"
    );
    let mut body = alice_request("invoice_001", "approve");
    body["consistency"] = json!({"at_least_revision": 9_999_999_999_999_u64});
    let (status, _, json) = call(&cli, "POST", "/api/v1/authz/check", body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(json["error"]["code"], "REVISION_NOT_ISSUED", "{json}");
    let resp = cli
        .post("/api/v1/authz/check")
        .header("X-Plystra-API-Key", KEY)
        .header("X-Plystra-At-Least-Revision", "soon")
        .body_json(&alice_request("invoice_001", "approve"))
        .send()
        .await;
    resp.assert_status(StatusCode::BAD_REQUEST);
}

/// A check reads no table on the task that serves it, whatever the credential: the bootstrap
/// key (and whether the handoff happened), a managed key and a session, and their admin
/// permissions, come from memory, which follows the change feed; the decision comes from the
/// index. The audit record is still written, durably, by the audit writer's task before the
/// answer. `counting_statements` counts every statement run through the database handle on the
/// calling task, and poem's test client serves the request on that task.
#[tokio::test]
async fn a_check_runs_no_statement_with_a_bootstrap_key_a_managed_key_or_a_session() {
    use plystra_contracts::storage::counting_statements;

    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    let (status, _, created) = call(
        &cli,
        "POST",
        "/api/v1/api-keys",
        json!({"name": "checker", "level": "instance", "permission_keys": ["authz:check"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["data"]["api_key"].as_str().unwrap().to_owned();
    let no_statement = |name: &'static str, header: &'static str, value: String, head: u64| {
        let cli = &cli;
        async move {
            let check = || {
                cli.post("/api/v1/authz/check")
                    .header(header, value.as_str())
                    .header("X-Plystra-At-Least-Revision", head.to_string())
                    .body_json(&alice_request("invoice_001", "approve"))
                    .send()
            };
            // The first request also waits for `head` to be applied here.
            check().await.assert_status_is_ok();
            let (resp, statements) = counting_statements(check()).await;
            let status = resp.0.status();
            let text = resp.0.into_body().into_string().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{name}: {text}");
            let json: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["data"]["decision"], "allow", "{name}: {json}");
            assert!(
                json["data"]["audit_log_id"].is_string(),
                "{name}: the decision is audited: {json}"
            );
            assert_eq!(
                statements, 0,
                "{name}: a check ran {statements} statements on its request's task"
            );
        }
    };
    let head = plystra_contracts::feed::head(&db.db).await.unwrap();
    // Before the handoff the bootstrap key asks whether a super admin exists: from memory.
    no_statement(
        "bootstrap key before the handoff",
        "X-Plystra-API-Key",
        KEY.to_owned(),
        head,
    )
    .await;
    no_statement("managed key", "X-Plystra-API-Key", key, head).await;
    // Bob becomes the super admin, as `plystractl admin bootstrap-super-admin` makes one.
    bootstrap_super_admin(&db.db, "user_bob").await;
    let head = plystra_contracts::feed::head(&db.db).await.unwrap();
    let bearer = format!("Bearer {}", login(&cli, "bob@example.com").await);
    // A session's admin permissions are its user's grants: from memory.
    no_statement("session", "Authorization", bearer, head).await;
    no_statement(
        "bootstrap key after the handoff",
        "X-Plystra-API-Key",
        KEY.to_owned(),
        head,
    )
    .await;
    // The counter counts: a management read through the same client runs statements.
    let (resp, statements) = counting_statements(
        cli.get("/api/v1/users")
            .header("X-Plystra-API-Key", KEY)
            .send(),
    )
    .await;
    resp.assert_status_is_ok();
    assert!(statements > 0, "listing users reads the users table");
}
