//! End-to-end tests of resource.registry through the real application and database: the Finance
//! Reviewer registry, validation, same-space rules, not-found answers, pagination, the
//! `resource.registry` lookup service and one audit record per mutation.
//!
//! Identity rows (spaces, groups, members) are inserted directly, so these tests depend on the
//! identity schema only.

use plystra_contracts::storage::sea_query::{Alias, Order, Query};
use plystra_contracts::storage::{Database, sqlx::types::Json};
use plystra_kernel::storage::testing::TestDatabase;
use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::app::{Auth, Client, app, call, exchange};
use crate::support::identity_rows::{group, member, space};

async fn get(cli: &Client, path: &str) -> (StatusCode, Value) {
    call(cli, "GET", path, None).await
}

async fn post(cli: &Client, path: &str, body: Value) -> (StatusCode, Value) {
    call(cli, "POST", path, Some(body)).await
}

async fn patch(cli: &Client, path: &str, body: Value) -> (StatusCode, Value) {
    call(cli, "PATCH", path, Some(body)).await
}

/// The Finance Reviewer's identity side (`space_acme`) and a second space (`space_other`).
async fn seed_identity(db: &Database) {
    space(db, "space_acme").await;
    space(db, "space_other").await;
    group(db, "space_acme", "grp_finance", "finance", None).await;
    group(
        db,
        "space_acme",
        "grp_finance_apac",
        "finance.apac",
        Some("grp_finance"),
    )
    .await;
    group(
        db,
        "space_acme",
        "grp_finance_emea",
        "finance.emea",
        Some("grp_finance"),
    )
    .await;
    group(db, "space_acme", "grp_legal", "legal", None).await;
    group(
        db,
        "space_acme",
        "grp_legal_emea",
        "legal.emea",
        Some("grp_legal"),
    )
    .await;
    group(db, "space_other", "grp_other", "other", None).await;
    member(
        db,
        "space_acme",
        "member_finance_reviewer",
        "Finance Reviewer",
    )
    .await;
    member(
        db,
        "space_acme",
        "member_invoice_creator",
        "Invoice Creator",
    )
    .await;
    member(db, "space_other", "member_other", "Other Member").await;
}

/// Registers the `invoice` type, its five actions and its mapping, and the two invoices.
async fn seed_registry(cli: &Client) {
    let (status, body) = post(
        cli,
        "/api/v1/resource-types",
        json!({"key": "invoice", "display_name": "Invoice", "description": "A supplier invoice"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (key, risk) in [
        ("read", Some("normal")),
        ("create", None),
        ("approve", Some("high")),
        ("reject", Some("high")),
        ("delete", Some("critical")),
    ] {
        let mut action = json!({"key": key});
        if let Some(risk) = risk {
            action["risk_level"] = json!(risk);
        }
        let (status, body) = post(cli, "/api/v1/resource-types/invoice/actions", action).await;
        assert_eq!(status, StatusCode::CREATED, "{key}: {body}");
    }
    let (status, body) = post(
        cli,
        "/api/v1/resource-types/invoice/mapping",
        json!({"storage_kind": "internal_table"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post(
        cli,
        "/api/v1/spaces/space_acme/resources",
        json!({
            "id": "invoice_001",
            "resource_type": "invoice",
            "display_name": "Invoice 001",
            "group_id": "grp_finance_apac",
            "owner_member_id": "member_invoice_creator",
            "metadata": {"amount": 1200}
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post(
        cli,
        "/api/v1/resources",
        json!({
            "id": "invoice_002",
            "resource_type": "invoice",
            "space_id": "space_acme",
            "group_id": "grp_legal_emea",
            "owner_member_id": "member_invoice_creator"
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A database with the schema and the identity rows, and the app booted on it.
async fn setup() -> Option<(TestDatabase, Client)> {
    let (database, cli) = app(&[]).await?;
    seed_identity(&database.db).await;
    Some((database, cli))
}

/// The audit rows written so far: (event_type, action, resource_type, resource_id, space_id,
/// decision, trace), in append order.
type AuditRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Json<Value>,
);

async fn audit_rows(db: &Database) -> Vec<AuditRow> {
    let q = Query::select()
        .columns(
            [
                "event_type",
                "action",
                "resource_type",
                "resource_id",
                "space_id",
                "decision",
                "trace",
            ]
            .map(Alias::new),
        )
        .from(Alias::new("sys_audit_audit_logs"))
        .order_by(Alias::new("seq"), Order::Asc)
        .to_owned();
    db.fetch_all(&q).await.unwrap()
}

fn field_error(body: &Value) -> Vec<String> {
    body["error"]["details"]["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_finance_reviewer_registry_round_trips_with_one_audit_record_per_mutation() {
    let Some((database, cli)) = setup().await else {
        return;
    };
    seed_registry(&cli).await;

    let (status, body) = get(&cli, "/api/v1/resource-types/invoice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t = &body["data"];
    assert_eq!(t["key"], "invoice");
    assert_eq!(t["display_name"], "Invoice");
    assert_eq!(t["description"], "A supplier invoice");
    assert_eq!(t["status"], "active");
    assert_eq!(t["source"], "api");
    assert!(t["id"].as_str().unwrap().starts_with("rtype_"));
    // The ID works as well as the key.
    let by_id = get(
        &cli,
        &format!("/api/v1/resource-types/{}", t["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(by_id.1["data"]["key"], "invoice");

    let (_, actions) = get(&cli, "/api/v1/resource-types/invoice/actions").await;
    let risks: Vec<(String, String)> = actions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_owned(),
                a["risk_level"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        risks,
        [
            ("approve", "high"),
            ("create", "normal"),
            ("delete", "critical"),
            ("read", "normal"),
            ("reject", "high")
        ]
        .map(|(k, r)| (k.to_owned(), r.to_owned()))
    );
    assert_eq!(actions["pagination"]["has_more"], false);
    assert!(actions["data"][0]["audit_default"].as_bool().unwrap());

    let (status, mapping) = get(&cli, "/api/v1/resource-types/invoice/mapping").await;
    assert_eq!(status, StatusCode::OK, "{mapping}");
    let m = &mapping["data"];
    assert_eq!(m["storage_kind"], "internal_table");
    assert_eq!(m["resource_type"], "invoice");
    assert_eq!(m["table_name"], "sys_resource_resources");
    assert_eq!(m["id_field"], "id");
    assert_eq!(m["space_field"], "space_id");
    assert_eq!(m["group_field"], "group_id");
    assert_eq!(m["owner_member_field"], "owner_member_id");
    assert_eq!(m["visibility_field"], "visibility");
    assert_eq!(m["metadata_field"], "metadata");

    let (status, r1) = get(&cli, "/api/v1/resources/invoice/invoice_001").await;
    assert_eq!(status, StatusCode::OK, "{r1}");
    let r = &r1["data"];
    assert_eq!(r["id"], "invoice_001");
    assert_eq!(r["external_id"], "invoice_001");
    assert_eq!(r["resource_type"], "invoice");
    assert_eq!(r["space_id"], "space_acme");
    assert_eq!(r["space_name"], "Space space_acme");
    assert_eq!(r["group_id"], "grp_finance_apac");
    assert_eq!(r["group_path"], "finance.apac");
    assert_eq!(r["owner_member_id"], "member_invoice_creator");
    assert_eq!(r["owner_member_display_name"], "Invoice Creator");
    assert_eq!(r["visibility"], "space");
    assert_eq!(r["status"], "active");
    assert_eq!(r["metadata"], json!({"amount": 1200}));
    let (_, r2) = get(&cli, "/api/v1/spaces/space_acme/resources/invoice_002").await;
    assert_eq!(r2["data"]["group_path"], "legal.emea");

    let (_, listed) = get(
        &cli,
        "/api/v1/spaces/space_acme/resources?resource_type=invoice",
    )
    .await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["invoice_001", "invoice_002"]);

    // Upserting again changes in place and answers 200.
    let (status, again) = post(
        &cli,
        "/api/v1/resource-types/invoice/actions",
        json!({"key": "read", "risk_level": "low", "audit_default": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["risk_level"], "low");
    assert_eq!(again["data"]["audit_default"], false);
    let (status, again) = post(
        &cli,
        "/api/v1/resource-types",
        json!({"key": "invoice", "description": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["display_name"], "Invoice");
    assert!(again["data"]["description"].is_null());
    let (status, again) = post(
        &cli,
        "/api/v1/resource-types/invoice/mapping",
        json!({"storage_kind": "internal_table", "visibility_field": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(again["data"]["visibility_field"].is_null());
    assert_eq!(again["data"]["id"], m["id"]);

    // Change and archive one invoice.
    let (status, changed) = patch(
        &cli,
        "/api/v1/spaces/space_acme/resources/invoice_002",
        json!({"group_id": "grp_finance_emea", "visibility": "group", "display_name": "Invoice 002"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["data"]["group_path"], "finance.emea");
    assert_eq!(changed["data"]["visibility"], "group");
    let (status, archived) = post(
        &cli,
        "/api/v1/spaces/space_acme/resources/invoice_002/archive",
        json!({"reason": "paid"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{archived}");
    assert_eq!(archived["data"]["status"], "archived");
    let (status, twice) = post(
        &cli,
        "/api/v1/spaces/space_acme/resources/invoice_002/archive",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{twice}");
    assert_eq!(twice["error"]["code"], "CONFLICT");

    // One record per committed mutation, none for the refused one.
    let rows = audit_rows(&database.db).await;
    let kinds: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    let mut expected = vec![("resource_types.upsert", "resource_types.upsert")];
    expected.extend([("resource_types.upsert", "resource_actions.upsert"); 5]);
    expected.push(("resource_types.upsert", "resource_mappings.upsert"));
    expected.extend([("resources.create", "resources.create"); 2]);
    expected.extend([
        ("resource_types.upsert", "resource_actions.upsert"),
        ("resource_types.upsert", "resource_types.upsert"),
        ("resource_types.upsert", "resource_mappings.upsert"),
        ("resources.update", "resources.update"),
        ("resources.archive", "resources.archive"),
    ]);
    assert_eq!(kinds, expected);
    for row in &rows {
        assert_eq!(row.2.as_deref(), Some("invoice"), "{row:?}");
        assert_eq!(row.5, "allow");
    }
    let archive = rows.last().unwrap();
    assert_eq!(archive.3.as_deref(), Some("invoice_002"));
    assert_eq!(archive.4.as_deref(), Some("space_acme"));
    let trace = &archive.6.0;
    // One shape for every capability's change record: who called, and the state after.
    assert_eq!(trace["caller"]["kind"], "bootstrap_key");
    assert_eq!(trace["after"]["resource"]["status"], "archived");
    assert_eq!(trace["after"]["resource"]["group_path"], "finance.emea");
    assert_eq!(trace["after"]["reason"], "paid");
    let create = &rows[7];
    assert_eq!(create.3.as_deref(), Some("invoice_001"));
    assert_eq!(
        create.6.0["after"]["resource"]["owner_member_id"],
        "member_invoice_creator"
    );
}

#[tokio::test]
async fn invalid_input_is_a_400_naming_the_field_and_writes_nothing() {
    let Some((database, cli)) = setup().await else {
        return;
    };
    for (path, body, field) in [
        ("/api/v1/resource-types", json!({"key": "Invoice"}), "key"),
        ("/api/v1/resource-types", json!({"key": "9lives"}), "key"),
        (
            "/api/v1/resource-types",
            json!({"key": "invoice", "id": "Bad-ID"}),
            "id",
        ),
        (
            "/api/v1/resource-types",
            json!({"key": "invoice", "display_name": "   "}),
            "display_name",
        ),
    ] {
        let (status, resp) = post(&cli, path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], "VALIDATION_FAILED");
        assert_eq!(field_error(&resp), [field], "{body}: {resp}");
    }
    let (status, _) = post(&cli, "/api/v1/resource-types", json!({"key": "invoice"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let before = audit_rows(&database.db).await.len();
    // Required fields, JSON types and closed value sets, each named.
    for (path, body, fields) in [
        (
            "/api/v1/resource-types",
            json!({"display_name": "x"}),
            vec!["key"],
        ),
        (
            "/api/v1/resource-types",
            json!({"key": 7, "status": "gone"}),
            vec!["key", "status"],
        ),
        (
            "/api/v1/resource-types/invoice/actions",
            json!({"key": "approve", "risk_level": "extreme", "audit_default": "yes"}),
            vec!["audit_default", "risk_level"],
        ),
        (
            "/api/v1/resource-types/invoice/mapping",
            json!({"id_field": "id"}),
            vec!["storage_kind"],
        ),
        (
            "/api/v1/resource-types/invoice/mapping",
            json!({"storage_kind": "external_api"}),
            vec!["storage_kind"],
        ),
        (
            "/api/v1/resources",
            json!({"resource_type": "invoice", "space_id": "space_acme", "status": "deleted", "visibility": "secret"}),
            vec!["status", "visibility"],
        ),
        (
            "/api/v1/spaces/space_acme/resources/invoice_001",
            json!({"metadata": "not an object"}),
            vec!["metadata"],
        ),
    ] {
        let (status, resp) = if path.ends_with("invoice_001") {
            patch(&cli, path, body.clone()).await
        } else {
            post(&cli, path, body.clone()).await
        };
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], "VALIDATION_FAILED");
        assert_eq!(field_error(&resp), fields, "{body}: {resp}");
    }
    let answer = exchange(
        &cli,
        Auth::Boot,
        Method::POST,
        "/api/v1/resource-types",
        Some("{not json".to_owned()),
    )
    .await;
    let (status, resp) = (answer.status, answer.body);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    assert_eq!(resp["error"]["code"], "VALIDATION_FAILED");
    for (path, body, field) in [
        (
            "/api/v1/resource-types/invoice/actions",
            json!({"key": "Approve"}),
            "key",
        ),
        (
            "/api/v1/resource-types/invoice/mapping",
            json!({"storage_kind": "internal_table", "group_field": "group-id"}),
            "group_field",
        ),
        (
            "/api/v1/resources",
            json!({"resource_type": "invoice"}),
            "space_id",
        ),
        (
            "/api/v1/resources",
            json!({"resource_type": "invoice", "space_id": "space_acme", "id": "Invoice 1"}),
            "id",
        ),
    ] {
        let (status, resp) = post(&cli, path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert_eq!(field_error(&resp), [field], "{body}: {resp}");
    }
    // A body space that contradicts the route's is a conflict with the target, naming the field.
    let (status, resp) = post(
        &cli,
        "/api/v1/spaces/space_acme/resources",
        json!({"resource_type": "invoice", "space_id": "space_other"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{resp}");
    assert_eq!(resp["error"]["details"]["field"], "space_id", "{resp}");
    for path in [
        "/api/v1/resource-types?limit=0",
        "/api/v1/resources?limit=201",
        "/api/v1/resources?cursor=not-a-cursor",
    ] {
        let (status, resp) = get(&cli, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {resp}");
        assert_eq!(resp["error"]["code"], "VALIDATION_FAILED");
    }
    assert_eq!(audit_rows(&database.db).await.len(), before);
}

#[tokio::test]
async fn a_group_or_owner_from_another_space_is_a_conflict_naming_the_field() {
    let Some((database, cli)) = setup().await else {
        return;
    };
    seed_registry(&cli).await;
    let before = audit_rows(&database.db).await.len();
    for (body, field) in [
        (
            json!({"resource_type": "invoice", "group_id": "grp_other"}),
            "group_id",
        ),
        (
            json!({"resource_type": "invoice", "owner_member_id": "member_other"}),
            "owner_member_id",
        ),
    ] {
        // A reference to a record of another space contradicts the resource's space: 409.
        let (status, resp) = post(&cli, "/api/v1/spaces/space_acme/resources", body.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], "CONFLICT");
        assert_eq!(resp["error"]["details"]["field"], field, "{resp}");
    }
    for (body, field) in [
        (json!({"group_id": "grp_other"}), "group_id"),
        (
            json!({"owner_member_id": "member_other"}),
            "owner_member_id",
        ),
    ] {
        let (status, resp) = patch(
            &cli,
            "/api/v1/spaces/space_acme/resources/invoice_001",
            body.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}: {resp}");
        assert_eq!(resp["error"]["details"]["field"], field, "{resp}");
    }
    // An immutable field that differs from the resource's is a 409 naming it.
    for (body, field) in [
        (json!({"space_id": "space_other"}), "space_id"),
        (json!({"resource_type": "contract"}), "resource_type"),
    ] {
        let (status, resp) = patch(
            &cli,
            "/api/v1/spaces/space_acme/resources/invoice_001",
            body.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}: {resp}");
        assert_eq!(resp["error"]["details"]["field"], field, "{resp}");
    }
    // A resource of space_acme is not reachable through space_other.
    let (status, resp) = get(&cli, "/api/v1/spaces/space_other/resources/invoice_001").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{resp}");
    assert_eq!(resp["error"]["code"], "RESOURCE_NOT_FOUND");
    let (status, resp) = patch(
        &cli,
        "/api/v1/spaces/space_other/resources/invoice_001",
        json!({"display_name": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{resp}");
    assert_eq!(audit_rows(&database.db).await.len(), before);
    // Nothing changed.
    let (_, r) = get(&cli, "/api/v1/resources/invoice/invoice_001").await;
    assert_eq!(r["data"]["group_id"], "grp_finance_apac");
    assert_eq!(r["data"]["owner_member_id"], "member_invoice_creator");
}

#[tokio::test]
async fn unknown_entities_are_404_with_their_code() {
    let Some((_database, cli)) = setup().await else {
        return;
    };
    let (status, _) = post(&cli, "/api/v1/resource-types", json!({"key": "invoice"})).await;
    assert_eq!(status, StatusCode::CREATED);
    for (path, code) in [
        ("/api/v1/resource-types/contract", "RESOURCE_TYPE_NOT_FOUND"),
        (
            "/api/v1/resource-types/contract/actions",
            "RESOURCE_TYPE_NOT_FOUND",
        ),
        (
            "/api/v1/resource-types/invoice/mapping",
            "RESOURCE_MAPPING_NOT_FOUND",
        ),
        (
            "/api/v1/resources/invoice/invoice_404",
            "RESOURCE_NOT_FOUND",
        ),
        (
            "/api/v1/resources/contract/invoice_404",
            "RESOURCE_TYPE_NOT_FOUND",
        ),
        (
            "/api/v1/resources?resource_type=contract",
            "RESOURCE_TYPE_NOT_FOUND",
        ),
        ("/api/v1/spaces/space_nowhere/resources", "SPACE_NOT_FOUND"),
        (
            "/api/v1/spaces/space_nowhere/resources/x",
            "SPACE_NOT_FOUND",
        ),
        (
            "/api/v1/spaces/space_acme/resources/invoice_404",
            "RESOURCE_NOT_FOUND",
        ),
    ] {
        let (status, resp) = get(&cli, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {resp}");
        assert_eq!(resp["error"]["code"], code, "{path}: {resp}");
    }
    for (path, body, code) in [
        (
            "/api/v1/resource-types/contract/actions",
            json!({"key": "read"}),
            "RESOURCE_TYPE_NOT_FOUND",
        ),
        (
            "/api/v1/resource-types/contract/mapping",
            json!({"storage_kind": "internal_table"}),
            "RESOURCE_TYPE_NOT_FOUND",
        ),
        (
            "/api/v1/resources",
            json!({"resource_type": "contract", "space_id": "space_acme"}),
            "RESOURCE_TYPE_NOT_FOUND",
        ),
        (
            "/api/v1/resources",
            json!({"resource_type": "invoice", "space_id": "space_nowhere"}),
            "SPACE_NOT_FOUND",
        ),
        (
            "/api/v1/spaces/space_acme/resources",
            json!({"resource_type": "invoice", "group_id": "grp_nowhere"}),
            "GROUP_NOT_FOUND",
        ),
        (
            "/api/v1/spaces/space_acme/resources",
            json!({"resource_type": "invoice", "owner_member_id": "member_nowhere"}),
            "MEMBER_NOT_FOUND",
        ),
        (
            "/api/v1/spaces/space_acme/resources/invoice_404/archive",
            json!({}),
            "RESOURCE_NOT_FOUND",
        ),
    ] {
        let (status, resp) = post(&cli, path, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} {body}: {resp}");
        assert_eq!(resp["error"]["code"], code, "{path} {body}: {resp}");
    }
    // Duplicates conflict.
    let body = json!({"id": "invoice_001", "resource_type": "invoice"});
    let (status, _) = post(&cli, "/api/v1/spaces/space_acme/resources", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, resp) = post(&cli, "/api/v1/spaces/space_acme/resources", body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{resp}");
    // A disabled type accepts no new resources.
    let (status, _) = post(
        &cli,
        "/api/v1/resource-types",
        json!({"key": "invoice", "status": "disabled"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, resp) = post(
        &cli,
        "/api/v1/spaces/space_acme/resources",
        json!({"resource_type": "invoice"}),
    )
    .await;
    // Well-formed, refused by the type's state: a conflict naming the field.
    assert_eq!(status, StatusCode::CONFLICT, "{resp}");
    assert_eq!(resp["error"]["details"]["field"], "resource_type", "{resp}");
}

#[tokio::test]
async fn lists_page_with_real_cursors() {
    let Some((_database, cli)) = setup().await else {
        return;
    };
    for key in ["alpha", "bravo", "charlie"] {
        let (status, _) = post(&cli, "/api/v1/resource-types", json!({"key": key})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    for i in 0..5 {
        let (status, resp) = post(
            &cli,
            "/api/v1/spaces/space_acme/resources",
            json!({"id": format!("doc_{i}"), "resource_type": "alpha"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{resp}");
    }
    let (status, _) = post(
        &cli,
        "/api/v1/spaces/space_other/resources",
        json!({"id": "doc_other", "resource_type": "bravo"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    async fn walk(cli: &Client, first: &str) -> (Vec<String>, Vec<bool>) {
        let mut ids = Vec::new();
        let mut more = Vec::new();
        let mut path = first.to_owned();
        loop {
            let (status, page) = get(cli, &path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            for item in page["data"].as_array().unwrap() {
                ids.push(
                    item.get("external_id")
                        .or(item.get("key"))
                        .and_then(Value::as_str)
                        .unwrap()
                        .to_owned(),
                );
            }
            let has_more = page["pagination"]["has_more"].as_bool().unwrap();
            more.push(has_more);
            if !has_more {
                assert!(page["pagination"]["cursor"].is_null());
                break;
            }
            let cursor = page["pagination"]["cursor"].as_str().unwrap();
            let sep = if first.contains('?') { '&' } else { '?' };
            path = format!("{first}{sep}cursor={cursor}");
        }
        (ids, more)
    }

    let (ids, more) = walk(&cli, "/api/v1/spaces/space_acme/resources?limit=2").await;
    assert_eq!(ids, ["doc_0", "doc_1", "doc_2", "doc_3", "doc_4"]);
    assert_eq!(more, [true, true, false]);
    let (ids, more) = walk(&cli, "/api/v1/resources?limit=3").await;
    assert_eq!(ids.len(), 6);
    assert_eq!(more, [true, false]);
    let (ids, _) = walk(&cli, "/api/v1/resources?resource_type=bravo&limit=1").await;
    assert_eq!(ids, ["doc_other"]);
    let (ids, more) = walk(&cli, "/api/v1/resource-types?limit=2").await;
    assert_eq!(ids, ["alpha", "bravo", "charlie"]);
    assert_eq!(more, [true, false]);
    let (ids, more) = walk(&cli, "/api/v1/resources?limit=5&space_id=space_acme").await;
    assert_eq!(ids.len(), 5);
    assert_eq!(more, [false]);
}

#[tokio::test]
async fn registry_routes_need_a_credential() {
    let Some((_database, cli)) = setup().await else {
        return;
    };
    let resp = cli.get("/api/v1/resource-types").send().await;
    assert_eq!(resp.0.status(), StatusCode::UNAUTHORIZED);
    let resp = cli
        .post("/api/v1/resources")
        .body_json(&json!({"resource_type": "invoice", "space_id": "space_acme"}))
        .send()
        .await;
    assert_eq!(resp.0.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn concurrent_upserts_of_one_key_all_succeed_and_create_once() {
    let Some((database, cli)) = setup().await else {
        return;
    };
    let body = json!({"key": "contract"});
    let path = "/api/v1/resource-types";
    let (a, b, c, d) = tokio::join!(
        post(&cli, path, body.clone()),
        post(&cli, path, body.clone()),
        post(&cli, path, body.clone()),
        post(&cli, path, body.clone()),
    );
    let statuses = [a.0, b.0, c.0, d.0];
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?} {a:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::OK),
        "{statuses:?}: {a:?} {b:?} {c:?} {d:?}"
    );
    let ids: std::collections::BTreeSet<String> = [a.1, b.1, c.1, d.1]
        .iter()
        .map(|r| r["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    let action = json!({"key": "sign", "risk_level": "high"});
    let action_path = "/api/v1/resource-types/contract/actions";
    let mapping = json!({"storage_kind": "internal_table"});
    let mapping_path = "/api/v1/resource-types/contract/mapping";
    let (a, b, c, d) = tokio::join!(
        post(&cli, action_path, action.clone()),
        post(&cli, action_path, action.clone()),
        post(&cli, mapping_path, mapping.clone()),
        post(&cli, mapping_path, mapping.clone()),
    );
    for (status, resp) in [&a, &b, &c, &d] {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "{status}: {resp}"
        );
    }
    assert_ne!(a.0, b.0);
    assert_ne!(c.0, d.0);
    // Every answered upsert was audited once.
    assert_eq!(audit_rows(&database.db).await.len(), 8);
    // Upstream clients send an `actor` with resource mutations; it is accepted and ignored.
    let (status, resp) = post(
        &cli,
        "/api/v1/spaces/space_acme/resources",
        json!({"resource_type": "contract", "actor": {"user_id": "user_alice"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
}
