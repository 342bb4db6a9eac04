//! The HTTP load benchmark of `authz/check`: requests per second of the real server against a
//! trivial poem endpoint that parses the same JSON body, and the median latency of one
//! connection against the same endpoint and one database commit, all measured in the same run
//! with `wrk`.
//!
//! `cargo bench -p plystrad --bench check_load` (needs `wrk` on the PATH: `apt-get install -y
//! wrk`). For each backend (SQLite always; PostgreSQL when `PLYSTRA_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, answers) it:
//!
//! 1. boots the real plystrad app (`plystrad::serve`, every linked capability, migrations
//!    applied) on a fresh database, on a loopback port, with a bootstrap key and the default
//!    durable audit (`PLYSTRA_AUDIT_WRITE_MODE=always`: one record per decision, committed before
//!    the answer), and a second one on another fresh database of the same kind with
//!    `PLYSTRA_AUDIT_WRITE_MODE=deny_only` (an allowed decision writes no record);
//! 2. creates the Finance Reviewer data on both through the HTTP API, checks that alice may
//!    approve `invoice_001`, and on the first creates a managed API key (`POST /api/v1/api-keys`,
//!    level `instance`, permission `authz:check`);
//! 3. against a trivial poem server whose one POST route parses the body into a
//!    `serde_json::Value` and answers a small JSON object (started once, shared by both
//!    backends), runs `wrk -t2 -c64 -d10s` (after a 3 s warm-up each) with the same allowed
//!    request: the trivial endpoint once, then the check with the bootstrap key, with the
//!    managed key, and on the `deny_only` server, and prints each rate and its ratio to the
//!    trivial one;
//! 4. runs `wrk -t1 -c1 --latency` against the trivial endpoint and the check (bootstrap key,
//!    durable audit) and reads their p50, and times 200 sequential minimal write transactions
//!    (`BEGIN`, one-row `INSERT` into a scratch table, `COMMIT`) on the same database through
//!    its `plystra_contracts::storage` handle: the p50 of one commit;
//! 5. verifies the audit chains: at least one new record per check answered with durable audit,
//!    and on the `deny_only` server fewer new records than allowed checks answered (none are
//!    expected);
//! 6. prints `/proc/loadavg` before and after each backend's run.
//!
//! Targets, each printed as met or NOT met: checks with durable audit at least 35 % of the
//! trivial endpoint's rate at 64 connections (bootstrap and managed key); allowed checks in
//! `deny_only` mode at least 60 %; check p50 at one connection at most twice the trivial p50
//! plus one commit's p50.
//!
//! `CHECK_LOAD_DURATION` (seconds per measured run, default 10) and `CHECK_LOAD_CONNECTIONS`
//! (default 64) change the run. Logging is not initialised, as in a server whose log level
//! filters out `info`. Progress goes to stderr, the tables to stdout. Without `--bench` (for
//! example `cargo test --benches`) it does nothing.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails has no figure to report: the panic is its report"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use plystra_contracts::storage::sea_query::{Alias, Query};
use plystra_contracts::storage::{Database, Dialect, sqlx};
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
/// Checks with durable audit, as a share of the trivial endpoint's rate.
const DURABLE_TARGET: f64 = 0.35;
/// Allowed checks in `deny_only` mode, as a share of the trivial endpoint's rate.
const DENY_ONLY_TARGET: f64 = 0.60;
/// Sequential write transactions timed for the commit p50.
const COMMITS: usize = 200;

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
    /// A call with the bootstrap key.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(KEY, method, path, body).await
    }

    /// A call with the API key `key`.
    async fn call_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("X-Plystra-API-Key", key);
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

/// A running plystrad on its own fresh database.
struct Plystrad {
    api: Api,
    addr: SocketAddr,
    database: TestDatabase,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), plystrad::ServeError>>,
}

impl Plystrad {
    /// Boots plystrad on a fresh `dialect` database with `PLYSTRA_AUDIT_WRITE_MODE=write_mode`,
    /// seeds the Finance Reviewer data and checks that the benchmark's request is allowed.
    async fn start(dialect: Dialect, write_mode: &str) -> Option<Self> {
        let database = TestDatabase::on(dialect).await?;
        let settings = ServerSettings {
            address: "127.0.0.1:0".parse().unwrap(),
            database_url: database.url.clone(),
            log_format: LogFormat::Text,
            generated_bootstrap_key: false,
            kernel: KernelConfig {
                bootstrap_api_key: Some(KEY.to_owned()),
                database: Some(DatabaseConfig::new(database.url.clone())),
                // The bootstrap key seeds the data and makes the checks: it needs every
                // permission.
                settings: [
                    ("PLYSTRA_API_KEY_PERMISSIONS".to_owned(), "*".to_owned()),
                    ("PLYSTRA_METRICS_ENABLED".to_owned(), "true".to_owned()),
                    ("PLYSTRA_AUDIT_WRITE_MODE".to_owned(), write_mode.to_owned()),
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
        api.expect_allow(KEY).await;
        Some(Self {
            api,
            addr,
            database,
            stop,
            server,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().expect("plystrad stops cleanly");
        drop(self.database);
    }
}

impl Api {
    /// The benchmark's request, sent with `key`, is answered 200 with an allow.
    async fn expect_allow(&self, key: &str) {
        let (status, answer) = self
            .call_as(key, reqwest::Method::POST, CHECK_PATH, Some(check_body()))
            .await;
        assert_eq!(status, 200, "authz/check: {answer}");
        assert_eq!(
            answer["data"]["decision"], "allow",
            "the benchmark's check must allow: {answer}"
        );
    }

    /// A managed instance-level API key that may only check; returns its plaintext.
    async fn create_check_key(&self) -> String {
        let created = self
            .create(
                "/api/v1/api-keys",
                json!({
                    "name": "check_load bench",
                    "level": "instance",
                    "permission_keys": ["authz:check"],
                }),
            )
            .await;
        created["data"]["api_key"]
            .as_str()
            .unwrap_or_else(|| panic!("a created key carries its plaintext: {created}"))
            .to_owned()
    }
}

/// What one wrk run reported.
struct WrkRun {
    requests_per_second: f64,
    requests: u64,
    non_2xx: u64,
    errors: String,
    latency: String,
    /// The median latency, in microseconds (runs with `--latency`).
    p50_us: Option<f64>,
}

/// A wrk duration (`812.00us`, `1.25ms`, `2.01s`, `1.50m`) in microseconds.
fn micros(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "m" => 60_000_000.0,
        _ => return None,
    };
    Some(number * scale)
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
        // "Latency Distribution" is followed by "50%  1.23ms".
        p50_us: value_after("50%").and_then(|v| micros(&v)),
    }
}

/// How wrk loads the server.
#[derive(Clone, Copy)]
enum Load {
    /// `-t2 -c<connections>`: throughput.
    Connections(u64),
    /// `-t1 -c1 --latency`: one request at a time, with the latency distribution.
    One,
}

async fn wrk(script: &Path, addr: SocketAddr, seconds: u64, load: Load) -> WrkRun {
    let url = format!("http://{addr}{CHECK_PATH}");
    let mut args = match load {
        Load::Connections(connections) => vec!["-t2".to_owned(), format!("-c{connections}")],
        Load::One => vec!["-t1".to_owned(), "-c1".to_owned(), "--latency".to_owned()],
    };
    args.extend([
        format!("-d{seconds}s"),
        "-s".to_owned(),
        script.display().to_string(),
        url,
    ]);
    let out = tokio::task::spawn_blocking(move || Command::new("wrk").args(&args).output())
        .await
        .unwrap()
        .expect("run wrk (apt-get install -y wrk)");
    assert!(out.status.success(), "wrk failed: {out:?}");
    let run = parse_wrk(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(run.non_2xx, 0, "{addr} answered errors under load");
    run
}

/// `post.lua` for wrk: the benchmark's request with the API key `key`.
fn script(dir: &Path, name: &str, key: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.body = '{}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"X-Plystra-API-Key\"] = \"{key}\"\n",
            check_body()
        ),
    )
    .unwrap();
    path
}

/// The three load averages, as `/proc/loadavg` has them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The p50 of a minimal write transaction on `db`: `BEGIN`, a one-row `INSERT` into a scratch
/// table, `COMMIT`, [`COMMITS`] times in a row, through the storage handle the capabilities use
/// (on SQLite the transaction begins `IMMEDIATE`, as the audit writer's does).
async fn commit_p50(db: &Database) -> Duration {
    const CREATE: &str = "CREATE TABLE IF NOT EXISTS bench_commit_scratch (n BIGINT NOT NULL)";
    match db {
        Database::Sqlite(pool) => sqlx::raw_sql(CREATE).execute(pool).await.map(drop),
        Database::Postgres(pool) => sqlx::raw_sql(CREATE).execute(pool).await.map(drop),
    }
    .expect("create the scratch table");
    let mut times = Vec::with_capacity(COMMITS);
    for n in 0..COMMITS as i64 {
        let insert = Query::insert()
            .into_table(Alias::new("bench_commit_scratch"))
            .columns([Alias::new("n")])
            .values_panic([n.into()])
            .to_owned();
        let started = Instant::now();
        let mut tx = db.begin().await.expect("begin");
        tx.execute(&insert).await.expect("insert one row");
        tx.commit().await.expect("commit");
        times.push(started.elapsed());
    }
    times.sort_unstable();
    times[times.len() / 2]
}

/// One row of the throughput table.
struct LoadRow {
    backend: String,
    what: &'static str,
    trivial: f64,
    trivial_latency: String,
    check: WrkRun,
    /// Audit records the chain gained during the run.
    new_records: u64,
    /// The share of the trivial rate this row must reach.
    target: f64,
    /// The audit writer during the run: (batches, records per batch, ms of commit per batch).
    writer: Option<(f64, f64, f64)>,
}

impl LoadRow {
    fn print(&self) {
        let ratio = self.check.requests_per_second / self.trivial;
        println!(
            "| {:<8} | {:<24} | {:>15.0} | {:>13.0} | {:>3.0} % | {:>12} | {:>10} | {:>6} | {:>17} | ≥ {:.0} %: {} |",
            self.backend,
            self.what,
            self.trivial,
            self.check.requests_per_second,
            ratio * 100.0,
            self.trivial_latency,
            self.check.latency,
            self.check.requests,
            self.new_records,
            self.target * 100.0,
            if ratio >= self.target {
                "met"
            } else {
                "NOT met"
            },
        );
    }
}

/// One row of the latency table (microseconds).
struct LatencyRow {
    backend: String,
    trivial_p50: f64,
    check_p50: f64,
    commit_p50: f64,
}

impl LatencyRow {
    fn print(&self) {
        let limit = 2.0 * self.trivial_p50 + self.commit_p50;
        let ms = |us: f64| format!("{:.3} ms", us / 1000.0);
        println!(
            "| {:<8} | {:>13} | {:>11} | {:>10} | {:>20} | {} |",
            self.backend,
            ms(self.trivial_p50),
            ms(self.check_p50),
            ms(self.commit_p50),
            ms(limit),
            if self.check_p50 <= limit {
                "met"
            } else {
                "NOT met"
            },
        );
    }
}

/// Everything a backend's run reports.
struct BackendRun {
    load: Vec<LoadRow>,
    latency: LatencyRow,
    load_average: (String, String),
    notes: Vec<String>,
}

/// Runs `check` (after a warm-up) against `server` and reads how the audit chain and writer
/// moved.
async fn load_row(
    server: &Plystrad,
    script: &Path,
    seconds: u64,
    connections: u64,
    what: &'static str,
    target: f64,
    trivial: &WrkRun,
) -> LoadRow {
    wrk(script, server.addr, 3, Load::Connections(connections)).await;
    let records_before = server.api.verified_records().await;
    let (batches_before, batched_before, committing_before) = server.api.audit_batches().await;
    let check = wrk(script, server.addr, seconds, Load::Connections(connections)).await;
    let (batches_after, batched_after, committing_after) = server.api.audit_batches().await;
    let new_records = server.api.verified_records().await - records_before;
    let batches = batches_after - batches_before;
    LoadRow {
        backend: String::new(),
        what,
        trivial: trivial.requests_per_second,
        trivial_latency: trivial.latency.clone(),
        check,
        new_records,
        target,
        writer: (batches > 0.0).then(|| {
            (
                batches,
                (batched_after - batched_before) / batches,
                (committing_after - committing_before) * 1000.0 / batches,
            )
        }),
    }
}

async fn measure(dialect: Dialect, dir: &Path, trivial_addr: SocketAddr) -> Option<BackendRun> {
    let seconds = env_or("CHECK_LOAD_DURATION", 10);
    let connections = env_or("CHECK_LOAD_CONNECTIONS", 64);
    let backend = format!("{dialect:?}").to_lowercase();
    let before = load_average();
    eprintln!("{backend}: load average {before}; booting and seeding the durable server");
    let durable = Plystrad::start(dialect, "always").await?;
    let managed_key = durable.api.create_check_key().await;
    durable.api.expect_allow(&managed_key).await;
    let bootstrap = script(dir, "bootstrap.lua", KEY);
    let managed = script(dir, "managed.lua", &managed_key);

    eprintln!("{backend}: trivial endpoint");
    wrk(&bootstrap, trivial_addr, 3, Load::Connections(connections)).await;
    let trivial = wrk(
        &bootstrap,
        trivial_addr,
        seconds,
        Load::Connections(connections),
    )
    .await;
    eprintln!("{backend}: checks, bootstrap key");
    let always = load_row(
        &durable,
        &bootstrap,
        seconds,
        connections,
        "bootstrap key, always",
        DURABLE_TARGET,
        &trivial,
    )
    .await;
    eprintln!("{backend}: checks, managed key");
    let by_managed_key = load_row(
        &durable,
        &managed,
        seconds,
        connections,
        "managed key, always",
        DURABLE_TARGET,
        &trivial,
    )
    .await;
    for row in [&always, &by_managed_key] {
        assert!(
            row.new_records >= row.check.requests,
            "{}: fewer audit records ({}) than checks answered ({})",
            row.what,
            row.new_records,
            row.check.requests
        );
    }

    eprintln!("{backend}: one connection, and one commit");
    let trivial_one = wrk(&bootstrap, trivial_addr, seconds, Load::One).await;
    let check_one = wrk(&bootstrap, durable.addr, seconds, Load::One).await;
    let commit = commit_p50(&durable.database.db).await;
    let latency = LatencyRow {
        backend: backend.clone(),
        trivial_p50: trivial_one.p50_us.expect("wrk --latency prints a p50"),
        check_p50: check_one.p50_us.expect("wrk --latency prints a p50"),
        commit_p50: commit.as_secs_f64() * 1e6,
    };
    durable.stop().await;

    // The second server, on another fresh database of the same kind, runs alone.
    eprintln!("{backend}: booting and seeding the deny_only server; checks, deny_only");
    let deny_only = Plystrad::start(dialect, "deny_only")
        .await
        .expect("a second database of the same kind");
    let denies_only = load_row(
        &deny_only,
        &bootstrap,
        seconds,
        connections,
        "bootstrap key, deny_only",
        DENY_ONLY_TARGET,
        &trivial,
    )
    .await;
    deny_only.stop().await;
    // Allowed decisions write no record in deny_only mode.
    assert!(
        denies_only.new_records < denies_only.check.requests,
        "deny_only: allowed checks wrote audit records ({} for {} checks)",
        denies_only.new_records,
        denies_only.check.requests
    );
    let mut load = vec![always, by_managed_key, denies_only];
    for row in &mut load {
        row.backend.clone_from(&backend);
    }

    let mut notes = Vec::new();
    for row in &load {
        if let Some((batches, records, commit_ms)) = row.writer {
            notes.push(format!(
                "{backend}, {}: the audit writer committed {batches:.0} batches, {records:.1} \
                 records and {commit_ms:.2} ms of commit per batch",
                row.what
            ));
        }
        if !row.check.errors.is_empty() {
            notes.push(format!(
                "{backend}, {}: wrk socket errors: {}",
                row.what, row.check.errors
            ));
        }
    }
    if !trivial.errors.is_empty() {
        notes.push(format!(
            "{backend}, trivial: wrk socket errors: {}",
            trivial.errors
        ));
    }
    Some(BackendRun {
        load,
        latency,
        load_average: (before, load_average()),
        notes,
    })
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let runs = runtime.block_on(async {
        let (trivial, stop_trivial) = start_trivial().await;
        let mut runs = Vec::new();
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            match measure(dialect, dir.path(), trivial).await {
                Some(run) => runs.push(run),
                None => eprintln!("{dialect:?}: unreachable (set PLYSTRA_TEST_DATABASE_URL)"),
            }
        }
        let _ = stop_trivial.send(());
        runs
    });

    let connections = env_or("CHECK_LOAD_CONNECTIONS", 64);
    let seconds = env_or("CHECK_LOAD_DURATION", 10);
    println!(
        "\nauthz/check (alice approves invoice_001: an allow) against a trivial poem endpoint \
         parsing the same body, wrk -t2 -c{connections} -d{seconds}s\n"
    );
    println!(
        "| backend  | check                    | trivial (req/s) | check (req/s) | ratio | trivial mean | check mean | checks | new audit records | target |"
    );
    println!(
        "|----------|--------------------------|----------------:|--------------:|------:|-------------:|-----------:|-------:|------------------:|--------|"
    );
    for row in runs.iter().flat_map(|r| &r.load) {
        row.print();
    }
    println!(
        "\nOne connection (wrk -t1 -c1 --latency -d{seconds}s; check: bootstrap key, durable \
         audit) and one commit (p50 of {COMMITS} sequential one-row INSERT + COMMIT on the same \
         database)\n"
    );
    println!(
        "| backend  | trivial p50   | check p50   | commit p50 | 2 × trivial + commit | target |"
    );
    println!(
        "|----------|--------------:|------------:|-----------:|---------------------:|--------|"
    );
    for run in &runs {
        run.latency.print();
    }
    println!();
    for run in &runs {
        println!(
            "{}: load average before {}, after {}",
            run.latency.backend, run.load_average.0, run.load_average.1
        );
    }
    for note in runs.iter().flat_map(|r| &r.notes) {
        println!("{note}");
    }
}
