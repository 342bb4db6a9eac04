//! End-to-end tests of identity.business through the real router and a real database: the
//! Finance Reviewer identity fixture over plain HTTP, pagination, validation, same-space rules in
//! the API and the database, status lifecycles, sessions (login, lockout, refresh rotation,
//! logout, switch-member), registration, and one audit record per mutation.

use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Query};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::{Database, StorageError};
use plystra_kernel::storage::testing::TestDatabase;
use poem::http::StatusCode;
use serde_json::{Value, json};

use crate::support::app::{self, Auth, Client, KEY, PASSWORD, call, code, expect, send, try_login};

/// The app with `settings`, on a fresh database.
async fn app(settings: &[(&str, &str)]) -> Option<(TestDatabase, Client)> {
    app::app_with(settings, &[]).await
}

/// The app with `settings`, on `database`.
async fn boot_on(database: &TestDatabase, settings: &[(&str, &str)]) -> Client {
    app::boot_on(database, settings, &[]).await
}

/// The identity part of the Finance Reviewer fixture, created over plain HTTP.
async fn finance_reviewer(cli: &Client) {
    for (id, email) in [
        ("user_alice", "alice@example.com"),
        ("user_bob", "bob@example.com"),
    ] {
        let user = expect(
            cli,
            Auth::Boot,
            "POST",
            "/api/v1/users",
            Some(json!({"id": id, "email": email, "password": PASSWORD})),
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(user["id"], id);
        assert_eq!(user["status"], "active");
        assert!(user["password_changed_at"].is_string());
    }
    for (id, name) in [("space_acme", "Acme"), ("space_other", "Other")] {
        expect(
            cli,
            Auth::Boot,
            "POST",
            "/api/v1/spaces",
            Some(json!({"id": id, "name": name})),
            StatusCode::CREATED,
        )
        .await;
    }
    let finance = expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"id": "group_finance", "name": "finance", "display_name": "Finance"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (finance["path"].as_str(), finance["depth"].as_i64()),
        (Some("finance"), Some(0))
    );
    // A child by path (the parent is found by path) and one by parent ID.
    let apac = expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"id": "group_finance_apac", "path": "finance.apac"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(apac["parent_id"], "group_finance");
    assert_eq!(apac["parent_group_id"], "group_finance");
    assert_eq!(apac["name"], "apac");
    assert_eq!(apac["depth"], 1);
    let emea = expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"id": "group_finance_emea", "name": "emea", "parent_id": "group_finance"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(emea["path"], "finance.emea");
    expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"id": "group_legal", "path": "legal"})),
        StatusCode::CREATED,
    )
    .await;
    expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"id": "group_legal_emea", "name": "emea", "parent_group_id": "group_legal", "path": "legal.emea"})),
        StatusCode::CREATED,
    )
    .await;
    for (id, name) in [
        ("member_finance_reviewer", "Finance reviewer"),
        ("member_invoice_creator", "Invoice creator"),
    ] {
        expect(
            cli,
            Auth::Boot,
            "POST",
            "/api/v1/spaces/space_acme/members",
            Some(json!({"id": id, "display_name": name})),
            StatusCode::CREATED,
        )
        .await;
    }
    for (id, user, relation) in [
        ("um_alice_finance_reviewer", "user_alice", "delegate"),
        ("um_bob_finance_reviewer", "user_bob", "login"),
        (
            "um_alice_finance_reviewer_revoked",
            "user_alice",
            "delegate",
        ),
    ] {
        let b = expect(
            cli,
            Auth::Boot,
            "POST",
            "/api/v1/spaces/space_acme/user-members",
            Some(json!({"id": id, "user_id": user, "member_id": "member_finance_reviewer", "relation_type": relation})),
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(b["status"], "active");
        assert_eq!(b["member_display_name"], "Finance reviewer");
    }
    let revoked = expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/user-members/um_alice_finance_reviewer_revoked/revoke",
        Some(json!({"revoked_reason": "rotated"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoked_reason"], "rotated");
    assert!(revoked["revoked_at"].is_string());
    // The expired binding, for USER_MEMBER_EXPIRED.
    expect(
        cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/user-members",
        Some(json!({"id": "um_alice_finance_reviewer_expired", "user_id": "user_alice", "member_id": "member_finance_reviewer", "relation_type": "delegate", "expires_at": "2020-01-01T00:00:00Z"})),
        StatusCode::CREATED,
    )
    .await;
}

/// A change record as stored: action, resource ID, the space it is filed under, trace.
type ChangeRow = (String, Option<String>, Option<String>, Json<Value>);

/// The change records: action, resource ID, the space the record is filed under, trace.
async fn audit_rows(db: &Database) -> Vec<(String, String, Option<String>, Value)> {
    let q = Query::select()
        .columns(["action", "resource_id", "space_id", "trace"].map(Alias::new))
        .from(Alias::new("sys_audit_audit_logs"))
        .and_where(Expr::col(Alias::new("event_type")).ne("authz.decision"))
        .to_owned();
    let rows: Vec<ChangeRow> = db.fetch_all(&q).await.unwrap();
    rows.into_iter()
        .map(|(a, r, s, t)| (a, r.unwrap_or_default(), s, t.0))
        .collect()
}

#[tokio::test]
async fn the_finance_reviewer_identity_fixture_is_created_over_http_and_alice_reads_her_actor() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;

    // The tree comes in path order with depths.
    let tree = expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/spaces/space_acme/groups/tree",
        None,
        StatusCode::OK,
    )
    .await;
    let paths: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "finance",
            "finance.apac",
            "finance.emea",
            "legal",
            "legal.emea"
        ]
    );
    // Tree pages carry a cursor too.
    let (_, page) = call(
        &cli,
        "GET",
        "/api/v1/spaces/space_acme/groups/tree?limit=2",
        None,
    )
    .await;
    assert_eq!(page["pagination"]["has_more"], true);
    let cursor = page["pagination"]["cursor"].as_str().unwrap().to_owned();
    let (_, page) = call(
        &cli,
        "GET",
        &format!("/api/v1/spaces/space_acme/groups/tree?limit=2&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(page["data"][0]["path"], "finance.emea");

    // Lookups by ID, in and out of the space.
    let g = expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/groups/group_legal_emea",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(g["space_id"], "space_acme");
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/spaces/space_acme/groups/group_finance",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/members/member_invoice_creator",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/spaces/space_acme/members/member_invoice_creator",
        None,
        StatusCode::OK,
    )
    .await;
    let um = expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/user-members/um_bob_finance_reviewer",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(um["email"], "bob@example.com");
    assert_eq!(um["relation_type"], "login");
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/spaces/space_acme/user-members/um_bob_finance_reviewer",
        None,
        StatusCode::OK,
    )
    .await;
    let ums = expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/spaces/space_acme/user-members",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ums.as_array().unwrap().len(), 4);

    // Alice logs in (any case of her email) and reads her actor context.
    let (status, body) = try_login(&cli, "Alice@Example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = &body["data"];
    assert_eq!(session["token_type"], "Bearer");
    assert!(
        session["access_token"]
            .as_str()
            .unwrap()
            .starts_with("ply_at_")
    );
    assert!(
        session["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("ply_rt_")
    );
    assert_eq!(session["user"]["id"], "user_alice");
    assert_eq!(
        session["actor"]["user_member_id"],
        "um_alice_finance_reviewer"
    );
    let token = session["access_token"].as_str().unwrap();
    let (status, ctx) = send(
        &cli,
        Auth::Bearer(token),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ctx}");
    assert_eq!(ctx["data"]["actor"]["user_id"], "user_alice");
    assert_eq!(ctx["data"]["actor"]["member_id"], "member_finance_reviewer");
    assert_eq!(ctx["data"]["actor"]["space_id"], "space_acme");
    assert_eq!(ctx["data"]["actor"]["relation_type"], "delegate");
    // Neither the revoked nor the expired binding is offered.
    let offered: Vec<&str> = ctx["data"]["available_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["user_member_id"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["um_alice_finance_reviewer"]);
    // A session is a credential, but management routes need an admin grant: until
    // admin.control_plane grants permissions, the kernel refuses it (fail closed).
    let (status, body) = send(
        &cli,
        Auth::Bearer(token),
        "GET",
        "/api/v1/users/user_alice",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "ADMIN_PERMISSION_REQUIRED");
}

#[tokio::test]
async fn one_hundred_twenty_users_page_as_50_50_20() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    for i in 0..120 {
        expect(
            &cli,
            Auth::Boot,
            "POST",
            "/api/v1/users",
            Some(json!({"email": format!("user{i:03}@example.com")})),
            StatusCode::CREATED,
        )
        .await;
    }
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    for (len, more) in [(50, true), (50, true), (20, false)] {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=50&cursor={c}"),
            None => "/api/v1/users?limit=50".to_owned(),
        };
        let (status, body) = call(&cli, "GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"].as_array().unwrap().len(), len);
        assert_eq!(body["pagination"]["has_more"], more);
        assert_eq!(body["pagination"]["limit"], 50);
        assert_eq!(body["pagination"]["cursor"].is_string(), more);
        seen.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        cursor = body["pagination"]["cursor"].as_str().map(str::to_owned);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 120, "every user exactly once");
    assert_eq!(sorted, seen, "in ID order");
    let (_, body) = call(&cli, "GET", "/api/v1/users", None).await;
    assert_eq!(body["pagination"]["limit"], 50, "the default limit");
    for bad in ["limit=0", "limit=201", "limit=x", "cursor=not-a-cursor"] {
        let (status, body) = call(&cli, "GET", &format!("/api/v1/users?{bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(code(&body), "VALIDATION_FAILED");
    }
}

#[tokio::test]
async fn validation_errors_name_fields_and_unknown_ids_are_typed_404s() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces",
        Some(json!({"id": "space_acme", "name": "Acme"})),
        StatusCode::CREATED,
    )
    .await;
    for (path, body, field) in [
        ("/api/v1/users", json!({"email": "nope"}), "email"),
        (
            "/api/v1/users",
            json!({"email": "a@example.com", "password": "short"}),
            "password",
        ),
        (
            "/api/v1/users",
            json!({"email": "a@example.com", "id": "space_x"}),
            "id",
        ),
        (
            "/api/v1/spaces",
            json!({"name": "X", "slug": "Bad Slug"}),
            "slug",
        ),
        (
            "/api/v1/spaces/space_acme/groups",
            json!({"path": "Finance"}),
            "path",
        ),
        (
            "/api/v1/spaces/space_acme/groups",
            json!({"name": "a-b"}),
            "name",
        ),
        (
            "/api/v1/spaces/space_acme/members",
            json!({"display_name": " "}),
            "display_name",
        ),
    ] {
        let (status, err) = call(&cli, "POST", path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(code(&err), "VALIDATION_FAILED");
        assert!(
            err["error"]["details"]["fields"][field].is_string(),
            "{body}: {err}"
        );
        assert!(
            !err.to_string().contains("short"),
            "the password is never echoed"
        );
    }
    // A well-formed body that references nothing is a typed 404 naming the field.
    let (status, err) = call(
        &cli,
        "POST",
        "/api/v1/spaces/space_acme/user-members",
        Some(json!({"user_id": "user_nobody", "member_id": "member_x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(code(&err), "USER_NOT_FOUND");
    assert_eq!(err["error"]["details"]["field"], "user_id");
    // A missing required field and a wrong type are 400s too, never 500s.
    for body in [json!({}), json!({"email": 5})] {
        let (status, err) = call(&cli, "POST", "/api/v1/users", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    }
    // Duplicates are 409s; emails compare case-insensitively.
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"email": "dup@example.com"})),
        StatusCode::CREATED,
    )
    .await;
    let err = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"email": "DUP@example.com", "username": "other"})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&err), "CONFLICT");
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces",
        Some(json!({"id": "space_acme", "name": "Again", "slug": "again"})),
        StatusCode::CONFLICT,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"path": "finance"})),
        StatusCode::CREATED,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"path": "finance"})),
        StatusCode::CONFLICT,
    )
    .await;

    for (path, expected) in [
        ("/api/v1/users/user_nobody", "USER_NOT_FOUND"),
        ("/api/v1/spaces/space_nowhere", "SPACE_NOT_FOUND"),
        ("/api/v1/spaces/space_nowhere/groups", "SPACE_NOT_FOUND"),
        ("/api/v1/groups/group_nothing", "GROUP_NOT_FOUND"),
        (
            "/api/v1/spaces/space_acme/groups/group_nothing",
            "GROUP_NOT_FOUND",
        ),
        ("/api/v1/members/member_nobody", "MEMBER_NOT_FOUND"),
        (
            "/api/v1/spaces/space_acme/members/member_nobody",
            "MEMBER_NOT_FOUND",
        ),
        ("/api/v1/user-members/um_nothing", "USER_MEMBER_NOT_FOUND"),
        (
            "/api/v1/spaces/space_acme/user-members/um_nothing",
            "USER_MEMBER_NOT_FOUND",
        ),
    ] {
        let (status, body) = call(&cli, "GET", path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(code(&body), expected, "{path}");
        assert_eq!(body["error"]["request_id"], body["request_id"]);
    }
    let (status, body) = call(
        &cli,
        "PATCH",
        "/api/v1/users/user_nobody",
        Some(json!({"phone": "1"})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "USER_NOT_FOUND")
    );

    // The request ID is echoed.
    let resp = cli
        .get("/api/v1/users/user_nobody")
        .header("X-Plystra-API-Key", KEY)
        .header("X-Request-ID", "req-identity-1")
        .send()
        .await;
    assert_eq!(
        resp.0.headers().get("x-request-id").unwrap(),
        "req-identity-1"
    );
    // Management routes need a credential.
    let (status, _) = send(&cli, Auth::None, "GET", "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn groups_keep_their_path_and_statuses_move_only_along_their_lifecycle() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    let g = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme/groups/group_finance_apac",
        Some(json!({"display_name": "APAC", "sort_order": 3, "path": "finance.apac"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (g["display_name"].as_str(), g["sort_order"].as_i64()),
        (Some("APAC"), Some(3))
    );
    for body in [
        json!({"path": "finance.asia"}),
        json!({"name": "asia"}),
        json!({"parent_id": "group_legal"}),
    ] {
        let err = expect(
            &cli,
            Auth::Boot,
            "PATCH",
            "/api/v1/spaces/space_acme/groups/group_finance_apac",
            Some(body),
            StatusCode::CONFLICT,
        )
        .await;
        assert_eq!(code(&err), "CONFLICT");
    }

    for (base, restore) in [
        (
            "/api/v1/users/user_bob",
            Some("/api/v1/users/user_bob/restore"),
        ),
        (
            "/api/v1/spaces/space_other",
            Some("/api/v1/spaces/space_other/restore"),
        ),
        ("/api/v1/spaces/space_acme/groups/group_legal_emea", None),
        (
            "/api/v1/spaces/space_acme/members/member_invoice_creator",
            None,
        ),
    ] {
        let disable = format!("{base}/disable");
        let d = expect(&cli, Auth::Boot, "POST", &disable, None, StatusCode::OK).await;
        assert_eq!(d["status"], "disabled", "{base}");
        let err = expect(
            &cli,
            Auth::Boot,
            "POST",
            &disable,
            None,
            StatusCode::CONFLICT,
        )
        .await;
        assert_eq!(code(&err), "CONFLICT");
        if let Some(restore) = restore {
            let r = expect(&cli, Auth::Boot, "POST", restore, None, StatusCode::OK).await;
            assert_eq!(r["status"], "active");
            expect(
                &cli,
                Auth::Boot,
                "POST",
                restore,
                None,
                StatusCode::CONFLICT,
            )
            .await;
        }
        // PATCH can move status along the same lifecycle.
        let p = expect(
            &cli,
            Auth::Boot,
            "PATCH",
            base,
            Some(json!({"status": "active"})),
            StatusCode::OK,
        )
        .await;
        assert_eq!(p["status"], "active");
    }
    // A revoked binding is revoked for good.
    let revoke = "/api/v1/spaces/space_acme/user-members/um_alice_finance_reviewer_revoked/revoke";
    expect(
        &cli,
        Auth::Boot,
        "POST",
        revoke,
        Some(json!({})),
        StatusCode::CONFLICT,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme/user-members/um_alice_finance_reviewer_revoked",
        Some(json!({"status": "active"})),
        StatusCode::CONFLICT,
    )
    .await;
    let b = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme/user-members/um_bob_finance_reviewer",
        Some(json!({"is_primary": true, "relation_type": "owner"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (b["is_primary"].as_bool(), b["relation_type"].as_str()),
        (Some(true), Some("owner"))
    );
    expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme/user-members/um_bob_finance_reviewer",
        Some(json!({"user_id": "user_alice"})),
        StatusCode::CONFLICT,
    )
    .await;
    // `null` clears a phone number and an expiry; absent fields stay.
    let u = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/users/user_alice",
        Some(json!({"phone": "+1 555 0100"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(u["phone"], "+1 555 0100");
    let u = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/users/user_alice",
        Some(json!({"username": "alice"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (u["phone"].as_str(), u["username"].as_str()),
        (Some("+1 555 0100"), Some("alice"))
    );
    let u = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/users/user_alice",
        Some(json!({"phone": null})),
        StatusCode::OK,
    )
    .await;
    assert!(Value::is_null(&u["phone"]), "{u}");
    let b = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme/user-members/um_alice_finance_reviewer_expired",
        Some(json!({"expires_at": null})),
        StatusCode::OK,
    )
    .await;
    assert!(Value::is_null(&b["expires_at"]), "{b}");
    // Space-scoped routes do not reach into another space.
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/spaces/space_other/members/member_invoice_creator",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_other/groups/group_finance/disable",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn cross_space_links_are_refused_by_the_api_and_by_the_database() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_other/members",
        Some(json!({"id": "member_other", "display_name": "Other"})),
        StatusCode::CREATED,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_other/groups",
        Some(json!({"id": "group_other", "name": "ops"})),
        StatusCode::CREATED,
    )
    .await;
    // A binding in space_acme to a member of space_other: no member of this space has that ID.
    let err = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/user-members",
        Some(json!({"user_id": "user_alice", "member_id": "member_other"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(code(&err), "MEMBER_NOT_FOUND");
    assert_eq!(err["error"]["details"]["field"], "member_id", "{err}");
    let err = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/user-members",
        Some(json!({"user_id": "user_alice", "member_id": "member_invoice_creator", "linked_by_member_id": "member_other"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(code(&err), "MEMBER_NOT_FOUND");
    assert_eq!(
        err["error"]["details"]["field"], "linked_by_member_id",
        "{err}"
    );
    // A group in space_acme under a parent of space_other: no group of this space.
    let err = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups",
        Some(json!({"name": "sub", "parent_id": "group_other"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(code(&err), "GROUP_NOT_FOUND");
    assert_eq!(err["error"]["details"]["field"], "parent_id", "{err}");

    // The database refuses the same links when the API is bypassed.
    let at = plystra_contracts::storage::time::OffsetDateTime::now_utc();
    let insert = Query::insert()
        .into_table(Alias::new("sys_identity_user_members"))
        .columns(
            [
                "id",
                "space_id",
                "user_id",
                "member_id",
                "relation_type",
                "is_primary",
                "status",
                "created_at",
                "updated_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            "um_sneaky".into(),
            "space_acme".into(),
            "user_alice".into(),
            "member_other".into(),
            "login".into(),
            false.into(),
            "active".into(),
            at.into(),
            at.into(),
        ])
        .to_owned();
    let refused = db.db.execute(&insert).await.unwrap_err();
    assert!(
        matches!(refused, StorageError::InvalidReference { .. }),
        "{refused:?}"
    );
    let insert = Query::insert()
        .into_table(Alias::new("sys_identity_groups"))
        .columns(
            [
                "id",
                "space_id",
                "parent_id",
                "name",
                "path",
                "depth",
                "sort_order",
                "status",
                "created_at",
                "updated_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            "group_sneaky".into(),
            "space_acme".into(),
            "group_other".into(),
            "sub".into(),
            "ops.sub".into(),
            1i64.into(),
            0i64.into(),
            "active".into(),
            at.into(),
            at.into(),
        ])
        .to_owned();
    let refused = db.db.execute(&insert).await.unwrap_err();
    assert!(
        matches!(refused, StorageError::InvalidReference { .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn eight_failed_logins_lock_the_email_and_address_for_a_while() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    for email in ["locked@example.com", "other@example.com"] {
        expect(
            &cli,
            Auth::Boot,
            "POST",
            "/api/v1/users",
            Some(json!({"email": email, "password": PASSWORD})),
            StatusCode::CREATED,
        )
        .await;
    }
    for _ in 0..8 {
        let (status, body) = try_login(&cli, "locked@example.com", "wrong password!!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(code(&body), "INVALID_CREDENTIALS");
    }
    // Now even the right password is refused.
    let (status, body) = try_login(&cli, "locked@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(code(&body), "LOGIN_LOCKED");
    assert!(
        body["error"]["details"]["retry_after_seconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Another email is not affected; an unknown email is the same 401 as a wrong password.
    let (status, _) = try_login(&cli, "other@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = try_login(&cli, "nobody@example.com", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
    );
}

#[tokio::test]
async fn the_login_lockout_counts_across_processes() {
    // Two apps on one database: two processes' worth of state, sharing only the database.
    let Some((database, first)) = app(&[]).await else {
        return;
    };
    let second = boot_on(&database, &[]).await;
    expect(
        &first,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"email": "spread@example.com", "password": PASSWORD})),
        StatusCode::CREATED,
    )
    .await;
    // Four failures on each, alternating: neither app alone has seen eight.
    for attempt in 0..8 {
        let cli = if attempt % 2 == 0 { &first } else { &second };
        let (status, body) = try_login(cli, "spread@example.com", "wrong password!!").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {body}"
        );
        assert_eq!(code(&body), "INVALID_CREDENTIALS");
    }
    // The ninth, even with the right password, is refused by both.
    for cli in [&first, &second] {
        let (status, body) = try_login(cli, "spread@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(code(&body), "LOGIN_LOCKED");
        assert!(
            body["error"]["details"]["retry_after_seconds"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
    // The table holds a key of the email, never the email.
    let q = Query::select()
        .columns(["email_key", "ip_address"].map(Alias::new))
        .from(Alias::new("sys_identity_login_failures"))
        .to_owned();
    let rows: Vec<(String, String)> = database.db.fetch_all(&q).await.unwrap();
    assert_eq!(rows.len(), 8, "{rows:?}");
    assert!(
        rows.iter()
            .all(|(key, _)| key.len() == 64 && !key.contains("spread")),
        "{rows:?}"
    );
}

#[tokio::test]
async fn refresh_rotates_both_tokens_and_logout_and_password_changes_end_sessions() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    let (_, body) = try_login(&cli, "bob@example.com", PASSWORD).await;
    let access = body["data"]["access_token"].as_str().unwrap().to_owned();
    let refresh = body["data"]["refresh_token"].as_str().unwrap().to_owned();

    let (status, rotated) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let access2 = rotated["data"]["access_token"].as_str().unwrap().to_owned();
    let refresh2 = rotated["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(access, access2);
    assert_ne!(refresh, refresh2);
    // The old pair is dead, the new one works.
    let (status, body) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
    );
    let (status, _) = send(
        &cli,
        Auth::Bearer(&access),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, ctx) = send(
        &cli,
        Auth::Bearer(&access2),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ctx["data"]["actor"]["user_member_id"],
        "um_bob_finance_reviewer"
    );

    // Logout by refresh token ends the session.
    let (status, out) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/logout",
        Some(json!({"refresh_token": refresh2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out["data"]["logged_out"], true);
    let (status, _) = send(
        &cli,
        Auth::Bearer(&access2),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, out) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/logout",
        Some(json!({"refresh_token": refresh2})),
    )
    .await;
    assert_eq!(out["data"]["logged_out"], false);

    // Logout by Bearer access token.
    let (_, body) = try_login(&cli, "bob@example.com", PASSWORD).await;
    let access3 = body["data"]["access_token"].as_str().unwrap().to_owned();
    let (_, out) = send(
        &cli,
        Auth::Bearer(&access3),
        "POST",
        "/api/v1/auth/logout",
        Some(json!({})),
    )
    .await;
    assert_eq!(out["data"]["logged_out"], true);

    // A new password ends every session and the old password stops working.
    let (_, body) = try_login(&cli, "bob@example.com", PASSWORD).await;
    let access4 = body["data"]["access_token"].as_str().unwrap().to_owned();
    let refresh4 = body["data"]["refresh_token"].as_str().unwrap().to_owned();
    let user = expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/users/user_bob",
        Some(json!({"password": "a brand new passphrase"})),
        StatusCode::OK,
    )
    .await;
    assert!(user.get("password").is_none());
    let (status, _) = send(
        &cli,
        Auth::Bearer(&access4),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": refresh4})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = try_login(&cli, "bob@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = try_login(&cli, "bob@example.com", "a brand new passphrase").await;
    assert_eq!(status, StatusCode::OK);

    // A disabled user cannot log in.
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users/user_bob/disable",
        None,
        StatusCode::OK,
    )
    .await;
    let (status, _) = try_login(&cli, "bob@example.com", "a brand new passphrase").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn switch_member_moves_the_session_between_working_bindings_only() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/user-members",
        Some(json!({"id": "um_alice_invoice_creator", "user_id": "user_alice", "member_id": "member_invoice_creator", "is_primary": true})),
        StatusCode::CREATED,
    )
    .await;
    let (_, body) = try_login(&cli, "alice@example.com", PASSWORD).await;
    // The primary binding is the default actor.
    assert_eq!(
        body["data"]["actor"]["user_member_id"],
        "um_alice_invoice_creator"
    );
    assert_eq!(
        body["data"]["available_members"].as_array().unwrap().len(),
        2
    );
    let token = body["data"]["access_token"].as_str().unwrap().to_owned();
    let switch = |b: Value| {
        let cli = &cli;
        let token = token.clone();
        async move {
            send(
                cli,
                Auth::Bearer(&token),
                "POST",
                "/api/v1/actor/switch-member",
                Some(b),
            )
            .await
        }
    };
    let (status, ctx) = switch(json!({"member_id": "member_finance_reviewer"})).await;
    assert_eq!(status, StatusCode::OK, "{ctx}");
    assert_eq!(
        ctx["data"]["actor"]["user_member_id"],
        "um_alice_finance_reviewer"
    );
    let (_, ctx) = send(
        &cli,
        Auth::Bearer(&token),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(
        ctx["data"]["actor"]["member_id"], "member_finance_reviewer",
        "the switch sticks"
    );
    let (status, ctx) = switch(json!({"user_member_id": "um_alice_invoice_creator"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctx["data"]["actor"]["member_id"], "member_invoice_creator");
    // Revoked and expired bindings do not work; a stranger's binding is not found.
    let (status, body) =
        switch(json!({"user_member_id": "um_alice_finance_reviewer_revoked"})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "CONFLICT"));
    let (status, _) = switch(json!({"user_member_id": "um_alice_finance_reviewer_expired"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = switch(json!({"user_member_id": "um_bob_finance_reviewer"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "USER_MEMBER_NOT_FOUND")
    );
    let (status, body) = switch(json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "VALIDATION_FAILED")
    );
    // A disabled member drops out of the available bindings.
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/members/member_invoice_creator/disable",
        None,
        StatusCode::OK,
    )
    .await;
    let (_, ctx) = send(
        &cli,
        Auth::Bearer(&token),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert!(Value::is_null(&ctx["data"]["actor"]), "{ctx}");
    assert_eq!(
        ctx["data"]["available_members"].as_array().unwrap().len(),
        1
    );
    // The actor routes need a session, not an API key.
    for (method, path) in [
        ("GET", "/api/v1/actor/context"),
        ("POST", "/api/v1/actor/switch-member"),
    ] {
        let body = (method == "POST").then(|| json!({"member_id": "member_finance_reviewer"}));
        let (status, body) = call(&cli, method, path, body).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_mutation_writes_one_audit_record_without_secrets() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/users/user_bob",
        Some(json!({"password": "another long passphrase", "phone": "+1 555"})),
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users/user_bob/disable",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users/user_bob/restore",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme",
        Some(json!({"name": "Acme Inc"})),
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_other/disable",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_other/restore",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme/groups/group_legal",
        Some(json!({"display_name": "Legal"})),
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/groups/group_legal/disable",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme/members/member_invoice_creator",
        Some(json!({"display_name": "Creator"})),
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces/space_acme/members/member_invoice_creator/disable",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/spaces/space_acme/user-members/um_bob_finance_reviewer",
        Some(json!({"is_primary": true})),
        StatusCode::OK,
    )
    .await;
    // A refused change records nothing.
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users/user_alice/restore",
        None,
        StatusCode::CONFLICT,
    )
    .await;

    let rows = audit_rows(&db.db).await;
    let count = |action: &str| rows.iter().filter(|(a, _, _, _)| a == action).count();
    for (action, n) in [
        ("users.create", 2),
        ("users.update", 1),
        ("users.disable", 1),
        ("users.restore", 1),
        ("spaces.create", 2),
        ("spaces.update", 1),
        ("spaces.disable", 1),
        ("spaces.restore", 1),
        ("groups.create", 5),
        ("groups.update", 1),
        ("groups.disable", 1),
        ("members.create", 2),
        ("members.update", 1),
        ("members.disable", 1),
        ("user_members.create", 4),
        ("user_members.update", 1),
        ("user_members.revoke", 1),
    ] {
        assert_eq!(count(action), n, "{action}: {rows:?}");
    }
    assert_eq!(rows.len(), 27, "{rows:?}");
    for (action, resource, space, trace) in &rows {
        let text = trace.to_string();
        assert!(
            !text.contains("password") && !text.contains("argon2"),
            "{action}: {text}"
        );
        assert_eq!(trace["after"]["id"], resource.as_str(), "{action}: {trace}");
        assert_eq!(trace["caller"]["kind"], "bootstrap_key");
        // A space's own changes, and those of what lives in a space, are filed under that
        // space; a user's under none.
        let expected = match action.split('.').next() {
            Some("users") => None,
            Some("spaces") => Some(resource.as_str()),
            _ => trace["after"]["space_id"].as_str(),
        };
        assert!(
            action.starts_with("users.") || expected.is_some(),
            "{action}: {trace}"
        );
        assert_eq!(space.as_deref(), expected, "{action}: {trace}");
    }
    let disable = rows
        .iter()
        .find(|(a, _, _, _)| a == "users.disable")
        .unwrap();
    assert_eq!(disable.3["after"]["status"], "disabled");
}

#[tokio::test]
async fn registration_is_off_by_default_and_needs_the_token_when_on() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let body = json!({"email": "new@example.com", "password": PASSWORD, "registration_token": "x"});
    let (status, err) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/register",
        Some(body),
    )
    .await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::NOT_FOUND, "FEATURE_DISABLED")
    );

    let token = "registration-token-0123456789abcdef";
    let Some((db, cli)) = app(&[
        ("PLYSTRA_AUTH_REGISTRATION_ENABLED", "true"),
        ("PLYSTRA_AUTH_REGISTRATION_TOKEN", token),
        ("PLYSTRA_AUTH_REGISTRATION_SPACE_ID", "space_acme"),
    ])
    .await
    else {
        return;
    };
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/spaces",
        Some(json!({"id": "space_acme", "name": "Acme"})),
        StatusCode::CREATED,
    )
    .await;
    let wrong =
        json!({"email": "new@example.com", "password": PASSWORD, "registration_token": "nope"});
    let (status, err) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/register",
        Some(wrong),
    )
    .await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS")
    );
    let short =
        json!({"email": "new@example.com", "password": "short", "registration_token": token});
    let (status, _) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/register",
        Some(short),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let ok = json!({"email": "New@Example.com", "password": PASSWORD, "registration_token": token, "member_display_name": "Newcomer"});
    let (status, reg) = send(&cli, Auth::None, "POST", "/api/v1/auth/register", Some(ok)).await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    let reg = &reg["data"];
    assert_eq!(reg["user"]["email"], "new@example.com");
    assert_eq!(reg["bootstrap_super_admin"], false);
    assert_eq!(reg["actor"]["space_id"], "space_acme");
    assert_eq!(reg["actor"]["member_display_name"], "Newcomer");
    let token = reg["access_token"].as_str().unwrap();
    let (status, ctx) = send(
        &cli,
        Auth::Bearer(token),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctx["data"]["actor"]["is_primary"], true);
    let rows = audit_rows(&db.db).await;
    for action in ["users.create", "members.create", "user_members.create"] {
        assert!(rows.iter().any(|(a, _, _, _)| a == action), "{action}");
    }
    // The email is taken now.
    let again = json!({"email": "new@example.com", "password": PASSWORD, "registration_token": "registration-token-0123456789abcdef"});
    let (status, _) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/register",
        Some(again),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn every_list_pages_with_a_cursor() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    for (path, limit, total) in [
        ("/api/v1/spaces", 1, 2),
        ("/api/v1/users", 1, 2),
        ("/api/v1/spaces/space_acme/groups", 2, 5),
        ("/api/v1/spaces/space_acme/groups/tree", 2, 5),
        ("/api/v1/spaces/space_acme/members", 1, 2),
        ("/api/v1/spaces/space_acme/user-members", 3, 4),
    ] {
        let mut cursor: Option<String> = None;
        let mut ids = Vec::new();
        let mut pages = 0;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}?limit={limit}&cursor={c}"),
                None => format!("{path}?limit={limit}"),
            };
            let (status, body) = call(&cli, "GET", &url, None).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            let data = body["data"].as_array().unwrap();
            assert!(data.len() <= limit, "{url}");
            ids.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            pages += 1;
            let more = body["pagination"]["has_more"].as_bool().unwrap();
            assert_eq!(more, body["pagination"]["cursor"].is_string(), "{url}");
            if !more {
                break;
            }
            cursor = body["pagination"]["cursor"].as_str().map(str::to_owned);
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), total, "{path}: {ids:?}");
        assert_eq!(pages, total.div_ceil(limit), "{path}");
    }
}

#[tokio::test]
async fn a_session_without_an_admin_grant_changes_nothing_and_leaves_no_record() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    let (_, body) = try_login(&cli, "alice@example.com", PASSWORD).await;
    let token = body["data"]["access_token"].as_str().unwrap().to_owned();
    let (status, body) = send(
        &cli,
        Auth::Bearer(&token),
        "PATCH",
        "/api/v1/spaces/space_acme",
        Some(json!({"name": "Acme by Alice"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "ADMIN_PERMISSION_REQUIRED");
    let q = Query::select()
        .columns(["id"].map(Alias::new))
        .from(Alias::new("sys_audit_audit_logs"))
        .and_where(Expr::col(Alias::new("action")).eq("spaces.update"))
        .to_owned();
    let rows: Vec<(String,)> = db.db.fetch_all(&q).await.unwrap();
    assert!(rows.is_empty(), "a refused change leaves no record");
    let (_, space) = send(&cli, Auth::Boot, "GET", "/api/v1/spaces/space_acme", None).await;
    assert_ne!(space["data"]["name"], "Acme by Alice");
}

#[tokio::test]
async fn a_mutation_the_audit_store_cannot_record_is_not_made() {
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"id": "user_kept", "email": "kept@example.com"})),
        StatusCode::CREATED,
    )
    .await;
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
    let err = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"id": "user_lost", "email": "lost@example.com"})),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(code(&err), "AUDIT_UNAVAILABLE");
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/users/user_lost",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let err = expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users/user_kept/disable",
        None,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(code(&err), "AUDIT_UNAVAILABLE");
    let user = expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/users/user_kept",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user["status"], "active", "the change was rolled back");
}

#[tokio::test]
async fn tokens_issued_under_a_previous_secret_keep_working_after_rotation() {
    let Some((database, cli)) = app(&[(
        "PLYSTRA_SESSION_SECRET",
        "first-session-secret-0123456789abcdef",
    )])
    .await
    else {
        return;
    };
    finance_reviewer(&cli).await;
    let (_, body) = try_login(&cli, "alice@example.com", PASSWORD).await;
    let access = body["data"]["access_token"].as_str().unwrap().to_owned();
    let refresh = body["data"]["refresh_token"].as_str().unwrap().to_owned();

    // A restart with a new secret alone no longer knows the tokens.
    let cli = boot_on(
        &database,
        &[(
            "PLYSTRA_SESSION_SECRET",
            "second-session-secret-0123456789abcdef",
        )],
    )
    .await;
    let (status, _) = send(
        &cli,
        Auth::Bearer(&access),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // With the old secret listed as previous, they do; refresh re-issues under the new secret.
    let cli = boot_on(
        &database,
        &[
            (
                "PLYSTRA_SESSION_SECRET",
                "second-session-secret-0123456789abcdef",
            ),
            (
                "PLYSTRA_SESSION_SECRET_PREVIOUS",
                "unrelated-old-secret, first-session-secret-0123456789abcdef",
            ),
        ],
    )
    .await;
    let (status, _) = send(
        &cli,
        Auth::Bearer(&access),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, rotated) = send(
        &cli,
        Auth::None,
        "POST",
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let access2 = rotated["data"]["access_token"].as_str().unwrap().to_owned();
    let cli = boot_on(
        &database,
        &[(
            "PLYSTRA_SESSION_SECRET",
            "second-session-secret-0123456789abcdef",
        )],
    )
    .await;
    let (status, _) = send(
        &cli,
        Auth::Bearer(&access2),
        "GET",
        "/api/v1/actor/context",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn production_without_a_session_secret_keeps_identity_up_with_sessions_off() {
    use plystra_kernel::KernelConfig;
    use plystra_kernel::storage::DatabaseConfig;
    use plystra_kernel::storage::migrations::MigrationSet;
    use plystra_kernel::storage::testing::SYSTEM_NAMESPACES;
    use poem::test::TestClient;
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    MigrationSet::embedded(database.db.dialect())
        .apply_pending(&database.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap();
    let config = KernelConfig {
        environment: plystra_kernel::Environment::Production,
        bootstrap_api_key: Some(KEY.to_owned()),
        database: Some(DatabaseConfig::new(database.url.clone())),
        settings: [
            (
                "PLYSTRA_AUDIT_HASH_KEY".to_owned(),
                "identity-test-audit-hash-key-0123456789".to_owned(),
            ),
            ("PLYSTRA_API_KEY_PERMISSIONS".to_owned(), "*".to_owned()),
        ]
        .into(),
        ..KernelConfig::default()
    };
    // No session secret, unlike every other boot.
    let cli = TestClient::new(app::boot_with(config, &[]).await.app);
    let (status, body) = send(&cli, Auth::None, "GET", "/api/v1/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"email": "p@example.com", "password": PASSWORD})),
        StatusCode::CREATED,
    )
    .await;
    let (status, body) = try_login(&cli, "p@example.com", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_READY"),
        "{body}"
    );
}

/// Whether `Protect` admits the session `token`: a live session gets past authentication to the
/// admin check of `GET /api/v1/users` (403: it holds no admin grant), and that route's handler
/// never looks at the session itself; any other token is refused by `Protect` (401).
async fn admitted(cli: &Client, token: &str) -> bool {
    let (status, body) = send(cli, Auth::Bearer(token), "GET", "/api/v1/users", None).await;
    match (status, code(&body)) {
        (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED") => true,
        (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED") => false,
        _ => panic!("GET /api/v1/users as a session: {status}: {body}"),
    }
}

/// Sends an unauthenticated session call and returns its status, body and the change-feed
/// revision its answer carries.
async fn session_call(
    cli: &Client,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> (StatusCode, Value, u64) {
    let mut req = cli.post(path).body_json(&body);
    if let Some(token) = bearer {
        req = req.header("Authorization", format!("Bearer {token}"));
    }
    let resp = req.send().await;
    let status = resp.0.status();
    let revision = resp
        .0
        .headers()
        .get(plystra_contracts::feed::REVISION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let text = resp.0.into_body().into_string().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {status}: {text}"));
    (status, body, revision)
}

fn tokens(body: &Value) -> (String, String) {
    (
        body["data"]["access_token"].as_str().unwrap().to_owned(),
        body["data"]["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_logout_is_refused_on_the_very_next_request_of_the_same_process() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    // Each session write commits its fact through the feed: its answer names a newer revision.
    let login = json!({"email": "bob@example.com", "password": PASSWORD});
    let (status, body, logged_in_at) =
        session_call(&cli, "/api/v1/auth/login", None, login.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(logged_in_at > 0, "a login commits the session's fact");
    let (by_bearer, _) = tokens(&body);
    let (_, body, _) = session_call(&cli, "/api/v1/auth/login", None, login).await;
    let (by_refresh, refresh) = tokens(&body);
    assert!(admitted(&cli, &by_bearer).await);
    assert!(admitted(&cli, &by_refresh).await);

    let (status, out, logged_out_at) =
        session_call(&cli, "/api/v1/auth/logout", Some(&by_bearer), json!({})).await;
    assert_eq!(
        (status, &out["data"]["logged_out"]),
        (StatusCode::OK, &json!(true)),
        "{out}"
    );
    assert!(
        logged_out_at > logged_in_at,
        "{logged_out_at} after {logged_in_at}"
    );
    assert!(
        !admitted(&cli, &by_bearer).await,
        "a logged-out session is refused at once"
    );
    assert!(
        admitted(&cli, &by_refresh).await,
        "another session of the user lives on"
    );

    let (_, out, _) = session_call(
        &cli,
        "/api/v1/auth/logout",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(out["data"]["logged_out"], true, "{out}");
    assert!(!admitted(&cli, &by_refresh).await);
    // Ending it again changes nothing and commits nothing.
    let (status, out, revision) = session_call(
        &cli,
        "/api/v1/auth/logout",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(
        (status, &out["data"]["logged_out"]),
        (StatusCode::OK, &json!(false))
    );
    assert_eq!(revision, 0, "nothing changed, so no revision");
}

#[tokio::test]
async fn a_refresh_fails_the_old_access_token_on_the_next_request_and_the_new_one_works() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    let (_, body) = try_login(&cli, "alice@example.com", PASSWORD).await;
    let (access, refresh) = tokens(&body);
    assert!(admitted(&cli, &access).await);
    let (status, rotated, revision) = session_call(
        &cli,
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(revision > 0, "a refresh commits the session's fact");
    let (access2, refresh2) = tokens(&rotated);
    assert!(
        !admitted(&cli, &access).await,
        "the old access token is dead at once"
    );
    assert!(admitted(&cli, &access2).await);
    // Again: the second rotation also retires the first rotated token.
    let (_, rotated, _) = session_call(
        &cli,
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh2}),
    )
    .await;
    let (access3, _) = tokens(&rotated);
    assert!(!admitted(&cli, &access2).await);
    assert!(admitted(&cli, &access3).await);
    // Switching the acting binding keeps the session (its fact carries the new binding).
    let (status, body) = send(
        &cli,
        Auth::Bearer(&access3),
        "POST",
        "/api/v1/actor/switch-member",
        Some(json!({"user_member_id": "um_alice_finance_reviewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(admitted(&cli, &access3).await);
}

#[tokio::test]
async fn disabling_the_user_or_changing_the_password_refuses_the_session_on_the_next_request() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    let (_, body) = try_login(&cli, "alice@example.com", PASSWORD).await;
    let (alice, _) = tokens(&body);
    let (_, body) = try_login(&cli, "bob@example.com", PASSWORD).await;
    let (bob, _) = tokens(&body);
    assert!(admitted(&cli, &alice).await && admitted(&cli, &bob).await);

    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users/user_alice/disable",
        None,
        StatusCode::OK,
    )
    .await;
    assert!(
        !admitted(&cli, &alice).await,
        "a disabled user's session is refused at once"
    );
    assert!(admitted(&cli, &bob).await);
    // Restoring the user does not bring the ended session back.
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users/user_alice/restore",
        None,
        StatusCode::OK,
    )
    .await;
    assert!(!admitted(&cli, &alice).await);

    // A new password ends the sessions of a user who stays active: only the sessions' own facts
    // can refuse them.
    expect(
        &cli,
        Auth::Boot,
        "PATCH",
        "/api/v1/users/user_bob",
        Some(json!({"password": "a brand new passphrase"})),
        StatusCode::OK,
    )
    .await;
    assert!(
        !admitted(&cli, &bob).await,
        "a password change ends the session at once"
    );
}

#[tokio::test]
async fn a_live_session_is_verified_from_memory_without_reading_its_row() {
    let Some((database, cli)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&cli).await;
    let (_, body) = try_login(&cli, "bob@example.com", PASSWORD).await;
    let (access, _) = tokens(&body);
    // Remove every session row behind the feed's back (no write does this): a verifier that
    // read the table would refuse the token now.
    let mut remove = Query::delete();
    remove.from_table(Alias::new("sys_identity_sessions"));
    assert_eq!(database.db.execute(&remove).await.unwrap(), 1);
    assert!(
        admitted(&cli, &access).await,
        "verified from the session table in memory"
    );
    // A token the table does not know is still judged by the database (which knows none).
    let (_, body) = try_login(&cli, "alice@example.com", PASSWORD).await;
    let (alice, _) = tokens(&body);
    assert!(admitted(&cli, &alice).await);
    assert!(!admitted(&cli, "ply_at_not-a-token-anyone-issued").await);
}

#[tokio::test]
async fn a_session_committed_by_another_process_verifies_before_its_fact_arrives_and_nothing_is_cached()
 {
    // The first process reads the feed only at start (PostgreSQL may still wake it early).
    let slow = [
        ("PLYSTRA_FEED_POLL_INTERVAL_MS", "600000"),
        ("PLYSTRA_FEED_STALENESS_MS", "600000"),
    ];
    let Some((database, first)) = app(&slow).await else {
        return;
    };
    finance_reviewer(&first).await;
    let second = boot_on(&database, &[]).await;
    let (_, body) = try_login(&second, "bob@example.com", PASSWORD).await;
    let (access, _) = tokens(&body);
    // The first process has not applied the login on SQLite: it asks the database.
    assert!(admitted(&first, &access).await);
    let (_, out, logged_out_at) =
        session_call(&second, "/api/v1/auth/logout", Some(&access), json!({})).await;
    assert_eq!(out["data"]["logged_out"], true, "{out}");
    assert!(!admitted(&second, &access).await);
    if database.db.dialect() == plystra_contracts::storage::Dialect::Sqlite {
        // The first process has applied neither change (it read the feed only at start), so it
        // asks the database again, which says the session ended: nothing it read was kept.
        assert!(!admitted(&first, &access).await);
    } else {
        // A notification may have brought the login's fact to the first process: the logout's
        // follows within the bound.
        let logged_out = std::time::Instant::now();
        while admitted(&first, &access).await {
            assert!(
                logged_out.elapsed() < plystra_contracts::feed::DEFAULT_STALENESS_BOUND,
                "a logout elsewhere was not honoured within the staleness bound"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // Once the first process has applied the logout's revision, it refuses from memory too.
    let resp = first
        .get("/api/v1/users")
        .header("X-Plystra-API-Key", KEY)
        .header(
            plystra_contracts::feed::AT_LEAST_REVISION_HEADER,
            logged_out_at.to_string(),
        )
        .send()
        .await;
    assert_eq!(resp.0.status(), StatusCode::OK);
    assert!(!admitted(&first, &access).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_answer_503_never_an_allow_while_the_facts_are_not_current() {
    use std::time::{Duration, Instant};
    let Some((database, writer)) = app(&[]).await else {
        return;
    };
    finance_reviewer(&writer).await;
    let (_, body) = try_login(&writer, "bob@example.com", PASSWORD).await;
    let (access, _) = tokens(&body);
    // The process under test only verifies, under a short staleness bound.
    let cli = boot_on(&database, &[("PLYSTRA_FEED_STALENESS_MS", "1000")]).await;
    assert!(admitted(&cli, &access).await);
    // A change this process cannot read: it cannot confirm its facts are current any more.
    let mut tx = database.db.begin().await.unwrap();
    let revision = plystra_contracts::feed::append(&mut tx, &[]).await.unwrap();
    let mut damage = Query::update();
    damage
        .table(Alias::new(plystra_contracts::feed::CHANGES))
        .value(Alias::new("facts"), r#"[{"kind":"from_the_future"}]"#)
        .and_where(Expr::col(Alias::new("revision")).eq(revision as i64));
    tx.execute(&damage).await.unwrap();
    tx.commit().await.unwrap();
    let damaged_at = Instant::now();
    let mut refused = false;
    loop {
        let (status, body) = send(&cli, Auth::Bearer(&access), "GET", "/api/v1/users", None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused = true;
            assert_eq!(code(&body), "FACTS_NOT_CURRENT", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("cannot confirm its facts are current"),
                "{body}"
            );
            // Once past the bound, the session verifier itself refuses, before anything else
            // judges the request. (The bound can also pass between the verifier's look and the
            // admin check's within one request: that request is refused by the admin check,
            // fail closed too, and the next one shows the verifier's refusal.)
            if message.starts_with("cannot verify the session") {
                break;
            }
            assert!(
                message.starts_with("cannot check admin permissions"),
                "{body}"
            );
        } else {
            assert!(!refused, "admitted again after a refusal: {status} {body}");
            assert_eq!(
                (status, code(&body)),
                (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED"),
                "until the bound passes the session is admitted as before"
            );
        }
        assert!(
            damaged_at.elapsed() < Duration::from_secs(10),
            "sessions were admitted long past the staleness bound"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Repaired, the process follows the feed again and admits the session.
    let mut repair = Query::update();
    repair
        .table(Alias::new(plystra_contracts::feed::CHANGES))
        .value(Alias::new("facts"), "[]")
        .and_where(Expr::col(Alias::new("revision")).eq(revision as i64));
    database.db.execute(&repair).await.unwrap();
    let repaired_at = Instant::now();
    while !matches!(
        send(&cli, Auth::Bearer(&access), "GET", "/api/v1/users", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    ) {
        assert!(
            repaired_at.elapsed() < Duration::from_secs(10),
            "never recovered"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(admitted(&cli, &access).await);
}
