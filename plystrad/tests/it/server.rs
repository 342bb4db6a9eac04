//! End-to-end tests of plystrad's application: the real linked capabilities behind the real
//! pipeline, and the real server with graceful shutdown.

use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::migrations::MigrationSet;
use plystra_kernel::storage::testing::{SYSTEM_NAMESPACES, TestDatabase};
use plystra_kernel::{CapabilitySource, Environment, KernelConfig};
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::Value;

use crate::support::app::{Auth, Client, app, boot_with, config, send};
use crate::support::serve::RunningServer;

const SYSTEM_IDS: [&str; 5] = [
    "audit.explainable",
    "identity.business",
    "resource.registry",
    "authorization.resource",
    "admin.control_plane",
];

#[tokio::test]
async fn ready_reports_all_five_system_capabilities_ready() {
    let Some((_database, cli)) = app(&[]).await else {
        return;
    };
    let (status, body) = send(&cli, Auth::None, "GET", "/api/v1/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "ready");
    let states = body["data"]["system_capabilities"].as_object().unwrap();
    assert_eq!(states.len(), 5);
    for id in SYSTEM_IDS {
        assert_eq!(states[id], "ready", "{id}");
    }
}

#[tokio::test]
async fn capabilities_needs_a_key_and_lists_five_in_boot_order() {
    let Some((_database, cli)) = app(&[]).await else {
        return;
    };
    let resp = cli.get("/api/v1/capabilities").send().await;
    assert_eq!(
        resp.0.headers().get("x-plystra-error-code").unwrap(),
        "AUTHENTICATION_REQUIRED"
    );
    let (status, body) = send(&cli, Auth::None, "GET", "/api/v1/capabilities", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "AUTHENTICATION_REQUIRED");

    let (status, body) = send(&cli, Auth::Boot, "GET", "/api/v1/capabilities", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, SYSTEM_IDS);
    for cap in body["data"].as_array().unwrap() {
        assert_eq!(cap["state"], "ready");
        assert_eq!(cap["kind"], "system_capability");
        assert_eq!(cap["privileged"], true);
        assert_eq!(cap["required"], true);
        assert_eq!(cap["stability"], "experimental");
        assert_eq!(cap["version"], "0.0.1");
        assert!(
            cap["package"]
                .as_str()
                .unwrap()
                .starts_with("plystra-system-")
        );
        assert!(
            cap["migration_namespace"]
                .as_str()
                .unwrap()
                .starts_with("sys_")
        );
    }
    assert_eq!(body["pagination"]["has_more"], false);
}

#[tokio::test]
async fn the_document_has_operations_from_all_five_capabilities_and_the_ui_is_served() {
    let Some((_database, cli)) = app(&[]).await else {
        return;
    };
    let (status, doc) = send(&cli, Auth::None, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let operations: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| {
            item.as_object()
                .unwrap()
                .values()
                .map(|op| op["operationId"].as_str().unwrap().to_owned())
        })
        .collect();
    for op in [
        "listAuditEventTypes",
        "getIdentityVocabulary",
        "getRegistryVocabulary",
        "listDenyCodes",
        "listPermissionKeys",
        "getHealth",
        "getReadiness",
        "getVersion",
        "listCapabilities",
    ] {
        assert!(
            operations.iter().any(|o| o == op),
            "{op} missing from {operations:?}"
        );
    }
    let served = plystra_kernel::http::openapi_json(&CapabilitySource::linked()).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&served).unwrap(),
        doc,
        "served and offline documents agree"
    );
    // The example plugins are linked only with `--features example-plugins`.
    let plugin_paths = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/api/v1/plugins/"))
        .count();
    assert_eq!(
        plugin_paths > 0,
        cfg!(feature = "example-plugins"),
        "plugin operations are documented exactly when the plugins are linked"
    );
    let docs = cli.get("/docs").send().await;
    docs.assert_status_is_ok();
    assert!(
        docs.0
            .into_body()
            .into_string()
            .await
            .unwrap()
            .contains("swagger-ui")
    );
}

#[tokio::test]
async fn each_capability_route_answers_with_the_key() {
    let Some((_database, cli)) = app(&[]).await else {
        return;
    };
    for (path, probe) in [
        ("/api/v1/audit/event-types", "/data/0/key"),
        (
            "/api/v1/identity/vocabulary",
            "/data/entities/user/id_prefix",
        ),
        ("/api/v1/registry/vocabulary", "/data/risk_levels/0"),
        ("/api/v1/authz/deny-codes", "/data/deny_codes/12/code"),
        (
            "/api/v1/admin/permission-keys",
            "/data/permission_keys/0/key",
        ),
    ] {
        let (status, body) = send(&cli, Auth::Boot, "GET", path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.pointer(probe).is_some(), "{path}: {body}");
    }
}

#[test]
fn plystrad_sources_name_no_capability() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for needle in SYSTEM_IDS.iter().copied().chain([
            "plystra_system_",
            "plystra-system-",
            "plystra_privileged",
        ]) {
            if text.contains(needle) {
                offenders.push(format!("{}: {needle}", path.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "plystrad must only link the bundle: {offenders:?}"
    );
}

#[tokio::test]
async fn serve_binds_answers_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(server) = RunningServer::start().await else {
        return;
    };
    let mut stream = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    stream
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    server.shut_down().await;
}

/// The app on `database` in `environment` (production has passed its guards by the time the
/// kernel boots, so its secrets are set: the test ones are long enough).
async fn boot_on(database: &TestDatabase, environment: Environment) -> Client {
    let config = KernelConfig {
        environment,
        ..config(DatabaseConfig::new(database.url.clone()), &[])
    };
    TestClient::new(boot_with(config, &[]).await.app)
}

#[tokio::test]
async fn development_applies_migrations_at_boot_and_reports_the_schema() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let cli = boot_on(&database, Environment::Development).await;
    let (status, body) = send(&cli, Auth::None, "GET", "/api/v1/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = MigrationSet::embedded(database.db.dialect())
        .expected_schema_version()
        .unwrap()
        .to_owned();
    assert_eq!(body["data"]["schema_version"], expected.as_str());
    assert_eq!(body["data"]["expected_schema_version"], expected.as_str());
    let (_, version) = send(&cli, Auth::None, "GET", "/api/v1/version", None).await;
    assert_eq!(version["data"]["schema_version"], expected.as_str());
}

#[tokio::test]
async fn production_names_pending_migrations_until_they_are_applied() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let cli = boot_on(&database, Environment::Production).await;
    let (status, body) = send(&cli, Auth::None, "GET", "/api/v1/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "NOT_READY");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("migrations pending: 0001_sys_audit_init.sql"),
        "{message}"
    );
    assert!(message.contains("plystractl migrate up"), "{message}");
    let (_, version) = send(&cli, Auth::None, "GET", "/api/v1/version", None).await;
    assert_eq!(version["data"]["schema_version"], "none");

    MigrationSet::embedded(database.db.dialect())
        .apply_pending(&database.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap();
    let (status, body) = send(&cli, Auth::None, "GET", "/api/v1/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_unreachable_database_is_reported_by_ready_without_crashing() {
    let config = config(
        DatabaseConfig {
            acquire_timeout: std::time::Duration::from_secs(1),
            ..DatabaseConfig::new("postgres://postgres@127.0.0.1:1/nowhere")
        },
        &[],
    );
    let cli = TestClient::new(boot_with(config, &[]).await.app);
    let (status, body) = send(&cli, Auth::None, "GET", "/api/v1/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("database unreachable"),
        "{body}"
    );
    let (status, _) = send(&cli, Auth::None, "GET", "/api/v1/health", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn every_management_operation_declares_a_permission_key() {
    let keys = is_permission_key;
    let mut missing = Vec::new();
    for registration in CapabilitySource::linked().registrations() {
        for route in plystra_kernel::http::operations::declared(registration) {
            let public = plystra_kernel::http::PUBLIC_OPERATIONS
                .iter()
                .any(|(m, p)| *m == route.method && *p == route.path);
            match route.access {
                _ if public => {}
                plystra_contracts::Access::SelfService => {}
                plystra_contracts::Access::Admin {
                    permission: Some(key),
                } if keys(key) => {}
                other => missing.push(format!(
                    "{} {} ({}): {other:?}",
                    route.method.as_str(),
                    route.path,
                    route.operation
                )),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "operations without a valid permission key: {missing:#?}"
    );
}

/// `domain:action` with lowercase tokens.
fn is_permission_key(key: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    key.split_once(':')
        .is_some_and(|(d, a)| token(d) && token(a))
}
