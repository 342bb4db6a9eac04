//! AuthZEN 1.0 over HTTP on the Finance Reviewer fixture: the table decided through the standard's
//! evaluation exactly as through `authz/check` (decisions, deny codes, one audit record each),
//! the evaluations' defaults and semantics (short-circuited items neither decided nor audited),
//! the searches against evaluations of what they find (paged by signed tokens, a revoke seen by
//! the next search, one audit record a page), and the standard's transport: errors as a message
//! string, the request identifier echoed, unknown fields ignored, the metadata public.

use poem::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::support::app::{Client, KEY, all_pages, app, call, create};
use crate::support::finance_reviewer::seed as fixture;
use crate::support::processes::request;

/// An answer: status, headers, and the body as JSON (a string when it is not JSON).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// POSTs `body` (raw text) to `path` with the bootstrap key and `X-Request-ID: request_id`.
async fn post_raw(cli: &Client, path: &str, body: String, request_id: &str) -> Answer {
    let resp = cli
        .post(path)
        .header("X-Plystra-API-Key", KEY)
        .header("X-Request-ID", request_id)
        .content_type("application/json")
        .body(body)
        .send()
        .await;
    let status = resp.0.status();
    let headers = resp.0.headers().clone();
    let text = resp.0.into_body().into_string().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// POSTs `body` to an AuthZEN `path` and asserts 200; the body.
async fn authzen(cli: &Client, path: &str, body: Value, request_id: &str) -> Value {
    let answer = post_raw(cli, path, body.to_string(), request_id).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{path} {body}: {}",
        answer.body
    );
    answer.body
}

/// The audit records of `event_type` one request wrote.
async fn records_of(cli: &Client, event_type: &str, request_id: &str) -> Vec<Value> {
    all_pages(
        cli,
        &format!("/api/v1/audit/logs?event_type={event_type}&request_id={request_id}"),
        100,
    )
    .await
}

fn binding(id: &str, space: &str) -> Value {
    json!({"type": "user_member", "id": id, "properties": {"space_id": space}})
}

fn invoice(id: &str) -> Value {
    json!({"type": "invoice", "id": id})
}

fn action(name: &str) -> Value {
    json!({"name": name})
}

/// Whether the evaluation of `subject` doing `act` on the invoice `id` is `true`.
async fn evaluates_true(cli: &Client, subject: &Value, act: &str, id: &str) -> bool {
    let answer = authzen(
        cli,
        "/access/v1/evaluation",
        json!({"subject": subject, "action": action(act), "resource": invoice(id)}),
        "req-evaluates-true",
    )
    .await;
    answer["decision"].as_bool().unwrap()
}

#[tokio::test]
async fn the_finance_reviewer_table_answers_alike_through_check_and_authzen_evaluation() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    let alice = "um_alice_finance_reviewer";
    // (user, binding, space, type, resource, action, deny code): the managed rows of the table.
    let table = [
        (
            "user_alice",
            alice,
            "space_acme",
            "invoice",
            "invoice_001",
            "approve",
            None,
        ),
        (
            "user_alice",
            alice,
            "space_acme",
            "invoice",
            "invoice_002",
            "approve",
            Some("SCOPE_OUT_OF_BOUNDS"),
        ),
        (
            "user_bob",
            "um_bob_finance_reviewer",
            "space_acme",
            "invoice",
            "invoice_001",
            "approve",
            None,
        ),
        (
            "user_alice",
            "um_alice_finance_reviewer_revoked",
            "space_acme",
            "invoice",
            "invoice_001",
            "approve",
            Some("USER_MEMBER_REVOKED"),
        ),
        (
            "user_alice",
            "um_alice_finance_reviewer_expired",
            "space_acme",
            "invoice",
            "invoice_001",
            "approve",
            Some("USER_MEMBER_EXPIRED"),
        ),
        (
            "user_alice",
            alice,
            "space_acme",
            "invoice",
            "invoice_001",
            "reject",
            Some("NO_MATCHING_PERMISSION"),
        ),
        (
            "user_alice",
            alice,
            "space_acme",
            "purchase_order",
            "po_1",
            "approve",
            Some("INVALID_RESOURCE_TYPE"),
        ),
        (
            "user_alice",
            alice,
            "space_acme",
            "invoice",
            "invoice_001",
            "teleport",
            Some("INVALID_RESOURCE_ACTION"),
        ),
        (
            "user_alice",
            alice,
            "space_acme",
            "invoice",
            "invoice_001",
            "delete",
            Some("GLOBAL_SCOPE_DISABLED"),
        ),
        (
            "user_alice",
            alice,
            "space_other",
            "invoice",
            "invoice_001",
            "approve",
            Some("CROSS_SPACE_VIOLATION"),
        ),
        (
            "user_alice",
            alice,
            "space_acme",
            "invoice",
            "invoice_other",
            "approve",
            Some("CROSS_SPACE_VIOLATION"),
        ),
    ];
    for (i, (user, um, space, kind, id, act, deny)) in table.into_iter().enumerate() {
        let (status, checked) = call(
            &cli,
            "POST",
            "/api/v1/authz/check",
            Some(request(user, um, space, kind, id, act)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "row {i}: {checked}");
        assert_eq!(
            checked["data"]["deny_code"].as_str(),
            deny,
            "row {i}: {checked}"
        );
        let request_id = format!("req-authzen-table-{i}");
        let evaluated = authzen(
            &cli,
            "/access/v1/evaluation",
            json!({
                "subject": binding(um, space),
                "action": action(act),
                "resource": {"type": kind, "id": id},
            }),
            &request_id,
        )
        .await;
        let context = &evaluated["context"];
        assert_eq!(
            evaluated["decision"],
            deny.is_none(),
            "row {i}: {evaluated}"
        );
        assert_eq!(context["deny_code"].as_str(), deny, "row {i}: {evaluated}");
        assert_eq!(context["reason"], checked["data"]["reason"], "row {i}");
        assert!(context["revision"].is_u64(), "row {i}: {evaluated}");
        // Absent values are left out, not null.
        assert!(
            !evaluated.to_string().contains("null"),
            "row {i}: {evaluated}"
        );
        if deny.is_some() {
            assert_eq!(context["reason_admin"]["403"], context["reason"], "row {i}");
        }
        // One audit record, the decision's, with its trace.
        let records = records_of(&cli, "authz.decision", &request_id).await;
        assert_eq!(records.len(), 1, "row {i}: {records:?}");
        let record = &records[0];
        assert_eq!(record["id"], context["audit_log_id"], "row {i}");
        assert_eq!(record["deny_code"].as_str(), deny, "row {i}");
        assert_eq!(record["actor_user_id"], user, "row {i}");
        assert_eq!(record["actor_user_member_id"], um, "row {i}");
        assert_eq!(record["trace"]["trace_id"], context["trace_id"], "row {i}");
    }

    // A user by username: bob has one binding; alice has bindings to two members in two spaces,
    // so she needs the space, where her usable binding (not the revoked or the expired) acts.
    let bob = json!({"type": "user", "id": "bob@example.com"});
    assert!(evaluates_true(&cli, &bob, "approve", "invoice_001").await);
    let alice_in_acme = json!({"type": "user", "id": "alice@example.com", "properties": {"space_id": "space_acme"}});
    assert!(evaluates_true(&cli, &alice_in_acme, "approve", "invoice_001").await);
    let by_id =
        json!({"type": "user", "id": "user_alice", "properties": {"space_id": "space_acme"}});
    assert!(evaluates_true(&cli, &by_id, "approve", "invoice_001").await);
    let member = json!({"type": "member", "id": "member_finance_reviewer"});
    assert!(evaluates_true(&cli, &member, "approve", "invoice_001").await);
    // Ambiguous, unknown, unsupported: false, the error in the context, nothing audited.
    for (subject, status, code) in [
        (
            json!({"type": "user", "id": "alice@example.com"}),
            400,
            "VALIDATION_FAILED",
        ),
        (
            json!({"type": "user", "id": "nobody@example.com"}),
            404,
            "USER_NOT_FOUND",
        ),
        (
            json!({"type": "user_member", "id": "um_nobody"}),
            404,
            "USER_MEMBER_NOT_FOUND",
        ),
        (
            json!({"type": "device", "id": "d_1"}),
            400,
            "VALIDATION_FAILED",
        ),
        (binding(alice, "space_acme"), 404, "RESOURCE_NOT_FOUND"),
    ] {
        let resource = if code == "RESOURCE_NOT_FOUND" {
            "invoice_999"
        } else {
            "invoice_001"
        };
        let answer = authzen(
            &cli,
            "/access/v1/evaluation",
            json!({"subject": subject, "action": action("approve"), "resource": invoice(resource)}),
            "req-authzen-undecided",
        )
        .await;
        assert_eq!(answer["decision"], false, "{subject}: {answer}");
        assert_eq!(
            answer["context"]["error"]["status"], status,
            "{subject}: {answer}"
        );
        assert_eq!(
            answer["context"]["error"]["code"], code,
            "{subject}: {answer}"
        );
    }
    assert!(
        records_of(&cli, "authz.decision", "req-authzen-undecided")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn evaluations_take_defaults_and_each_semantic_stops_where_it_says() {
    let Some((_db, cli)) = app(&[("PLYSTRA_AUTHZ_MAX_BATCH", "4")]).await else {
        return;
    };
    fixture(&cli).await;
    // allow, deny, allow, and a deny through an item's own action.
    let body = |semantic: Option<&str>| {
        let mut body = json!({
            "subject": binding("um_alice_finance_reviewer", "space_acme"),
            "action": action("approve"),
            "context": {"time": "2026-12-06T09:00:00Z"},
            "evaluations": [
                {"resource": invoice("invoice_001")},
                {"resource": invoice("invoice_002")},
                {"resource": invoice("invoice_001")},
                {"resource": invoice("invoice_001"), "action": action("reject")},
            ],
        });
        if let Some(semantic) = semantic {
            body["options"] = json!({"evaluations_semantic": semantic, "another_option": 1});
        }
        body
    };
    for (semantic, expected, codes) in [
        (
            None,
            vec![true, false, true, false],
            vec![
                None,
                Some("SCOPE_OUT_OF_BOUNDS"),
                None,
                Some("NO_MATCHING_PERMISSION"),
            ],
        ),
        (
            Some("execute_all"),
            vec![true, false, true, false],
            vec![
                None,
                Some("SCOPE_OUT_OF_BOUNDS"),
                None,
                Some("NO_MATCHING_PERMISSION"),
            ],
        ),
        (
            Some("deny_on_first_deny"),
            vec![true, false],
            vec![None, Some("SCOPE_OUT_OF_BOUNDS")],
        ),
        (Some("permit_on_first_permit"), vec![true], vec![None]),
    ] {
        let request_id = format!("req-evaluations-{}", semantic.unwrap_or("default"));
        let answer = authzen(&cli, "/access/v1/evaluations", body(semantic), &request_id).await;
        let items = answer["evaluations"].as_array().unwrap();
        let decisions: Vec<bool> = items
            .iter()
            .map(|d| d["decision"].as_bool().unwrap())
            .collect();
        assert_eq!(decisions, expected, "{semantic:?}: {answer}");
        let deny_codes: Vec<Option<&str>> = items
            .iter()
            .map(|d| d["context"]["deny_code"].as_str())
            .collect();
        assert_eq!(deny_codes, codes, "{semantic:?}");
        assert!(answer.get("decision").is_none(), "{answer}");
        // Exactly the decided items are audited: the short-circuited ones are not.
        let records = records_of(&cli, "authz.decision", &request_id).await;
        assert_eq!(records.len(), expected.len(), "{semantic:?}: {records:?}");
        let mut audited: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let mut answered: Vec<&str> = items
            .iter()
            .map(|d| d["context"]["audit_log_id"].as_str().unwrap())
            .collect();
        audited.sort_unstable();
        answered.sort_unstable();
        assert_eq!(audited, answered, "{semantic:?}");
    }
    // A deny stops `deny_on_first_deny` even at the first item; an item's own subject wins.
    let mut first_denied = body(Some("deny_on_first_deny"));
    first_denied["evaluations"][0]["subject"] =
        binding("um_alice_finance_reviewer_revoked", "space_acme");
    let answer = authzen(
        &cli,
        "/access/v1/evaluations",
        first_denied,
        "req-first-denied",
    )
    .await;
    assert_eq!(
        answer["evaluations"].as_array().unwrap().len(),
        1,
        "{answer}"
    );
    assert_eq!(
        answer["evaluations"][0]["context"]["deny_code"],
        "USER_MEMBER_REVOKED"
    );

    // Without items: the one evaluation of the top level, answered as a decision.
    let mut lone = body(None);
    lone.as_object_mut().unwrap().remove("evaluations");
    lone["resource"] = invoice("invoice_001");
    let answer = authzen(&cli, "/access/v1/evaluations", lone, "req-evaluations-lone").await;
    assert_eq!(answer["decision"], true, "{answer}");
    assert!(answer["context"]["trace_id"].is_string(), "{answer}");
    assert!(answer.get("evaluations").is_none(), "{answer}");

    // What fails the whole request is a 400 with a message string naming the fields.
    let mut no_resource = body(None);
    no_resource["evaluations"][1] = json!({"action": action("approve")});
    let too_many = json!({
        "subject": binding("um_alice_finance_reviewer", "space_acme"),
        "action": action("approve"),
        "evaluations": vec![json!({"resource": invoice("invoice_001")}); 5],
    });
    let mut blank = body(None);
    blank["evaluations"][2]["resource"]["id"] = json!(" ");
    let mut unknown_semantic = body(None);
    unknown_semantic["options"] = json!({"evaluations_semantic": "first_wins"});
    for (bad, names) in [
        (no_resource, "evaluations[1].resource"),
        (too_many, "evaluations"),
        (blank, "evaluations[2].resource.id"),
        (unknown_semantic, "options.evaluations_semantic"),
        (json!({"evaluations": []}), "subject"),
    ] {
        let answer = post_raw(&cli, "/access/v1/evaluations", bad.to_string(), "req-bad").await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            answer.body
        );
        assert_eq!(answer.headers["x-plystra-error-code"], "VALIDATION_FAILED");
        assert!(
            answer.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
            "{:?}",
            answer.headers
        );
        let text = answer.body.as_str().unwrap();
        assert!(text.contains(names), "{names}: {text}");
    }
    assert!(
        records_of(&cli, "authz.decision", "req-bad")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn searches_find_exactly_what_evaluations_allow_and_page_by_signed_tokens() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    // Five more invoices under finance, two named by the application's own ID.
    for (id, external, group) in [
        ("invoice_003", Some("INV-3"), "group_finance"),
        ("invoice_004", None, "group_finance_emea"),
        ("invoice_005", Some("INV-5"), "group_finance_apac"),
        ("invoice_006", None, "group_legal"),
        ("invoice_007", None, "group_finance"),
    ] {
        let mut body = json!({"id": id, "resource_type": "invoice", "group_id": group, "owner_member_id": "member_invoice_creator"});
        if let Some(external) = external {
            body["external_id"] = json!(external);
        }
        create(&cli, "/api/v1/spaces/space_acme/resources", body).await;
    }
    let alice = binding("um_alice_finance_reviewer", "space_acme");
    let search = |page: Value| {
        json!({
            "subject": alice,
            "action": action("approve"),
            "resource": {"type": "invoice", "id": "ignored"},
            "page": page,
        })
    };
    // Every page, two at a time, each page audited once.
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    for i in 0.. {
        let mut page = json!({"limit": 2});
        if let Some(token) = &token {
            page["token"] = json!(token);
        }
        let request_id = format!("req-resource-search-{i}");
        let answer = authzen(
            &cli,
            "/access/v1/search/resource",
            search(page),
            &request_id,
        )
        .await;
        let results = answer["results"].as_array().unwrap();
        assert_eq!(answer["page"]["count"], results.len(), "{answer}");
        assert!(results.len() <= 2, "{answer}");
        found.extend(results.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        let records = records_of(&cli, "authz.lookup", &request_id).await;
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["action"], "search.resource");
        assert_eq!(records[0]["trace"]["found"], results.len());
        let next = answer["page"]["next_token"].as_str().unwrap();
        if next.is_empty() {
            break;
        }
        token = Some(next.to_owned());
        assert!(i < 10, "the pages never end");
        if i == 0 {
            // A write between pages: the new invoice sorts after this page, so a later one has it.
            create(
                &cli,
                "/api/v1/spaces/space_acme/resources",
                json!({"id": "invoice_008", "resource_type": "invoice", "group_id": "group_finance_emea", "owner_member_id": "member_invoice_creator"}),
            )
            .await;
        }
    }
    // Under finance, by ID order, the one written between pages included; each named the way an
    // evaluation takes it back, and allowed there.
    assert_eq!(
        found,
        [
            "invoice_001",
            "INV-3",
            "invoice_004",
            "INV-5",
            "invoice_007",
            "invoice_008"
        ]
    );
    for id in &found {
        assert!(evaluates_true(&cli, &alice, "approve", id).await, "{id}");
    }
    for id in ["invoice_002", "invoice_006"] {
        assert!(!evaluates_true(&cli, &alice, "approve", id).await, "{id}");
    }
    // A token is its own search's, unaltered, at the same page size.
    let first = authzen(
        &cli,
        "/access/v1/search/resource",
        search(json!({"limit": 2})),
        "req-t",
    )
    .await;
    let token = first["page"]["next_token"].as_str().unwrap().to_owned();
    let mut other_action = search(json!({"limit": 2, "token": token}));
    other_action["action"] = action("read");
    for bad in [
        search(json!({"limit": 3, "token": token})),
        search(json!({"limit": 2, "token": format!("{token}x")})),
        other_action,
        search(json!({"limit": 0})),
        search(json!({"limit": 1001})),
    ] {
        let answer = post_raw(&cli, "/access/v1/search/resource", bad.to_string(), "req-t").await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            answer.body
        );
        let text = answer.body.as_str().unwrap();
        assert!(text.contains("page."), "{text}");
    }

    // Subjects: users by username with their space, members, bindings; each evaluates true.
    let subjects = |kind: &str| {
        json!({
            "subject": {"type": kind},
            "action": action("approve"),
            "resource": invoice("invoice_001"),
        })
    };
    let users = authzen(
        &cli,
        "/access/v1/search/subject",
        subjects("user"),
        "req-subjects",
    )
    .await;
    assert_eq!(
        users["results"],
        json!([
            {"type": "user", "id": "alice@example.com", "properties": {"space_id": "space_acme"}},
            {"type": "user", "id": "bob@example.com", "properties": {"space_id": "space_acme"}},
        ]),
        "{users}"
    );
    let members = authzen(
        &cli,
        "/access/v1/search/subject",
        subjects("member"),
        "req-subjects",
    )
    .await;
    assert_eq!(
        members["results"],
        json!([{"type": "member", "id": "member_finance_reviewer", "properties": {"space_id": "space_acme"}}])
    );
    let mut bindings = subjects("user_member");
    bindings["page"] = json!({"limit": 1});
    let first = authzen(
        &cli,
        "/access/v1/search/subject",
        bindings.clone(),
        "req-subjects",
    )
    .await;
    assert_eq!(
        first["results"][0]["id"], "um_alice_finance_reviewer",
        "{first}"
    );
    bindings["page"]["token"] = first["page"]["next_token"].clone();
    let second = authzen(&cli, "/access/v1/search/subject", bindings, "req-subjects").await;
    assert_eq!(
        second["results"][0]["id"], "um_bob_finance_reviewer",
        "{second}"
    );
    assert_eq!(second["page"]["next_token"], "", "{second}");
    for subject in users["results"]
        .as_array()
        .unwrap()
        .iter()
        .chain(members["results"].as_array().unwrap())
        .chain(first["results"].as_array().unwrap())
    {
        assert!(
            evaluates_true(&cli, subject, "approve", "invoice_001").await,
            "{subject}"
        );
    }
    let unknown = authzen(
        &cli,
        "/access/v1/search/subject",
        subjects("device"),
        "req-subjects",
    )
    .await;
    assert_eq!(unknown["results"], json!([]));
    assert_eq!(unknown["context"]["error"]["status"], 400, "{unknown}");

    // Actions alice may take on invoice_001 (delete is global-scoped: disabled).
    let actions = authzen(
        &cli,
        "/access/v1/search/action",
        json!({"subject": alice, "resource": invoice("invoice_001")}),
        "req-actions",
    )
    .await;
    assert_eq!(
        actions["results"],
        json!([{"name": "approve"}]),
        "{actions}"
    );
    assert_eq!(
        records_of(&cli, "authz.lookup", "req-actions").await.len(),
        1
    );

    // A revoke: the next searches find nothing.
    let (status, body) = call(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles/mr_finance_reviewer_approver/revoke",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = authzen(
        &cli,
        "/access/v1/search/resource",
        search(json!({})),
        "req-after",
    )
    .await;
    assert_eq!(after["results"], json!([]), "{after}");
    assert_eq!(after["page"]["next_token"], "");
    let nobody = authzen(
        &cli,
        "/access/v1/search/subject",
        subjects("user"),
        "req-after",
    )
    .await;
    assert_eq!(nobody["results"], json!([]), "{nobody}");
}

#[tokio::test]
async fn the_transport_is_the_standards_text_errors_echoed_ids_open_objects_public_metadata() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    let evaluation = json!({
        "subject": binding("um_alice_finance_reviewer", "space_acme"),
        "action": {"name": "approve", "properties": {"method": "POST"}},
        "resource": {"type": "invoice", "id": "invoice_001", "properties": {"library_record": {"title": "x"}}},
        "context": {"time": "2026-12-06T09:00:00Z"},
        "a_future_field": {"anything": [1, 2]},
    });
    // Unknown fields are ignored; the client's request identifier comes back as sent.
    let answer = post_raw(
        &cli,
        "/access/v1/evaluation",
        evaluation.to_string(),
        "bfe9eb29 ab87 4ca3",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["decision"], true);
    assert_eq!(answer.headers["x-request-id"], "bfe9eb29 ab87 4ca3");
    assert_eq!(answer.headers["cache-control"], "no-store");

    // Every error on these paths is a status and a message string, whichever stage refused.
    let no_key = cli
        .post("/access/v1/evaluation")
        .header("X-Request-ID", "req-no-key")
        .content_type("application/json")
        .body(evaluation.to_string())
        .send()
        .await;
    assert_eq!(no_key.0.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no_key.0.headers()["x-request-id"], "req-no-key");
    assert!(
        no_key.0.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = no_key.0.into_body().into_string().await.unwrap();
    assert!(!text.is_empty() && !text.starts_with('{'), "{text}");
    let wrong_method = cli
        .get("/access/v1/evaluation")
        .header("X-Plystra-API-Key", KEY)
        .send()
        .await;
    assert_eq!(wrong_method.0.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        wrong_method.0.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    for (bad, expect) in [
        ("{".to_owned(), "not valid JSON"),
        (
            json!({"subject": {"type": "user"}}).to_string(),
            "subject.id",
        ),
        (
            json!({"action": {"name": "approve"}, "resource": invoice("invoice_001")}).to_string(),
            "subject",
        ),
    ] {
        let answer = post_raw(&cli, "/access/v1/evaluation", bad.clone(), "req-bad-body").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        let text = answer
            .body
            .as_str()
            .unwrap_or_else(|| panic!("not text: {}", answer.body));
        assert!(text.contains(expect), "{expect}: {text}");
        assert_eq!(answer.headers["x-request-id"], "req-bad-body");
    }
    // Plystra's own routes keep the envelope.
    let (status, body) = call(&cli, "POST", "/api/v1/authz/check", Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["code"].is_string(), "{body}");

    // The metadata needs no credential and names every endpoint.
    let metadata = cli
        .get("/.well-known/authzen-configuration")
        .header("Host", "pdp.example.com")
        .send()
        .await;
    assert_eq!(metadata.0.status(), StatusCode::OK);
    let metadata: Value =
        serde_json::from_str(&metadata.0.into_body().into_string().await.unwrap()).unwrap();
    assert_eq!(
        metadata,
        json!({
            "policy_decision_point": "http://pdp.example.com",
            "access_evaluation_endpoint": "http://pdp.example.com/access/v1/evaluation",
            "access_evaluations_endpoint": "http://pdp.example.com/access/v1/evaluations",
            "search_subject_endpoint": "http://pdp.example.com/access/v1/search/subject",
            "search_resource_endpoint": "http://pdp.example.com/access/v1/search/resource",
            "search_action_endpoint": "http://pdp.example.com/access/v1/search/action",
        })
    );
}
