//! The real app in process: boot it on a test database, with the linked capabilities and any test
//! plugins, and send it requests the way every module does (a credential, a JSON body, the
//! answer's status and JSON, and no secret in any answer).

use std::collections::BTreeMap;

use plystra_contracts::registration::{self, Registration};
use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::testing::TestDatabase;
use plystra_kernel::{Booted, CapabilitySource, KernelConfig, boot};
use poem::http::{HeaderMap, Method, StatusCode};
use poem::test::TestClient;
use serde_json::{Value, json};

/// The bootstrap key of every in-process server.
pub const KEY: &str = "plystrad-test-bootstrap-key-0123456789abcdef";
/// The password of every user the tests create.
pub const PASSWORD: &str = "correct horse battery staple";
/// The API key secret (`PLYSTRA_API_KEY_SECRET`); no answer may hold it.
pub const API_KEY_SECRET: &str = "plystrad-test-api-key-secret-0123456789abcdef";

/// A client of the in-process app.
pub type Client = TestClient<poem::endpoint::BoxEndpoint<'static>>;

/// The settings every in-process server boots with (a session secret, an API key secret, and the
/// bootstrap key holding every permission, since the tests manage everything with it), then
/// `extra`, which wins.
pub fn settings(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = [
        (
            "PLYSTRA_SESSION_SECRET",
            "plystrad-test-session-secret-0123456789",
        ),
        ("PLYSTRA_API_KEY_SECRET", API_KEY_SECRET),
        ("PLYSTRA_API_KEY_PERMISSIONS", "*"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        all.insert((*k).to_owned(), (*v).to_owned());
    }
    all
}

/// The configuration of an in-process server on `database`: development, the bootstrap key,
/// plystrad's build, [`settings`] with `extra`. Tests change the fields they are about.
pub fn config(database: DatabaseConfig, extra: &[(&str, &str)]) -> KernelConfig {
    KernelConfig {
        bootstrap_api_key: Some(KEY.to_owned()),
        build: plystrad::cli::build_info(),
        database: Some(database),
        settings: settings(extra),
        ..KernelConfig::default()
    }
}

/// Boots the linked capabilities and `plugins` (test plugins, which are never linked through
/// inventory, so a module's plugin is booted only by the tests that ask for it).
pub async fn boot_with(config: KernelConfig, plugins: &[&'static Registration]) -> Booted {
    let source = CapabilitySource::new(
        registration::linked()
            .chain(plugins.iter().copied())
            .collect(),
        registration::linked_bundles().collect(),
    );
    boot(config, source)
        .await
        .expect("the linked capabilities boot")
}

/// A client of the app booted on `database` with `extra` settings and `plugins`.
pub async fn boot_on(
    database: &TestDatabase,
    extra: &[(&str, &str)],
    plugins: &[&'static Registration],
) -> Client {
    let config = config(DatabaseConfig::new(database.url.clone()), extra);
    TestClient::new(boot_with(config, plugins).await.app)
}

/// A fresh test database and a client of the app booted on it with `extra` settings; `None`
/// only when the test is skipped (see `TestDatabase::new`).
pub async fn app(extra: &[(&str, &str)]) -> Option<(TestDatabase, Client)> {
    app_with(extra, &[]).await
}

/// [`app`] with test plugins.
pub async fn app_with(
    extra: &[(&str, &str)],
    plugins: &[&'static Registration],
) -> Option<(TestDatabase, Client)> {
    let database = TestDatabase::new().await?;
    let cli = boot_on(&database, extra, plugins).await;
    Some((database, cli))
}

/// Sends the app's logs to the test's output (for modules whose failures are read in the logs).
pub fn log_to_test_output() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// The bootstrap key.
    Boot,
    /// A value for `X-Plystra-API-Key`.
    Key(&'a str),
    /// A value for `Authorization: Bearer`.
    Bearer(&'a str),
    /// No credential.
    None,
}

/// An answer: its status, headers and body (JSON; `null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Sends `method path` with `auth` and `body` (JSON text, so it can hold anything). Asserts that
/// the answer holds no secret (no key HMAC, no API key secret, no Argon2 hash) and that a JSON
/// answer of the API carries its request ID.
pub async fn exchange(
    cli: &Client,
    auth: Auth<'_>,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Answer {
    let req = cli.request(method.clone(), path);
    let req = match auth {
        Auth::Boot => req.header("X-Plystra-API-Key", KEY),
        Auth::Key(k) => req.header("X-Plystra-API-Key", k),
        Auth::Bearer(t) => req.header("Authorization", format!("Bearer {t}")),
        Auth::None => req,
    };
    let req = match body {
        Some(b) => req.content_type("application/json").body(b),
        None => req,
    };
    let resp = req.send().await;
    let status = resp.0.status();
    let headers = resp.0.headers().clone();
    let text = resp.0.into_body().into_string().await.unwrap();
    for secret in ["key_hmac", API_KEY_SECRET, "$argon2"] {
        assert!(
            !text.contains(secret),
            "{method} {path}: {secret} leaked: {text}"
        );
    }
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if path.starts_with("/api/") && body.is_object() {
        assert!(
            body["request_id"].is_string(),
            "{method} {path}: no request_id: {body}"
        );
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends `method path` with `auth` and a JSON `body`; the status and the body.
pub async fn send(
    cli: &Client,
    auth: Auth<'_>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let answer = exchange(cli, auth, method, path, body.map(|b| b.to_string())).await;
    (answer.status, answer.body)
}

/// [`send`] with the bootstrap key.
pub async fn call(
    cli: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    send(cli, Auth::Boot, method, path, body).await
}

/// Sends and asserts the status; the body's `data` on success, the whole body otherwise.
pub async fn expect(
    cli: &Client,
    auth: Auth<'_>,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    let (got, body) = send(cli, auth, method, path, body).await;
    assert_eq!(got, status, "{method} {path}: {body}");
    if got.is_success() {
        body["data"].clone()
    } else {
        body
    }
}

/// Creates with the bootstrap key and asserts 201 or 200; the whole body.
pub async fn create(cli: &Client, path: &str, body: Value) -> Value {
    let (status, json) = call(cli, "POST", path, Some(body)).await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::OK,
        "{path}: {status} {json}"
    );
    json
}

/// An error body's code (empty when there is none).
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// A login as the router answers it.
pub async fn try_login(cli: &Client, email: &str, password: &str) -> (StatusCode, Value) {
    send(
        cli,
        Auth::None,
        "POST",
        "/api/v1/auth/login",
        Some(json!({"email": email, "password": password})),
    )
    .await
}

/// Logs in with [`PASSWORD`]; the access token.
pub async fn login(cli: &Client, email: &str) -> String {
    let (status, body) = try_login(cli, email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "login {email}: {body}");
    body["data"]["access_token"].as_str().unwrap().to_owned()
}

/// Every item of the list at `path`, `limit` at a time, following the cursors; asserts that a
/// cursor comes exactly when more follow.
pub async fn all_pages(cli: &Client, path: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (status, body) = call(cli, "GET", &url, None).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        let page = body["data"].as_array().unwrap().clone();
        let has_more = body["pagination"]["has_more"].as_bool().unwrap();
        assert!(page.len() <= limit);
        assert_eq!(
            has_more,
            body["pagination"]["cursor"].is_string(),
            "a cursor exactly when more follow: {body}"
        );
        items.extend(page);
        if !has_more {
            return items;
        }
        cursor = body["pagination"]["cursor"].as_str().map(str::to_owned);
    }
    panic!("{path}: more than 1000 pages");
}
