//! The HTTP load benchmark of `authz/check`: requests per second of the real server against a
//! trivial poem endpoint that parses the same JSON body, measured in the same run with `wrk`.
//!
//! `cargo bench -p plystrad --bench check_load` (needs `wrk` on the PATH: `apt-get install -y
//! wrk`). For each backend (SQLite always; PostgreSQL when `PLYSTRA_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, answers) it:
//!
//! 1. boots the real plystrad app (`plystrad::serve`, every linked capability, migrations
//!    applied) on a fresh database, on a loopback port, with a bootstrap key and the default
//!    durable audit (`PLYSTRA_AUDIT_WRITE_MODE=always`: one record per decision, committed before
//!    the answer);
//! 2. creates the Finance Reviewer data through the HTTP API and checks that alice may approve
//!    `invoice_001`;
//! 3. starts a trivial poem server whose one POST route parses the body into a
//!    `serde_json::Value` and answers a small JSON object;
//! 4. runs `wrk -t2 -c64 -d10s` (after a 3 s warm-up each) with the same request against both
//!    and prints the requests per second and the ratio;
//! 5. verifies the audit chain and that it holds at least one record per successful check.
//!
//! `CHECK_LOAD_DURATION` (seconds, default 10) and `CHECK_LOAD_CONNECTIONS` (default 64) change
//! the run. Logging is not initialised, as in a server whose log level filters out `info`.
//! Without `--bench` (for example `cargo test --benches`) it does nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use plystra_contracts::storage::Dialect;
use plystra_kernel::KernelConfig;
use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::testing::TestDatabase;
use plystrad::ServerSettings;
use plystrad::cli::LogFormat;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Json;
use poem::{EndpointExt, Route, Server, handler, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const KEY: &str = "check-load-bench-key-0123456789abcdef";
const CHECK_PATH: &str = "/api/v1/authz/check";

/// The request every run sends: alice, through her binding, approves `invoice_001` (allow).
fn check_body() -> Value {
    json!({
        "actor": {
            "user_id": "user_alice",
            "member_id": "member_finance_reviewer",
            "user_member_id": "um_alice_finance_reviewer",
            "space_id": "space_acme",
        },
        "resource_type": "invoice",
        "resource_id": "invoice_001",
        "action": "approve",
    })
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small HTTP client for seeding and checking over the loopback socket.
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-Plystra-API-Key", KEY);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    async fn create(&self, path: &str, body: Value) -> Value {
        let (status, json) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(status == 200 || status == 201, "{path}: {status} {json}");
        json
    }

    /// The Finance Reviewer data the check needs (`../shared/contract/finance-reviewer.md`).
    async fn seed(&self) {
        self.create(
            "/api/v1/users",
            json!({"id": "user_alice", "email": "alice@example.com", "password": "correct horse battery"}),
        )
        .await;
        self.create(
            "/api/v1/spaces",
            json!({"id": "space_acme", "name": "Acme"}),
        )
        .await;
        for (id, path) in [
            ("group_finance", "finance"),
            ("group_finance_apac", "finance.apac"),
            ("group_legal", "legal"),
            ("group_legal_emea", "legal.emea"),
        ] {
            self.create(
                "/api/v1/spaces/space_acme/groups",
                json!({"id": id, "path": path}),
            )
            .await;
        }
        for (id, name) in [
            ("member_finance_reviewer", "Finance reviewer"),
            ("member_invoice_creator", "Invoice creator"),
        ] {
            self.create(
                "/api/v1/spaces/space_acme/members",
                json!({"id": id, "display_name": name}),
            )
            .await;
        }
        self.create(
            "/api/v1/spaces/space_acme/user-members",
            json!({"id": "um_alice_finance_reviewer", "user_id": "user_alice", "member_id": "member_finance_reviewer", "relation_type": "delegate"}),
        )
        .await;
        self.create(
            "/api/v1/resource-types",
            json!({"key": "invoice", "display_name": "Invoice"}),
        )
        .await;
        for (key, risk) in [("read", "normal"), ("approve", "high"), ("reject", "high")] {
            self.create(
                "/api/v1/resource-types/invoice/actions",
                json!({"key": key, "risk_level": risk}),
            )
            .await;
        }
        self.create(
            "/api/v1/resource-types/invoice/mapping",
            json!({"storage_kind": "internal_table"}),
        )
        .await;
        for (id, group) in [
            ("invoice_001", "group_finance_apac"),
            ("invoice_002", "group_legal_emea"),
        ] {
            self.create(
                "/api/v1/spaces/space_acme/resources",
                json!({"id": id, "resource_type": "invoice", "group_id": group, "owner_member_id": "member_invoice_creator"}),
            )
            .await;
        }
        self.create(
            "/api/v1/spaces/space_acme/roles",
            json!({"id": "role_finance_approver", "key": "finance_approver", "name": "Finance approver"}),
        )
        .await;
        let permission = self
            .create(
                "/api/v1/permissions",
                json!({"resource": "invoice", "action": "approve", "scope": "group_tree"}),
            )
            .await;
        let permission_id = permission["data"]["id"].as_str().unwrap().to_owned();
        self.create(
            "/api/v1/role-permissions",
            json!({"role_id": "role_finance_approver", "permission_id": permission_id}),
        )
        .await;
        self.create(
            "/api/v1/spaces/space_acme/member-roles",
            json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver", "scope_anchor_group_id": "group_finance"}),
        )
        .await;
    }

    /// The audit chain verifies; returns how many records it holds.
    async fn verified_records(&self) -> u64 {
        let (status, json) = self
            .call(reqwest::Method::GET, "/api/v1/audit/verify", None)
            .await;
        assert_eq!(status, 200, "audit/verify: {json}");
        let data = &json["data"];
        assert!(
            data["first_broken"].is_null(),
            "the audit chain does not verify: {json}"
        );
        data["records"].as_u64().expect("a record count")
    }

    /// The audit writer's batches so far, from `/metrics`: (batches, records, seconds committing).
    async fn audit_batches(&self) -> (f64, f64, f64) {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .header("X-Plystra-API-Key", KEY)
            .send()
            .await
            .expect("the server answers")
            .text()
            .await
            .unwrap_or_default();
        let sample = |name: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            sample("plystra_audit_batch_size_count"),
            sample("plystra_audit_batch_size_sum"),
            sample("plystra_audit_commit_duration_seconds_sum"),
        )
    }
}

/// The baseline: parse the body into a JSON value, answer a small JSON object.
#[handler]
fn parse_and_answer(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({"allow": body.is_object(), "decision": "allow"}))
}

async fn start_trivial() -> (SocketAddr, oneshot::Sender<()>) {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = Route::new().at(CHECK_PATH, post(parse_and_answer)).boxed();
    tokio::spawn(async move {
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async {
                    let _ = stopped.await;
                },
                None,
            )
            .await
            .unwrap();
    });
    (addr, stop)
}

/// What one wrk run reported.
struct WrkRun {
    requests_per_second: f64,
    requests: u64,
    non_2xx: u64,
    errors: String,
    latency: String,
}

fn parse_wrk(out: &str) -> WrkRun {
    let value_after = |label: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
    };
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    WrkRun {
        requests_per_second: value_after("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("wrk printed no Requests/sec:\n{out}")),
        requests,
        non_2xx: value_after("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        errors: value_after("Socket errors:").unwrap_or_default(),
        latency: value_after("Latency")
            .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_default(),
    }
}

async fn wrk(script: &Path, addr: SocketAddr, seconds: u64, connections: u64) -> WrkRun {
    let url = format!("http://{addr}{CHECK_PATH}");
    let args = [
        "-t2".to_owned(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "-s".to_owned(),
        script.display().to_string(),
        url,
    ];
    let out = tokio::task::spawn_blocking(move || Command::new("wrk").args(&args).output())
        .await
        .unwrap()
        .expect("run wrk (apt-get install -y wrk)");
    assert!(out.status.success(), "wrk failed: {out:?}");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

async fn measure(dialect: Dialect, script: &Path, trivial: SocketAddr) -> Option<()> {
    let seconds = env_or("CHECK_LOAD_DURATION", 10);
    let connections = env_or("CHECK_LOAD_CONNECTIONS", 64);
    let database = TestDatabase::on(dialect).await?;
    let settings = ServerSettings {
        address: "127.0.0.1:0".parse().unwrap(),
        database_url: database.url.clone(),
        log_format: LogFormat::Text,
        generated_bootstrap_key: false,
        kernel: KernelConfig {
            bootstrap_api_key: Some(KEY.to_owned()),
            database: Some(DatabaseConfig::new(database.url.clone())),
            // The bootstrap key seeds the data and makes the checks: it needs every permission.
            settings: [
                ("PLYSTRA_API_KEY_PERMISSIONS".to_owned(), "*".to_owned()),
                ("PLYSTRA_METRICS_ENABLED".to_owned(), "true".to_owned()),
            ]
            .into(),
            ..KernelConfig::default()
        },
    };
    let (bound_tx, bound_rx) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(plystrad::serve(
        settings,
        async {
            let _ = stopped.await;
        },
        move |addr| {
            let _ = bound_tx.send(addr);
        },
    ));
    let addr: SocketAddr = bound_rx.await.expect("plystrad binds");
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{addr}"),
    };
    api.seed().await;
    let (status, answer) = api
        .call(reqwest::Method::POST, CHECK_PATH, Some(check_body()))
        .await;
    assert_eq!(status, 200, "authz/check: {answer}");
    assert_eq!(
        answer["data"]["decision"], "allow",
        "the benchmark's check must allow: {answer}"
    );
    let records_before = api.verified_records().await;

    // Warm up both, then measure the baseline and the check back to back.
    wrk(script, trivial, 3, connections).await;
    wrk(script, addr, 3, connections).await;
    let base = wrk(script, trivial, seconds, connections).await;
    let (batches_before, batched_before, committing_before) = api.audit_batches().await;
    let check = wrk(script, addr, seconds, connections).await;
    let (batches_after, batched_after, committing_after) = api.audit_batches().await;
    let batches = batches_after - batches_before;

    let records = api.verified_records().await;
    let _ = stop.send(());
    server.await.unwrap().expect("plystrad stops cleanly");
    assert_eq!(base.non_2xx, 0, "the trivial endpoint answered errors");
    assert_eq!(check.non_2xx, 0, "authz/check answered errors");
    assert!(
        records - records_before >= check.requests,
        "fewer audit records ({}) than checks answered ({})",
        records - records_before,
        check.requests
    );
    let ratio = check.requests_per_second / base.requests_per_second;
    println!(
        "| {:<8} | {:>15.0} | {:>13.0} | {:>3.0} % | {:>20} | {:>18} | {:>13} | {} |",
        format!("{dialect:?}").to_lowercase(),
        base.requests_per_second,
        check.requests_per_second,
        ratio * 100.0,
        base.latency,
        check.latency,
        records,
        if ratio >= 0.5 { "met" } else { "NOT met" },
    );
    if batches > 0.0 {
        println!(
            "  ({dialect:?} audit writer during the check run: {batches:.0} batches, {:.1} records \
             and {:.2} ms of commit per batch)",
            (batched_after - batched_before) / batches,
            (committing_after - committing_before) * 1000.0 / batches,
        );
    }
    for (name, run) in [("trivial", &base), ("check", &check)] {
        if !run.errors.is_empty() {
            println!("  ({name}: wrk socket errors: {})", run.errors);
        }
    }
    Some(())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("check_load needs wrk on the PATH: apt-get install -y wrk");
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.body = '{}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"X-Plystra-API-Key\"] = \"{KEY}\"\n",
            check_body()
        ),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "authz/check against a trivial poem endpoint parsing the same body, wrk -t2 -c{} -d{}s, \
         durable audit (always)\n",
        env_or("CHECK_LOAD_CONNECTIONS", 64),
        env_or("CHECK_LOAD_DURATION", 10)
    );
    println!(
        "| backend  | trivial (req/s) | check (req/s) | ratio | trivial mean latency | check mean latency | audit records | target ≥ 50 % |"
    );
    println!(
        "|----------|----------------:|--------------:|------:|---------------------:|-------------------:|--------------:|---------------|"
    );
    runtime.block_on(async {
        let (trivial, stop_trivial) = start_trivial().await;
        measure(Dialect::Sqlite, &script, trivial).await;
        if measure(Dialect::Postgres, &script, trivial).await.is_none() {
            println!("| postgres | (unreachable: set PLYSTRA_TEST_DATABASE_URL) |");
        }
        let _ = stop_trivial.send(());
    });
}
