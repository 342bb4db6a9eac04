//! HTTP tests through the kernel's real pipeline: envelopes for every failure, request IDs,
//! protection by default, path merging, unavailable capabilities and graceful shutdown.

use std::time::Duration;

use crate::support::*;
use plystra_kernel::{Booted, boot};
use poem::http::StatusCode;
use poem::test::{TestClient, TestResponse};
use serde_json::Value;

async fn app() -> Booted {
    let plugin = Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES);
    let get = Spec::plugin::<1>("test.get").routes::<SharedGetApi>(&["getShared"]);
    let post = Spec::plugin::<2>("test.post").routes::<SharedPostApi>(&["postShared"]);
    boot(config(), source(vec![plugin, get, post], &[]))
        .await
        .unwrap()
}

async fn body(resp: TestResponse) -> (StatusCode, poem::http::HeaderMap, Value) {
    let status = resp.0.status();
    let headers = resp.0.headers().clone();
    let text = resp.0.into_body().into_string().await.unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, headers, json)
}

fn assert_envelope(status: StatusCode, headers: &poem::http::HeaderMap, json: &Value, code: &str) {
    assert_eq!(json["error"]["code"], code, "{status}: {json}");
    assert_eq!(headers.get("x-plystra-error-code").unwrap(), code);
    let request_id = json["request_id"].as_str().unwrap();
    assert_eq!(json["error"]["request_id"], request_id);
    assert_eq!(headers.get("x-request-id").unwrap(), request_id);
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(json["error"]["details"].is_object());
}

#[tokio::test]
async fn an_unknown_route_is_a_404_envelope() {
    let cli = TestClient::new(app().await.app);
    let (status, headers, json) = body(cli.get("/api/v1/nowhere").send().await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(status, &headers, &json, "NOT_FOUND");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_envelope() {
    let cli = TestClient::new(app().await.app);
    let (status, headers, json) = body(cli.delete("/api/v1/health").send().await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_envelope(status, &headers, &json, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_envelopes() {
    let cli = TestClient::new(app().await.app);
    for payload in [
        "{not json",
        r#"{"name": "x", "count": "many"}"#,
        r#"{"count": 1}"#,
    ] {
        let resp = cli
            .post("/test/echo")
            .header("X-Plystra-API-Key", KEY)
            .content_type("application/json")
            .body(payload)
            .send()
            .await;
        let (status, headers, json) = body(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{payload}: {json}");
        assert_envelope(status, &headers, &json, "VALIDATION_FAILED");
        assert!(
            json["error"]["details"]["reason"].as_str().is_some(),
            "{json}"
        );
    }
    let ok = cli
        .post("/test/echo")
        .header("X-Plystra-API-Key", KEY)
        .body_json(&serde_json::json!({"name": "x", "count": 2}))
        .send()
        .await;
    let (status, _, json) = body(ok).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["data"]["count"], 2);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_envelope() {
    let cli = TestClient::new(app().await.app);
    let big = format!(r#"{{"name": "{}", "count": 1}}"#, "x".repeat(4096));
    let resp = cli
        .post("/test/echo")
        .header("X-Plystra-API-Key", KEY)
        .content_type("application/json")
        .header("content-length", big.len().to_string())
        .body(big)
        .send()
        .await;
    let (status, headers, json) = body(resp).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(status, &headers, &json, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn a_panic_is_a_500_envelope_without_internals() {
    let cli = TestClient::new(app().await.app);
    let resp = cli
        .get("/test/panic")
        .header("X-Plystra-API-Key", KEY)
        .send()
        .await;
    let (status, headers, json) = body(resp).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_envelope(status, &headers, &json, "INTERNAL_ERROR");
    assert!(!json.to_string().contains("hunter2"));
}

#[tokio::test]
async fn request_ids_are_echoed_when_valid_and_replaced_otherwise() {
    let cli = TestClient::new(app().await.app);
    let (_, headers, json) = body(
        cli.get("/api/v1/health")
            .header("X-Request-ID", "client-abc-1")
            .send()
            .await,
    )
    .await;
    assert_eq!(headers.get("x-request-id").unwrap(), "client-abc-1");
    assert_eq!(json["request_id"], "client-abc-1");
    let too_long = "a".repeat(129);
    for bad in [too_long.as_str(), "with space"] {
        let (_, headers, json) = body(
            cli.get("/api/v1/health")
                .header("X-Request-ID", bad)
                .send()
                .await,
        )
        .await;
        let id = headers
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(id.starts_with("req_"), "{id}");
        assert_eq!(json["request_id"], id.as_str());
    }
    let (_, headers, _) = body(cli.get("/api/v1/health").send().await).await;
    assert!(
        headers
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test]
async fn security_headers_are_set() {
    let cli = TestClient::new(app().await.app);
    // An answer, a refusal, an unknown route and an oversized body alike.
    let big = "x".repeat(2 << 20);
    for resp in [
        cli.get("/api/v1/health").send().await,
        cli.get("/api/v1/capabilities").send().await,
        cli.get("/api/v1/no-such-route").send().await,
        cli.post("/api/v1/authz/check").body(big).send().await,
    ] {
        let status = resp.0.status();
        let headers = resp.0.headers();
        assert_eq!(
            headers.get("x-content-type-options").unwrap(),
            "nosniff",
            "{status}"
        );
        assert_eq!(headers.get("x-frame-options").unwrap(), "DENY", "{status}");
        assert_eq!(
            headers.get("referrer-policy").unwrap(),
            "no-referrer",
            "{status}"
        );
        assert_eq!(
            headers.get("cache-control").unwrap(),
            "no-store",
            "{status}"
        );
    }
}

#[tokio::test]
async fn every_route_is_protected_unless_public() {
    let booted = app().await;
    let cli = TestClient::new(booted.app);
    let (_, _, doc) = body(cli.get("/openapi.json").send().await).await;
    let mut protected = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = plystra_kernel::http::PUBLIC_OPERATIONS
                .iter()
                .any(|(m, p)| m.as_str().eq_ignore_ascii_case(method) && p == path);
            let security = op["security"].as_array().map(Vec::len).unwrap_or(0);
            assert_eq!(
                security > 0,
                !public,
                "{method} {path}: security {security}"
            );
            if !public {
                protected += 1;
                let concrete = path.replace("{thing_id}", "t1");
                let req = match method.as_str() {
                    "get" => cli.get(&concrete),
                    "post" => cli.post(&concrete),
                    other => panic!("unexpected method {other}"),
                };
                let (status, headers, json) = body(req.send().await).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                assert_envelope(status, &headers, &json, "AUTHENTICATION_REQUIRED");
            }
        }
    }
    assert!(
        protected >= 6,
        "the walk covered {protected} protected operations"
    );
    let (status, _, _) = body(
        cli.get("/test/ping")
            .header("X-Plystra-API-Key", "wrong")
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, json) = body(
        cli.get("/test/ping")
            .header("X-Plystra-API-Key", KEY)
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["data"], "pong");
    let bearer = format!("Bearer {KEY}");
    let (status, _, _) = body(
        cli.get("/test/ping")
            .header("Authorization", bearer.as_str())
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_bootstrap_key_protected_routes_answer_401() {
    let plugin = Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES);
    let booted = boot(
        plystra_kernel::KernelConfig::default(),
        source(vec![plugin], &[]),
    )
    .await
    .unwrap();
    let cli = TestClient::new(booted.app);
    let (status, _, _) = body(
        cli.get("/test/ping")
            .header("X-Plystra-API-Key", "")
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn operations_sharing_a_path_are_merged_and_both_served() {
    let cli = TestClient::new(app().await.app);
    let doc_text = cli
        .get("/openapi.json")
        .send()
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap();
    assert_eq!(
        doc_text.matches("\"/test/shared/{thing_id}\"").count(),
        1,
        "one path item"
    );
    let doc: Value = serde_json::from_str(&doc_text).unwrap();
    let item = &doc["paths"]["/test/shared/{thing_id}"];
    assert_eq!(item["get"]["operationId"], "getShared");
    assert_eq!(item["post"]["operationId"], "postShared");
    let (_, _, got) = body(
        cli.get("/test/shared/t1")
            .header("X-Plystra-API-Key", KEY)
            .send()
            .await,
    )
    .await;
    assert_eq!(got["data"], "get t1");
    let (_, _, posted) = body(
        cli.post("/test/shared/t2")
            .header("X-Plystra-API-Key", KEY)
            .send()
            .await,
    )
    .await;
    assert_eq!(posted["data"], "post t2");
}

#[tokio::test]
async fn the_document_is_byte_stable() {
    let first = plystra_kernel::http::openapi_json(&source(
        vec![Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES)],
        &[],
    ))
    .unwrap();
    let second = plystra_kernel::http::openapi_json(&source(
        vec![Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES)],
        &[],
    ))
    .unwrap();
    assert_eq!(first, second);
    let doc: Value = serde_json::from_str(&first).unwrap();
    assert!(doc["components"]["securitySchemes"]["ApiKeyAuth"].is_object());
    assert!(doc["components"]["securitySchemes"]["BearerAuth"].is_object());
}

#[tokio::test]
async fn the_routes_of_a_failed_capability_answer_503() {
    let plugin = Spec::plugin::<0>("test.plugin")
        .routes::<PingApi>(PING_ROUTES)
        .mode::<0, FAIL_REGISTER>();
    let booted = boot(config(), source(vec![plugin], &[])).await.unwrap();
    let cli = TestClient::new(booted.app);
    let (status, headers, json) = body(
        cli.get("/test/ping")
            .header("X-Plystra-API-Key", KEY)
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_envelope(status, &headers, &json, "NOT_READY");
    assert_eq!(json["error"]["details"]["capability"], "test.plugin");
}

#[tokio::test]
async fn ready_answers_503_naming_the_failed_required_capability_while_health_and_version_serve() {
    let audit = Spec::system::<0>("audit.explainable", "sys_audit").mode::<0, FAIL_START>();
    let booted = boot(config(), source(vec![audit], &["audit.explainable"]))
        .await
        .unwrap();
    let cli = TestClient::new(booted.app);
    let (status, headers, json) = body(cli.get("/api/v1/ready").send().await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_envelope(status, &headers, &json, "NOT_READY");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("audit.explainable")
    );
    assert_eq!(
        json["error"]["details"]["system_capabilities"]["audit.explainable"],
        "failed"
    );
    let (status, _, json) = body(cli.get("/api/v1/health").send().await).await;
    assert_eq!(
        (status, json["data"]["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, _, json) = body(cli.get("/api/v1/version").send().await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["data"]["core_version"], "0.0.1");
    assert_eq!(json["data"]["api_version"], "v1");
    assert_eq!(json["data"]["trace_version"], "1.1");
}

#[tokio::test]
async fn docs_and_yaml_are_served() {
    let cli = TestClient::new(app().await.app);
    let docs = cli.get("/docs").send().await;
    docs.assert_status_is_ok();
    let html = docs.0.into_body().into_string().await.unwrap();
    assert!(html.contains("swagger"), "Swagger UI HTML");
    let yaml = cli
        .get("/openapi.yaml")
        .send()
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap();
    assert!(yaml.contains("openapi: 3.0.0"));
}

/// Sends one raw HTTP/1.1 GET and returns the status line.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nX-Plystra-API-Key: {KEY}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests_then_stops_in_reverse_order() {
    use poem::listener::{Acceptor, Listener};
    let first = Spec::plugin::<5>("test.first").routes::<PingApi>(PING_ROUTES);
    let second = Spec::plugin::<6>("test.second").deps(&["test.first"]);
    let booted = boot(config(), source(vec![first, second], &[]))
        .await
        .unwrap();
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            booted.app,
            async move {
                let _ = stop_rx.await;
            },
            Some(Duration::from_secs(5)),
        ),
    );
    // Stop once the request is in its handler: the waiter is registered before the request goes.
    let started = SLOW_STARTED.notified();
    tokio::pin!(started);
    started.as_mut().enable();
    let in_flight = tokio::spawn(raw_get(addr, "/test/slow"));
    started.await;
    stop_tx.send(()).unwrap();
    assert_eq!(
        in_flight.await.unwrap(),
        "HTTP/1.1 200 OK",
        "the in-flight request completes"
    );
    server.await.unwrap().unwrap();
    booted.runtime.stop().await;
    let stopped: Vec<_> = STOPPED
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|s| *s == "test.s5" || *s == "test.s6")
        .collect();
    assert_eq!(stopped, vec!["test.s6", "test.s5"], "dependents stop first");
    assert!(
        booted
            .runtime
            .entries()
            .iter()
            .all(|e| e.state().state == plystra_contracts::CapabilityState::Stopped)
    );
}

/// A plugin serving ping (management, `test:read`), echo (management, no permission) and slow
/// (self-service), plus a capability providing sessions and, optionally, an admin authorizer.
async fn access_app(with_admin: bool) -> Booted {
    use plystra_contracts::RouteDecl;
    let mut plugin = Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES);
    plugin.raw.provides.routes = Box::leak(
        vec![
            RouteDecl::operation("testPing").permission("test:read"),
            RouteDecl::operation("testEcho"),
            RouteDecl::operation("testPanic"),
            RouteDecl::operation("testSlow").self_service(),
        ]
        .into_boxed_slice(),
    );
    let mut access = Spec::plugin::<1>("test.access");
    access.raw.provides.services = if with_admin {
        &["test.sessions", "test.admin"]
    } else {
        &["test.sessions"]
    };
    access.construct = if with_admin {
        construct_access::<true>
    } else {
        construct_access::<false>
    };
    boot(config(), source(vec![plugin, access], &[]))
        .await
        .unwrap()
}

#[tokio::test]
async fn without_an_admin_authorizer_sessions_cannot_manage_and_fail_closed() {
    let cli = TestClient::new(access_app(false).await.app);
    let session = "Bearer ply_at_alice";
    let (status, headers, json) = body(
        cli.get("/test/ping")
            .header("Authorization", session)
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_envelope(status, &headers, &json, "ADMIN_PERMISSION_REQUIRED");
    assert_eq!(json["error"]["details"]["permission"], "test:read");
    let (status, _, _) = body(
        cli.get("/test/ping")
            .header("X-Plystra-API-Key", KEY)
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the bootstrap key manages");
    let (status, _, _) = body(
        cli.get("/test/ping")
            .header("Authorization", "Bearer ply_at_forged")
            .send()
            .await,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an unknown session is not a credential"
    );
}

#[tokio::test]
async fn self_service_routes_need_a_user_session() {
    let cli = TestClient::new(access_app(false).await.app);
    let (status, _, _) = body(
        cli.get("/test/slow")
            .header("Authorization", "Bearer ply_at_alice")
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, json) = body(
        cli.get("/test/slow")
            .header("X-Plystra-API-Key", KEY)
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_envelope(status, &headers, &json, "AUTHENTICATION_REQUIRED");
}

#[tokio::test]
async fn an_admin_authorizer_decides_each_operation_by_its_declared_permission() {
    let cli = TestClient::new(access_app(true).await.app);
    let session = "Bearer ply_at_alice";
    let (status, _, _) = body(
        cli.get("/test/ping")
            .header("Authorization", session)
            .send()
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the session holds test:read");
    let resp = cli
        .post("/test/echo")
        .header("Authorization", session)
        .body_json(&serde_json::json!({"name": "x", "count": 1}))
        .send()
        .await;
    let (status, _, json) = body(resp).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        json["error"]["details"]["permission"], "*",
        "an undeclared permission needs *"
    );
}

#[tokio::test]
async fn cors_answers_only_for_configured_origins() {
    let plugin = Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES);
    let open = boot(config(), source(vec![plugin.clone()], &[]))
        .await
        .unwrap();
    let cli = TestClient::new(open.app);
    let resp = cli
        .get("/api/v1/health")
        .header("Origin", "https://app.example.com")
        .send()
        .await;
    assert!(
        resp.0
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no allowlist, no CORS headers"
    );

    let config = plystra_kernel::KernelConfig {
        cors_allowed_origins: vec!["https://app.example.com".to_owned()],
        ..config()
    };
    let allowed = boot(config, source(vec![plugin], &[])).await.unwrap();
    let cli = TestClient::new(allowed.app);
    let resp = cli
        .get("/api/v1/health")
        .header("Origin", "https://app.example.com")
        .send()
        .await;
    assert_eq!(
        resp.0.headers().get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    let preflight = cli
        .options("/test/ping")
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-plystra-api-key")
        .send()
        .await;
    assert!(
        preflight.0.status().is_success(),
        "{}",
        preflight.0.status()
    );
    assert_eq!(
        preflight
            .0
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.example.com"
    );
    let other = cli
        .get("/api/v1/health")
        .header("Origin", "https://evil.example.com")
        .send()
        .await;
    assert_ne!(
        other
            .0
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("https://evil.example.com".to_owned())
    );
}
