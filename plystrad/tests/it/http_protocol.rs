//! HTTP protocol behaviour of the real server on a real socket: the body limit on the bytes
//! actually read (HTTP/1.1 with or without Content-Length, chunked, h2c with prior knowledge),
//! keep-alive after an early rejection, and `Allow` on 405 answers.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};

use poem::http::{StatusCode, Version};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::app::{KEY, app};
use crate::support::serve::RunningServer;
/// The default body limit (1 MiB).
const LIMIT: usize = 1024 * 1024;
/// A bound on every socket read, so a broken server fails a test instead of hanging it.
const READ_BOUND: Duration = Duration::from_secs(20);

/// A space-create body of exactly `size` bytes: valid JSON padded with whitespace, so only its
/// size can make it fail.
fn space_body_of(size: usize) -> Vec<u8> {
    let head = br#"{"name":"padded space""#;
    let mut body = head.to_vec();
    body.resize(size - 1, b' ');
    body.push(b'}');
    body
}

/// A request body for the HTTP/2 client.
type H2Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A body of unknown length (no Content-Length), sent in 16 KiB DATA frames.
fn streamed(body: &[u8]) -> H2Body {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = body
        .chunks(16 * 1024)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// An HTTP/2 connection with prior knowledge (h2c): no upgrade, no ALPN, HTTP/2 from the first
/// byte, as a client configured for it speaks to a plain-text server.
struct H2Connection {
    sender: hyper::client::conn::http2::SendRequest<H2Body>,
    authority: String,
}

impl H2Connection {
    async fn open(server: &RunningServer) -> Self {
        let tcp = TcpStream::connect(server.address).await.unwrap();
        let (sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .expect("the server speaks h2c with prior knowledge");
        tokio::spawn(connection);
        Self {
            sender,
            authority: server.address.to_string(),
        }
    }

    /// Sends one request and reads the whole answer: its version, status and envelope.
    async fn send(&mut self, method: &str, path: &str, body: H2Body) -> (Version, u16, Value) {
        let request = poem::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.authority))
            .header("x-plystra-api-key", KEY)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        assert!(
            request.headers().get("content-length").is_none(),
            "the body's length is not declared"
        );
        let response = tokio::time::timeout(READ_BOUND, self.sender.send_request(request))
            .await
            .expect("the server answers within the bound")
            .expect("an answer, not a reset");
        let (version, status) = (response.version(), response.status().as_u16());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (version, status, body)
    }
}

#[tokio::test]
async fn h2c_bodies_without_length_are_limited_on_the_bytes_read() {
    let Some(server) = RunningServer::start().await else {
        return;
    };
    let mut h2 = H2Connection::open(&server).await;

    // 2 MiB of valid JSON to a write route: refused, nothing created.
    let (version, status, body) = h2
        .send(
            "POST",
            "/api/v1/spaces",
            streamed(&space_body_of(2 * LIMIT)),
        )
        .await;
    assert_eq!(version, Version::HTTP_2, "spoken over h2c");
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
    let empty = || http_body_util::Empty::new().boxed();
    let (_, status, listed) = h2.send("GET", "/api/v1/spaces", empty()).await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        !listed.to_string().contains("padded space"),
        "the oversized body created nothing: {listed}"
    );

    // The same to a route that does not exist: the limit does not depend on routing.
    let (_, status, body) = h2
        .send(
            "POST",
            "/api/v1/no-such-route",
            streamed(&space_body_of(2 * LIMIT)),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");

    // Just over the limit is refused; 100 KiB passes.
    let (_, status, body) = h2
        .send(
            "POST",
            "/api/v1/spaces",
            streamed(&space_body_of(LIMIT + 1)),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    let (_, status, body) = h2
        .send(
            "POST",
            "/api/v1/spaces",
            streamed(&space_body_of(100 * 1024)),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    server.shut_down().await;
}

/// One HTTP/1.1 response read off a raw socket.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one response (Content-Length framed, as every answer of this server is); `None` when
/// the server closed the connection instead of answering.
async fn read_response(reader: &mut BufReader<TcpStream>) -> Option<RawResponse> {
    tokio::time::timeout(READ_BOUND, async {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.ok()?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':')?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.ok()?;
        Some(RawResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    })
    .await
    .expect("the server answers within the bound")
}

async fn connect(server: &RunningServer) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(server.address).await.unwrap())
}

/// Writes, ignoring a connection the server already closed (the next read reports it).
async fn send(connection: &mut BufReader<TcpStream>, bytes: &[u8]) {
    let _ = connection.get_mut().write_all(bytes).await;
}

const HEALTH: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n";

#[tokio::test]
async fn http1_bodies_over_the_limit_are_refused_chunked_or_not() {
    let Some(server) = RunningServer::start().await else {
        return;
    };
    // Chunked, 2 MiB, no Content-Length.
    let mut connection = connect(&server).await;
    send(
        &mut connection,
        format!(
            "POST /api/v1/spaces HTTP/1.1\r\nHost: t\r\nX-Plystra-API-Key: {KEY}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    for chunk in space_body_of(2 * LIMIT).chunks(64 * 1024) {
        send(&mut connection, format!("{:x}\r\n", chunk.len()).as_bytes()).await;
        send(&mut connection, chunk).await;
        send(&mut connection, b"\r\n").await;
    }
    send(&mut connection, b"0\r\n\r\n").await;
    let response = read_response(&mut connection).await.expect("an answer");
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(
        response.body.contains("PAYLOAD_TOO_LARGE"),
        "{}",
        response.body
    );
    assert!(
        response.closes(),
        "the unread rest of the body ends the connection, and the answer says so"
    );

    // A declared length over the limit: refused before reading, and the answer says close.
    let mut connection = connect(&server).await;
    send(
        &mut connection,
        format!(
            "POST /api/v1/spaces HTTP/1.1\r\nHost: t\r\nX-Plystra-API-Key: {KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            2 * LIMIT
        )
        .as_bytes(),
    )
    .await;
    let response = read_response(&mut connection).await.expect("an answer");
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(
        response.body.contains("PAYLOAD_TOO_LARGE"),
        "{}",
        response.body
    );
    assert!(
        response.closes(),
        "a refused, unread body must come with Connection: close"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn a_lying_content_length_does_not_lift_the_limit() {
    // poem's test client does not frame the body by its Content-Length, so the pipeline sees a
    // body longer than declared, as a peer that lies would make it.
    let Some((_database, client)) = app(&[]).await else {
        return;
    };
    let response = client
        .post("/api/v1/spaces")
        .header("x-plystra-api-key", KEY)
        .header("content-type", "application/json")
        .header("content-length", "32")
        .body(space_body_of(2 * LIMIT))
        .send()
        .await;
    response.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.0.into_body().into_json().await.unwrap();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
}

#[tokio::test]
async fn an_early_rejection_keeps_the_connection_usable() {
    let Some(server) = RunningServer::start().await else {
        return;
    };
    // The body follows its headers late, as a client streaming it would send it: the 401 (no
    // credential), the 404 (no route) and the 405 (no such method) are decided without it.
    for (request, expected) in [
        ("POST /api/v1/spaces", 401),
        ("POST /api/v1/no-such-route", 404),
        ("PUT /api/v1/spaces", 405),
    ] {
        for size in [2_000, 200 * 1024] {
            let mut connection = connect(&server).await;
            let body = space_body_of(size);
            send(
                &mut connection,
                format!(
                    "{request} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            send(&mut connection, &body).await;
            let first = read_response(&mut connection).await.expect("an answer");
            assert_eq!(first.status, expected, "{request}: {}", first.body);
            assert!(
                !first.closes(),
                "{request} ({size} bytes): a body within the limit is read, the connection kept"
            );
            send(&mut connection, HEALTH).await;
            let second = read_response(&mut connection).await;
            assert_eq!(
                second.map(|r| r.status),
                Some(200),
                "{request} ({size} bytes): the next request on the same connection is answered"
            );
        }
    }
    server.shut_down().await;
}

#[tokio::test]
async fn method_not_allowed_names_the_methods_the_path_serves() {
    let Some((_database, client)) = app(&[]).await else {
        return;
    };
    let document: Value = client
        .get("/openapi.json")
        .send()
        .await
        .0
        .into_body()
        .into_json()
        .await
        .unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() > 50, "the document lists the paths");
    for (template, item) in paths {
        let served: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        let unserved = ["GET", "POST", "PUT", "PATCH", "DELETE"]
            .into_iter()
            .find(|m| !served.iter().any(|s| s == m))
            .unwrap();
        let path: String = template
            .split('/')
            .map(|s| if s.starts_with('{') { "zz_probe" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method = poem::http::Method::from_bytes(unserved.as_bytes()).unwrap();
        let response = client.request(method, &path).send().await;
        response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        let allow = response
            .0
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{unserved} {path}: 405 without Allow"))
            .to_str()
            .unwrap()
            .to_owned();
        let mut listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        listed.sort_unstable();
        let mut expected: Vec<&str> = served.iter().map(String::as_str).collect();
        if expected.contains(&"GET") {
            expected.push("HEAD");
        }
        expected.sort_unstable();
        assert_eq!(listed, expected, "{unserved} {path}: Allow: {allow}");
        // The code rides in the header on every error; the body is the envelope, or on an
        // AuthZEN path the message alone.
        let code = response.0.headers()["x-plystra-error-code"].clone();
        assert_eq!(code, "METHOD_NOT_ALLOWED", "{unserved} {path}");
        let text = response.0.into_body().into_string().await.unwrap();
        if path.starts_with("/access/") || path.starts_with("/.well-known/") {
            assert!(!text.starts_with('{') && !text.is_empty(), "{path}: {text}");
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED", "{body}");
        }
    }
}

#[tokio::test]
async fn hyper_parse_errors_are_the_documented_bare_answers() {
    // hyper answers these itself, before a request reaches poem, so they cannot carry the
    // envelope; README and ARCHITECTURE.md name them as the only bare answers.
    let Some(server) = RunningServer::start().await else {
        return;
    };
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70_000));
    for (request, expected) in [
        (long_target.as_bytes(), 414),
        (
            &b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n"[..],
            400,
        ),
    ] {
        let mut connection = connect(&server).await;
        send(&mut connection, request).await;
        let response = read_response(&mut connection).await.expect("an answer");
        assert_eq!(response.status, expected);
        assert!(response.body.is_empty(), "{}", response.body);
    }
    // Anything poem sees leaves in the envelope, even a target that is merely odd.
    let mut connection = connect(&server).await;
    send(&mut connection, b"GET /%ff%fe HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let response = read_response(&mut connection).await.expect("an answer");
    assert!((400..500).contains(&response.status), "{}", response.body);
    let body: Value = serde_json::from_str(&response.body).expect("the envelope");
    assert!(body["error"]["code"].is_string(), "{body}");
    server.shut_down().await;
}
