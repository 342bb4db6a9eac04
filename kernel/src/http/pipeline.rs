//! The request pipeline around every route: request IDs, the error envelope for everything that
//! fails (poem's plain-text errors never reach a client; on the paths of operations that declare
//! text errors, the envelope's message alone), panics as 500s, the body limit, security
//! headers, CORS, request metrics and one log line per request (request ID, method, path,
//! operation, status, latency, remote IP, and the error code, trace ID and audit record ID from
//! the response's headers when it carries them).

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use plystra_contracts::ApiError;
use plystra_contracts::envelope::with_request_id;
use plystra_contracts::error::ERROR_CODE_HEADER;
use plystra_contracts::metrics::Metrics;
use poem::endpoint::BoxEndpoint;
use poem::error::ReadBodyError;
use poem::http::{HeaderName, HeaderValue, StatusCode, Version, header};
use poem::middleware::{CatchPanic, Cors, PanicHandler, SetHeader};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};

use crate::config::KernelConfig;
use crate::http::metrics::{OperationSlot, RequestMetrics};

/// The header carrying a decision's trace ID.
pub const TRACE_ID_HEADER: &str = "x-plystra-trace-id";
/// The header carrying the ID of the audit record a request wrote.
pub const AUDIT_LOG_ID_HEADER: &str = "x-plystra-audit-log-id";

/// Wraps the application in the pipeline; requests are counted and timed in `metrics`. Every
/// error answered on a path of `text_errors` (the paths of the operations that declare
/// [`ErrorBody::Text`](plystra_contracts::ErrorBody::Text)) is written as its message alone,
/// whichever stage refused the request.
pub fn wrap(
    app: BoxEndpoint<'static>,
    config: &KernelConfig,
    metrics: Arc<Metrics>,
    text_errors: Arc<HashSet<String>>,
) -> BoxEndpoint<'static> {
    let requests = RequestMetrics::new(&metrics);
    let header = HeaderName::try_from(config.request_id_header.as_str())
        .unwrap_or_else(|_| HeaderName::from_static("x-request-id"));
    let max_body_bytes = config.max_body_bytes;
    // The body is read (and limited) first, so every rejection after it, the request guard's
    // included, leaves a consumed body and a reusable connection.
    let app = app
        .before(crate::http::request_guard::check)
        .before(move |req| limit_body(req, max_body_bytes))
        .with(CatchPanic::new().with_handler(PanicAsEnvelope))
        .boxed();
    let app = if config.cors_allowed_origins.is_empty() {
        app
    } else {
        app.with(Cors::new().allow_origins(config.cors_allowed_origins.clone()))
            .boxed()
    };
    // `handle` answers every request with a response (never an error), so the headers reach
    // every answer poem sends, errors, 413s and panics included.
    app.around(move |ep, req| {
        let header = header.clone();
        let requests = requests.clone();
        let text_errors = text_errors.clone();
        async move { Ok(handle(ep, req, header, requests, &text_errors).await) }
    })
    .with(
        SetHeader::new()
            .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .overriding(header::X_FRAME_OPTIONS, "DENY")
            .overriding(header::REFERRER_POLICY, "no-referrer"),
    )
    .boxed()
}

async fn handle(
    ep: Arc<BoxEndpoint<'static>>,
    mut req: Request,
    header: HeaderName,
    requests: RequestMetrics,
    text_errors: &HashSet<String>,
) -> Response {
    let request_id =
        accepted_request_id(req.headers().get(&header)).unwrap_or_else(generate_request_id);
    // On a path that speaks a standard (text errors: AuthZEN), the response carries the client's
    // own identifier whatever it is, as that standard requires; the ID recorded is still the
    // accepted one or a fresh one.
    let path_is_text = text_errors.contains(req.uri().path());
    let echoed = req.headers().get(&header).filter(|_| path_is_text).cloned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let remote_ip = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string());
    let slot = OperationSlot::default();
    req.extensions_mut().insert(slot.clone());
    // What is recorded takes the ID from here (`RequestId::of`); the task-local below only
    // labels the response's envelope.
    req.extensions_mut()
        .insert(plystra_contracts::services::RequestId(request_id.clone()));
    let started = Instant::now();
    let committed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let slot_of_writes = committed.clone();
    let served = with_request_id(request_id.clone(), async move {
        // An error made from an ApiError carries its enveloped response; a parameter the router
        // refused (a bad type, or a bound the document declares) is enveloped naming it; any other
        // error (routing, parsing, limits) is enveloped from its status.
        let response = ep.call(req).await.unwrap_or_else(|err| {
            if err
                .downcast_ref::<poem_openapi::error::ParseParamError>()
                .is_some()
                || err
                    .downcast_ref::<poem_openapi::error::ParsePathError>()
                    .is_some()
            {
                ApiError::from_poem(&err).into_response()
            } else {
                err.into_response()
            }
        });
        let response = into_envelope_if_bare(response).await;
        if path_is_text {
            into_text_if_enveloped(response).await
        } else {
            response
        }
    });
    let served = plystra_contracts::feed::with_revision_slot(slot_of_writes, served);
    let mut response = served.await;
    let headers = response.headers_mut();
    // A write that committed facts says at which change-feed revision (a consistency token).
    let revision = committed.load(std::sync::atomic::Ordering::Relaxed);
    if revision > 0 && !headers.contains_key(plystra_contracts::feed::REVISION_HEADER) {
        headers.insert(
            plystra_contracts::feed::REVISION_HEADER,
            HeaderValue::from(revision),
        );
    }
    if let Some(value) = echoed {
        headers.insert(header, value);
    } else if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(header, value);
    }
    if !cacheable(&path) {
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let operation = slot.operation();
    requests.record(operation, status, elapsed);
    let header_value = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // Absent values are left out of the line rather than logged empty.
    let error_code = header_value(ERROR_CODE_HEADER);
    let trace_id = header_value(TRACE_ID_HEADER);
    let audit_log_id = header_value(AUDIT_LOG_ID_HEADER);
    tracing::info!(
        request_id = %request_id,
        method = %method,
        path = %path,
        operation,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        remote_ip,
        error_code,
        trace_id,
        audit_log_id,
        "request"
    );
    response
}

/// Reads the request body, up to `max` bytes, before anything else sees the request, so the limit
/// holds on the bytes actually read whatever the headers say (HTTP/1.1 with or without
/// Content-Length, chunked, HTTP/2 without a length, a Content-Length that lies), and the answer
/// is 413 before routing, authentication or any handler. A body within the limit is thereby always
/// consumed, so an early rejection (401, 403, 404, 405) leaves an HTTP/1.1 connection reusable. A
/// body refused unread (declared or found too large, or failing mid-read) is answered with
/// `Connection: close` on HTTP/1, as the rest of it is still on the wire. Every operation parses
/// its JSON body whole, so reading it here costs no extra copy; requests without a body pass
/// untouched.
async fn limit_body(mut req: Request, max: usize) -> poem::Result<Request> {
    let http1 = req.version() < Version::HTTP_2;
    let refuse = |err: ApiError| {
        let mut response = err.into_response();
        if http1 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        poem::Error::from_response(response)
    };
    let too_large = || {
        ApiError::new(
            plystra_contracts::ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(refuse(too_large()));
    }
    let body = req.take_body();
    if body.is_empty() {
        req.set_body(body);
        return Ok(req);
    }
    // Collected frame by frame under the limit: no intermediate buffer, and a body of one frame
    // (what a client with a Content-Length usually sends) is kept as it arrived, uncopied.
    // (poem's `into_bytes_limit` reads through a 4 KiB buffer that also sits in this future.)
    let body: http_body_util::combinators::BoxBody<_, std::io::Error> = body.into();
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, max)).await {
        Ok(collected) => {
            req.set_body(collected.to_bytes());
            Ok(req)
        }
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(refuse(too_large())),
        Err(err) => {
            let io = match err.downcast::<std::io::Error>() {
                Ok(io) => *io,
                Err(other) => std::io::Error::other(other),
            };
            let err = poem::Error::from(ReadBodyError::Io(io));
            Err(refuse(ApiError::from_poem(&err)))
        }
    }
}

/// Rewrites an error response that did not come from [`ApiError`] into the envelope, keeping its
/// `Allow`.
async fn into_envelope_if_bare(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(ERROR_CODE_HEADER)
    {
        return response;
    }
    // `Allow` (on 405) says what to do instead; it stays on the enveloped answer.
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = if status.is_client_error() {
        response.into_body().into_string().await.unwrap_or_default()
    } else {
        String::new()
    };
    let mut enveloped =
        ApiError::from_poem(&poem::Error::from_string(text, status)).into_response();
    if let Some(allow) = allow {
        enveloped.headers_mut().insert(header::ALLOW, allow);
    }
    enveloped
}

/// Whether a response on `path` may be kept by a cache: the documents and `/.well-known/`
/// metadata; never a decision, an API answer or an error about one.
fn cacheable(path: &str) -> bool {
    matches!(path, "/openapi.json" | "/openapi.yaml" | "/docs") || path.starts_with("/.well-known/")
}

/// Rewrites an enveloped error into its message alone (`text/plain`), keeping the status and the
/// headers (`X-Plystra-Error-Code`, `Allow`, `Retry-After`, `Connection`).
async fn into_text_if_enveloped(response: Response) -> Response {
    let status = response.status();
    let enveloped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !enveloped {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = body.into_string().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| plystra_contracts::error::envelope_text(&v))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(plystra_contracts::error::TEXT_ERROR_CONTENT_TYPE),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, message.into())
}

/// Accepts a client's request ID when it is 1–128 visible ASCII characters.
pub fn accepted_request_id(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let ok = (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| value.to_owned())
}

/// A fresh `req_…` ID, sorting by creation time like every entity ID
/// ([`plystra_contracts::ids::generate`]: milliseconds, then 80 random bits): the audit log's
/// request-ID index then grows at its end instead of at a random page per record.
pub fn generate_request_id() -> String {
    plystra_contracts::ids::generate("req_")
}

/// Turns a panic into a 500 envelope with no internals.
#[derive(Debug, Clone)]
struct PanicAsEnvelope;

impl PanicHandler for PanicAsEnvelope {
    type Response = Response;

    fn get_response(&self, _err: Box<dyn Any + Send + 'static>) -> Response {
        tracing::error!("handler panicked");
        ApiError::from_poem(&poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_accepted_only_when_short_visible_ascii() {
        let ok = HeaderValue::from_static("abc-123_X");
        assert_eq!(accepted_request_id(Some(&ok)).as_deref(), Some("abc-123_X"));
        assert_eq!(accepted_request_id(None), None);
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_eq!(accepted_request_id(Some(&long)), None);
        let max = HeaderValue::from_str(&"a".repeat(128)).unwrap();
        assert!(accepted_request_id(Some(&max)).is_some());
        let spaced = HeaderValue::from_static("has space");
        assert_eq!(accepted_request_id(Some(&spaced)), None);
        let empty = HeaderValue::from_static("");
        assert_eq!(accepted_request_id(Some(&empty)), None);
    }

    #[test]
    fn generated_ids_are_distinct_and_sort_by_creation_time() {
        let first = generate_request_id();
        assert!(first.starts_with("req_") && first.len() == 30, "{first}");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = generate_request_id();
        assert_ne!(first, second);
        assert!(first < second, "{first} then {second}");
    }
}
