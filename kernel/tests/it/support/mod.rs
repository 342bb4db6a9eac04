//! Test capabilities and registrations for the kernel's tests. They are built at run time and
//! handed to the kernel explicitly; none is submitted through inventory, so nothing here can
//! reach a shipped binary.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plystra_contracts::manifest::test_manifests::RawManifest;
use plystra_contracts::registration::{BundleDeclaration, Registration, RouteApi, RouteSet};
use plystra_contracts::{
    ApiError, Capability, CapabilityError, CapabilityKind, Envelope, Events, Health, Migrations,
    Provides, Requires, RouteDecl, ServiceError, ServiceRegistry, Stability,
};
use plystra_kernel::{CapabilitySource, KernelConfig};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

/// The bootstrap key the HTTP tests use.
pub const KEY: &str = "test-bootstrap-key-0123456789abcdef";

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

fn leak_slice<T>(value: Vec<T>) -> &'static [T] {
    Box::leak(value.into_boxed_slice())
}

/// What a test capability does in its hooks.
pub const OK: u8 = 0;
/// `start` fails.
pub const FAIL_START: u8 = 1;
/// `register` fails.
pub const FAIL_REGISTER: u8 = 2;
/// Healthy, but reports degraded.
pub const DEGRADED: u8 = 3;

/// Names of the services test capability `N` provides.
pub const SERVICE_NAMES: [&str; 8] = [
    "test.s0", "test.s1", "test.s2", "test.s3", "test.s4", "test.s5", "test.s6", "test.s7",
];

/// Notifies its waiters when a request to `/test/slow` reaches the handler (the shutdown test
/// waits for it; no permit is stored, so another test's slow request is never taken for it).
pub static SLOW_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// The order in which test capabilities were stopped (only the shutdown test reads it).
pub static STOPPED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// A service type distinct for each `N`.
pub struct Marker<const N: usize>;

/// A test capability: provides `SERVICE_NAMES[N]`, behaves according to `MODE`.
pub struct TestCap<const N: usize, const MODE: u8>;

#[async_trait::async_trait]
impl<const N: usize, const MODE: u8> Capability for TestCap<N, MODE> {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        if MODE == FAIL_REGISTER {
            return Err(CapabilityError::Other(
                "register refused on purpose".to_owned(),
            ));
        }
        services.provide::<Marker<N>>(SERVICE_NAMES[N], Arc::new(Marker::<N>))?;
        Ok(())
    }

    async fn start(&self, _: &ServiceRegistry) -> Result<(), CapabilityError> {
        if MODE == FAIL_START {
            return Err(CapabilityError::Other(
                "start refused on purpose".to_owned(),
            ));
        }
        Ok(())
    }

    async fn health(&self) -> Health {
        if MODE == DEGRADED {
            Health::Degraded("running on one leg".to_owned())
        } else {
            Health::Healthy
        }
    }

    async fn stop(&self) -> Result<(), CapabilityError> {
        STOPPED.lock().unwrap().push(SERVICE_NAMES[N]);
        Ok(())
    }
}

/// The constructor of `TestCap<N, MODE>`.
pub fn construct<const N: usize, const MODE: u8>() -> Box<dyn Capability> {
    Box::new(TestCap::<N, MODE>)
}

/// A manifest-and-registration builder. Starts from a valid business plugin.
#[derive(Clone)]
pub struct Spec {
    pub raw: RawManifest,
    pub routes: RouteSet,
    pub construct: fn() -> Box<dyn Capability>,
    pub package: &'static str,
}

impl Spec {
    /// A valid business plugin `id` that provides `SERVICE_NAMES[n]`, with capability `N`.
    pub fn plugin<const N: usize>(id: &'static str) -> Self {
        Self {
            raw: RawManifest {
                id,
                kind: CapabilityKind::BusinessPlugin,
                name: "Test plugin",
                version: "0.1.0",
                requires: Requires {
                    kernel: "^0.0.1",
                    capabilities: &[],
                },
                provides: Provides {
                    services: std::slice::from_ref(&SERVICE_NAMES[N]),
                    routes: &[],
                    events: Events::NONE,
                    migrations: Migrations { namespace: None },
                    settings: &[],
                },
                privileged: false,
                required: false,
                stability: Stability::Experimental,
            },
            routes: RouteSet::EMPTY,
            construct: construct::<N, OK>,
            package: "test-plugin",
        }
    }

    /// A valid system capability `id` (one of the five) registered by an allowlisted package.
    pub fn system<const N: usize>(id: &'static str, namespace: &'static str) -> Self {
        let mut spec = Self::plugin::<N>(id);
        spec.raw.kind = CapabilityKind::SystemCapability;
        spec.raw.name = "Test system capability";
        spec.raw.version = "0.0.1";
        spec.raw.privileged = true;
        spec.raw.required = true;
        spec.raw.provides.migrations = Migrations {
            namespace: Some(namespace),
        };
        spec.package = "plystra-system-audit";
        spec
    }

    pub fn deps(mut self, deps: &[&'static str]) -> Self {
        self.raw.requires.capabilities = leak_slice(deps.to_vec());
        self
    }

    /// Serves `A` and declares the operations `declared` (by operationId).
    pub fn routes<A: RouteApi>(mut self, declared: &[&'static str]) -> Self {
        self.routes = RouteSet::of::<A>();
        self.raw.provides.routes = leak_slice(
            declared
                .iter()
                .map(|operation| RouteDecl::operation(operation))
                .collect(),
        );
        self
    }

    pub fn mode<const N: usize, const MODE: u8>(mut self) -> Self {
        self.construct = construct::<N, MODE>;
        self
    }

    pub fn leak(self) -> &'static Registration {
        leak(Registration {
            manifest: leak(self.raw.build()),
            construct: self.construct,
            routes: self.routes,
            package: self.package,
        })
    }
}

/// A source with these registrations and, when given, a bundle expecting `bundle` IDs.
pub fn source(specs: Vec<Spec>, bundle: &[&'static str]) -> CapabilitySource {
    let bundles = if bundle.is_empty() {
        Vec::new()
    } else {
        vec![leak(BundleDeclaration {
            package: "test-bundle",
            capability_ids: leak_slice(bundle.to_vec()),
        })]
    };
    CapabilitySource::new(specs.into_iter().map(Spec::leak).collect(), bundles)
}

/// A configuration with the test bootstrap key.
pub fn config() -> KernelConfig {
    KernelConfig {
        bootstrap_api_key: Some(KEY.to_owned()),
        max_body_bytes: 1024,
        ..KernelConfig::default()
    }
}

/// A body for the echo operation.
#[derive(Debug, Clone, Object)]
pub struct EchoBody {
    /// A name.
    pub name: String,
    /// A count.
    pub count: u32,
}

/// Test routes: ping, echo, panic, slow.
pub struct PingApi;

impl RouteApi for PingApi {
    fn build(_: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self)
    }
}

#[OpenApi]
impl PingApi {
    /// Ping.
    #[oai(path = "/test/ping", method = "get", operation_id = "testPing")]
    async fn ping(&self) -> Result<Json<Envelope<String>>, ApiError> {
        Ok(Json(Envelope::new("pong".to_owned())))
    }

    /// Echo.
    #[oai(path = "/test/echo", method = "post", operation_id = "testEcho")]
    async fn echo(&self, body: Json<EchoBody>) -> Result<Json<Envelope<EchoBody>>, ApiError> {
        Ok(Json(Envelope::new(body.0)))
    }

    /// Panics.
    #[oai(path = "/test/panic", method = "get", operation_id = "testPanic")]
    async fn panic(&self) -> Result<Json<Envelope<String>>, ApiError> {
        panic!("secret internals: password=hunter2")
    }

    /// Slow: signals [`SLOW_STARTED`], then takes 400 ms.
    #[oai(path = "/test/slow", method = "get", operation_id = "testSlow")]
    async fn slow(&self) -> Result<Json<Envelope<String>>, ApiError> {
        SLOW_STARTED.notify_waiters();
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(Json(Envelope::new("done".to_owned())))
    }
}

/// The operations `PingApi` serves, as a manifest declares them.
pub const PING_ROUTES: &[&str] = &["testPing", "testEcho", "testPanic", "testSlow"];

/// GET on a path another set serves with POST.
pub struct SharedGetApi;
impl RouteApi for SharedGetApi {
    fn build(_: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self)
    }
}
#[OpenApi]
impl SharedGetApi {
    /// Read the shared thing.
    #[oai(
        path = "/test/shared/:thing_id",
        method = "get",
        operation_id = "getShared"
    )]
    async fn get(
        &self,
        thing_id: poem_openapi::param::Path<String>,
    ) -> Result<Json<Envelope<String>>, ApiError> {
        Ok(Json(Envelope::new(format!("get {}", thing_id.0))))
    }
}

/// POST on the shared path.
pub struct SharedPostApi;
impl RouteApi for SharedPostApi {
    fn build(_: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self)
    }
}
#[OpenApi]
impl SharedPostApi {
    /// Write the shared thing.
    #[oai(
        path = "/test/shared/:thing_id",
        method = "post",
        operation_id = "postShared"
    )]
    async fn post(
        &self,
        thing_id: poem_openapi::param::Path<String>,
    ) -> Result<Json<Envelope<String>>, ApiError> {
        Ok(Json(Envelope::new(format!("post {}", thing_id.0))))
    }
}

/// Claims GET /test/ping again, under another operationId.
pub struct CollidingRouteApi;
impl RouteApi for CollidingRouteApi {
    fn build(_: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self)
    }
}
#[OpenApi]
impl CollidingRouteApi {
    /// Same route as ping.
    #[oai(path = "/test/ping", method = "get", operation_id = "otherPing")]
    async fn ping(&self) -> Result<Json<Envelope<String>>, ApiError> {
        Ok(Json(Envelope::new("again".to_owned())))
    }
}

/// Claims operationId testPing on another path.
pub struct CollidingOperationApi;
impl RouteApi for CollidingOperationApi {
    fn build(_: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self)
    }
}
#[OpenApi]
impl CollidingOperationApi {
    /// Same operationId as ping.
    #[oai(path = "/test/other", method = "get", operation_id = "testPing")]
    async fn other(&self) -> Result<Json<Envelope<String>>, ApiError> {
        Ok(Json(Envelope::new("other".to_owned())))
    }
}

pub mod schema_a {
    //! One definition of schema `Thing`.
    use super::*;
    /// A thing.
    #[derive(Debug, Clone, Object)]
    #[oai(rename = "Thing")]
    pub struct Thing {
        /// Its name.
        pub name: String,
    }
    /// Serves a Thing.
    pub struct ThingApi;
    impl RouteApi for ThingApi {
        fn build(_: &ServiceRegistry) -> Result<Self, ServiceError> {
            Ok(Self)
        }
    }
    #[OpenApi]
    impl ThingApi {
        /// A thing.
        #[oai(path = "/test/thing-a", method = "get", operation_id = "thingA")]
        async fn get(&self) -> Result<Json<Thing>, ApiError> {
            Ok(Json(Thing {
                name: "a".to_owned(),
            }))
        }
    }
}

pub mod schema_b {
    //! Another, different definition of schema `Thing`.
    use super::*;
    /// A different thing.
    #[derive(Debug, Clone, Object)]
    #[oai(rename = "Thing")]
    pub struct Thing {
        /// Its size.
        pub size: u32,
    }
    /// Serves the other Thing.
    pub struct ThingApi;
    impl RouteApi for ThingApi {
        fn build(_: &ServiceRegistry) -> Result<Self, ServiceError> {
            Ok(Self)
        }
    }
    #[OpenApi]
    impl ThingApi {
        /// The other thing.
        #[oai(path = "/test/thing-b", method = "get", operation_id = "thingB")]
        async fn get(&self) -> Result<Json<Thing>, ApiError> {
            Ok(Json(Thing { size: 1 }))
        }
    }
}

/// A session verifier for the access tests: `ply_at_alice` is Alice's session.
pub struct TestSessions;

#[async_trait::async_trait]
impl plystra_contracts::services::SessionVerifier for TestSessions {
    async fn verify(
        &self,
        token: &str,
    ) -> Result<
        Option<plystra_contracts::services::Credential>,
        plystra_contracts::services::ResolveError,
    > {
        Ok(
            (token == "ply_at_alice").then(|| plystra_contracts::services::Credential::Session {
                user_id: "user_alice".to_owned(),
                session_id: "sess_1".to_owned(),
            }),
        )
    }
}

/// An admin authorizer for the access tests: every session holds `test:read`, nothing else.
pub struct TestAdmin;

#[async_trait::async_trait]
impl plystra_contracts::services::AdminAuthorizer for TestAdmin {
    async fn authorize(
        &self,
        credential: &plystra_contracts::services::Credential,
        permission: &str,
    ) -> Result<bool, plystra_contracts::services::ResolveError> {
        Ok(matches!(
            credential,
            plystra_contracts::services::Credential::Session { .. }
        ) && permission == "test:read")
    }
}

/// Provides `TestSessions` (and `TestAdmin` when `WITH_ADMIN`).
pub struct AccessCap<const WITH_ADMIN: bool>;

impl<const WITH_ADMIN: bool> Capability for AccessCap<WITH_ADMIN> {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        services.provide::<dyn plystra_contracts::services::SessionVerifier>(
            "test.sessions",
            Arc::new(TestSessions),
        )?;
        if WITH_ADMIN {
            services.provide::<dyn plystra_contracts::services::AdminAuthorizer>(
                "test.admin",
                Arc::new(TestAdmin),
            )?;
        }
        Ok(())
    }
}

/// The constructor of `AccessCap`.
pub fn construct_access<const WITH_ADMIN: bool>() -> Box<dyn Capability> {
    Box::new(AccessCap::<WITH_ADMIN>)
}
