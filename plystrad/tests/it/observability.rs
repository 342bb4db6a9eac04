//! Metrics and request logs of the real server: `/metrics` off by default and guarded by its token
//! or `metrics:read`, counting authorization decisions after a check; one JSON log line per request
//! with its fields under `LOG_FORMAT=json`, and human lines under `LOG_FORMAT=text`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use poem::http::StatusCode;
use serde_json::{Value, json};

use crate::support::app::{KEY, app};
use crate::support::processes::alice_approves_001;

const TOKEN: &str = "metrics-token-0123456789abcdef";

/// A plystrad process on a temporary SQLite database and a free loopback port, with its stderr
/// collected line by line.
struct Server {
    child: Child,
    address: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(log_format: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/plystra.db", dir.path().display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_plystrad"))
            .args(["--host", "127.0.0.1", "--port", "0", "--database-url", &url])
            .env("LOG_FORMAT", log_format)
            .env_remove("PLYSTRA_LOG_FORMAT")
            .env_remove("RUST_LOG")
            .env("PLYSTRA_API_KEY", KEY)
            .env("PLYSTRA_API_KEY_PERMISSIONS", "*")
            .env("PLYSTRA_METRICS_ENABLED", "true")
            .env("PLYSTRA_METRICS_TOKEN", TOKEN)
            .env("PLYSTRA_ENV", "development")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (found, address) = mpsc::channel();
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening")
                    && let Some(addr) = line
                        .split(|c: char| c.is_whitespace() || c == '"' || c == '=')
                        .find_map(|w| w.parse::<SocketAddr>().ok())
                {
                    let _ = found.send(addr);
                }
                collected.lock().unwrap().push(line);
            }
        });
        let address = address
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("plystrad did not listen: {:?}", lines.lock().unwrap()));
        Self {
            child,
            address,
            lines,
            _dir: dir,
        }
    }

    /// One HTTP/1.1 request; the status, the headers (lower-case names) and the body.
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, BTreeMap<String, String>, String) {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut head = head.lines();
        let status = head
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = head
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect::<BTreeMap<_, _>>();
        let body = if headers
            .get("transfer-encoding")
            .is_some_and(|t| t == "chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        (status, headers, body)
    }

    fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, _, text) = self.call(method, path, &[("X-Plystra-API-Key", KEY)], Some(body));
        assert!(status == 200 || status == 201, "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The log lines that mention `needle`, waiting a little for them to arrive.
    fn lines_with(&self, needle: &str) -> Vec<String> {
        for _ in 0..50 {
            let found: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect();
            if !found.is_empty() {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no log line with {needle}: {:?}",
            self.lines.lock().unwrap()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A user acting for a member in a space, an invoice type with `approve`, one invoice, and no
/// grant: alice's check is a deny with `NO_MATCHING_PERMISSION`.
fn seed(server: &Server) -> Value {
    server.admin(
        "POST",
        "/api/v1/users",
        json!({"id": "user_alice", "email": "alice@example.com", "password": "correct horse battery"}),
    );
    server.admin(
        "POST",
        "/api/v1/spaces",
        json!({"id": "space_acme", "name": "Acme"}),
    );
    server.admin(
        "POST",
        "/api/v1/spaces/space_acme/members",
        json!({"id": "member_finance_reviewer", "display_name": "Finance reviewer"}),
    );
    server.admin(
        "POST",
        "/api/v1/spaces/space_acme/user-members",
        json!({"id": "um_alice_finance_reviewer", "user_id": "user_alice", "member_id": "member_finance_reviewer", "relation_type": "delegate"}),
    );
    server.admin(
        "POST",
        "/api/v1/resource-types",
        json!({"key": "invoice", "display_name": "Invoice"}),
    );
    server.admin(
        "POST",
        "/api/v1/resource-types/invoice/actions",
        json!({"key": "approve", "risk_level": "high"}),
    );
    server.admin(
        "POST",
        "/api/v1/spaces/space_acme/resources",
        json!({"id": "invoice_001", "resource_type": "invoice"}),
    );
    alice_approves_001()
}

fn json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
}

#[test]
fn json_logs_carry_each_request_field_and_metrics_count_the_decision() {
    let server = Server::start("json");
    let check = seed(&server);
    let (status, headers, body) = server.call(
        "POST",
        "/api/v1/authz/check",
        &[
            ("X-Plystra-API-Key", KEY),
            ("X-Request-ID", "req-observed-check"),
        ],
        Some(check),
    );
    assert_eq!(status, 200, "{body}");
    let decided: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(decided["data"]["decision"], "deny", "{decided}");
    assert_eq!(decided["data"]["deny_code"], "NO_MATCHING_PERMISSION");

    let line = json_line(&server.lines_with("req-observed-check")[0]);
    assert_eq!(line["message"], "request", "{line}");
    assert_eq!(line["request_id"], "req-observed-check");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/api/v1/authz/check");
    assert_eq!(line["operation"], "checkAuthorization");
    assert_eq!(line["status"], 200);
    assert!(
        line["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{line}"
    );
    assert_eq!(line["remote_ip"], "127.0.0.1");
    assert_eq!(line["trace_id"], headers["x-plystra-trace-id"].as_str());
    assert_eq!(
        line["audit_log_id"],
        headers["x-plystra-audit-log-id"].as_str()
    );
    assert!(line.get("error_code").is_none(), "{line}");

    let (status, _, _) = server.call(
        "GET",
        "/api/v1/capabilities",
        &[("X-Request-ID", "req-observed-refused")],
        None,
    );
    assert_eq!(status, 401);
    let line = json_line(&server.lines_with("req-observed-refused")[0]);
    assert_eq!(line["status"], 401);
    assert_eq!(line["error_code"], "AUTHENTICATION_REQUIRED");
    assert_eq!(line["operation"], "listCapabilities");
    assert!(line.get("trace_id").is_none(), "{line}");

    // The scrape: the token is accepted, a wrong one is not.
    let (status, headers, text) = server.call(
        "GET",
        "/metrics",
        &[("X-Plystra-Metrics-Token", TOKEN)],
        None,
    );
    assert_eq!(status, 200, "{text}");
    assert!(headers["content-type"].starts_with("text/plain; version=0.0.4"));
    for expected in [
        "plystra_authz_decisions_total{decision=\"deny\",deny_code=\"NO_MATCHING_PERMISSION\"} 1\n",
        "plystra_http_requests_total{operation=\"checkAuthorization\",status=\"200\"} 1\n",
        "plystra_http_requests_total{operation=\"listCapabilities\",status=\"401\"} 1\n",
        "plystra_http_request_duration_seconds_count{operation=\"checkAuthorization\",status=\"200\"} 1\n",
        "plystra_capability_state{capability=\"authorization.resource\",state=\"ready\"} 1\n",
        "plystra_capability_state{capability=\"authorization.resource\",state=\"failed\"} 0\n",
        "plystra_audit_queue_depth 0\n",
        "# TYPE plystra_audit_batch_size histogram\n",
        "plystra_audit_commit_duration_seconds_count{outcome=\"committed\"} ",
        "plystra_db_pool_connections{state=\"idle\"} ",
        "plystra_db_pool_max_connections ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let (status, headers, _) = server.call(
        "GET",
        "/metrics",
        &[("X-Plystra-Metrics-Token", "wrong")],
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(headers["x-plystra-error-code"], "AUTHENTICATION_REQUIRED");
    let (status, _, text) = server.call("GET", "/metrics", &[("X-Plystra-API-Key", KEY)], None);
    assert_eq!(
        status, 200,
        "the bootstrap key holds every permission: {text}"
    );
}

#[test]
fn text_logs_are_human_lines() {
    let server = Server::start("text");
    let (status, _, _) = server.call(
        "GET",
        "/api/v1/health",
        &[("X-Request-ID", "req-observed-text")],
        None,
    );
    assert_eq!(status, 200);
    let line = &server.lines_with("req-observed-text")[0];
    assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
    assert!(
        line.contains("request_id=req-observed-text") && line.contains("status=200"),
        "{line}"
    );
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let Some((_db, cli)) = app(&[]).await else {
        return;
    };
    let resp = cli
        .get("/metrics")
        .header("X-Plystra-API-Key", KEY)
        .header("X-Plystra-Metrics-Token", TOKEN)
        .send()
        .await;
    resp.assert_status(StatusCode::NOT_FOUND);
    resp.assert_header("X-Plystra-Error-Code", "NOT_FOUND");
}

#[tokio::test]
async fn a_scrape_needs_the_token_or_metrics_read() {
    let Some((_db, cli)) = app(&[
        ("PLYSTRA_METRICS_ENABLED", "true"),
        ("PLYSTRA_METRICS_TOKEN", TOKEN),
    ])
    .await
    else {
        return;
    };
    cli.get("/metrics")
        .send()
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    // A user session is a credential, but without an admin grant of metrics:read it is refused.
    cli.post("/api/v1/users")
        .header("X-Plystra-API-Key", KEY)
        .body_json(&json!({"id": "user_bob", "email": "bob@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .assert_status(StatusCode::CREATED);
    let login = cli
        .post("/api/v1/auth/login")
        .body_json(&json!({"email": "bob@example.com", "password": "correct horse battery"}))
        .send()
        .await;
    login.assert_status_is_ok();
    let body: Value =
        serde_json::from_str(&login.0.into_body().into_string().await.unwrap()).unwrap();
    let access = body["data"]["access_token"].as_str().unwrap().to_owned();
    let resp = cli
        .get("/metrics")
        .header("Authorization", format!("Bearer {access}"))
        .send()
        .await;
    resp.assert_status(StatusCode::FORBIDDEN);
    resp.assert_header("X-Plystra-Error-Code", "ADMIN_PERMISSION_REQUIRED");
    cli.get("/metrics")
        .header("X-Plystra-Metrics-Token", TOKEN)
        .send()
        .await
        .assert_status_is_ok();
}
