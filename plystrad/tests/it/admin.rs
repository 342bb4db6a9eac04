//! End-to-end tests of admin.control_plane through the real router and a real database: API keys
//! (allow, revoke, expiry, rotation, coalesced last use), admin grants and their anti-escalation
//! rules, the last super admin, space- and group-scoped principals, the bootstrap key's
//! permissions and handoff, the console, and the protection sweep over every operation of the
//! OpenAPI document.

use std::sync::Arc;

use plystra_contracts::services::AuditRecorder;
use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Query};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::{Database, time::OffsetDateTime};
use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::migrations::MigrationSet;
use plystra_kernel::storage::testing::{SYSTEM_NAMESPACES, TestDatabase};
use plystra_kernel::{Booted, Environment, KernelConfig};
use plystra_system_admin::bootstrap;
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};

use crate::support::app::{
    API_KEY_SECRET, Auth, Client, KEY, PASSWORD, app, boot_with, code, config, exchange, expect,
    login, send,
};
use crate::support::super_admin::{audit_service, bootstrap_super_admin};

/// The app on `database` in `environment`, with `extra` settings.
async fn boot_in(
    database: &TestDatabase,
    environment: Environment,
    extra: &[(&str, &str)],
) -> Booted {
    let config = KernelConfig {
        environment,
        ..config(DatabaseConfig::new(database.url.clone()), extra)
    };
    boot_with(config, &[]).await
}

/// Waits until the server behind `cli` has applied every change committed to the feed so far
/// (a change made directly on the database, as `plystractl` in another process would, reaches
/// the server through the feed): one request with the bootstrap key and the feed's head as
/// `X-Plystra-At-Least-Revision`. A credential refused before the wait needs no wait: what
/// refused it is already applied.
async fn caught_up(cli: &Client, db: &Database) {
    let head = plystra_contracts::feed::head(db).await.unwrap();
    let resp = cli
        .get("/api/v1/capabilities")
        .header("X-Plystra-API-Key", KEY)
        .header("X-Plystra-At-Least-Revision", head.to_string())
        .send()
        .await;
    let text = resp.0.into_body().into_string().await.unwrap();
    assert!(
        !text.contains("REVISION_NOT_REACHED"),
        "the server did not reach revision {head}: {text}"
    );
}

/// Users alice..erin; spaces acme and other; groups finance, finance.ap and sales in acme and
/// finance in other; alice is the super admin, bob space admin of acme, carol group admin of
/// finance. Returns their session tokens.
struct World {
    alice: String,
    bob: String,
    carol: String,
    dave: String,
}

async fn world(cli: &Client, db: &Database) -> World {
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        expect(
            cli,
            Auth::Boot,
            "POST",
            "/api/v1/users",
            Some(json!({"id": format!("user_{name}"), "email": format!("{name}@example.com"), "password": PASSWORD})),
            StatusCode::CREATED,
        )
        .await;
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
    for (space, id, path) in [
        ("space_acme", "group_finance", "finance"),
        ("space_acme", "group_finance_ap", "finance.ap"),
        ("space_acme", "group_sales", "sales"),
        ("space_other", "group_other_finance", "finance"),
    ] {
        expect(
            cli,
            Auth::Boot,
            "POST",
            &format!("/api/v1/spaces/{space}/groups"),
            Some(json!({"id": id, "path": path})),
            StatusCode::CREATED,
        )
        .await;
    }
    bootstrap_super_admin(db, "user_alice").await;
    caught_up(cli, db).await;
    let alice = login(cli, "alice@example.com").await;
    for (user, level, space, group) in [
        ("user_bob", "space_admin", Some("space_acme"), None),
        ("user_carol", "group_admin", None, Some("group_finance")),
    ] {
        expect(
            cli,
            Auth::Bearer(&alice),
            "POST",
            "/api/v1/admin/grants",
            Some(json!({"user_id": user, "level": level, "space_id": space, "group_id": group})),
            StatusCode::CREATED,
        )
        .await;
    }
    World {
        bob: login(cli, "bob@example.com").await,
        carol: login(cli, "carol@example.com").await,
        dave: login(cli, "dave@example.com").await,
        alice,
    }
}

/// Creates a key as `auth`; returns (id, plaintext).
async fn create_key(cli: &Client, auth: Auth<'_>, body: Value) -> (String, String) {
    let data = expect(
        cli,
        auth,
        "POST",
        "/api/v1/api-keys",
        Some(body),
        StatusCode::CREATED,
    )
    .await;
    let plaintext = data["api_key"].as_str().unwrap().to_owned();
    let id = data["id"].as_str().unwrap().to_owned();
    assert_eq!(plaintext.split('.').next().unwrap(), format!("ply_ak_{id}"));
    (id, plaintext)
}

async fn audit_actions(db: &Database) -> Vec<(String, Option<String>, Value)> {
    let q = Query::select()
        .columns(["action", "resource_id", "trace"].map(Alias::new))
        .from(Alias::new("sys_audit_audit_logs"))
        .order_by(
            Alias::new("seq"),
            plystra_contracts::storage::sea_query::Order::Asc,
        )
        .to_owned();
    let rows: Vec<(String, Option<String>, Json<Value>)> = db.fetch_all(&q).await.unwrap();
    rows.into_iter().map(|(a, r, t)| (a, r, t.0)).collect()
}

#[tokio::test]
async fn a_space_key_reads_its_own_space_and_gets_403_in_another() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let (id, key) = create_key(
        &cli,
        Auth::Bearer(&w.alice),
        json!({"name": "acme reader", "level": "space", "space_id": "space_acme", "permission_keys": ["members:read", "groups:read"]}),
    )
    .await;
    // The expected allow, in either header.
    expect(
        &cli,
        Auth::Key(&key),
        "GET",
        "/api/v1/spaces/space_acme/members",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Bearer(&key),
        "GET",
        "/api/v1/spaces/space_acme/members",
        None,
        StatusCode::OK,
    )
    .await;
    // Another space's members: 403 with the permission named.
    let denied = expect(
        &cli,
        Auth::Key(&key),
        "GET",
        "/api/v1/spaces/space_other/members",
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&denied), "ADMIN_PERMISSION_REQUIRED");
    assert_eq!(denied["error"]["details"]["permission"], "members:read");
    // A group of another space through the by-ID route, and instance-wide lists: 403.
    for path in [
        "/api/v1/groups/group_other_finance",
        "/api/v1/users",
        "/api/v1/spaces",
        "/api/v1/spaces/space_other/groups/group_other_finance",
    ] {
        let (status, body) = send(&cli, Auth::Key(&key), "GET", path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    expect(
        &cli,
        Auth::Key(&key),
        "GET",
        "/api/v1/groups/group_finance",
        None,
        StatusCode::OK,
    )
    .await;
    // Not a permission it holds, even in its space.
    let (status, body) = send(
        &cli,
        Auth::Key(&key),
        "POST",
        "/api/v1/spaces/space_acme/members",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED")
    );
    // The stored key shows no secret; a wrong secret for a real ID is 401.
    let shown = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "GET",
        &format!("/api/v1/api-keys/{id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["key_prefix"], format!("ply_ak_{id}"));
    assert!(shown.get("api_key").is_none() && !shown.to_string().contains(&key));
    let forged = format!("ply_ak_{id}.{}", "A".repeat(43));
    let (status, body) = send(
        &cli,
        Auth::Key(&forged),
        "GET",
        "/api/v1/spaces/space_acme/members",
        None,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED")
    );
    // The creation was audited with alice as actor.
    let rows = audit_actions(&db.db).await;
    let created = rows
        .iter()
        .find(|(a, r, _)| a == "api_keys.create" && r.as_deref() == Some(id.as_str()))
        .expect("api_keys.create recorded");
    assert_eq!(created.2["caller"]["user_id"], "user_alice");
    assert!(
        !created.2.to_string().contains(&key),
        "the plaintext reached the audit log"
    );
}

#[tokio::test]
async fn a_revoked_key_and_an_expired_key_are_denied() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let body = json!({"name": "k", "level": "instance", "permission_keys": ["users:read"]});
    let (revoked_id, revoked) = create_key(&cli, Auth::Bearer(&w.alice), body).await;
    // Expires in two seconds: expiry is judged by the clock at each request.
    let expires_at = OffsetDateTime::now_utc() + std::time::Duration::from_secs(2);
    let (_, expired) = create_key(
        &cli,
        Auth::Bearer(&w.alice),
        json!({"name": "k", "level": "instance", "permission_keys": ["users:read"],
               "expires_at": expires_at.format(&plystra_contracts::storage::time::format_description::well_known::Rfc3339).unwrap()}),
    )
    .await;
    for key in [&revoked, &expired] {
        expect(
            &cli,
            Auth::Key(key),
            "GET",
            "/api/v1/users",
            None,
            StatusCode::OK,
        )
        .await;
    }
    let after = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        &format!("/api/v1/api-keys/{revoked_id}/revoke"),
        Some(json!({"reason": "leaked"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (after["status"].as_str(), after["active"].as_bool()),
        (Some("revoked"), Some(false))
    );
    assert_eq!(after["revoked_reason"], "leaked");
    assert_eq!(after["revoked_by_user_id"], "user_alice");
    let (status, body) = send(&cli, Auth::Key(&revoked), "GET", "/api/v1/users", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED")
    );
    let again = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        &format!("/api/v1/api-keys/{revoked_id}/revoke"),
        Some(json!({})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&again), "CONFLICT");

    // Past its expiry (the API refuses a past expires_at, so wait for it).
    let left = expires_at - OffsetDateTime::now_utc();
    if left.is_positive() {
        tokio::time::sleep(left.unsigned_abs() + std::time::Duration::from_millis(50)).await;
    }
    let (status, body) = send(&cli, Auth::Key(&expired), "GET", "/api/v1/users", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED")
    );
    let (status, body) = send(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "k", "level": "instance", "permission_keys": ["users:read"], "expires_at": "2020-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "VALIDATION_FAILED")
    );
    assert!(
        audit_actions(&db.db)
            .await
            .iter()
            .any(|(a, r, _)| a == "api_keys.revoke" && r.as_deref() == Some(revoked_id.as_str()))
    );
}

#[tokio::test]
async fn only_user_sessions_create_or_revoke_admin_grants() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let (_, everything) = create_key(
        &cli,
        Auth::Bearer(&w.alice),
        json!({"name": "all", "level": "instance", "permission_keys": ["*"]}),
    )
    .await;
    let grant = json!({"user_id": "user_dave", "level": "space_admin", "space_id": "space_acme"});
    for auth in [Auth::Key(&everything), Auth::Boot] {
        let denied = expect(
            &cli,
            auth,
            "POST",
            "/api/v1/admin/grants",
            Some(grant.clone()),
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(code(&denied), "AUTHENTICATION_REQUIRED");
        assert_eq!(denied["error"]["details"]["credential_required"], "session");
    }
    // An API key with `*` is never a super admin.
    let me = expect(
        &cli,
        Auth::Key(&everything),
        "GET",
        "/api/v1/admin/me",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (me["credential_type"].as_str(), me["super_admin"].as_bool()),
        (Some("api_key"), Some(false))
    );
    let grants = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "GET",
        "/api/v1/admin/grants",
        None,
        StatusCode::OK,
    )
    .await;
    let bob_grant = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["user_id"] == "user_bob")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = expect(
        &cli,
        Auth::Key(&everything),
        "POST",
        &format!("/api/v1/admin/grants/{bob_grant}/revoke"),
        Some(json!({})),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(code(&denied), "AUTHENTICATION_REQUIRED");
    assert_eq!(denied["error"]["details"]["credential_required"], "session");
    // A session without grants manages nothing.
    let (status, _) = send(
        &cli,
        Auth::Bearer(&w.dave),
        "POST",
        "/api/v1/admin/grants",
        Some(grant),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_space_admin_is_blocked_from_another_space_and_from_instance_grants() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    expect(
        &cli,
        Auth::Bearer(&w.bob),
        "GET",
        "/api/v1/spaces/space_acme/members",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Bearer(&w.bob),
        "GET",
        "/api/v1/spaces/space_acme",
        None,
        StatusCode::OK,
    )
    .await;
    for path in [
        "/api/v1/spaces/space_other/members",
        "/api/v1/spaces/space_other",
        "/api/v1/users",
        "/api/v1/console/overview",
    ] {
        let (status, body) = send(&cli, Auth::Bearer(&w.bob), "GET", path, None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED"),
            "{path}"
        );
    }
    for body in [
        json!({"user_id": "user_dave", "level": "space_admin", "space_id": "space_other"}),
        json!({"user_id": "user_dave", "level": "instance_admin"}),
        json!({"user_id": "user_dave", "level": "instance_super_admin"}),
    ] {
        let denied = expect(
            &cli,
            Auth::Bearer(&w.bob),
            "POST",
            "/api/v1/admin/grants",
            Some(body),
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(code(&denied), "ADMIN_PERMISSION_REQUIRED");
    }
    // Within its space it may grant.
    expect(
        &cli,
        Auth::Bearer(&w.bob),
        "POST",
        "/api/v1/admin/grants",
        Some(json!({"user_id": "user_dave", "level": "group_admin", "group_id": "group_sales"})),
        StatusCode::CREATED,
    )
    .await;
    // Bob sees the grants of his space, not alice's instance grant.
    let listed = expect(
        &cli,
        Auth::Bearer(&w.bob),
        "GET",
        "/api/v1/admin/grants",
        None,
        StatusCode::OK,
    )
    .await;
    let levels: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["level"].as_str().unwrap())
        .collect();
    assert!(!levels.contains(&"instance_super_admin"), "{levels:?}");
    assert!(
        levels.contains(&"space_admin") && levels.contains(&"group_admin"),
        "{levels:?}"
    );
}

#[tokio::test]
async fn a_group_admin_is_blocked_from_sibling_groups_and_the_whole_space() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    for path in [
        "/api/v1/spaces/space_acme/groups/group_finance",
        "/api/v1/spaces/space_acme/groups/group_finance_ap",
        "/api/v1/groups/group_finance_ap",
    ] {
        expect(
            &cli,
            Auth::Bearer(&w.carol),
            "GET",
            path,
            None,
            StatusCode::OK,
        )
        .await;
    }
    for path in [
        "/api/v1/spaces/space_acme/groups/group_sales",
        "/api/v1/groups/group_sales",
        "/api/v1/spaces/space_acme/members",
        "/api/v1/spaces/space_acme/groups",
        "/api/v1/groups/group_other_finance",
        "/api/v1/spaces/space_acme/groups/group_other_finance",
    ] {
        let (status, body) = send(&cli, Auth::Bearer(&w.carol), "GET", path, None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED"),
            "{path}"
        );
    }
    // Keys only in its subtree.
    create_key(
        &cli,
        Auth::Bearer(&w.carol),
        json!({"name": "ap", "level": "group", "group_id": "group_finance_ap", "permission_keys": ["groups:read"]}),
    )
    .await;
    let (status, _) = send(
        &cli,
        Auth::Bearer(&w.carol),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "sales", "level": "group", "group_id": "group_sales", "permission_keys": ["groups:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &cli,
        Auth::Bearer(&w.carol),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "space", "level": "space", "space_id": "space_acme", "permission_keys": ["groups:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_last_super_admin_cannot_be_revoked_and_only_super_admins_manage_instance_grants() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let me = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "GET",
        "/api/v1/admin/me",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["super_admin"], true);
    let alice_grant = me["grants"][0]["id"].as_str().unwrap().to_owned();
    let last = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        &format!("/api/v1/admin/grants/{alice_grant}/revoke"),
        Some(json!({"reason": "leaving"})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&last), "LAST_SUPER_ADMIN");
    // An instance admin cannot make instance grants.
    expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        "/api/v1/admin/grants",
        Some(json!({"user_id": "user_erin", "level": "instance_admin"})),
        StatusCode::CREATED,
    )
    .await;
    let erin = login(&cli, "erin@example.com").await;
    for level in ["instance_admin", "instance_super_admin"] {
        let denied = expect(
            &cli,
            Auth::Bearer(&erin),
            "POST",
            "/api/v1/admin/grants",
            Some(json!({"user_id": "user_dave", "level": level})),
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(code(&denied), "ADMIN_PERMISSION_REQUIRED");
    }
    let denied = expect(
        &cli,
        Auth::Bearer(&erin),
        "POST",
        &format!("/api/v1/admin/grants/{alice_grant}/revoke"),
        Some(json!({})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&denied), "ADMIN_PERMISSION_REQUIRED");
    // With a second super admin, the first can go; then the second is the last.
    let dave_grant = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        "/api/v1/admin/grants",
        Some(json!({"user_id": "user_dave", "level": "instance_super_admin"})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(
        &cli,
        Auth::Bearer(&w.dave),
        "POST",
        &format!("/api/v1/admin/grants/{alice_grant}/revoke"),
        Some(json!({"reason": "handover"})),
        StatusCode::OK,
    )
    .await;
    let last = expect(
        &cli,
        Auth::Bearer(&w.dave),
        "POST",
        &format!("/api/v1/admin/grants/{dave_grant}/revoke"),
        Some(json!({})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(code(&last), "LAST_SUPER_ADMIN");
    // Alice's session no longer manages anything.
    let (status, _) = send(&cli, Auth::Bearer(&w.alice), "GET", "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let actions: Vec<String> = audit_actions(&db.db)
        .await
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    assert!(actions.contains(&"admin.bootstrap_super_admin".to_owned()));
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "admin_grants.revoke")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_space_admin_cannot_create_or_read_instance_keys_and_keys_never_exceed_their_creator() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let (instance_id, _) = create_key(
        &cli,
        Auth::Bearer(&w.alice),
        json!({"name": "ops", "level": "instance", "permission_keys": ["users:read"]}),
    )
    .await;
    let denied = expect(
        &cli,
        Auth::Bearer(&w.bob),
        "GET",
        &format!("/api/v1/api-keys/{instance_id}"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&denied), "ADMIN_PERMISSION_REQUIRED");
    let denied = expect(
        &cli,
        Auth::Bearer(&w.bob),
        "POST",
        &format!("/api/v1/api-keys/{instance_id}/revoke"),
        Some(json!({})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(code(&denied), "ADMIN_PERMISSION_REQUIRED");
    let (status, _) = send(
        &cli,
        Auth::Bearer(&w.bob),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "x", "level": "instance", "permission_keys": ["users:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &cli,
        Auth::Bearer(&w.bob),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "x", "level": "space", "space_id": "space_other", "permission_keys": ["members:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (bob_key_id, bob_key) = create_key(
        &cli,
        Auth::Bearer(&w.bob),
        json!({"name": "acme", "level": "space", "space_id": "space_acme", "permission_keys": ["members:read", "api_keys:create", "api_keys:read"]}),
    )
    .await;
    let listed = expect(
        &cli,
        Auth::Bearer(&w.bob),
        "GET",
        "/api/v1/api-keys",
        None,
        StatusCode::OK,
    )
    .await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [bob_key_id.as_str()], "bob sees only his space's keys");
    // The key creates keys only with what it holds, where it holds it.
    let denied = expect(
        &cli,
        Auth::Key(&bob_key),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "y", "level": "space", "space_id": "space_acme", "permission_keys": ["members:manage"]})),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(denied["error"]["details"]["permission"], "members:manage");
    let (status, _) = send(
        &cli,
        Auth::Key(&bob_key),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "y", "level": "space", "space_id": "space_other", "permission_keys": ["members:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    create_key(
        &cli,
        Auth::Key(&bob_key),
        json!({"name": "y", "level": "space", "space_id": "space_acme", "permission_keys": ["members:read"]}),
    )
    .await;
    // Bad input is a 400, never a partial write.
    for body in [
        json!({"name": "z", "level": "space", "space_id": "space_acme", "permission_keys": ["*:read"]}),
        json!({"name": "z", "level": "space", "space_id": "space_acme", "permission_keys": []}),
        json!({"name": "", "level": "space", "space_id": "space_acme", "permission_keys": ["members:read"]}),
        json!({"name": "z", "level": "space", "permission_keys": ["members:read"]}),
    ] {
        let (status, body) = send(
            &cli,
            Auth::Bearer(&w.alice),
            "POST",
            "/api/v1/api-keys",
            Some(body),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "VALIDATION_FAILED")
        );
    }
}

#[tokio::test]
async fn the_bootstrap_key_holds_only_its_configured_permissions() {
    let Some((_db, cli)) = app(&[("PLYSTRA_API_KEY_PERMISSIONS", "")]).await else {
        return;
    };
    // The empty setting is the default list: capabilities, audit, registry, check.
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/capabilities",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/resource-types",
        None,
        StatusCode::OK,
    )
    .await;
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/audit/logs",
        None,
        StatusCode::OK,
    )
    .await;
    let denied = expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/users",
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(denied["error"]["details"]["permission"], "users:read");
    let Some((_db, cli)) = app(&[("PLYSTRA_API_KEY_PERMISSIONS", "users:read")]).await else {
        return;
    };
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/users",
        None,
        StatusCode::OK,
    )
    .await;
    let (status, _) = send(&cli, Auth::Boot, "GET", "/api/v1/capabilities", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn key_rotation_accepts_the_previous_secret_until_it_is_dropped() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let old_secret = "old-api-key-secret-0123456789abcdef0123";
    let new_secret = "new-api-key-secret-0123456789abcdef0123";
    let first = TestClient::new(
        boot_in(
            &database,
            Environment::Development,
            &[("PLYSTRA_API_KEY_SECRET", old_secret)],
        )
        .await
        .app,
    );
    let body = json!({"name": "k", "level": "instance", "permission_keys": ["users:read"]});
    let (_, old_key) = create_key(&first, Auth::Boot, body.clone()).await;
    expect(
        &first,
        Auth::Key(&old_key),
        "GET",
        "/api/v1/users",
        None,
        StatusCode::OK,
    )
    .await;

    let rotating = TestClient::new(
        boot_in(
            &database,
            Environment::Development,
            &[
                ("PLYSTRA_API_KEY_SECRET", new_secret),
                (
                    "PLYSTRA_API_KEY_SECRET_PREVIOUS",
                    &format!("unrelated-secret, {old_secret}"),
                ),
            ],
        )
        .await
        .app,
    );
    expect(
        &rotating,
        Auth::Key(&old_key),
        "GET",
        "/api/v1/users",
        None,
        StatusCode::OK,
    )
    .await;
    let (_, new_key) = create_key(&rotating, Auth::Boot, body).await;
    expect(
        &rotating,
        Auth::Key(&new_key),
        "GET",
        "/api/v1/users",
        None,
        StatusCode::OK,
    )
    .await;

    let rotated = TestClient::new(
        boot_in(
            &database,
            Environment::Development,
            &[("PLYSTRA_API_KEY_SECRET", new_secret)],
        )
        .await
        .app,
    );
    expect(
        &rotated,
        Auth::Key(&new_key),
        "GET",
        "/api/v1/users",
        None,
        StatusCode::OK,
    )
    .await;
    let (status, body) = send(&rotated, Auth::Key(&old_key), "GET", "/api/v1/users", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED")
    );
    // The new key was minted under the new secret only.
    let old_only = TestClient::new(
        boot_in(
            &database,
            Environment::Development,
            &[("PLYSTRA_API_KEY_SECRET", old_secret)],
        )
        .await
        .app,
    );
    let (status, _) = send(&old_only, Auth::Key(&new_key), "GET", "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn last_used(db: &Database, id: &str) -> Option<OffsetDateTime> {
    let q = Query::select()
        .column(Alias::new("last_used_at"))
        .from(Alias::new("sys_admin_api_keys"))
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .to_owned();
    let (at,): (Option<OffsetDateTime>,) = db.fetch_one(&q).await.unwrap();
    at
}

#[tokio::test]
async fn last_used_at_is_coalesced_and_written_at_stop() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    // A flush interval far beyond the test: only the stop writes.
    let booted = boot_in(
        &database,
        Environment::Development,
        &[("PLYSTRA_API_KEY_LAST_USED_FLUSH_SECONDS", "3600")],
    )
    .await;
    let runtime = booted.runtime.clone();
    let cli = TestClient::new(booted.app);
    let (id, key) = create_key(
        &cli,
        Auth::Boot,
        json!({"name": "k", "level": "instance", "permission_keys": ["users:read"]}),
    )
    .await;
    for _ in 0..5 {
        expect(
            &cli,
            Auth::Key(&key),
            "GET",
            "/api/v1/users",
            None,
            StatusCode::OK,
        )
        .await;
    }
    assert_eq!(
        last_used(&database.db, &id).await,
        None,
        "no write per request"
    );
    runtime.stop().await;
    let at = last_used(&database.db, &id).await.expect("written at stop");
    assert!(OffsetDateTime::now_utc() - at < std::time::Duration::from_secs(60));
}

#[tokio::test]
async fn the_console_counts_and_reports_capability_states() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let overview = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "GET",
        "/api/v1/console/overview",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(overview["counts"]["users"], 5);
    assert_eq!(overview["counts"]["spaces"], 2);
    assert_eq!(overview["counts"]["admin_grants"], 3);
    assert_eq!(overview["counts"]["api_keys"], 0);
    assert!(overview["counts"]["audit_records"].as_i64().unwrap() >= 12);
    assert_eq!(overview["capabilities"]["admin.control_plane"], "ready");
    assert_eq!(overview["capabilities"]["identity.business"], "ready");
}

#[tokio::test]
async fn production_refuses_the_bootstrap_key_after_the_handoff_and_records_it_once() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    MigrationSet::embedded(database.db.dialect())
        .apply_pending(&database.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap();
    let cli = TestClient::new(boot_in(&database, Environment::Production, &[]).await.app);
    expect(
        &cli,
        Auth::Boot,
        "POST",
        "/api/v1/users",
        Some(json!({"id": "user_root", "email": "root@example.com", "password": PASSWORD})),
        StatusCode::CREATED,
    )
    .await;
    bootstrap_super_admin(&database.db, "user_root").await;
    caught_up(&cli, &database.db).await;
    for _ in 0..2 {
        let (status, body) = send(&cli, Auth::Boot, "GET", "/api/v1/users", None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED")
        );
    }
    let root = login(&cli, "root@example.com").await;
    expect(
        &cli,
        Auth::Bearer(&root),
        "GET",
        "/api/v1/users",
        None,
        StatusCode::OK,
    )
    .await;
    // The refusal waited for its record; two refusals, one record.
    let handoffs = audit_actions(&database.db)
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "admin.handoff")
        .count();
    assert_eq!(handoffs, 1);

    // Development keeps accepting it.
    let dev = TestClient::new(boot_in(&database, Environment::Development, &[]).await.app);
    expect(
        &dev,
        Auth::Boot,
        "GET",
        "/api/v1/users",
        None,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn every_operation_needs_a_credential_and_its_permission() {
    let Some((db, cli)) = app(&[("PLYSTRA_API_KEY_PERMISSIONS", "metrics:read")]).await else {
        return;
    };
    // A managed key holding a permission no operation asks for, created directly.
    let audit = audit_service(&db.db);
    let recorder: Arc<dyn AuditRecorder> = audit.clone();
    let (_, key) = bootstrap::create_api_key(
        &db.db,
        recorder.as_ref(),
        &plystra_system_admin::api_key::KeySecrets::new(API_KEY_SECRET, ""),
        bootstrap::KeyRequest {
            name: "nothing".into(),
            level: "instance".into(),
            permissions: vec!["metrics:read".into()],
            space_id: None,
            group_id: None,
            expires_at: None,
        },
    )
    .await
    .unwrap();
    audit.shutdown().await;
    caught_up(&cli, &db.db).await;
    let (status, doc) = send(&cli, Auth::None, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            let public = op.get("security").is_none()
                || op["security"].as_array().is_some_and(Vec::is_empty);
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x_sweep" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            if public {
                assert!(
                    plystra_kernel::http::PUBLIC_OPERATIONS
                        .iter()
                        .any(|(m, p)| m.as_str() == method && *p == path),
                    "{method} {path} has no security requirement but is not public"
                );
                continue;
            }
            // The code is in `X-Plystra-Error-Code` on every error, enveloped or (AuthZEN's) a
            // message string.
            let refusal = |auth| {
                let (cli, method, concrete) = (&cli, &method, &concrete);
                async move {
                    let method = poem::http::Method::from_bytes(method.as_bytes()).unwrap();
                    let answer = exchange(cli, auth, method, concrete, None).await;
                    let code = answer
                        .headers
                        .get("x-plystra-error-code")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    // The permission asked for: the envelope's detail, else the message's end.
                    let permission = answer.body["error"]["details"]["permission"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| {
                            let text = answer.body.as_str()?;
                            Some(text.rsplit(' ').next()?.to_owned())
                        });
                    (answer.status, code, permission, answer.body)
                }
            };
            let (status, code, _, _) = refusal(Auth::None).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED"),
                "{method} {path} without a credential"
            );
            let self_service = matches!(
                path.as_str(),
                "/api/v1/actor/context" | "/api/v1/actor/switch-member"
            );
            for auth in [Auth::Key(&key), Auth::Boot] {
                let (status, code, permission, body) = refusal(auth).await;
                if self_service {
                    // Self-service operations act on a user session; a key is not one.
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
                    continue;
                }
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED"),
                    "{method} {path} with a key lacking the permission"
                );
                let permission = permission.unwrap_or_else(|| panic!("{method} {path}: {body}"));
                let permission = permission.as_str();
                assert!(
                    plystra_system_admin::PERMISSION_KEYS
                        .iter()
                        .any(|(k, _)| *k == permission),
                    "{method} {path}: {permission} is not a listed key"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} operations checked");
}

/// Every management call that passes its permission check is announced as
/// `admin.action_authorized` (who, which permission, which route); a refused one is not.
#[tokio::test]
async fn each_authorized_management_call_is_announced() {
    use plystra_contracts::events::EventPublisher;
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let booted = boot_in(
        &database,
        Environment::Development,
        &[("PLYSTRA_API_KEY_PERMISSIONS", "users:read")],
    )
    .await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    booted.runtime.events().observe({
        let seen = seen.clone();
        Arc::new(move |event| {
            if event.name == "admin.action_authorized" {
                seen.lock().unwrap().push(event.clone());
            }
        })
    });
    let cli = TestClient::new(booted.app);
    expect(
        &cli,
        Auth::Boot,
        "GET",
        "/api/v1/users",
        None,
        StatusCode::OK,
    )
    .await;
    let (status, _) = send(&cli, Auth::Boot, "GET", "/api/v1/capabilities", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].source, "admin.control_plane");
    assert_eq!(
        seen[0].payload,
        json!({
            "credential": "bootstrap_key",
            "api_key_id": null,
            "user_id": null,
            "permission": "users:read",
            "route": "/api/v1/users",
        })
    );
}

/// `POST /api/v1/api-keys` answers the key's record with the plaintext once in `data.api_key`,
/// as upstream does; the plaintext is in no other answer and in no stored row (issue 15, item 12).
#[tokio::test]
async fn creating_a_key_answers_its_record_with_the_plaintext_once_in_api_key() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let data = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "acme reader", "level": "space", "space_id": "space_acme", "permission_keys": ["members:read"]})),
        StatusCode::CREATED,
    )
    .await;
    let id = data["id"]
        .as_str()
        .unwrap_or_else(|| panic!("data.id: {data}"));
    assert!(id.starts_with("ak_"), "{data}");
    assert_eq!(data["name"], "acme reader");
    assert_eq!(data["key_prefix"], format!("ply_ak_{id}"));
    assert_eq!(data["level"], "space");
    assert_eq!(data["space_id"], "space_acme");
    assert_eq!(data["permission_keys"], json!(["members:read"]));
    assert_eq!(
        (data["status"].as_str(), data["active"].as_bool()),
        (Some("active"), Some(true))
    );
    assert!(data.get("plaintext_key").is_none(), "{data}");
    let plaintext = data["api_key"]
        .as_str()
        .unwrap_or_else(|| panic!("data.api_key is the plaintext: {data}"));
    let (prefix, secret) = plaintext.split_once('.').unwrap();
    assert_eq!(prefix, format!("ply_ak_{id}"));
    expect(
        &cli,
        Auth::Key(plaintext),
        "GET",
        "/api/v1/spaces/space_acme/members",
        None,
        StatusCode::OK,
    )
    .await;
    // Shown once: neither the key's page nor the list carries it.
    for path in [
        format!("/api/v1/api-keys/{id}"),
        "/api/v1/api-keys".to_owned(),
    ] {
        let shown = expect(
            &cli,
            Auth::Bearer(&w.alice),
            "GET",
            &path,
            None,
            StatusCode::OK,
        )
        .await;
        assert!(!shown.to_string().contains(secret), "{path}: {shown}");
    }
    // Never stored: not in the key's row, not in the audit log.
    let q = Query::select()
        .columns(["key_prefix", "key_hmac"].map(Alias::new))
        .from(Alias::new("sys_admin_api_keys"))
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .to_owned();
    let rows: Vec<(String, String)> = db.db.fetch_all(&q).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!format!("{rows:?}").contains(secret));
    assert!(
        !format!("{:?}", audit_actions(&db.db).await).contains(secret),
        "the plaintext reached the audit log"
    );
}

/// Revoking a key or an admin grant reads upstream's `revoked_reason` (and `reason`, its alias),
/// stores it and answers it (issue 15, item 13).
#[tokio::test]
async fn revoking_reads_revoked_reason_stores_it_and_echoes_it() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let body = json!({"name": "k", "level": "instance", "permission_keys": ["users:read"]});
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            create_key(&cli, Auth::Bearer(&w.alice), body.clone())
                .await
                .0,
        );
    }
    let revoke = |id: &str| format!("/api/v1/api-keys/{id}/revoke");
    for (id, request, reason) in [
        (
            &ids[0],
            json!({"revoked_reason": "rotated out"}),
            "rotated out",
        ),
        (&ids[1], json!({"reason": "legacy client"}), "legacy client"),
        (
            &ids[2],
            json!({"revoked_reason": "same", "reason": " same "}),
            "same",
        ),
    ] {
        let after = expect(
            &cli,
            Auth::Bearer(&w.alice),
            "POST",
            &revoke(id),
            Some(request),
            StatusCode::OK,
        )
        .await;
        assert_eq!(after["status"], "revoked");
        assert_eq!(after["revoked_reason"], reason, "{after}");
        let stored = expect(
            &cli,
            Auth::Bearer(&w.alice),
            "GET",
            &format!("/api/v1/api-keys/{id}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(stored["revoked_reason"], reason);
        assert!(
            audit_actions(&db.db)
                .await
                .iter()
                .any(|(a, r, t)| a == "api_keys.revoke"
                    && r.as_deref() == Some(id.as_str())
                    && t["after"]["revoked_reason"] == reason)
        );
    }
    for (request, field) in [
        (
            json!({"revoked_reason": "one", "reason": "another"}),
            "revoked_reason",
        ),
        (json!({"revoked_reason": "x".repeat(501)}), "revoked_reason"),
        (json!({"reason": "x".repeat(501)}), "reason"),
    ] {
        let (status, body) = send(
            &cli,
            Auth::Bearer(&w.alice),
            "POST",
            &revoke(&ids[3]),
            Some(request),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["details"]["fields"][field].is_string(),
            "{body}"
        );
    }

    // An admin grant: bob's space admin grant.
    let grants = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "GET",
        "/api/v1/admin/grants",
        None,
        StatusCode::OK,
    )
    .await;
    let bob = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["user_id"] == "user_bob")
        .expect("bob's grant")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let members = "/api/v1/spaces/space_acme/members";
    expect(
        &cli,
        Auth::Bearer(&w.bob),
        "GET",
        members,
        None,
        StatusCode::OK,
    )
    .await;
    let after = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        &format!("/api/v1/admin/grants/{bob}/revoke"),
        Some(json!({"revoked_reason": "left the team"})),
        StatusCode::OK,
    )
    .await;
    // The very next request of bob's session is refused: the grant is gone from memory.
    let (status, body) = send(&cli, Auth::Bearer(&w.bob), "GET", members, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED")
    );
    assert_eq!(
        (after["status"].as_str(), after["revoked_reason"].as_str()),
        (Some("revoked"), Some("left the team")),
        "{after}"
    );
    let stored = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "GET",
        &format!("/api/v1/admin/grants/{bob}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stored["revoked_reason"], "left the team");
}

/// A space-scoped key filters its own space's audit log with the filters of `/audit/logs`
/// (issue 15, item 14).
#[tokio::test]
async fn a_space_key_filters_its_own_space_audit_log() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let (_, key) = create_key(
        &cli,
        Auth::Bearer(&w.alice),
        json!({"name": "acme auditor", "level": "space", "space_id": "space_acme", "permission_keys": ["audit:read"]}),
    )
    .await;
    let list = |query: &str| format!("/api/v1/spaces/space_acme/audit-logs?{query}");
    let all = expect(
        &cli,
        Auth::Key(&key),
        "GET",
        &list("limit=200"),
        None,
        StatusCode::OK,
    )
    .await;
    let all = all.as_array().unwrap();
    assert!(all.iter().all(|r| r["space_id"] == "space_acme"));
    assert!(all.iter().any(|r| r["event_type"] != "groups.create"));
    let groups = expect(
        &cli,
        Auth::Key(&key),
        "GET",
        &list("event_type=groups.create"),
        None,
        StatusCode::OK,
    )
    .await;
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 3, "finance, finance.ap and sales: {groups:?}");
    assert!(
        groups
            .iter()
            .all(|r| r["event_type"] == "groups.create" && r["space_id"] == "space_acme")
    );
    let sales = expect(
        &cli,
        Auth::Key(&key),
        "GET",
        &list("resource_id=group_sales"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(sales.as_array().unwrap().len(), 1, "{sales}");
    let by_alice = expect(
        &cli,
        Auth::Key(&key),
        "GET",
        &list("actor_user_id=user_alice&decision=allow"),
        None,
        StatusCode::OK,
    )
    .await;
    let by_alice = by_alice.as_array().unwrap();
    assert!(!by_alice.is_empty() && by_alice.len() < all.len());
    assert!(by_alice.iter().all(|r| r["actor_user_id"] == "user_alice"));
    let none = expect(
        &cli,
        Auth::Key(&key),
        "GET",
        &list("created_at_to=2000-01-01T00:00:00Z"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(none, json!([]));
    let (status, body) = send(&cli, Auth::Key(&key), "GET", &list("decision=maybe"), None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "VALIDATION_FAILED")
    );
    // Another space's log stays out of reach.
    let (status, body) = send(
        &cli,
        Auth::Key(&key),
        "GET",
        "/api/v1/spaces/space_other/audit-logs?event_type=groups.create",
        None,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "ADMIN_PERMISSION_REQUIRED")
    );
}

/// An expiry in the past is refused, naming `expires_at`, for keys and for admin grants (the
/// document cannot say "in the future"; `cargo xtask fuzz` sends future expiries and this test
/// holds the rule).
#[tokio::test]
async fn an_expiry_in_the_past_is_refused_naming_expires_at() {
    let Some((db, cli)) = app(&[]).await else {
        return;
    };
    let w = world(&cli, &db.db).await;
    let past = "2000-01-01T00:00:00Z";
    let refused = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        "/api/v1/api-keys",
        Some(
            json!({"name": "k", "level": "instance", "permission_keys": ["users:read"],
            "expires_at": past}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(code(&refused), "VALIDATION_FAILED");
    assert!(
        refused["error"]["details"]["fields"]["expires_at"].is_string(),
        "{refused}"
    );
    let refused = expect(
        &cli,
        Auth::Bearer(&w.alice),
        "POST",
        "/api/v1/admin/grants",
        Some(
            json!({"user_id": "user_dave", "level": "space_admin", "space_id": "space_acme",
            "expires_at": past}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(code(&refused), "VALIDATION_FAILED");
    assert!(
        refused["error"]["details"]["fields"]["expires_at"].is_string(),
        "{refused}"
    );
}
