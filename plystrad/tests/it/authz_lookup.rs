//! The lookup routes over HTTP on the Finance Reviewer fixture: every answer is what checking
//! each candidate through `authz/check` answers, pages follow their signed cursors while writes
//! happen, a revoke empties the next lookup, each lookup is audited once, and bad cursors,
//! unknown IDs and missing credentials are refused.

use poem::http::StatusCode;
use serde_json::{Value, json};

use crate::support::app::{Auth, Client, PASSWORD, all_pages, app, call, code, create, send};
use crate::support::finance_reviewer::seed as fixture;
use crate::support::processes::check;

const ALICE: (&str, &str) = ("user_alice", "um_alice_finance_reviewer");

fn actor((user, binding): (&str, &str)) -> Value {
    json!({"user_id": user, "member_id": "member_finance_reviewer", "user_member_id": binding, "space_id": "space_acme"})
}

/// POSTs a lookup with the bootstrap key and asserts 200; the body.
async fn lookup(cli: &Client, what: &str, body: Value) -> Value {
    let (status, json) = call(
        cli,
        "POST",
        &format!("/api/v1/authz/lookup/{what}"),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{what}: {json}");
    json
}

/// Whether `authz/check` allows alice (or another actor) `action` on the invoice `resource`.
async fn allowed(
    cli: &Client,
    (user, binding): (&str, &str),
    resource: &str,
    action: &str,
) -> bool {
    let (status, json) = call(
        cli,
        "POST",
        "/api/v1/authz/check",
        Some(check(user, binding, resource, action)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json["data"]["allow"].as_bool().unwrap()
}

/// Every page of alice's invoice lookup for `action`, `limit` at a time, running `between`
/// after the first page; the IDs in the order they came.
async fn every_invoice(
    cli: &Client,
    action: &str,
    limit: u32,
    between: impl AsyncFnOnce(),
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut between = Some(between);
    loop {
        let mut body = json!({"actor": actor(ALICE), "resource_type": "invoice", "action": action, "limit": limit});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let page = lookup(cli, "resources", body).await;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit as usize, "{page}");
        ids.extend(data.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        let more = page["pagination"]["has_more"].as_bool().unwrap();
        assert_eq!(more, page["pagination"]["cursor"].is_string(), "{page}");
        if !more {
            return ids;
        }
        cursor = page["pagination"]["cursor"].as_str().map(str::to_owned);
        if let Some(between) = between.take() {
            between().await;
        }
    }
}

async fn invoice(cli: &Client, id: &str, group: &str) {
    create(
        cli,
        "/api/v1/resources",
        json!({"id": id, "resource_type": "invoice", "space_id": "space_acme", "group_id": group, "owner_member_id": "member_invoice_creator"}),
    )
    .await;
}

#[tokio::test]
async fn lookups_answer_what_checks_allow_page_by_page_with_one_audit_record_each() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    for n in 10..15 {
        invoice(&cli, &format!("invoice_{n:03}"), "group_finance_apac").await;
        invoice(&cli, &format!("invoice_{:03}", n + 10), "group_legal_emea").await;
    }
    let mut lookups = 0;

    // Resources: two at a time, with an invoice created in the subtree between the pages (after
    // the cursor, so it is found) and one outside it.
    let found = every_invoice(&cli, "approve", 2, async || {
        invoice(&cli, "invoice_099", "group_finance_emea").await;
        invoice(&cli, "invoice_098", "group_legal_emea").await;
    })
    .await;
    lookups += found.len().div_ceil(2).max(1);
    let mut expected = vec!["invoice_001".to_owned()];
    expected.extend((10..15).map(|n| format!("invoice_{n:03}")));
    expected.push("invoice_099".into());
    assert_eq!(found, expected);
    for n in [1, 2, 10, 14, 20, 24, 98, 99] {
        let id = format!("invoice_{n:03}");
        assert_eq!(
            allowed(&cli, ALICE, &id, "approve").await,
            found.contains(&id),
            "{id}"
        );
    }
    // No grant of the action: nothing, in one page.
    assert!(every_invoice(&cli, "read", 2, async || {}).await.is_empty());
    lookups += 1;

    // Subjects: the bindings of the reviewer that are in force, by binding ID, one created between
    // the pages included; each one's check allows, and the revoked and expired bindings' do not.
    let subjects = lookup(
        &cli,
        "subjects",
        json!({"resource_type": "invoice", "resource_id": "invoice_001", "action": "approve", "limit": 1}),
    )
    .await;
    lookups += 1;
    assert_eq!(
        subjects["data"][0]["user_member_id"],
        "um_alice_finance_reviewer"
    );
    let cursor = subjects["pagination"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    // A write between the pages: carol bound to the reviewer sorts after the cursor, so the next
    // page has her.
    create(
        &cli,
        "/api/v1/users",
        json!({"id": "user_carol", "email": "carol@example.com", "password": PASSWORD}),
    )
    .await;
    create(
        &cli,
        "/api/v1/spaces/space_acme/user-members",
        json!({"id": "um_carol_finance_reviewer", "user_id": "user_carol", "member_id": "member_finance_reviewer", "relation_type": "delegate"}),
    )
    .await;
    let rest = lookup(
        &cli,
        "subjects",
        json!({"resource_type": "invoice", "resource_id": "invoice_001", "action": "approve", "cursor": cursor}),
    )
    .await;
    lookups += 1;
    let rest: Vec<&str> = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_member_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rest,
        ["um_bob_finance_reviewer", "um_carol_finance_reviewer"]
    );
    assert!(
        allowed(
            &cli,
            ("user_bob", "um_bob_finance_reviewer"),
            "invoice_001",
            "approve"
        )
        .await
    );
    for revoked in [
        "um_alice_finance_reviewer_revoked",
        "um_alice_finance_reviewer_expired",
    ] {
        assert!(!allowed(&cli, ("user_alice", revoked), "invoice_001", "approve").await);
    }

    // Actions: what alice may do to invoice_001, by key.
    let actions = lookup(
        &cli,
        "actions",
        json!({"actor": actor(ALICE), "resource_type": "invoice", "resource_id": "invoice_001"}),
    )
    .await;
    lookups += 1;
    assert_eq!(actions["data"]["actions"], json!(["approve"]));
    assert!(actions["data"]["revision"].as_u64().is_some());

    // A revoke: the next lookups find nothing.
    let (status, body) = call(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles/mr_finance_reviewer_approver/revoke",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        every_invoice(&cli, "approve", 100, async || {})
            .await
            .is_empty()
    );
    let none = lookup(
        &cli,
        "subjects",
        json!({"resource_type": "invoice", "resource_id": "invoice_001", "action": "approve"}),
    )
    .await;
    assert_eq!(none["data"], json!([]));
    lookups += 2;

    // One audit record per lookup, with the query and the count.
    let records = all_pages(&cli, "/api/v1/audit/logs?event_type=authz.lookup", 50).await;
    assert_eq!(records.len(), lookups, "{records:?}");
    for record in &records {
        assert!(record["trace"]["found"].is_u64(), "{record:#}");
        let kind = record["trace"]["lookup"].as_str().unwrap();
        assert_eq!(record["action"], format!("lookup.{kind}"));
    }
    // The first page of the first lookup found two, as it answered.
    let first = records
        .iter()
        .filter(|r| r["action"] == "lookup.resources")
        .min_by_key(|r| r["seq"].as_u64())
        .unwrap();
    assert_eq!(first["trace"]["found"], 2);
    assert_eq!(first["actor_user_id"], "user_alice");
}

#[tokio::test]
async fn bad_cursors_unknown_ids_and_missing_credentials_are_refused() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    fixture(&cli).await;
    invoice(&cli, "invoice_010", "group_finance_apac").await;
    let first = lookup(
        &cli,
        "resources",
        json!({"actor": actor(ALICE), "resource_type": "invoice", "action": "approve", "limit": 1}),
    )
    .await;
    let cursor = first["pagination"]["cursor"].as_str().unwrap().to_owned();
    let (payload, tag) = cursor.split_once('.').unwrap();
    let altered = format!("{payload}.{}", tag.chars().rev().collect::<String>());
    for (what, body) in [
        // Another query's cursor: bob's.
        (
            "resources",
            json!({"actor": actor(("user_bob", "um_bob_finance_reviewer")), "resource_type": "invoice", "action": "approve", "cursor": cursor}),
        ),
        // Altered.
        (
            "resources",
            json!({"actor": actor(ALICE), "resource_type": "invoice", "action": "approve", "cursor": altered}),
        ),
        // Not a cursor at all.
        (
            "resources",
            json!({"actor": actor(ALICE), "resource_type": "invoice", "action": "approve", "cursor": "0"}),
        ),
        // A resource cursor for a subject lookup.
        (
            "subjects",
            json!({"resource_type": "invoice", "resource_id": "invoice_001", "action": "approve", "cursor": cursor}),
        ),
    ] {
        let (status, body) = call(
            &cli,
            "POST",
            &format!("/api/v1/authz/lookup/{what}"),
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["details"]["fields"]["cursor"].is_string(),
            "{body}"
        );
    }
    for (what, body, status, expected) in [
        (
            "resources",
            json!({"actor": actor(("user_nobody", "um_alice_finance_reviewer")), "resource_type": "invoice", "action": "approve"}),
            StatusCode::NOT_FOUND,
            "USER_NOT_FOUND",
        ),
        (
            "subjects",
            json!({"resource_type": "invoice", "resource_id": "invoice_404", "action": "approve"}),
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        ),
        (
            "actions",
            json!({"actor": actor(ALICE), "resource_type": "invoice", "resource_id": "invoice_404"}),
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
        ),
        (
            "resources",
            json!({"actor": actor(ALICE), "resource_type": "invoice", "action": "approve", "limit": 1001}),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
        (
            "subjects",
            json!({"resource_type": "invoice", "resource_id": " ", "action": "approve"}),
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
        ),
    ] {
        let (got, body) = call(
            &cli,
            "POST",
            &format!("/api/v1/authz/lookup/{what}"),
            Some(body),
        )
        .await;
        assert_eq!((got, code(&body)), (status, expected), "{what}: {body}");
    }
    // An empty cursor is the first page, as in every list.
    let empty = lookup(
        &cli,
        "resources",
        json!({"actor": actor(ALICE), "resource_type": "invoice", "action": "approve", "limit": 1, "cursor": ""}),
    )
    .await;
    assert_eq!(empty["data"], first["data"]);
    let (status, body) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/authz/lookup/resources",
        Some(json!({"actor": actor(ALICE), "resource_type": "invoice", "action": "approve"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
