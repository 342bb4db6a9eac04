//! The bootstrap handoff end to end, with the built `plystractl` and the real server on one fresh
//! production-mode database: the bootstrap key creates a user, `plystractl admin
//! bootstrap-super-admin` makes them super admin, the bootstrap key is refused from then on, the
//! user logs in and creates a space-scoped API key through the API, `plystractl admin
//! create-api-key` mints a headless one, and the audit log holds every step.

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

// Links the system capabilities, for the server this test boots.
extern crate plystra_system as _;

use std::process::Command;

use plystra_contracts::storage::sea_query::{Alias, Order, Query};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_kernel::storage::testing::TestDatabase;
use plystra_kernel::{CapabilitySource, Environment, KernelConfig, boot};
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};

const KEY: &str = "handoff-bootstrap-key-0123456789abcdef";
const API_KEY_SECRET: &str = "handoff-api-key-secret-0123456789abcdef";
const SESSION_SECRET: &str = "handoff-session-secret-0123456789abcdef";
const PASSWORD: &str = "correct horse battery staple";

/// Runs plystractl against `url` in production mode with the server's key secret.
fn plystractl(url: &str, args: &[&str]) -> (i32, String) {
    let mut full = vec!["--database-url", url];
    full.extend_from_slice(args);
    let out = Command::new(env!("CARGO_BIN_EXE_plystractl"))
        .args(&full)
        .env_remove("PLYSTRA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env("PLYSTRA_ENV", "production")
        .env("PLYSTRA_API_KEY_SECRET", API_KEY_SECRET)
        .env_remove("PLYSTRA_API_KEY_SECRET_PREVIOUS")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run plystractl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn ctl(url: &str, args: &[&str]) -> (i32, String) {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        plystractl(&url, &args)
    })
    .await
    .unwrap()
}

type Client = TestClient<poem::endpoint::BoxEndpoint<'static>>;

async fn send(
    cli: &Client,
    auth: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = match method {
        "GET" => cli.get(path),
        "POST" => cli.post(path),
        other => panic!("{other}"),
    };
    let req = match auth {
        Some((header, value)) => req.header(header, value),
        None => req,
    };
    let req = match body {
        Some(b) => req.body_json(&b),
        None => req,
    };
    let resp = req.send().await;
    let status = resp.0.status();
    let text = resp.0.into_body().into_string().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {text}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_production_database_bootstraps_through_the_handoff() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    // Production never migrates at boot.
    let (code, text) = ctl(&t.url, &["migrate", "up"]).await;
    assert_eq!(code, 0, "{text}");
    let config = KernelConfig {
        environment: Environment::Production,
        bootstrap_api_key: Some(KEY.to_owned()),
        database: Some(plystra_kernel::storage::DatabaseConfig::new(t.url.clone())),
        settings: [
            ("PLYSTRA_API_KEY_SECRET", API_KEY_SECRET),
            ("PLYSTRA_SESSION_SECRET", SESSION_SECRET),
            ("PLYSTRA_API_KEY_PERMISSIONS", "users:manage,spaces:manage"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..KernelConfig::default()
    };
    let cli = TestClient::new(boot(config, CapabilitySource::linked()).await.unwrap().app);
    let boot_key = Some(("X-Plystra-API-Key", KEY));

    // 1. A user (and the spaces), with the bootstrap key.
    let (status, body) = send(
        &cli,
        boot_key,
        "POST",
        "/api/v1/users",
        Some(json!({"id": "user_root", "email": "root@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (id, name) in [("space_acme", "Acme"), ("space_other", "Other")] {
        let (status, body) = send(
            &cli,
            boot_key,
            "POST",
            "/api/v1/spaces",
            Some(json!({"id": id, "name": name})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Its permissions stop at what PLYSTRA_API_KEY_PERMISSIONS lists.
    let (status, _) = send(&cli, boot_key, "GET", "/api/v1/audit/logs", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // 2. The first super admin; a second run refuses, or succeeds without change with `ok`.
    let (code, text) = ctl(
        &t.url,
        &["admin", "bootstrap-super-admin", "--user-id", "user_root"],
    )
    .await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("created instance_super_admin grant ag_"),
        "{text}"
    );
    let (code, text) = ctl(
        &t.url,
        &["admin", "bootstrap-super-admin", "--user-id", "user_root"],
    )
    .await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("already exists"), "{text}");
    let (code, text) = ctl(
        &t.url,
        &[
            "admin",
            "bootstrap-super-admin",
            "--user-id",
            "user_root",
            "--if-exists",
            "ok",
        ],
    )
    .await;
    assert_eq!(code, 0, "{text}");
    let (code, text) = ctl(
        &t.url,
        &["admin", "bootstrap-super-admin", "--user-id", "user_nobody"],
    )
    .await;
    assert_eq!(code, 1, "{text}");

    // From here on production refuses the environment key. plystractl's grant reaches the
    // server through the change feed (another process's commit): a request naming the feed's
    // head as its revision is judged once the server has applied it.
    let head = plystra_contracts::feed::head(&t.db)
        .await
        .unwrap()
        .to_string();
    let resp = cli
        .get("/api/v1/users")
        .header("X-Plystra-API-Key", KEY)
        .header("X-Plystra-At-Least-Revision", head)
        .send()
        .await;
    resp.assert_status(StatusCode::UNAUTHORIZED);
    let (status, body) = send(&cli, boot_key, "GET", "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "AUTHENTICATION_REQUIRED");

    // 3. The user's login.
    let (status, login) = send(
        &cli,
        None,
        "POST",
        "/api/v1/auth/login",
        Some(json!({"email": "root@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let bearer = format!("Bearer {}", login["data"]["access_token"].as_str().unwrap());
    let session = Some(("Authorization", bearer.as_str()));
    let (status, me) = send(&cli, session, "GET", "/api/v1/admin/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["data"]["super_admin"], true);

    // 4. A space-scoped API key through the API.
    let (status, created) = send(
        &cli,
        session,
        "POST",
        "/api/v1/api-keys",
        Some(json!({"name": "acme members", "level": "space", "space_id": "space_acme", "permission_keys": ["members:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // Upstream's shape: the key's record, with the plaintext once in `api_key`.
    let key = created["data"]["api_key"].as_str().unwrap().to_owned();
    let id = created["data"]["id"].as_str().unwrap();
    assert_eq!(created["data"]["key_prefix"], format!("ply_ak_{id}"));
    assert!(key.starts_with(&format!("ply_ak_{id}.")), "{created}");
    let space_key = Some(("X-Plystra-API-Key", key.as_str()));
    let (status, _) = send(
        &cli,
        space_key,
        "GET",
        "/api/v1/spaces/space_acme/members",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        &cli,
        space_key,
        "GET",
        "/api/v1/spaces/space_other/members",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "ADMIN_PERMISSION_REQUIRED");

    // A headless key from the command line works the same way.
    let (code, text) = ctl(
        &t.url,
        &[
            "admin",
            "create-api-key",
            "--name",
            "ci",
            "--level",
            "space",
            "--space-id",
            "space_acme",
            "--permission",
            "members:read",
        ],
    )
    .await;
    assert_eq!(code, 0, "{text}");
    let headless = text
        .split_whitespace()
        .find(|w| w.starts_with("ply_ak_"))
        .expect("the key is printed")
        .to_owned();
    let (status, _) = send(
        &cli,
        Some(("Authorization", &format!("Bearer {headless}"))),
        "GET",
        "/api/v1/spaces/space_acme/members",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // With --json, the same shape as the API's answer.
    let (code, text) = ctl(
        &t.url,
        &[
            "--json",
            "admin",
            "create-api-key",
            "--name",
            "ci-json",
            "--level",
            "space",
            "--space-id",
            "space_acme",
            "--permission",
            "members:read",
        ],
    )
    .await;
    assert_eq!(code, 0, "{text}");
    let printed: Value = text
        .lines()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("{text}"));
    let id = printed["id"].as_str().unwrap();
    assert_eq!(printed["name"], "ci-json");
    assert_eq!(printed["key_prefix"], format!("ply_ak_{id}"));
    assert!(
        printed["api_key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("ply_ak_{id}.")),
        "{printed}"
    );
    let (code, text) = ctl(
        &t.url,
        &[
            "admin",
            "create-api-key",
            "--name",
            "bad",
            "--level",
            "space",
            "--permission",
            "members:read",
        ],
    )
    .await;
    assert_eq!(
        code, 2,
        "a space key without --space-id is a usage error: {text}"
    );

    // The audit log shows every step, and its chain verifies.
    let q = Query::select()
        .columns(["action", "decision", "trace"].map(Alias::new))
        .from(Alias::new("sys_audit_audit_logs"))
        .order_by(Alias::new("seq"), Order::Asc)
        .to_owned();
    let rows: Vec<(String, String, Json<Value>)> = t.db.fetch_all(&q).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|(a, _, _)| a.as_str()).collect();
    let expected = [
        "users.create",
        "spaces.create",
        "spaces.create",
        "admin.bootstrap_super_admin",
        "admin.bootstrap_super_admin",
        "admin.bootstrap_super_admin",
        "admin.handoff",
        "api_keys.create",
        "api_keys.create",
        "api_keys.create",
    ];
    assert_eq!(actions, expected, "{rows:?}");
    assert_eq!(rows[4].1, "deny", "the refused second bootstrap is a deny");
    assert_eq!(rows[7].2.0["caller"]["user_id"], "user_root");
    assert_eq!(rows[8].2.0["caller"]["kind"], "plystractl");
    assert!(!format!("{rows:?}").contains(&key) && !format!("{rows:?}").contains(&headless));
    let (code, text) = ctl(&t.url, &["audit", "verify"]).await;
    assert_eq!(code, 0, "{text}");
}
