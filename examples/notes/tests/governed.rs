//! The notes plugin under governance, through the real router on a real database: an allowed
//! member writes and reads a note, a member without the grant gets 403 with the deny code, both
//! decisions are in the audit log, and the plugin's operations are in the served document.

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

// Links the system capabilities, as the server binary does, and the plugin, as
// `--features example-plugins` does.
extern crate plystra_example_notes as _;
extern crate plystrad as _;

use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::testing::TestDatabase;
use plystra_kernel::{CapabilitySource, KernelConfig, boot};
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};

const KEY: &str = "notes-plugin-test-key-0123456789abcdef";
type Client = TestClient<poem::endpoint::BoxEndpoint<'static>>;

async fn app() -> Option<(TestDatabase, Client)> {
    let database = TestDatabase::new().await?;
    let config = KernelConfig {
        bootstrap_api_key: Some(KEY.to_owned()),
        database: Some(DatabaseConfig::new(database.url.clone())),
        // The fixture is created with the bootstrap key, so it may manage everything.
        settings: [("PLYSTRA_API_KEY_PERMISSIONS".to_owned(), "*".to_owned())].into(),
        ..KernelConfig::default()
    };
    let booted = boot(config, CapabilitySource::linked()).await.unwrap();
    Some((database, TestClient::new(booted.app)))
}

/// Calls with `auth` as the credential header (`X-Plystra-API-Key` for the bootstrap key,
/// `Authorization` for a session).
async fn call(
    cli: &Client,
    method: &str,
    path: &str,
    auth: (&str, &str),
    body: Value,
) -> (StatusCode, Value) {
    let req = match method {
        "GET" => cli.get(path),
        _ => cli.post(path).body_json(&body),
    };
    let resp = req.header(auth.0, auth.1).send().await;
    let status = resp.0.status();
    let text = resp.0.into_body().into_string().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const ADMIN: (&str, &str) = ("X-Plystra-API-Key", KEY);

async fn admin(cli: &Client, path: &str, body: Value) -> Value {
    let (status, json) = call(cli, "POST", path, ADMIN, body).await;
    assert!(status.is_success(), "{path}: {status} {json}");
    json
}

async fn login(cli: &Client, email: &str) -> String {
    let (status, json) = call(
        cli,
        "POST",
        "/api/v1/auth/login",
        ("X-Unused", ""),
        json!({"email": email, "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    format!("Bearer {}", json["data"]["access_token"].as_str().unwrap())
}

/// A space with a `team` tree, Alice and Carol as members, a notebook in `team.docs`, and a
/// `writer` role that only Alice holds, anchored at `team`.
async fn fixture(cli: &Client) {
    for (user, email) in [
        ("user_alice", "alice@example.com"),
        ("user_carol", "carol@example.com"),
    ] {
        admin(
            cli,
            "/api/v1/users",
            json!({"id": user, "email": email, "password": "correct horse battery"}),
        )
        .await;
    }
    admin(
        cli,
        "/api/v1/spaces",
        json!({"id": "space_acme", "name": "Acme"}),
    )
    .await;
    for (id, path) in [("group_team", "team"), ("group_team_docs", "team.docs")] {
        admin(
            cli,
            "/api/v1/spaces/space_acme/groups",
            json!({"id": id, "path": path}),
        )
        .await;
    }
    for (member, user, binding) in [
        ("member_alice", "user_alice", "um_alice"),
        ("member_carol", "user_carol", "um_carol"),
    ] {
        admin(
            cli,
            "/api/v1/spaces/space_acme/members",
            json!({"id": member, "display_name": member}),
        )
        .await;
        admin(
            cli,
            "/api/v1/spaces/space_acme/user-members",
            json!({"id": binding, "user_id": user, "member_id": member, "relation_type": "login", "is_primary": true}),
        )
        .await;
    }
    // The plugin declared `notebook` and `note` when it started; an admin registers a notebook.
    admin(
        cli,
        "/api/v1/spaces/space_acme/resources",
        json!({"id": "notebook_docs", "resource_type": "notebook", "group_id": "group_team_docs"}),
    )
    .await;
    admin(
        cli,
        "/api/v1/spaces/space_acme/roles",
        json!({"id": "role_writer", "key": "writer", "name": "Writer"}),
    )
    .await;
    for (resource, action) in [("notebook", "write"), ("note", "read")] {
        let permission = admin(
            cli,
            "/api/v1/permissions",
            json!({"resource": resource, "action": action, "scope": "group_tree"}),
        )
        .await;
        admin(
            cli,
            "/api/v1/role-permissions",
            json!({"role_id": "role_writer", "permission_id": permission["data"]["id"]}),
        )
        .await;
    }
    admin(
        cli,
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_alice", "role_id": "role_writer", "scope_anchor_group_id": "group_team"}),
    )
    .await;
}

#[tokio::test]
async fn notes_are_written_and_read_only_through_governance() {
    let Some((_db, cli)) = app().await else {
        return;
    };
    fixture(&cli).await;
    let alice = login(&cli, "alice@example.com").await;
    let carol = login(&cli, "carol@example.com").await;
    let write = "/api/v1/plugins/notes/notebooks/notebook_docs/notes";
    let note = json!({"title": "Q3 close", "body": "Reconcile the APAC ledger."});

    // Alice holds notebook:write over `team`, so she writes into `team.docs` and reads it back.
    let (status, created) =
        call(&cli, "POST", write, ("Authorization", &alice), note.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let note_id = created["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["data"]["owner_member_id"], "member_alice");
    assert_eq!(created["data"]["group_id"], "group_team_docs");
    let (status, read) = call(
        &cli,
        "GET",
        &format!("/api/v1/plugins/notes/notes/{note_id}"),
        ("Authorization", &alice),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"]["title"], "Q3 close");
    assert_eq!(read["data"]["body"], "Reconcile the APAC ledger.");

    // Carol has no grant: 403 naming the deny code, and nothing is written.
    let (status, denied) = call(&cli, "POST", write, ("Authorization", &carol), note.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert_eq!(denied["error"]["code"], "AUTHORIZATION_DENIED");
    assert_eq!(
        denied["error"]["details"]["deny_code"],
        "NO_MATCHING_PERMISSION"
    );
    let denied_audit = denied["error"]["details"]["audit_log_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, read) = call(
        &cli,
        "GET",
        &format!("/api/v1/plugins/notes/notes/{note_id}"),
        ("Authorization", &carol),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{read}");

    // Only members act here: the bootstrap key is not a member.
    let (status, _) = call(&cli, "POST", write, ADMIN, note).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Both outcomes are in the audit log: the decisions, and what the plugin did.
    let (_, decisions) = call(
        &cli,
        "GET",
        "/api/v1/audit/logs?event_type=authz.decision&limit=50",
        ADMIN,
        Value::Null,
    )
    .await;
    let decisions: Vec<(String, String, String, Value)> = decisions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor_member_id"].as_str().unwrap_or_default().to_owned(),
                r["resource_type"].as_str().unwrap_or_default().to_owned(),
                r["decision"].as_str().unwrap_or_default().to_owned(),
                r["deny_code"].clone(),
            )
        })
        .collect();
    for expected in [
        ("member_alice", "notebook", "allow", Value::Null),
        ("member_alice", "note", "allow", Value::Null),
        (
            "member_carol",
            "notebook",
            "deny",
            json!("NO_MATCHING_PERMISSION"),
        ),
        (
            "member_carol",
            "note",
            "deny",
            json!("NO_MATCHING_PERMISSION"),
        ),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
            expected.3,
        );
        assert!(
            decisions.contains(&expected),
            "{expected:?} in {decisions:?}"
        );
    }
    assert_eq!(decisions.len(), 4, "{decisions:?}");
    let (status, record) = call(
        &cli,
        "GET",
        &format!("/api/v1/audit/logs/{denied_audit}"),
        ADMIN,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["data"]["deny_code"], "NO_MATCHING_PERMISSION");
    let (_, work) = call(
        &cli,
        "GET",
        "/api/v1/audit/logs?event_type=notes.create",
        ADMIN,
        Value::Null,
    )
    .await;
    let work = work["data"].as_array().unwrap();
    assert_eq!(work.len(), 1);
    assert_eq!(work[0]["resource_id"], note_id.as_str());
    assert_eq!(work[0]["actor_user_id"], "user_alice");
}

#[tokio::test]
async fn the_plugins_operations_are_in_the_document_when_it_is_linked() {
    let document = plystra_kernel::http::openapi_json(&CapabilitySource::linked()).unwrap();
    let document: Value = serde_json::from_str(&document).unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(
        paths["/api/v1/plugins/notes/notebooks/{notebook_id}/notes"]["post"]["operationId"],
        "createNote"
    );
    assert_eq!(
        paths["/api/v1/plugins/notes/notes/{note_id}"]["get"]["operationId"],
        "getNote"
    );
}
