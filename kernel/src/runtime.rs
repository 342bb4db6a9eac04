//! Boot and lifecycle: discovery, validation, ordering, service registration, route assembly,
//! start, readiness and stop, with every capability's state visible at every step.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use plystra_contracts::events::{EVENT_DESCRIPTORS, EventPublisher};
use plystra_contracts::metrics::Metrics;
use plystra_contracts::registration::{self, BundleDeclaration, Registration, RouteTable};
use plystra_contracts::services::RuntimeInfo;
use plystra_contracts::storage::Database;
use plystra_contracts::{Capability, CapabilityState, Health, ServiceRegistry};
use serde_json::json;

use crate::config::KernelConfig;
use crate::events::EventBus;
use crate::graph::{GraphError, boot_order};
use crate::http::assembly::{self, OwnedRouteSet};
use crate::validation::{ManifestError, validate};

/// The capabilities to boot: the linked ones, or an explicit list in tests.
#[derive(Debug, Clone)]
pub struct CapabilitySource {
    registrations: Vec<&'static Registration>,
    bundles: Vec<&'static BundleDeclaration>,
}

impl CapabilitySource {
    /// Every registration and bundle declaration linked into this binary, sorted by ID.
    pub fn linked() -> Self {
        Self::new(
            registration::linked().collect(),
            registration::linked_bundles().collect(),
        )
    }

    /// An explicit set, for tests and tools.
    pub fn new(
        mut registrations: Vec<&'static Registration>,
        mut bundles: Vec<&'static BundleDeclaration>,
    ) -> Self {
        registrations.sort_by_key(|r| (r.manifest.id(), r.package));
        bundles.sort_by_key(|b| b.package);
        Self {
            registrations,
            bundles,
        }
    }

    /// The registrations, sorted by ID.
    pub fn registrations(&self) -> &[&'static Registration] {
        &self.registrations
    }
}

/// Why the boot stopped. Static problems stop the boot; lifecycle failures do not (the runtime
/// serves health, ready and version, and says why it is not ready).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Manifests broke rules.
    #[error("invalid capability manifests:\n  {}", join(.0))]
    Manifest(Vec<ManifestError>),
    /// The dependency graph cannot be ordered.
    #[error("unresolvable capability graph:\n  {}", join(.0))]
    Graph(Vec<GraphError>),
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// A capability's state and, when failed or degraded, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCell {
    /// The lifecycle state.
    pub state: CapabilityState,
    /// Why it is failed or degraded.
    pub reason: Option<String>,
}

/// One capability in the runtime.
pub struct CapabilityEntry {
    /// What it registered.
    pub registration: &'static Registration,
    instance: Box<dyn Capability>,
    state: RwLock<StateCell>,
}

impl std::fmt::Debug for CapabilityEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapabilityEntry")
            .field("id", &self.registration.manifest.id())
            .field("state", &self.state())
            .finish()
    }
}

impl CapabilityEntry {
    /// The current state.
    pub fn state(&self) -> StateCell {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, state: CapabilityState, reason: Option<String>) {
        let id = self.registration.manifest.id();
        match &reason {
            Some(reason) => {
                tracing::warn!(capability = id, state = state.as_str(), %reason, "capability state")
            }
            None => tracing::info!(capability = id, state = state.as_str(), "capability state"),
        }
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = StateCell { state, reason };
    }

    fn is(&self, state: CapabilityState) -> bool {
        self.state().state == state
    }
}

/// Something besides the capabilities that must hold for the runtime to be ready (the database,
/// the schema). The storage layer adds these.
#[async_trait::async_trait]
pub trait ReadinessProbe: Send + Sync {
    /// `None` when fine, otherwise why not.
    async fn problem(&self) -> Option<String>;

    /// What the probe checks, for the problem reported when it does not answer in time.
    fn subject(&self) -> &'static str {
        "a readiness probe"
    }
}

/// How long readiness waits for one capability's health or one probe. They run concurrently, so
/// `/ready` answers within about this long even when the database does not answer at all.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The booted runtime: capabilities in boot order, their states, services and configuration.
pub struct Runtime {
    config: KernelConfig,
    entries: Vec<CapabilityEntry>,
    events: Arc<EventBus>,
    probes: RwLock<Vec<Arc<dyn ReadinessProbe>>>,
    schema_version: RwLock<(String, String)>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

/// The outcome of a readiness evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Every problem found; empty means ready.
    pub problems: Vec<String>,
    /// Each capability's state.
    pub states: Vec<(&'static str, CapabilityState)>,
}

impl Runtime {
    /// The configuration it booted with.
    pub fn config(&self) -> &KernelConfig {
        &self.config
    }

    /// The capabilities, in boot order.
    pub fn entries(&self) -> &[CapabilityEntry] {
        &self.entries
    }

    /// The event bus.
    pub fn events(&self) -> &Arc<EventBus> {
        &self.events
    }

    /// The metrics registry (`kernel.metrics`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Adds a readiness condition.
    pub fn add_probe(&self, probe: Arc<dyn ReadinessProbe>) {
        self.probes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(probe);
    }

    /// Records the schema version found in the database and the one the binary expects.
    pub fn set_schema_versions(&self, current: String, expected: String) {
        *self
            .schema_version
            .write()
            .unwrap_or_else(|p| p.into_inner()) = (current, expected);
    }

    /// `(schema_version, expected_schema_version)`.
    pub fn schema_versions(&self) -> (String, String) {
        self.schema_version
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks every started capability for its health and every probe, concurrently and each
    /// bounded by [`PROBE_TIMEOUT`], and says what is wrong.
    pub async fn readiness(&self) -> Readiness {
        let no_answer = format!("no answer within {} s", PROBE_TIMEOUT.as_secs());
        futures_util::future::join_all(self.entries.iter().map(|entry| async {
            let cell = entry.state();
            if matches!(
                cell.state,
                CapabilityState::Ready | CapabilityState::Degraded
            ) {
                let health = tokio::time::timeout(PROBE_TIMEOUT, entry.instance.health())
                    .await
                    .unwrap_or_else(|_| Health::Unhealthy(format!("health check: {no_answer}")));
                match health {
                    Health::Healthy => entry.set(CapabilityState::Ready, None),
                    Health::Degraded(reason) => entry.set(CapabilityState::Degraded, Some(reason)),
                    Health::Unhealthy(reason) => entry.set(CapabilityState::Degraded, Some(reason)),
                }
            }
        }))
        .await;
        let mut problems = Vec::new();
        for entry in &self.entries {
            let cell = entry.state();
            if entry.registration.manifest.required() && cell.state != CapabilityState::Ready {
                problems.push(format!(
                    "capability {} is {}{}",
                    entry.registration.manifest.id(),
                    cell.state.as_str(),
                    cell.reason.map(|r| format!(": {r}")).unwrap_or_default()
                ));
            }
        }
        let probes: Vec<_> = self
            .probes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let found = futures_util::future::join_all(probes.iter().map(|probe| async {
            tokio::time::timeout(PROBE_TIMEOUT, probe.problem())
                .await
                .unwrap_or_else(|_| Some(format!("{}: {no_answer}", probe.subject())))
        }))
        .await;
        problems.extend(found.into_iter().flatten());
        let states = self
            .entries
            .iter()
            .map(|e| (e.registration.manifest.id(), e.state().state))
            .collect();
        Readiness { problems, states }
    }

    /// Stops every started capability in reverse boot order.
    pub async fn stop(&self) {
        for entry in self.entries.iter().rev() {
            let cell = entry.state();
            if matches!(
                cell.state,
                CapabilityState::Ready | CapabilityState::Degraded | CapabilityState::Starting
            ) {
                match entry.instance.stop().await {
                    Ok(()) => entry.set(CapabilityState::Stopped, None),
                    Err(e) => {
                        entry.set(CapabilityState::Stopped, Some(format!("stop failed: {e}")))
                    }
                }
            }
        }
    }
}

impl plystra_contracts::services::CapabilityStates for Runtime {
    fn states(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|e| {
                (
                    e.registration.manifest.id().to_owned(),
                    e.state().state.as_str().to_owned(),
                )
            })
            .collect()
    }
}

/// The kernel's configuration, offered to capabilities as `kernel.runtime`, with the settings
/// the kernel and the linked capabilities declare.
struct RuntimeSettings {
    config: KernelConfig,
    declared: Vec<(&'static str, plystra_contracts::Setting)>,
}

impl RuntimeInfo for RuntimeSettings {
    fn production(&self) -> bool {
        self.config.environment == crate::config::Environment::Production
    }
    fn setting(&self, name: &str) -> Option<String> {
        // A setting nobody declares is missing from `plystrad --help` and the README: a
        // programming error, which every test that boots the capability reading it catches.
        debug_assert!(
            crate::settings::is_declared(&self.declared, name),
            "{name} is read but not declared: add it to the reading capability's \
             `Provides::settings` (or the kernel's `settings::KERNEL`)"
        );
        self.config.settings.get(name).cloned()
    }
}

/// A booted runtime and the HTTP application that serves it.
pub struct Booted {
    /// The runtime.
    pub runtime: Arc<Runtime>,
    /// The application: every route set behind the kernel's request pipeline.
    pub app: poem::endpoint::BoxEndpoint<'static>,
}

impl std::fmt::Debug for Booted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booted")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

/// The static half of the boot: discovery, validation, graph and route metadata. It needs no
/// database and runs no hook, so `plystrad openapi` and `plystrad capabilities` use it offline.
pub fn resolve(source: &CapabilitySource) -> Result<Vec<&'static Registration>, BootError> {
    tracing::info!(
        step = "discover",
        count = source.registrations.len(),
        "discovered capabilities"
    );
    let event_names: BTreeSet<&'static str> = EVENT_DESCRIPTORS.iter().map(|d| d.name).collect();
    let kernel_version = semver::Version::parse(plystra_contracts::KERNEL_VERSION)
        .expect("the kernel's own version is semver");
    let mut errors = validate(
        &source.registrations,
        &source.bundles,
        &event_names,
        &kernel_version,
    );
    errors.extend(assembly::check_route_sets(&source.registrations));
    if !errors.is_empty() {
        return Err(BootError::Manifest(errors));
    }
    tracing::info!(step = "validate", "manifests valid");
    let order = boot_order(&source.registrations).map_err(BootError::Graph)?;
    tracing::info!(
        step = "resolve",
        order = %order.iter().map(|r| r.manifest.id()).collect::<Vec<_>>().join(" -> "),
        "dependency graph resolved"
    );
    Ok(order)
}

/// Boots: resolve, then register migrations, services and routes, start in dependency order, and
/// build the application. Lifecycle failures leave the runtime serving but unready. Each step is
/// one function below, in the order ARCHITECTURE.md's boot sequence lists them.
pub async fn boot(config: KernelConfig, source: CapabilitySource) -> Result<Booted, BootError> {
    tracing::info!(
        step = "config",
        environment = config.environment.as_str(),
        "configuration loaded"
    );
    let events = Arc::new(EventBus::new(1024));
    tracing::info!(step = "events", "event substrate initialised");
    // The database is opened while the manifests are validated (a few ms of CPU on this
    // thread; PostgreSQL starts a process for the connection meanwhile). Nothing touches it
    // before they are found valid.
    let connecting = config
        .database
        .clone()
        .map(|db| tokio::spawn(async move { crate::storage::connect(&db).await }));
    let order = resolve(&source)?;
    let runtime = new_runtime(config, &order, events.clone());
    let database = open_database(&runtime, &order, connecting).await;
    register_migrations(&runtime, &events);
    crate::http::metrics::register_kernel_gauges(&runtime, database.as_ref());
    let mut services = kernel_services(&runtime, &events);
    let follower = database.map(|database| offer_database(&runtime, &mut services, database));
    register_capabilities(&runtime, &events, &mut services).await;
    let services = Arc::new(services);
    let (route_sets, tables) = build_routes(&runtime, &services);
    // The application needs the services and the routes, not the loaded facts: it is assembled
    // (a few milliseconds of CPU) on another thread while the feed's consumers wait on the
    // database. Its API documents are generated later, once the load is done: they take longer
    // than the rest of an empty start, and would take the load's CPU.
    let assembling = {
        let (runtime, services) = (runtime.clone(), services.clone());
        tokio::task::spawn_blocking(move || {
            assembly::application(runtime, &services, &route_sets, tables)
        })
    };
    // The change feed: every consumer registered above loads, then follows it.
    if let Some(follower) = &follower {
        follower.start().await;
        tracing::info!(step = "feed", problem = ?follower.problem(), "following the change feed");
    }
    start_capabilities(&runtime, &events, &services).await;
    announce_readiness(&runtime, &events).await;
    let (app, documents) = match assembling.await {
        Ok(assembled) => assembled,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    documents.generate_in_background();
    Ok(Booted { runtime, app })
}

/// The runtime over the resolved order, every capability constructed and `validated`.
fn new_runtime(
    config: KernelConfig,
    order: &[&'static Registration],
    events: Arc<EventBus>,
) -> Arc<Runtime> {
    Arc::new(Runtime {
        entries: order
            .iter()
            .map(|reg| CapabilityEntry {
                registration: reg,
                instance: (reg.construct)(),
                state: RwLock::new(StateCell {
                    state: CapabilityState::Validated,
                    reason: None,
                }),
            })
            .collect(),
        config,
        events,
        probes: RwLock::new(Vec::new()),
        schema_version: RwLock::new(("none".to_owned(), "none".to_owned())),
        metrics: Arc::new(Metrics::new()),
    })
}

/// Step 1's database (`storage/boot.rs`): opened, migrated in development, and watched by a
/// readiness probe. `None` without a configured database or when it cannot be reached.
async fn open_database(
    runtime: &Arc<Runtime>,
    order: &[&'static Registration],
    connecting: Option<tokio::task::JoinHandle<Result<Database, crate::storage::ConnectError>>>,
) -> Option<Database> {
    let (db_config, connecting) = runtime.config.database.as_ref().zip(connecting)?;
    let connected = match connecting.await {
        Ok(connected) => connected,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let namespaces: Vec<&str> = std::iter::once(plystra_contracts::feed::NAMESPACE)
        .chain(
            order
                .iter()
                .filter_map(|r| r.manifest.provides().migrations.namespace),
        )
        .collect();
    let prepared = crate::storage::boot::prepare(
        db_config,
        connected,
        runtime.config.environment,
        &namespaces,
    )
    .await;
    match &prepared.state {
        Some(state) => drop(crate::storage::boot::record(state, runtime)),
        None => drop(prepared.probe.refresh(runtime).await),
    }
    runtime.add_probe(Arc::new(crate::storage::boot::BoundProbe {
        probe: prepared.probe,
        runtime: Arc::downgrade(runtime),
    }));
    prepared.database
}

/// Step 6: each capability's migration namespace is registered; state `migrated`.
fn register_migrations(runtime: &Runtime, events: &EventBus) {
    for entry in &runtime.entries {
        let ns = entry.registration.manifest.provides().migrations.namespace;
        if let Some(namespace) = ns {
            events.kernel(
                "migration.registered",
                json!({"capability": entry.registration.manifest.id(), "namespace": namespace}),
            );
        }
        entry.set(CapabilityState::Migrated, None);
    }
}

/// Step 7, first half: the kernel's own services, provided before any capability's.
fn kernel_services(runtime: &Arc<Runtime>, events: &Arc<EventBus>) -> ServiceRegistry {
    let mut services = ServiceRegistry::new();
    services
        .provide::<dyn EventPublisher>("kernel.events", events.clone())
        .expect("kernel services are provided first");
    services
        .provide::<Metrics>("kernel.metrics", runtime.metrics.clone())
        .expect("kernel services are provided first");
    services
        .provide::<dyn RuntimeInfo>(
            "kernel.runtime",
            Arc::new(RuntimeSettings {
                config: runtime.config.clone(),
                declared: crate::settings::declared(runtime.entries.iter().map(|e| e.registration)),
            }),
        )
        .expect("kernel services are provided first");
    services
        .provide::<Runtime>("kernel.state", runtime.clone())
        .expect("kernel services are provided first");
    services
        .provide::<dyn plystra_contracts::services::CapabilityStates>(
            "kernel.capabilities",
            runtime.clone(),
        )
        .expect("kernel services are provided first");
    services
}

/// The database as `kernel.database`, and the change feed's follower over it as the facts feed
/// (its readiness probe registered); the follower starts once every consumer has registered.
fn offer_database(
    runtime: &Runtime,
    services: &mut ServiceRegistry,
    database: Database,
) -> Arc<crate::feed::Follower> {
    let settings = crate::feed::FeedSettings::from_settings(&runtime.config.settings)
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "a change feed setting is invalid; using the defaults");
            crate::feed::FeedSettings::default()
        });
    let follower = crate::feed::Follower::new(database.clone(), settings);
    services
        .provide::<Database>("kernel.database", Arc::new(database))
        .expect("kernel services are provided first");
    services
        .provide::<dyn plystra_contracts::feed::FactsFeed>(
            plystra_contracts::feed::SERVICE,
            follower.clone(),
        )
        .expect("kernel services are provided first");
    runtime.add_probe(Arc::new(crate::feed::FeedProbe(follower.clone())));
    follower
}

/// Step 7, second half: each capability's `init` and `register` in order; state `registered`,
/// or `failed` (with the event) when a hook fails, a dependency failed, or the services it
/// provided are not the ones its manifest declares.
async fn register_capabilities(
    runtime: &Runtime,
    events: &EventBus,
    services: &mut ServiceRegistry,
) {
    for entry in &runtime.entries {
        let id = entry.registration.manifest.id();
        if let Some(dep) = failed_dependency(runtime, entry) {
            entry.set(
                CapabilityState::Failed,
                Some(format!("dependency {dep} is not available")),
            );
            continue;
        }
        match register_one(entry, services).await {
            Ok(()) => {
                entry.set(CapabilityState::Registered, None);
                events.kernel("capability.loaded", json!({"capability": id}));
            }
            Err(reason) => {
                events.kernel(
                    "capability.failed",
                    json!({"capability": id, "reason": reason}),
                );
                entry.set(CapabilityState::Failed, Some(reason));
            }
        }
    }
}

/// One capability's `init` and `register`, and the check that it provided exactly the services
/// its manifest declares.
async fn register_one(
    entry: &CapabilityEntry,
    services: &mut ServiceRegistry,
) -> Result<(), String> {
    let before: BTreeSet<&'static str> = services.names().collect();
    match entry.instance.init(services).await {
        Ok(()) => entry
            .instance
            .register(services)
            .map_err(|e| format!("register: {e}"))?,
        Err(e) => return Err(format!("init: {e}")),
    }
    let added: BTreeSet<&'static str> = services.names().filter(|n| !before.contains(n)).collect();
    let declared: BTreeSet<&'static str> = entry
        .registration
        .manifest
        .provides()
        .services
        .iter()
        .copied()
        .collect();
    if added == declared {
        Ok(())
    } else {
        Err(format!(
            "declared services {declared:?} but provided {added:?}"
        ))
    }
}

/// Step 8: each route set built (the kernel's first); a capability that is not registered, or
/// whose routes fail to build, serves 503 `NOT_READY` on its operations instead.
fn build_routes(
    runtime: &Runtime,
    services: &Arc<ServiceRegistry>,
) -> (Vec<OwnedRouteSet>, Vec<RouteTable>) {
    let build = |set: &OwnedRouteSet| {
        let mut table = RouteTable::new();
        (set.routes.add_routes)(services, &mut table).map(|()| table)
    };
    let kernel_set = OwnedRouteSet::kernel();
    let mut tables =
        vec![build(&kernel_set).expect("the kernel's routes need only kernel services")];
    let mut route_sets = vec![kernel_set];
    for entry in &runtime.entries {
        let set = OwnedRouteSet::of(entry.registration);
        let table = if entry.is(CapabilityState::Registered) {
            build(&set).unwrap_or_else(|e| {
                entry.set(CapabilityState::Failed, Some(format!("routes: {e}")));
                assembly::unavailable_table(&set)
            })
        } else {
            assembly::unavailable_table(&set)
        };
        route_sets.push(set);
        tables.push(table);
    }
    tracing::info!(
        step = "routes",
        sets = route_sets.len(),
        "route metadata registered"
    );
    (route_sets, tables)
}

/// Step 9: `start` in dependency order, then `health`; states `starting` → `ready`/`degraded`/
/// `failed`. A dependent of a failed capability does not start.
async fn start_capabilities(runtime: &Runtime, events: &EventBus, services: &ServiceRegistry) {
    for entry in &runtime.entries {
        if !entry.is(CapabilityState::Registered) {
            continue;
        }
        if let Some(dep) = failed_dependency(runtime, entry) {
            entry.set(
                CapabilityState::Failed,
                Some(format!("dependency {dep} is not available")),
            );
            continue;
        }
        start_one(entry, events, services).await;
    }
}

/// One capability's `start` and `health`.
async fn start_one(entry: &CapabilityEntry, events: &EventBus, services: &ServiceRegistry) {
    let id = entry.registration.manifest.id();
    entry.set(CapabilityState::Starting, None);
    match entry.instance.start(services).await {
        Err(e) => {
            let reason = format!("start: {e}");
            events.kernel(
                "capability.failed",
                json!({"capability": id, "reason": reason}),
            );
            entry.set(CapabilityState::Failed, Some(reason));
        }
        Ok(()) => match entry.instance.health().await {
            Health::Healthy => {
                entry.set(CapabilityState::Ready, None);
                events.kernel("capability.ready", json!({"capability": id}));
            }
            Health::Degraded(reason) | Health::Unhealthy(reason) => {
                entry.set(CapabilityState::Degraded, Some(reason));
            }
        },
    }
}

/// Step 10: readiness, announced as `kernel.started` and logged.
async fn announce_readiness(runtime: &Runtime, events: &EventBus) {
    let readiness = runtime.readiness().await;
    events.kernel(
        "kernel.started",
        json!({"ready": readiness.problems.is_empty(), "problems": readiness.problems}),
    );
    if readiness.problems.is_empty() {
        tracing::info!(step = "ready", "runtime ready");
    } else {
        tracing::warn!(step = "ready", problems = ?readiness.problems, "runtime not ready");
    }
}

/// A dependency of `entry` that is not registered or started, if any.
fn failed_dependency(runtime: &Runtime, entry: &CapabilityEntry) -> Option<&'static str> {
    entry
        .registration
        .manifest
        .requires()
        .capabilities
        .iter()
        .copied()
        .find(|dep| {
            runtime
                .entries
                .iter()
                .find(|e| e.registration.manifest.id() == *dep)
                .is_none_or(|e| e.is(CapabilityState::Failed))
        })
}
