//! End-to-end tests of the authorization.resource grant routes through the real router and a real
//! database: the Finance Reviewer grants, validation, cross-space refusals, not-found codes,
//! status lifecycles (disable, soft delete, revoke), real pagination, one audit record per
//! mutation read back through the audit API, and one `authorization.grants_changed` event per
//! committed change. Spaces, groups and members are written directly with sea-query.

use std::sync::{Arc, Mutex};

use plystra_contracts::events::{Event, EventPublisher};
use plystra_contracts::registration::{Registration, RouteSet};
use plystra_contracts::storage::Database;
use plystra_contracts::{
    ApiError, BusinessPluginSpec, Capability, CapabilityError, CapabilityManifest, Envelope,
    Events, Migrations, Provides, Requires, RouteApi, RouteDecl, ServiceError, ServiceRegistry,
    Stability,
};
use plystra_kernel::storage::testing::TestDatabase;
use poem::http::StatusCode;
use poem_openapi::OpenApi;
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;

use crate::support::app::{Client, all_pages, app_with, call, log_to_test_output};
use crate::support::identity_rows::{group, member, space};

/// A test plugin that records every `authorization.grants_changed` event, as the index will.
const PROBE_MANIFEST: CapabilityManifest =
    CapabilityManifest::business_plugin(BusinessPluginSpec {
        id: "test.grants_probe",
        name: "Grant event probe (test)",
        version: "0.1.0",
        requires: Requires {
            kernel: "^0.0.1",
            capabilities: &["authorization.resource"],
        },
        provides: Provides {
            services: &["test.grants_probe"],
            routes: &[RouteDecl::operation("testGrantEvents")],
            events: Events {
                publishes: &[],
                subscribes: &["authorization.grants_changed"],
            },
            migrations: Migrations { namespace: None },
            settings: &[],
        },
        stability: Stability::Experimental,
    });

struct Probe;

struct ProbeMarker;

impl Capability for Probe {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        services.provide::<ProbeMarker>("test.grants_probe", Arc::new(ProbeMarker))?;
        Ok(())
    }
}

fn construct_probe() -> Box<dyn Capability> {
    Box::new(Probe)
}

struct ProbeApi {
    seen: Mutex<(Receiver<Event>, Vec<Value>)>,
}

impl RouteApi for ProbeApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        let events = services.require::<dyn EventPublisher>()?;
        Ok(Self {
            seen: Mutex::new((events.subscribe(), Vec::new())),
        })
    }
}

#[OpenApi]
impl ProbeApi {
    /// Every `authorization.grants_changed` payload seen since boot.
    #[oai(
        path = "/test/authz/grant-events",
        method = "get",
        operation_id = "testGrantEvents"
    )]
    async fn events(&self) -> Result<poem_openapi::payload::Json<Envelope<Vec<Value>>>, ApiError> {
        let mut seen = self.seen.lock().unwrap();
        let (receiver, payloads) = &mut *seen;
        while let Ok(event) = receiver.try_recv() {
            if event.name == "authorization.grants_changed" {
                assert_eq!(event.source, "authorization.resource");
                payloads.push(event.payload);
            }
        }
        Ok(poem_openapi::payload::Json(Envelope::new(payloads.clone())))
    }
}

static PROBE: Registration = Registration {
    manifest: &PROBE_MANIFEST,
    construct: construct_probe,
    routes: RouteSet::of::<ProbeApi>(),
    package: env!("CARGO_PKG_NAME"),
};

/// The app with the grant-event probe, on the seeded identity rows, its logs in the test's output.
async fn app() -> Option<(TestDatabase, Client)> {
    log_to_test_output();
    let (database, cli) = app_with(&[], &[&PROBE]).await?;
    seed(&database.db).await;
    Some((database, cli))
}

/// Calls with the bootstrap key and asserts the status; the whole body (pages and errors alike).
async fn expect(
    cli: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    let (got, body) = call(cli, method, path, body).await;
    assert_eq!(got, status, "{method} {path}: {body}");
    body
}

/// Asserts an error's status, code and (when given) the field it names.
async fn refused(
    cli: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) {
    let body = expect(cli, method, path, body, status).await;
    assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
    if let Some(field) = field {
        let details = &body["error"]["details"];
        assert!(
            details["fields"][field].is_string() || details["field"] == field,
            "{method} {path} should name {field}: {body}"
        );
    }
}

/// The identity rows of the Finance Reviewer fixture, plus a second space.
async fn seed(db: &Database) {
    space(db, "space_acme").await;
    space(db, "space_other").await;
    group(db, "space_acme", "group_finance", "finance", None).await;
    group(
        db,
        "space_acme",
        "group_finance_apac",
        "finance.apac",
        Some("group_finance"),
    )
    .await;
    group(db, "space_acme", "group_legal", "legal", None).await;
    group(db, "space_other", "group_other_root", "ops", None).await;
    member(
        db,
        "space_acme",
        "member_finance_reviewer",
        "Finance reviewer",
    )
    .await;
    member(
        db,
        "space_acme",
        "member_invoice_creator",
        "Invoice creator",
    )
    .await;
    member(db, "space_other", "member_other", "Somebody elsewhere").await;
}

/// The Finance Reviewer grants through the API; returns (role, permission, role-permission,
/// member-role) IDs.
async fn finance_reviewer(cli: &Client) -> (String, String, String, String) {
    let role = expect(
        cli,
        "POST",
        "/api/v1/spaces/space_acme/roles",
        Some(
            json!({"id": "role_finance_approver", "key": "finance_approver",
            "name": "Finance approver", "metadata": {"owner": "finance"}}),
        ),
        StatusCode::CREATED,
    )
    .await;
    let perm = expect(
        cli,
        "POST",
        "/api/v1/permissions",
        Some(
            json!({"resource": "invoice", "action": "approve", "scope": "group_tree",
            "audit_space_id": "space_acme"}),
        ),
        StatusCode::CREATED,
    )
    .await;
    let perm_id = perm["data"]["id"].as_str().unwrap().to_owned();
    let rp = expect(
        cli,
        "POST",
        "/api/v1/role-permissions",
        Some(json!({"role_id": "role_finance_approver", "permission_id": perm_id})),
        StatusCode::CREATED,
    )
    .await;
    let mr = expect(
        cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles",
        Some(
            json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver",
            "scope_anchor_group_id": "group_finance"}),
        ),
        StatusCode::CREATED,
    )
    .await;
    (
        role["data"]["id"].as_str().unwrap().to_owned(),
        perm_id,
        rp["data"]["id"].as_str().unwrap().to_owned(),
        mr["data"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn audit_logs(cli: &Client, event_type: &str) -> Vec<Value> {
    let body = expect(
        cli,
        "GET",
        &format!("/api/v1/audit/logs?event_type={event_type}&limit=200"),
        None,
        StatusCode::OK,
    )
    .await;
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_finance_reviewer_grants_are_created_read_audited_and_announced() {
    let Some((_db, cli)) = app().await else {
        return;
    };
    let (role_id, perm_id, rp_id, mr_id) = finance_reviewer(&cli).await;
    assert_eq!(role_id, "role_finance_approver");
    assert!(perm_id.starts_with("perm_"));
    assert!(rp_id.starts_with("rp_"));
    assert!(mr_id.starts_with("mr_"));

    let role = expect(
        &cli,
        "GET",
        "/api/v1/spaces/space_acme/roles/role_finance_approver",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(role["data"]["key"], "finance_approver");
    assert_eq!(role["data"]["space_id"], "space_acme");
    assert_eq!(role["data"]["status"], "active");
    assert_eq!(role["data"]["metadata"]["owner"], "finance");
    let by_id = expect(
        &cli,
        "GET",
        "/api/v1/roles/role_finance_approver",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(by_id["data"], role["data"]);

    let perm = expect(
        &cli,
        "GET",
        &format!("/api/v1/permissions/{perm_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            &perm["data"]["resource"],
            &perm["data"]["action"],
            &perm["data"]["scope"]
        ),
        (&json!("invoice"), &json!("approve"), &json!("group_tree"))
    );

    let rp = expect(
        &cli,
        "GET",
        &format!("/api/v1/role-permissions/{rp_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rp["data"]["space_id"], "space_acme");
    assert_eq!(rp["data"]["role_key"], "finance_approver");
    assert_eq!(rp["data"]["permission_id"], perm_id.as_str());
    assert_eq!(rp["data"]["scope"], "group_tree");
    assert!(rp["data"]["deleted_at"].is_null());

    let mr = expect(
        &cli,
        "GET",
        &format!("/api/v1/spaces/space_acme/member-roles/{mr_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mr["data"]["member_id"], "member_finance_reviewer");
    assert_eq!(mr["data"]["member_display_name"], "Finance reviewer");
    assert_eq!(mr["data"]["role_key"], "finance_approver");
    assert_eq!(mr["data"]["role_name"], "Finance approver");
    assert_eq!(mr["data"]["scope_anchor_group_id"], "group_finance");
    assert_eq!(mr["data"]["scope_anchor_path"], "finance");
    assert_eq!(mr["data"]["status"], "active");

    let listed = expect(
        &cli,
        "GET",
        "/api/v1/spaces/space_acme/member-roles?member_id=member_finance_reviewer",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let listed = expect(
        &cli,
        "GET",
        "/api/v1/role-permissions?role_id=role_finance_approver",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"][0]["id"], rp_id.as_str());

    // One audit record per mutation, in the grant's space, with the snapshot after the change.
    let roles = audit_logs(&cli, "roles.create").await;
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(roles[0]["resource_type"], "role");
    assert_eq!(roles[0]["resource_id"], "role_finance_approver");
    assert_eq!(roles[0]["space_id"], "space_acme");
    assert_eq!(roles[0]["decision"], "allow");
    assert_eq!(roles[0]["trace"]["after"]["key"], "finance_approver");
    assert_eq!(roles[0]["trace"]["caller"]["kind"], "bootstrap_key");
    let perms = audit_logs(&cli, "permissions.create").await;
    assert_eq!(perms.len(), 1);
    assert_eq!(perms[0]["space_id"], "space_acme");
    assert_eq!(perms[0]["trace"]["after"]["scope"], "group_tree");
    let rps = audit_logs(&cli, "role_permissions.create").await;
    assert_eq!(rps.len(), 1);
    assert_eq!(rps[0]["resource_id"], rp_id.as_str());
    let mrs = audit_logs(&cli, "member_roles.create").await;
    assert_eq!(mrs.len(), 1);
    assert_eq!(mrs[0]["resource_type"], "member_role");
    assert_eq!(
        mrs[0]["trace"]["after"]["scope_anchor_group_id"],
        "group_finance"
    );

    // One event per committed change, in order.
    let events = expect(
        &cli,
        "GET",
        "/test/authz/grant-events",
        None,
        StatusCode::OK,
    )
    .await;
    let described: Vec<Value> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!({"kind": e["kind"], "id": e["id"], "space_id": e["space_id"]}))
        .collect();
    assert_eq!(
        described,
        vec![
            json!({"kind": "role", "id": "role_finance_approver", "space_id": "space_acme"}),
            json!({"kind": "permission", "id": perm_id, "space_id": "space_acme"}),
            json!({"kind": "role_permission", "id": rp_id, "space_id": "space_acme"}),
            json!({"kind": "member_role", "id": mr_id, "space_id": "space_acme"}),
        ]
    );
    // Each carries the entity's new state as the fact the authorization index applies.
    for event in events["data"].as_array().unwrap() {
        let facts = event["facts"].as_array().unwrap();
        assert_eq!(facts.len(), 1, "{event}");
        assert_eq!(facts[0]["kind"], event["kind"]);
        assert_eq!(facts[0]["id"], event["id"]);
    }
    assert_eq!(
        events["data"][3]["facts"][0]["member_id"],
        "member_finance_reviewer"
    );
    assert_eq!(events["data"][3]["facts"][0]["status"], "active");
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_unknown_ids_are_specific_404s() {
    let Some((_db, cli)) = app().await else {
        return;
    };
    let (_, perm_id, _, _) = finance_reviewer(&cli).await;
    let roles = "/api/v1/spaces/space_acme/roles";
    let bad = StatusCode::BAD_REQUEST;
    let v = "VALIDATION_FAILED";
    for (body, field) in [
        (json!({"key": "Finance", "name": "x"}), "key"),
        (json!({"key": "a-b", "name": "x"}), "key"),
        (json!({"key": "ok", "name": "   "}), "name"),
        (json!({"id": "perm_x", "key": "ok", "name": "x"}), "id"),
    ] {
        refused(&cli, "POST", roles, Some(body), bad, v, Some(field)).await;
    }
    // Missing required fields and unknown enum values are refused by the schema.
    refused(
        &cli,
        "POST",
        roles,
        Some(json!({"key": "ok"})),
        bad,
        v,
        None,
    )
    .await;
    refused(
        &cli,
        "POST",
        "/api/v1/permissions",
        Some(json!({"resource": "invoice", "action": "approve", "scope": "tree"})),
        bad,
        v,
        None,
    )
    .await;
    refused(
        &cli,
        "POST",
        "/api/v1/permissions",
        Some(json!({"resource": "Invoice", "action": "approve", "scope": "group"})),
        bad,
        v,
        Some("resource"),
    )
    .await;
    refused(
        &cli,
        "POST",
        "/api/v1/permissions",
        Some(
            json!({"resource": "invoice", "action": "read", "scope": "space",
            "audit_space_id": "space_nowhere"}),
        ),
        StatusCode::NOT_FOUND,
        "SPACE_NOT_FOUND",
        Some("audit_space_id"),
    )
    .await;
    refused(
        &cli,
        "PATCH",
        "/api/v1/spaces/space_acme/roles/role_finance_approver",
        Some(json!({"name": ""})),
        bad,
        v,
        Some("name"),
    )
    .await;
    refused(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles",
        Some(
            json!({"member_id": "member_invoice_creator", "role_id": "role_finance_approver",
            "status": "revoked"}),
        ),
        bad,
        v,
        Some("status"),
    )
    .await;
    refused(
        &cli,
        "GET",
        &format!("{roles}?limit=0"),
        None,
        bad,
        v,
        Some("limit"),
    )
    .await;
    refused(
        &cli,
        "GET",
        "/api/v1/permissions?cursor=garbage",
        None,
        bad,
        v,
        Some("cursor"),
    )
    .await;

    // Duplicates.
    let conflict = StatusCode::CONFLICT;
    refused(
        &cli,
        "POST",
        roles,
        Some(json!({"key": "finance_approver", "name": "Again"})),
        conflict,
        "CONFLICT",
        Some("key"),
    )
    .await;
    refused(
        &cli,
        "POST",
        roles,
        Some(json!({"id": "role_finance_approver", "key": "other", "name": "Again"})),
        conflict,
        "CONFLICT",
        Some("id"),
    )
    .await;
    refused(
        &cli,
        "POST",
        "/api/v1/permissions",
        Some(json!({"resource": "invoice", "action": "approve", "scope": "group_tree"})),
        conflict,
        "CONFLICT",
        None,
    )
    .await;
    refused(
        &cli,
        "POST",
        "/api/v1/role-permissions",
        Some(json!({"role_id": "role_finance_approver", "permission_id": perm_id})),
        conflict,
        "CONFLICT",
        None,
    )
    .await;
    refused(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles",
        Some(
            json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver",
            "scope_anchor_group_id": "group_finance"}),
        ),
        conflict,
        "CONFLICT",
        None,
    )
    .await;
    // The same role at another anchor is a separate grant.
    expect(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles",
        Some(
            json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver",
            "scope_anchor_group_id": "group_legal"}),
        ),
        StatusCode::CREATED,
    )
    .await;

    // Not found, each with its own code.
    let nf = StatusCode::NOT_FOUND;
    for (method, path, body, code) in [
        (
            "GET",
            "/api/v1/spaces/space_nowhere/roles",
            None,
            "SPACE_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/spaces/space_nowhere/roles",
            Some(json!({"key": "x", "name": "x"})),
            "SPACE_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/spaces/space_acme/roles/role_nope",
            None,
            "ROLE_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/spaces/space_other/roles/role_finance_approver",
            None,
            "ROLE_NOT_FOUND",
        ),
        ("GET", "/api/v1/roles/role_nope", None, "ROLE_NOT_FOUND"),
        (
            "POST",
            "/api/v1/spaces/space_acme/roles/role_nope/disable",
            None,
            "ROLE_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/permissions/perm_nope",
            None,
            "PERMISSION_NOT_FOUND",
        ),
        (
            "PATCH",
            "/api/v1/permissions/perm_nope",
            Some(json!({})),
            "PERMISSION_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/role-permissions/rp_nope",
            None,
            "ROLE_PERMISSION_NOT_FOUND",
        ),
        (
            "DELETE",
            "/api/v1/role-permissions/rp_nope",
            None,
            "ROLE_PERMISSION_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/role-permissions",
            Some(json!({"role_id": "role_nope", "permission_id": perm_id})),
            "ROLE_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/role-permissions",
            Some(json!({"role_id": "role_finance_approver", "permission_id": "perm_nope"})),
            "PERMISSION_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/spaces/space_acme/member-roles/mr_nope",
            None,
            "MEMBER_ROLE_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/spaces/space_acme/member-roles/mr_nope/revoke",
            None,
            "MEMBER_ROLE_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/spaces/space_acme/member-roles",
            Some(json!({"member_id": "member_nope", "role_id": "role_finance_approver"})),
            "MEMBER_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/spaces/space_acme/member-roles",
            Some(json!({"member_id": "member_invoice_creator", "role_id": "role_nope"})),
            "ROLE_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/spaces/space_acme/member-roles",
            Some(json!({"member_id": "member_invoice_creator",
                "role_id": "role_finance_approver", "scope_anchor_group_id": "group_nope"})),
            "GROUP_NOT_FOUND",
        ),
    ] {
        refused(&cli, method, path, body, nf, code, None).await;
    }

    // None of the refused calls left an audit record.
    assert_eq!(audit_logs(&cli, "roles.create").await.len(), 1);
    assert_eq!(audit_logs(&cli, "member_roles.create").await.len(), 2);
    assert_eq!(audit_logs(&cli, "roles.update").await.len(), 0);
}

#[tokio::test]
async fn grants_across_spaces_are_a_conflict_naming_the_field() {
    let Some((_db, cli)) = app().await else {
        return;
    };
    let (_, perm_id, _, _) = finance_reviewer(&cli).await;
    expect(
        &cli,
        "POST",
        "/api/v1/spaces/space_other/roles",
        Some(json!({"id": "role_other_ops", "key": "ops", "name": "Ops"})),
        StatusCode::CREATED,
    )
    .await;
    let path = "/api/v1/spaces/space_acme/member-roles";
    for (body, field) in [
        (
            json!({"member_id": "member_other", "role_id": "role_finance_approver"}),
            "member_id",
        ),
        (
            json!({"member_id": "member_finance_reviewer", "role_id": "role_other_ops"}),
            "role_id",
        ),
        (
            json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver",
                "scope_anchor_group_id": "group_other_root"}),
            "scope_anchor_group_id",
        ),
    ] {
        refused(
            &cli,
            "POST",
            path,
            Some(body),
            StatusCode::CONFLICT,
            "CONFLICT",
            Some(field),
        )
        .await;
    }
    // The same grant through the other space's path fails on the member and the anchor.
    refused(
        &cli,
        "POST",
        "/api/v1/spaces/space_other/member-roles",
        Some(json!({"member_id": "member_finance_reviewer", "role_id": "role_other_ops"})),
        StatusCode::CONFLICT,
        "CONFLICT",
        Some("member_id"),
    )
    .await;
    refused(
        &cli,
        "POST",
        "/api/v1/role-permissions",
        Some(
            json!({"role_id": "role_other_ops", "permission_id": perm_id,
            "audit_space_id": "space_acme"}),
        ),
        StatusCode::CONFLICT,
        "CONFLICT",
        Some("audit_space_id"),
    )
    .await;
    // Permissions are global: a role of another space may hold the same one, in its space.
    let rp = expect(
        &cli,
        "POST",
        "/api/v1/role-permissions",
        Some(json!({"role_id": "role_other_ops", "permission_id": perm_id})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(rp["data"]["space_id"], "space_other");
    // A member-role of space_acme is not visible through space_other.
    let listed = expect(
        &cli,
        "GET",
        "/api/v1/spaces/space_other/member-roles",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"], json!([]));
    assert_eq!(audit_logs(&cli, "member_roles.create").await.len(), 1);
}

#[tokio::test]
async fn disable_soft_delete_and_revoke_follow_their_lifecycles_with_one_audit_record_each() {
    let Some((_db, cli)) = app().await else {
        return;
    };
    let (_, perm_id, rp_id, mr_id) = finance_reviewer(&cli).await;
    let role_path = "/api/v1/spaces/space_acme/roles/role_finance_approver";
    let conflict = StatusCode::CONFLICT;

    // Roles: update, disable, disable again (409), enable through PATCH.
    let updated = expect(
        &cli,
        "PATCH",
        role_path,
        Some(json!({"name": "Finance approver (EU)", "key": "finance_approver_eu"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["data"]["key"], "finance_approver_eu");
    assert_eq!(updated["data"]["name"], "Finance approver (EU)");
    let disabled = expect(
        &cli,
        "POST",
        &format!("{role_path}/disable"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(disabled["data"]["status"], "disabled");
    refused(
        &cli,
        "POST",
        &format!("{role_path}/disable"),
        None,
        conflict,
        "CONFLICT",
        None,
    )
    .await;
    // A disabled role cannot be granted.
    refused(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles",
        Some(json!({"member_id": "member_invoice_creator", "role_id": "role_finance_approver"})),
        conflict,
        "CONFLICT",
        Some("role_id"),
    )
    .await;
    let listed = expect(
        &cli,
        "GET",
        "/api/v1/spaces/space_acme/roles?status=disabled",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"][0]["id"], "role_finance_approver");
    expect(
        &cli,
        "PATCH",
        role_path,
        Some(json!({"status": "active"})),
        StatusCode::OK,
    )
    .await;

    // Permissions: update the triple, disable, disable again (409).
    let perm_path = format!("/api/v1/permissions/{perm_id}");
    let changed = expect(
        &cli,
        "PATCH",
        &perm_path,
        Some(json!({"scope": "group", "metadata": {"note": "narrowed"}})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["data"]["scope"], "group");
    assert_eq!(changed["data"]["metadata"]["note"], "narrowed");
    let rp = expect(
        &cli,
        "GET",
        &format!("/api/v1/role-permissions/{rp_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        rp["data"]["scope"], "group",
        "grants show the permission's values"
    );
    expect(
        &cli,
        "POST",
        &format!("{perm_path}/disable"),
        None,
        StatusCode::OK,
    )
    .await;
    refused(
        &cli,
        "POST",
        &format!("{perm_path}/disable"),
        None,
        conflict,
        "CONFLICT",
        None,
    )
    .await;
    expect(
        &cli,
        "PATCH",
        &perm_path,
        Some(json!({"status": "active"})),
        StatusCode::OK,
    )
    .await;

    // Role-permissions: soft delete answers 200 with the record; again is 409; the record stays
    // readable; lists leave it out unless asked; granting again restores it.
    let rp_path = format!("/api/v1/role-permissions/{rp_id}");
    let deleted = expect(&cli, "DELETE", &rp_path, None, StatusCode::OK).await;
    assert_eq!(deleted["data"]["id"], rp_id.as_str());
    assert!(deleted["data"]["deleted_at"].is_string());
    refused(&cli, "DELETE", &rp_path, None, conflict, "CONFLICT", None).await;
    let still = expect(&cli, "GET", &rp_path, None, StatusCode::OK).await;
    assert!(still["data"]["deleted_at"].is_string());
    let listed = expect(
        &cli,
        "GET",
        "/api/v1/role-permissions",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"], json!([]));
    let listed = expect(
        &cli,
        "GET",
        "/api/v1/role-permissions?include_deleted=true",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"][0]["id"], rp_id.as_str());
    let again = expect(
        &cli,
        "POST",
        "/api/v1/role-permissions",
        Some(json!({"role_id": "role_finance_approver", "permission_id": perm_id})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(again["data"]["id"], rp_id.as_str());
    assert!(again["data"]["deleted_at"].is_null());

    // Member-roles: revoke, revoke again (409); a revoked grant may be granted anew.
    let mr_path = format!("/api/v1/spaces/space_acme/member-roles/{mr_id}");
    let revoked = expect(
        &cli,
        "POST",
        &format!("{mr_path}/revoke"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(revoked["data"]["status"], "revoked");
    refused(
        &cli,
        "POST",
        &format!("{mr_path}/revoke"),
        None,
        conflict,
        "CONFLICT",
        None,
    )
    .await;
    refused(
        &cli,
        "POST",
        &format!("/api/v1/spaces/space_other/member-roles/{mr_id}/revoke"),
        None,
        StatusCode::NOT_FOUND,
        "MEMBER_ROLE_NOT_FOUND",
        None,
    )
    .await;
    let listed = expect(
        &cli,
        "GET",
        "/api/v1/spaces/space_acme/member-roles?status=revoked",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["data"][0]["id"], mr_id.as_str());
    expect(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/member-roles",
        Some(
            json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver",
            "scope_anchor_group_id": "group_finance"}),
        ),
        StatusCode::CREATED,
    )
    .await;

    // Exactly one audit record per successful mutation.
    for (event_type, count) in [
        ("roles.create", 1),
        ("roles.update", 2),
        ("roles.disable", 1),
        ("permissions.create", 1),
        ("permissions.update", 2),
        ("permissions.disable", 1),
        ("role_permissions.create", 2),
        ("role_permissions.delete", 1),
        ("member_roles.create", 2),
        ("member_roles.revoke", 1),
    ] {
        let logs = audit_logs(&cli, event_type).await;
        assert_eq!(logs.len(), count, "{event_type}: {logs:?}");
    }
    let deletes = audit_logs(&cli, "role_permissions.delete").await;
    assert_eq!(deletes[0]["trace"]["after"]["deleted"], true);
    let revokes = audit_logs(&cli, "member_roles.revoke").await;
    assert_eq!(revokes[0]["trace"]["after"]["status"], "revoked");

    // And one event per successful mutation: the 4 creates, then 10 changes.
    let events = expect(
        &cli,
        "GET",
        "/test/authz/grant-events",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 14);
}

#[tokio::test]
async fn lists_page_with_real_cursors_without_gaps_or_repeats() {
    let Some((_db, cli)) = app().await else {
        return;
    };
    let mut perm_ids = Vec::new();
    for (i, action) in [
        "read", "create", "approve", "reject", "delete", "archive", "export",
    ]
    .iter()
    .enumerate()
    {
        let scope = ["self", "group", "group_tree", "space", "global"][i % 5];
        let body = expect(
            &cli,
            "POST",
            "/api/v1/permissions",
            Some(json!({"resource": "invoice", "action": action, "scope": scope})),
            StatusCode::CREATED,
        )
        .await;
        perm_ids.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    for i in 0..5 {
        expect(
            &cli,
            "POST",
            "/api/v1/spaces/space_acme/roles",
            Some(json!({"key": format!("role_{i}"), "name": format!("Role {i}")})),
            StatusCode::CREATED,
        )
        .await;
    }
    let perms = all_pages(&cli, "/api/v1/permissions", 3).await;
    let mut got: Vec<String> = perms
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    let sorted = {
        let mut s = got.clone();
        s.sort();
        s
    };
    assert_eq!(got, sorted, "ordered by ID");
    got.sort();
    perm_ids.sort();
    assert_eq!(got, perm_ids, "every permission exactly once");
    let narrowed = all_pages(&cli, "/api/v1/permissions?scope=group", 1).await;
    assert_eq!(narrowed.len(), 2);

    let roles = all_pages(&cli, "/api/v1/spaces/space_acme/roles", 2).await;
    assert_eq!(roles.len(), 5);
    let other = all_pages(&cli, "/api/v1/spaces/space_other/roles", 2).await;
    assert!(other.is_empty());

    for i in 0..5 {
        expect(
            &cli,
            "POST",
            "/api/v1/role-permissions",
            Some(json!({"role_id": roles[i]["id"], "permission_id": perm_ids[i]})),
            StatusCode::CREATED,
        )
        .await;
        expect(
            &cli,
            "POST",
            "/api/v1/spaces/space_acme/member-roles",
            Some(json!({"member_id": "member_invoice_creator", "role_id": roles[i]["id"]})),
            StatusCode::CREATED,
        )
        .await;
    }
    assert_eq!(
        all_pages(&cli, "/api/v1/role-permissions", 2).await.len(),
        5
    );
    assert_eq!(
        all_pages(&cli, "/api/v1/spaces/space_acme/member-roles", 2)
            .await
            .len(),
        5
    );
    let page = expect(
        &cli,
        "GET",
        "/api/v1/spaces/space_acme/member-roles?limit=5",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["pagination"]["has_more"], false);
    assert!(page["pagination"]["cursor"].is_null());
}

#[tokio::test]
async fn a_grant_change_the_audit_store_cannot_record_is_not_made_nor_announced() {
    let Some((database, cli)) = app().await else {
        return;
    };
    let (_, _, rp_id, mr_id) = finance_reviewer(&cli).await;
    let drop = plystra_contracts::storage::sqlx::AssertSqlSafe("DROP TABLE sys_audit_chain_head");
    match &database.db {
        Database::Sqlite(pool) => {
            plystra_contracts::storage::sqlx::raw_sql(drop)
                .execute(pool)
                .await
                .unwrap();
        }
        Database::Postgres(pool) => {
            plystra_contracts::storage::sqlx::raw_sql(drop)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/spaces/space_acme/roles".to_owned(),
            Some(json!({"id": "role_lost", "key": "lost", "name": "Lost"})),
        ),
        (
            "POST",
            "/api/v1/spaces/space_acme/roles/role_finance_approver/disable".to_owned(),
            None,
        ),
        (
            "POST",
            "/api/v1/permissions".to_owned(),
            Some(json!({"resource": "invoice", "action": "read", "scope": "space"})),
        ),
        ("DELETE", format!("/api/v1/role-permissions/{rp_id}"), None),
        (
            "POST",
            format!("/api/v1/spaces/space_acme/member-roles/{mr_id}/revoke"),
            None,
        ),
    ] {
        refused(
            &cli,
            method,
            &path,
            body,
            unavailable,
            "AUDIT_UNAVAILABLE",
            None,
        )
        .await;
    }
    refused(
        &cli,
        "GET",
        "/api/v1/roles/role_lost",
        None,
        StatusCode::NOT_FOUND,
        "ROLE_NOT_FOUND",
        None,
    )
    .await;
    let role = expect(
        &cli,
        "GET",
        "/api/v1/roles/role_finance_approver",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        role["data"]["status"], "active",
        "the change was rolled back"
    );
    let rp = expect(
        &cli,
        "GET",
        &format!("/api/v1/role-permissions/{rp_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert!(rp["data"]["deleted_at"].is_null());
    let mr = expect(
        &cli,
        "GET",
        &format!("/api/v1/spaces/space_acme/member-roles/{mr_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mr["data"]["status"], "active");
    let perms = expect(&cli, "GET", "/api/v1/permissions", None, StatusCode::OK).await;
    assert_eq!(perms["data"].as_array().unwrap().len(), 1);
    let events = expect(
        &cli,
        "GET",
        "/test/authz/grant-events",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        4,
        "only the committed creates were announced"
    );
}
