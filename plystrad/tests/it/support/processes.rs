//! Real `plystrad` processes for tests and benchmarks: start one on a database (with the
//! bootstrap key holding every permission), wait until it is ready, call it, kill -9 it and
//! start it again; and the built `plystractl` beside it.
//!
//! A module of the `it` test binary's `support`, and included with `#[path]` by
//! `benches/feed_propagation.rs`; each uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const KEY: &str = "replicas-test-bootstrap-key-0123456789abcdef";
pub const API_KEY_SECRET: &str = "replicas-api-key-secret-0123456789abcdef";
pub const SESSION_SECRET: &str = "replicas-session-secret-0123456789abcdef";

/// `plystractl`, built beside `plystrad`.
pub fn plystractl() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_plystrad")).with_file_name("plystractl");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p plystractl` (cargo test --workspace does; `--release` for the benches)",
        path.display()
    );
    path
}

/// Runs plystractl with `args`; (exit code, output).
pub fn ctl(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(plystractl());
    command
        .args(args)
        .env_remove("PLYSTRA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run plystractl");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One running plystrad.
pub struct Server {
    child: Option<Child>,
    /// Its loopback port: the one the OS gave its listener (it listens on port 0, so no other
    /// process can take the port between a test picking it and the server binding it).
    pub port: u16,
    url: String,
    env: Vec<(String, String)>,
    log: PathBuf,
    /// Where the running process's part of the log starts (a restart appends to the same file).
    log_start: u64,
    _logs: Arc<tempfile::TempDir>,
    /// A client for it.
    pub http: reqwest::Client,
}

impl Server {
    /// Starts plystrad on `database_url` (migrated already) and waits until it is ready.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let logs = Arc::new(tempfile::tempdir().expect("a log directory"));
        let mut server = Self {
            child: None,
            port: 0,
            url: database_url.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log: logs.path().join("plystrad.log"),
            log_start: 0,
            _logs: logs,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("an HTTP client"),
        };
        server.spawn();
        server.wait_ready().await;
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the server log");
        self.log_start = log.metadata().expect("the server log's length").len();
        self.port = 0;
        let mut command = Command::new(env!("CARGO_BIN_EXE_plystrad"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PLYSTRA_DATABASE_URL", &self.url)
            .env("PLYSTRA_SERVER_HOST", "127.0.0.1")
            .env("PLYSTRA_SERVER_PORT", "0")
            .env("PLYSTRA_API_KEY", KEY)
            .env("PLYSTRA_API_KEY_PERMISSIONS", "*")
            .env("PLYSTRA_API_KEY_SECRET", API_KEY_SECRET)
            .env("PLYSTRA_SESSION_SECRET", SESSION_SECRET)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("the server log"))
            .stderr(log);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().expect("start plystrad"));
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the process listens (learning its port from the log's `listening` line) and
    /// `/api/v1/ready` answers 200; fails at once, with the log, when the process exits first.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("a running plystrad")
                .try_wait()
                .expect("the process's state")
            {
                panic!(
                    "plystrad exited ({status}) before it was ready:\n{}",
                    self.log_text()
                );
            }
            if self.port == 0 {
                self.port = self.listening_port().unwrap_or(0);
            }
            if self.port != 0
                && let Ok(resp) = self
                    .http
                    .get(format!("{}/api/v1/ready", self.base()))
                    .send()
                    .await
                && resp.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "plystrad (port {}) did not become ready:\n{}",
                self.port,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The port in the running process's `listening` log line, once it is there.
    fn listening_port(&self) -> Option<u16> {
        let log = std::fs::read(&self.log).ok()?;
        let own = log.get(usize::try_from(self.log_start).ok()?..)?;
        String::from_utf8_lossy(own)
            .lines()
            .filter(|line| line.contains("listening"))
            .find_map(|line| {
                line.split(|c: char| c.is_whitespace() || c == '"' || c == '=')
                    .find_map(|word| word.parse::<std::net::SocketAddr>().ok())
            })
            .map(|address| address.port())
    }

    /// The process ID (for reading `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running plystrad").id()
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again (on a port the OS picks anew) and waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    /// Calls the server with the bootstrap key (or `key`); (status, revision header, body).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> (u16, Option<u64>, Value) {
        let url = format!("{}{path}", self.base());
        let mut req = match method {
            "GET" => self.http.get(url),
            "PATCH" => self.http.patch(url),
            _ => self.http.post(url),
        };
        if !headers
            .iter()
            .any(|(k, _)| k.starts_with("X-Plystra-API-Key"))
        {
            req = req.header("X-Plystra-API-Key", KEY);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let revision = resp
            .headers()
            .get("x-plystra-authz-revision")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            revision,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// A write that must succeed; its committed revision.
    pub async fn write(&self, method: &str, path: &str, body: Value) -> u64 {
        let (status, revision, json) = self.send(method, path, Some(body), &[]).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} on {}: {status} {json}",
            self.port
        );
        revision.unwrap_or_else(|| panic!("{method} {path} answered no revision: {json}"))
    }

    /// The deny code of a check (null for an allow), decided on at least `token`.
    pub async fn decide(&self, check: &Value, token: Option<u64>) -> Value {
        let mut body = check.clone();
        if let Some(token) = token {
            body["consistency"] = json!({"at_least_revision": token});
        }
        let (status, _, json) = self.check(&body).await;
        assert_eq!(status, 200, "check on {}: {json}", self.port);
        json["data"]["deny_code"].clone()
    }

    /// A check without a token, as answered: (status, revision, body).
    pub async fn check(&self, check: &Value) -> (u16, Option<u64>, Value) {
        self.send("POST", "/api/v1/authz/check", Some(check.clone()), &[])
            .await
    }

    /// Revokes the member-role `member_role` (the finance reviewer's approver role); the
    /// revision.
    pub async fn revoke_approver(&self, member_role: &str) -> u64 {
        self.write(
            "POST",
            &format!("/api/v1/spaces/space_acme/member-roles/{member_role}/revoke"),
            json!({}),
        )
        .await
    }

    /// Grants the finance reviewer the approver role, anchored at `finance`; (its ID, the
    /// revision).
    pub async fn grant_approver(&self) -> (String, u64) {
        let (status, revision, body) = self
            .send(
                "POST",
                "/api/v1/spaces/space_acme/member-roles",
                Some(json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver", "scope_anchor_group_id": "group_finance"})),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["data"]["id"].as_str().expect("an ID").to_owned(),
            revision.expect("a write answers its revision"),
        )
    }

    /// The Finance Reviewer table's decisions, as this process makes them.
    pub async fn table(&self, token: Option<u64>) -> Vec<Value> {
        let mut out = Vec::new();
        for check in table_checks() {
            out.push(self.decide(&check, token).await);
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A check of the Finance Reviewer fixture: `user` through `binding` as the finance reviewer of
/// `space`, doing `action` on `resource` of `resource_type`.
pub fn request(
    user: &str,
    binding: &str,
    space: &str,
    resource_type: &str,
    resource: &str,
    action: &str,
) -> Value {
    json!({
        "actor": {"user_id": user, "member_id": "member_finance_reviewer", "user_member_id": binding, "space_id": space},
        "resource_type": resource_type,
        "resource_id": resource,
        "action": action,
    })
}

/// [`request`] on an invoice of `space_acme`.
pub fn check(user: &str, binding: &str, resource: &str, action: &str) -> Value {
    request(user, binding, "space_acme", "invoice", resource, action)
}

/// The rows of the Finance Reviewer table.
pub fn table_checks() -> Vec<Value> {
    vec![
        check(
            "user_alice",
            "um_alice_finance_reviewer",
            "invoice_001",
            "approve",
        ),
        check(
            "user_alice",
            "um_alice_finance_reviewer",
            "invoice_002",
            "approve",
        ),
        check(
            "user_bob",
            "um_bob_finance_reviewer",
            "invoice_001",
            "approve",
        ),
        check(
            "user_alice",
            "um_alice_finance_reviewer_revoked",
            "invoice_001",
            "approve",
        ),
        check(
            "user_alice",
            "um_alice_finance_reviewer_expired",
            "invoice_001",
            "approve",
        ),
        check(
            "user_alice",
            "um_alice_finance_reviewer",
            "invoice_001",
            "reject",
        ),
    ]
}

pub fn alice_approves_001() -> Value {
    check(
        "user_alice",
        "um_alice_finance_reviewer",
        "invoice_001",
        "approve",
    )
}

/// Seeds the Finance Reviewer fixture through `server` with the real `plystractl demo seed`.
pub fn seed(server: &Server) {
    let (code, text) = ctl(
        &["demo", "seed", "--url", &server.base(), "--api-key", KEY],
        &[],
    );
    assert_eq!(code, 0, "plystractl demo seed: {text}");
}
