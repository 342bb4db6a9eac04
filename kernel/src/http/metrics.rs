//! `GET /metrics`: the runtime's metrics registry in the Prometheus text format, and the kernel's
//! own series (requests and their latency by operation and status, database pool usage,
//! capability states).
//!
//! Off unless `PLYSTRA_METRICS_ENABLED` is `true` (then the route does not exist: 404). When on,
//! a scrape presents either `X-Plystra-Metrics-Token` equal to `PLYSTRA_METRICS_TOKEN` (compared
//! in constant time) or a credential the `metrics:read` admin permission admits, exactly like a
//! protected operation. The route is not part of the OpenAPI document.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use plystra_contracts::metrics::{CONTENT_TYPE, Counter, Histogram, LATENCY_BUCKETS, Metrics};
use plystra_contracts::storage::Database;
use plystra_contracts::{Access, ApiError, CapabilityState, ErrorCode};
use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Request, Response};
use subtle::ConstantTimeEq;

use crate::config::KernelConfig;
use crate::http::auth::{Authenticator, Protect};
use crate::runtime::Runtime;

/// The path of the scrape endpoint.
pub const METRICS_PATH: &str = "/metrics";
/// The header carrying the scrape token.
pub const METRICS_TOKEN_HEADER: &str = "X-Plystra-Metrics-Token";
/// The admin permission that admits a credential to scrape.
pub const METRICS_PERMISSION: &str = "metrics:read";
/// The operation label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Whether `PLYSTRA_METRICS_ENABLED` turns the endpoint on (`true`, `1`, `yes`, `on`).
pub fn enabled(config: &KernelConfig) -> bool {
    config
        .settings
        .get("PLYSTRA_METRICS_ENABLED")
        .is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes" | "on"
            )
        })
}

/// The operation a request was routed to, filled in by the route's endpoint and read by the
/// pipeline once the response is made.
#[derive(Debug, Clone, Default)]
pub struct OperationSlot(Arc<OnceLock<&'static str>>);

impl OperationSlot {
    /// The operation ID, or [`UNMATCHED`].
    pub fn operation(&self) -> &'static str {
        self.0.get().copied().unwrap_or(UNMATCHED)
    }
}

/// Marks every request reaching `ep` as the operation `operation`.
pub fn tag(ep: BoxEndpoint<'static>, operation: &'static str) -> BoxEndpoint<'static> {
    ep.before(move |req: Request| async move {
        if let Some(slot) = req.extensions().get::<OperationSlot>() {
            let _ = slot.0.set(operation);
        }
        Ok(req)
    })
    .boxed()
}

/// The request series the pipeline records.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    requests: Counter<2>,
    latency: Histogram<2>,
}

impl RequestMetrics {
    /// The request counter and latency histogram in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            requests: metrics.counter(
                "plystra_http_requests_total",
                "HTTP requests, by operation ID and status.",
                ["operation", "status"],
            ),
            latency: metrics.histogram(
                "plystra_http_request_duration_seconds",
                "HTTP request latency in seconds, by operation ID and status.",
                ["operation", "status"],
                LATENCY_BUCKETS,
            ),
        }
    }

    /// Records one answered request: no allocation once the operation and status were seen.
    pub fn record(&self, operation: &'static str, status: u16, elapsed: Duration) {
        let series = [operation.into(), status.into()];
        self.requests.inc(series);
        self.latency.observe(series, elapsed.as_secs_f64());
    }
}

/// The kernel's gauges: each capability's state (1 for the current one, 0 for the others) and
/// the database pool.
pub(crate) fn register_kernel_gauges(runtime: &Arc<Runtime>, database: Option<&Database>) {
    let metrics = runtime.metrics();
    let weak: Weak<Runtime> = Arc::downgrade(runtime);
    metrics.gauge(
        "plystra_capability_state",
        "Each capability's lifecycle state: 1 for the current state, 0 for the others.",
        &["capability", "state"],
        Arc::new(move || {
            let Some(runtime) = weak.upgrade() else {
                return Vec::new();
            };
            runtime
                .entries()
                .iter()
                .flat_map(|entry| {
                    let current = entry.state().state;
                    STATES.iter().map(move |state| {
                        (
                            vec![
                                entry.registration.manifest.id().to_owned(),
                                state.as_str().to_owned(),
                            ],
                            i64::from(*state == current),
                        )
                    })
                })
                .collect()
        }),
    );
    if let Some(database) = database.cloned() {
        let pool = database.clone();
        metrics.gauge(
            "plystra_db_pool_connections",
            "Database pool connections, by state (in_use, idle).",
            &["state"],
            Arc::new(move || {
                let (size, idle) = match &pool {
                    Database::Sqlite(p) => (p.size(), p.num_idle()),
                    Database::Postgres(p) => (p.size(), p.num_idle()),
                };
                let (size, idle) = (i64::from(size), i64::try_from(idle).unwrap_or(i64::MAX));
                vec![
                    (vec!["in_use".to_owned()], (size - idle).max(0)),
                    (vec!["idle".to_owned()], idle),
                ]
            }),
        );
        metrics.gauge(
            "plystra_db_pool_max_connections",
            "The database pool's maximum size.",
            &[],
            Arc::new(move || {
                let max = match &database {
                    Database::Sqlite(p) => p.options().get_max_connections(),
                    Database::Postgres(p) => p.options().get_max_connections(),
                };
                vec![(Vec::new(), i64::from(max))]
            }),
        );
    }
}

const STATES: &[CapabilityState] = &[
    CapabilityState::Discovered,
    CapabilityState::Validated,
    CapabilityState::Migrated,
    CapabilityState::Registered,
    CapabilityState::Starting,
    CapabilityState::Ready,
    CapabilityState::Degraded,
    CapabilityState::Failed,
    CapabilityState::Stopped,
];

/// The scrape endpoint: the token, or a credential admitted for `metrics:read`.
pub(crate) fn endpoint(
    metrics: Arc<Metrics>,
    token: Option<String>,
    authenticator: Arc<Authenticator>,
    protect: Protect,
) -> BoxEndpoint<'static> {
    let token = token.filter(|t| !t.is_empty());
    poem::endpoint::make(move |req: Request| {
        let metrics = metrics.clone();
        let token = token.clone();
        let authenticator = authenticator.clone();
        let protect = protect.clone();
        async move {
            match req.header(METRICS_TOKEN_HEADER) {
                Some(presented) => {
                    let valid = token.as_ref().is_some_and(|t| {
                        bool::from(t.as_bytes().ct_eq(presented.trim().as_bytes()))
                    });
                    if !valid {
                        return Err(ApiError::new(
                            ErrorCode::AuthenticationRequired,
                            "the metrics token is not valid",
                        )
                        .into());
                    }
                }
                None => {
                    let credential = authenticator.authenticate(&req).await?;
                    protect.admit(&credential).await?;
                }
            }
            Ok::<_, poem::Error>(
                Response::builder()
                    .content_type(CONTENT_TYPE)
                    .header("cache-control", "no-store")
                    .body(metrics.render()),
            )
        }
    })
    .boxed()
}

/// The access rule of the scrape endpoint for credentials.
pub(crate) fn access() -> Access {
    Access::Admin {
        permission: Some(METRICS_PERMISSION),
    }
}
