//! The kernel's own endpoints: health, readiness, version and the capability list.

use std::collections::BTreeMap;
use std::sync::Arc;

use plystra_contracts::registration::RouteApi;
use plystra_contracts::{
    ApiError, CapabilityState, Envelope, ErrorCode, ListEnvelope, Pagination, ServiceError,
    ServiceRegistry,
};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Tags};

use crate::runtime::Runtime;

/// The trace format version that explain and audit traces follow (authorization writes them;
/// plystrad's Finance Reviewer table test holds the two to the same value).
pub const TRACE_VERSION: &str = "1.1";
/// The API version prefix.
pub const API_VERSION: &str = "v1";

#[derive(Tags)]
enum KernelTag {
    /// Health, readiness, version and the linked capabilities.
    System,
}

/// Liveness.
#[derive(Debug, Clone, Object)]
pub struct Health {
    /// Always `ok` while the process serves.
    pub status: String,
}

/// Readiness, when ready.
#[derive(Debug, Clone, Object)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// The highest migration version applied to the database.
    pub schema_version: String,
    /// The highest migration version this binary ships.
    pub expected_schema_version: String,
    /// The trace format version.
    pub trace_version: String,
    /// Each system capability's lifecycle state.
    pub system_capabilities: BTreeMap<String, CapabilityState>,
    /// Each business plugin's lifecycle state.
    pub plugins: BTreeMap<String, CapabilityState>,
}

/// Build facts.
#[derive(Debug, Clone, Object)]
pub struct Build {
    /// The commit the binary was built from.
    pub git_commit: String,
    /// When it was built.
    pub built_at: String,
    /// The compiler that built it.
    pub rustc: String,
}

/// Versions of the running server.
#[derive(Debug, Clone, Object)]
pub struct VersionResponse {
    /// The core version.
    pub core_version: String,
    /// The API version (`v1`).
    pub api_version: String,
    /// The highest migration version applied.
    pub schema_version: String,
    /// The highest migration version this binary ships.
    pub expected_schema_version: String,
    /// The trace format version.
    pub trace_version: String,
    /// Build facts.
    pub build: Build,
}

/// A capability's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CapabilityKindName {
    /// One of the five governance capabilities.
    SystemCapability,
    /// A plugin governed by them.
    BusinessPlugin,
}

/// A route a capability serves.
#[derive(Debug, Clone, Object)]
pub struct CapabilityRoute {
    /// HTTP method.
    pub method: String,
    /// OpenAPI path template.
    pub path: String,
    /// The service that answers it.
    pub service: String,
    /// The operationId.
    pub operation: String,
}

/// Events a capability publishes and subscribes to.
#[derive(Debug, Clone, Object)]
pub struct CapabilityEvents {
    /// Published event names.
    pub publishes: Vec<String>,
    /// Subscribed event names.
    pub subscribes: Vec<String>,
}

/// One linked capability.
#[derive(Debug, Clone, Object)]
pub struct CapabilityInfo {
    /// Stable dotted ID.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Semver version.
    pub version: String,
    /// System capability or business plugin.
    pub kind: CapabilityKindName,
    /// Lifecycle state.
    pub state: CapabilityState,
    /// Why it is failed or degraded.
    pub state_reason: Option<String>,
    /// Part of the privileged governance layer.
    pub privileged: bool,
    /// The runtime is unready without it.
    pub required: bool,
    /// `experimental`, `beta` or `stable`.
    pub stability: String,
    /// Capabilities it needs.
    pub dependencies: Vec<String>,
    /// Services it provides.
    pub services: Vec<String>,
    /// Routes it serves.
    pub routes: Vec<CapabilityRoute>,
    /// Events.
    pub events: CapabilityEvents,
    /// The migration namespace it owns.
    pub migration_namespace: Option<String>,
    /// The crate that registered it.
    pub package: String,
}

impl CapabilityInfo {
    /// Describes a registration in a given state.
    pub fn describe(
        registration: &plystra_contracts::Registration,
        state: CapabilityState,
        state_reason: Option<String>,
    ) -> Self {
        let m = registration.manifest;
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Self {
            id: m.id().to_owned(),
            name: m.name().to_owned(),
            version: m.version().to_owned(),
            kind: match m.kind() {
                plystra_contracts::CapabilityKind::SystemCapability => {
                    CapabilityKindName::SystemCapability
                }
                plystra_contracts::CapabilityKind::BusinessPlugin => {
                    CapabilityKindName::BusinessPlugin
                }
            },
            state,
            state_reason,
            privileged: m.privileged(),
            required: m.required(),
            stability: m.stability().as_str().to_owned(),
            dependencies: owned(m.requires().capabilities),
            services: owned(m.provides().services),
            // The manifest names each operation; its route set says where it is served.
            routes: crate::http::operations::declared(registration)
                .into_iter()
                .map(|r| CapabilityRoute {
                    method: r.method.as_str().to_owned(),
                    path: r.path,
                    service: r.service.to_owned(),
                    operation: r.operation.to_owned(),
                })
                .collect(),
            events: CapabilityEvents {
                publishes: owned(m.provides().events.publishes),
                subscribes: owned(m.provides().events.subscribes),
            },
            migration_namespace: m.provides().migrations.namespace.map(str::to_owned),
            package: registration.package.to_owned(),
        }
    }
}

/// The kernel's route set.
pub struct KernelApi {
    runtime: Arc<Runtime>,
}

impl RouteApi for KernelApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            runtime: services.require::<Runtime>()?,
        })
    }
}

#[OpenApi(tag = "KernelTag::System")]
impl KernelApi {
    /// Liveness: answers while the process serves, without touching the database.
    #[oai(path = "/api/v1/health", method = "get", operation_id = "getHealth")]
    async fn health(&self) -> Result<Json<Envelope<Health>>, ApiError> {
        Ok(Json(Envelope::new(Health {
            status: "ok".to_owned(),
        })))
    }

    /// Readiness: 200 when every required capability, the database and the schema are ready;
    /// otherwise 503 `NOT_READY` with every reason in `details.reasons`.
    #[oai(path = "/api/v1/ready", method = "get", operation_id = "getReadiness")]
    async fn ready(&self) -> Result<Json<Envelope<Ready>>, ApiError> {
        let readiness = self.runtime.readiness().await;
        let (schema_version, expected_schema_version) = self.runtime.schema_versions();
        let mut system = BTreeMap::new();
        let mut plugins = BTreeMap::new();
        for (entry, (id, state)) in self.runtime.entries().iter().zip(readiness.states) {
            if entry.registration.manifest.privileged() {
                system.insert(id.to_owned(), state);
            } else {
                plugins.insert(id.to_owned(), state);
            }
        }
        if !readiness.problems.is_empty() {
            let states = |m: &BTreeMap<String, CapabilityState>| {
                serde_json::Value::Object(
                    m.iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                        .collect(),
                )
            };
            return Err(ApiError::new(
                ErrorCode::NotReady,
                format!("not ready: {}", readiness.problems.join("; ")),
            )
            .with_detail("reasons", readiness.problems)
            .with_detail("system_capabilities", states(&system))
            .with_detail("plugins", states(&plugins)));
        }
        Ok(Json(Envelope::new(Ready {
            status: "ready".to_owned(),
            schema_version,
            expected_schema_version,
            trace_version: TRACE_VERSION.to_owned(),
            system_capabilities: system,
            plugins,
        })))
    }

    /// Versions of the core, the API, the schema and the trace format, and build facts.
    #[oai(path = "/api/v1/version", method = "get", operation_id = "getVersion")]
    async fn version(&self) -> Result<Json<Envelope<VersionResponse>>, ApiError> {
        let (schema_version, expected_schema_version) = self.runtime.schema_versions();
        let build = &self.runtime.config().build;
        Ok(Json(Envelope::new(VersionResponse {
            core_version: plystra_contracts::KERNEL_VERSION.to_owned(),
            api_version: API_VERSION.to_owned(),
            schema_version,
            expected_schema_version,
            trace_version: TRACE_VERSION.to_owned(),
            build: Build {
                git_commit: build.git_commit.clone(),
                built_at: build.built_at.clone(),
                rustc: build.rustc.clone(),
            },
        })))
    }

    /// Every linked capability, in boot order, with its state, services, routes, events and
    /// migration namespace (like Caddy's `list-modules`).
    #[oai(
        path = "/api/v1/capabilities",
        method = "get",
        operation_id = "listCapabilities"
    )]
    async fn capabilities(&self) -> Result<Json<ListEnvelope<CapabilityInfo>>, ApiError> {
        let data: Vec<CapabilityInfo> = self
            .runtime
            .entries()
            .iter()
            .map(|entry| {
                let cell = entry.state();
                CapabilityInfo::describe(entry.registration, cell.state, cell.reason)
            })
            .collect();
        let limit = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Ok(Json(ListEnvelope::new(
            data,
            Pagination::single_page(limit),
        )))
    }
}
