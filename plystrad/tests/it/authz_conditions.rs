//! Permission conditions over HTTP on the Finance Reviewer fixture and its junior approver: a
//! condition is compiled when it is written (a refused one is a 400 with its position and
//! nothing is written), a changed one is decided on by the next check, explain and the audit
//! record show what it read (redacted as metadata is), and lookups, AuthZEN evaluations and
//! searches decide it as a check does.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::app::{Auth, Client, app, call, create, exchange, expect};
use crate::support::finance_reviewer::{JUNIOR_CONDITION, seed as fixture, seed_conditions};
use crate::support::processes::check;

/// Dana, the junior approver, approving the invoice `invoice`.
fn dana(invoice: &str) -> Value {
    let mut body = check("user_dana", "um_dana_junior_approver", invoice, "approve");
    body["actor"]["member_id"] = json!("member_junior_approver");
    body
}

/// The deny code of `body` through `authz/check` (null for an allow).
async fn deny_code(cli: &Client, body: Value) -> Value {
    let data = expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/authz/check",
        Some(body),
        StatusCode::OK,
    )
    .await;
    data["deny_code"].clone()
}

#[tokio::test]
async fn a_condition_is_compiled_when_written_and_a_refused_one_is_a_400_with_its_position() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    let nested = "resource.properties.tags.all(a, resource.properties.tags.exists(b, a == b))";
    for (condition, line, column, says) in [
        ("resource.properties.amount <=", 1, 30, "mismatched input"),
        (
            "resource.status == 'active' &&\n  user.role == 'admin'",
            2,
            3,
            "`user` is not",
        ),
        ("resource.properties.amount + 1", 1, 28, "not a boolean"),
        (nested, 1, 64, "inside another"),
        (
            "now > 0 && ((((((((((((((((((((((((((((((((((true)))))))))))))))))))))))))))))))))",
            1,
            44,
            "nest",
        ),
    ] {
        let body = expect(
            &cli,
            Auth::Boot,
            "POST",
            "/api/v1/permissions",
            Some(json!({"resource": "invoice", "action": "approve", "scope": "space", "condition": condition})),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{body}");
        let error = &body["error"];
        assert!(
            error["details"]["fields"]["condition"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{condition}: {body}"
        );
        assert_eq!(
            (
                error["details"]["line"].clone(),
                error["details"]["column"].clone()
            ),
            (json!(line), json!(column)),
            "{condition}: {body}"
        );
    }
    // Too long for the schema: refused before it is compiled.
    let long = format!("now > 0{}", " && now > 0".repeat(120));
    let (status, body) = call(
        &cli,
        "POST",
        "/api/v1/permissions",
        Some(json!({"resource": "invoice", "action": "approve", "scope": "space", "condition": long})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Nothing was written by any of them.
    let (_, listed) = call(
        &cli,
        "GET",
        "/api/v1/permissions?resource=invoice&action=approve&limit=200",
        None,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");

    // The same resource, action and scope under a condition is another rule; the same rule
    // twice is a conflict.
    let rule = json!({"id": "perm_approve_small", "resource": "invoice", "action": "approve", "scope": "group_tree", "condition": "resource.properties.amount < 100"});
    let created = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/permissions",
        Some(rule.clone()),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["condition"], "resource.properties.amount < 100");
    let mut again = rule.clone();
    again["id"] = json!("perm_approve_small_again");
    let conflict = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/permissions",
        Some(again),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        conflict["error"]["details"]["existing_id"],
        "perm_approve_small"
    );
    // A refused update writes nothing; removing the condition collides with the fixture's
    // unconditional rule.
    let refused = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/permissions/perm_approve_small",
        Some(json!({"condition": "amount < 100", "scope": "space"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["error"]["details"]["column"], 1, "{refused}");
    let removed = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/permissions/perm_approve_small",
        Some(json!({"condition": null})),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(removed["error"]["details"]["existing_id"].is_string());
    let kept = expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/permissions/perm_approve_small",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (kept["scope"].clone(), kept["condition"].clone()),
        (
            json!("group_tree"),
            json!("resource.properties.amount < 100")
        )
    );
}

#[tokio::test]
async fn a_changed_condition_is_decided_on_by_the_next_check() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    seed_conditions(&cli).await;
    assert_eq!(
        deny_code(&cli, dana("invoice_large")).await,
        "CONDITION_NOT_MET"
    );
    let path = "/api/v1/permissions/perm_invoice_approve_limited";
    let raised = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        path,
        Some(json!({"condition": "resource.properties.amount <= 30000"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(raised["condition"], "resource.properties.amount <= 30000");
    assert_eq!(deny_code(&cli, dana("invoice_large")).await, Value::Null);
    // No stored amount still fails it…
    assert_eq!(
        deny_code(&cli, dana("invoice_001")).await,
        "CONDITION_NOT_MET"
    );
    // The registry's attributes: the action's risk level and the resource's visibility.
    for (condition, allowed) in [
        (
            "action.risk_level == 'high' && resource.visibility == 'space'",
            true,
        ),
        ("action.risk_level == 'normal'", false),
        ("resource.visibility == 'public'", false),
    ] {
        expect(
            &cli,
            Auth::Boot,
            "PATCH",
            path,
            Some(json!({"condition": condition})),
            StatusCode::OK,
        )
        .await;
        let code = deny_code(&cli, dana("invoice_001")).await;
        assert_eq!(code.is_null(), allowed, "{condition}: {code}");
    }
    // …until the condition is removed (at space scope, a rule the fixture does not hold yet).
    let removed = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        path,
        Some(json!({"condition": null, "scope": "space"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(removed["condition"], Value::Null);
    assert_eq!(deny_code(&cli, dana("invoice_001")).await, Value::Null);
    // The deny codes the server lists include the new one.
    let codes = expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/authz/deny-codes",
        None,
        StatusCode::OK,
    )
    .await;
    let listed: Vec<&str> = codes["deny_codes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert_eq!(listed.len(), 14, "{codes}");
    assert_eq!(listed[13], "CONDITION_NOT_MET");
}

#[tokio::test]
async fn each_batch_item_brings_its_own_attributes_to_the_conditions() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    seed_conditions(&cli).await;
    let vouched = |invoice: &str, amount: i64| {
        let mut body = dana(invoice);
        body["resource"] = json!({"properties": {"amount": amount}});
        body
    };
    let batch = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/authz/check/batch",
        Some(json!({"checks": [
            dana("invoice_small"),
            dana("invoice_large"),
            vouched("invoice_large", 100),
            vouched("invoice_small", 20_000),
        ]})),
        StatusCode::OK,
    )
    .await;
    let codes: Vec<Value> = batch["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["result"]["deny_code"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            Value::Null,
            json!("CONDITION_NOT_MET"),
            Value::Null,
            json!("CONDITION_NOT_MET")
        ],
        "{batch}"
    );
    // Attributes past the bound are refused, naming the largest part.
    let mut huge = dana("invoice_small");
    huge["context"] = json!({"blob": "x".repeat(20_000)});
    let refused = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/authz/check",
        Some(huge),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        refused["error"]["details"]["fields"]["context"].is_string(),
        "{refused}"
    );
}

/// The condition of the first candidate of an explain answer.
async fn explained_condition(cli: &Client, body: Value) -> (Value, Value) {
    let data = expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/authz/explain",
        Some(body),
        StatusCode::OK,
    )
    .await;
    let audit_id = data["audit"]["audit_log_id"].as_str().unwrap().to_owned();
    let record = expect(
        cli,
        Auth::Boot,
        "GET",
        &format!("/api/v1/audit/logs/{audit_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    // The record keeps the trace without the answer's `audit` block: it is itself where the
    // decision went.
    assert_eq!(record["trace"]["trace_id"], data["trace_id"], "{record}");
    assert_eq!(record["trace"].get("audit"), None, "{record}");
    (
        data["matched_candidates"][0]["condition"].clone(),
        record["trace"]["matched_candidates"][0]["condition"].clone(),
    )
}

#[tokio::test]
async fn explain_and_the_audit_record_show_what_a_condition_read_redacted_as_metadata_is() {
    for allowlist in [None, Some("resource.properties.amount")] {
        let extra: Vec<(&str, &str)> = allowlist
            .map(|a| ("PLYSTRA_AUDIT_METADATA_ALLOWLIST", a))
            .into_iter()
            .collect();
        let Some((_db, cli)) = app(&extra).await else {
            return;
        };
        fixture(&cli).await;
        seed_conditions(&cli).await;
        let mut vouched = dana("invoice_archived");
        vouched["resource"] = json!({"properties": {"amount": 12000}});
        let (answered, recorded) = explained_condition(&cli, vouched).await;
        for condition in [&answered, &recorded] {
            assert_eq!(condition["expression"], JUNIOR_CONDITION, "{condition}");
            assert_eq!(condition["result"], "not_met");
            assert_eq!(
                condition["inputs"],
                json!([
                    {"path": "resource.properties.amount", "source": "request", "present": true},
                    {"path": "resource.status", "source": "storage", "present": true},
                ])
            );
            let values = &condition["input_values"];
            assert_eq!(values["resource.status"], "[redacted]", "{condition}");
            let amount = if allowlist.is_some() {
                json!(12000)
            } else {
                json!("[redacted]")
            };
            assert_eq!(values["resource.properties.amount"], amount, "{condition}");
        }
        // A missing attribute fails the condition, and says which.
        let (failed, _) = explained_condition(&cli, dana("invoice_001")).await;
        assert_eq!(failed["result"], "failed", "{failed}");
        assert!(
            failed["reason"].as_str().unwrap().contains("amount"),
            "{failed}"
        );
        assert_eq!(failed["inputs"][0]["present"], false, "{failed}");
        // Out of scope, the condition is not evaluated.
        let (skipped, _) = explained_condition(&cli, dana("invoice_002")).await;
        assert_eq!(skipped["result"], "not_evaluated", "{skipped}");
        assert_eq!(skipped["inputs"], json!([]));
    }
}

#[tokio::test]
async fn lookups_and_authzen_decide_conditions_as_a_check_does() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    seed_conditions(&cli).await;
    let actor = json!({"user_id": "user_dana", "member_id": "member_junior_approver", "user_member_id": "um_dana_junior_approver", "space_id": "space_acme"});
    // A lookup decides on what is stored: only the small, active invoice.
    let (status, page) = call(
        &cli,
        "POST",
        "/api/v1/authz/lookup/resources",
        Some(json!({"actor": actor, "resource_type": "invoice", "action": "approve"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["invoice_small"], "{page}");
    // Every invoice the lookup leaves out is one a check denies.
    for invoice in ["invoice_large", "invoice_archived", "invoice_001"] {
        assert_eq!(
            deny_code(&cli, dana(invoice)).await,
            "CONDITION_NOT_MET",
            "{invoice}"
        );
    }
    // Who may approve the small invoice: the finance reviewer's bindings and dana's.
    let (_, subjects) = call(
        &cli,
        "POST",
        "/api/v1/authz/lookup/subjects",
        Some(json!({"resource_type": "invoice", "resource_id": "invoice_large", "action": "approve"})),
    )
    .await;
    assert!(
        !subjects.to_string().contains("um_dana_junior_approver"),
        "{subjects}"
    );
    let (_, subjects) = call(
        &cli,
        "POST",
        "/api/v1/authz/lookup/subjects",
        Some(json!({"resource_type": "invoice", "resource_id": "invoice_small", "action": "approve"})),
    )
    .await;
    assert!(
        subjects.to_string().contains("um_dana_junior_approver"),
        "{subjects}"
    );

    // AuthZEN: the entities' properties and the context reach the condition.
    let evaluation = |amount: i64| {
        json!({
            "subject": {"type": "user_member", "id": "um_dana_junior_approver"},
            "action": {"name": "approve"},
            "resource": {"type": "invoice", "id": "invoice_large", "properties": {"amount": amount}},
            "context": {"channel": "web"},
        })
    };
    for (amount, decision) in [(9_000, true), (10_001, false)] {
        let (status, answer) = call(
            &cli,
            "POST",
            "/access/v1/evaluation",
            Some(evaluation(amount)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["decision"], decision, "{amount}: {answer}");
        if !decision {
            assert_eq!(
                answer["context"]["deny_code"], "CONDITION_NOT_MET",
                "{answer}"
            );
        }
    }
    // A resource search decides on what is stored, as the lookup does.
    let (_, found) = call(
        &cli,
        "POST",
        "/access/v1/search/resource",
        Some(json!({
            "subject": {"type": "user_member", "id": "um_dana_junior_approver"},
            "action": {"name": "approve"},
            "resource": {"type": "invoice"},
        })),
    )
    .await;
    let ids: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["invoice_small"], "{found}");
    assert!(
        found["context"].get("undecided_conditions").is_none(),
        "{found}"
    );

    // A condition that reads the request's context cannot be decided without one: lookups and
    // searches leave its grant out and name it.
    let undecided = |headers: &poem::http::HeaderMap| {
        headers
            .get("x-plystra-undecided-conditions")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let lookup = json!({"actor": actor, "resource_type": "invoice", "action": "approve"});
    let before = exchange(
        &cli,
        Auth::Boot,
        Method::POST,
        "/api/v1/authz/lookup/resources",
        Some(lookup.to_string()),
    )
    .await;
    assert_eq!(undecided(&before.headers), None);
    create(
        &cli,
        "/api/v1/permissions",
        json!({"id": "perm_approve_from_the_office", "resource": "invoice", "action": "approve", "scope": "group_tree", "condition": "context.network == 'office'"}),
    )
    .await;
    create(
        &cli,
        "/api/v1/role-permissions",
        json!({"role_id": "role_junior_approver", "permission_id": "perm_approve_from_the_office"}),
    )
    .await;
    let after = exchange(
        &cli,
        Auth::Boot,
        Method::POST,
        "/api/v1/authz/lookup/resources",
        Some(lookup.to_string()),
    )
    .await;
    assert_eq!(
        undecided(&after.headers).as_deref(),
        Some("perm_approve_from_the_office")
    );
    assert_eq!(after.body["data"], before.body["data"], "{}", after.body);
    // A check that brings the context is allowed by it.
    let mut from_the_office = dana("invoice_large");
    from_the_office["context"] = json!({"network": "office"});
    assert_eq!(deny_code(&cli, from_the_office).await, Value::Null);
    let (_, found) = call(
        &cli,
        "POST",
        "/access/v1/search/resource",
        Some(json!({
            "subject": {"type": "user_member", "id": "um_dana_junior_approver"},
            "action": {"name": "approve"},
            "resource": {"type": "invoice"},
        })),
    )
    .await;
    assert_eq!(
        found["context"]["undecided_conditions"],
        json!(["perm_approve_from_the_office"]),
        "{found}"
    );
}

#[tokio::test]
async fn the_users_and_members_stored_metadata_are_the_subjects_properties() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    seed_conditions(&cli).await;
    let patch = async |path: &str, body: Value| {
        expect(&cli, Auth::Boot, "PATCH", path, Some(body), StatusCode::OK).await;
    };
    patch(
        "/api/v1/permissions/perm_invoice_approve_limited",
        json!({"condition": "subject.properties.clearance == 'high' && subject.properties.region == 'apac'"}),
    )
    .await;
    // Nothing stored yet: the condition cannot be evaluated.
    assert_eq!(
        deny_code(&cli, dana("invoice_large")).await,
        "CONDITION_NOT_MET"
    );
    patch(
        "/api/v1/users/user_dana",
        json!({"metadata": {"clearance": "high", "region": "emea"}}),
    )
    .await;
    assert_eq!(
        deny_code(&cli, dana("invoice_large")).await,
        "CONDITION_NOT_MET"
    );
    // The member's metadata is over the user's…
    patch(
        "/api/v1/spaces/space_acme/members/member_junior_approver",
        json!({"metadata": {"region": "apac"}}),
    )
    .await;
    assert_eq!(deny_code(&cli, dana("invoice_large")).await, Value::Null);
    // …and the request's properties over both.
    let mut elsewhere = dana("invoice_large");
    elsewhere["actor"]["properties"] = json!({"region": "emea"});
    assert_eq!(deny_code(&cli, elsewhere).await, "CONDITION_NOT_MET");
    let (inputs, _) = explained_condition(&cli, dana("invoice_large")).await;
    assert_eq!(
        inputs["inputs"],
        json!([
            {"path": "subject.properties.clearance", "source": "storage", "present": true},
            {"path": "subject.properties.region", "source": "storage", "present": true},
        ]),
        "{inputs}"
    );
}
