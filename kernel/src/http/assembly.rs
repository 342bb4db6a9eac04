//! Assembly: the aggregator that makes every registered route set one poem-openapi `OpenApi`.
//!
//! `OpenApi::meta` and `OpenApi::register` are associated functions without `self`, so the
//! aggregator reads the route sets from a thread-local that is set only for the duration of the
//! synchronous calls that build the document and the routes. Operations that share a path are
//! merged into one path item (poem-openapi would otherwise write duplicate JSON keys), paths are
//! sorted, and every operation not on [`PUBLIC_OPERATIONS`] carries a security requirement, so
//! the document is byte-stable and protected by default.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use plystra_contracts::registration::{Registration, RouteSet, RouteTable};
use plystra_contracts::{Access, ApiError, ErrorCode, RouteMethod};
use poem::endpoint::{BoxEndpoint, make_sync};
use poem::http::Method;
use poem::{EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;
use poem_openapi::registry::{MetaApi, MetaOperation, MetaPath, MetaSecurityScheme, Registry};

use crate::http::auth::{Authenticator, Protect};
use crate::http::kernel_api::KernelApi;
use crate::http::{metrics, operations, pipeline};
use crate::runtime::{BootError, CapabilitySource, Runtime, resolve};
use crate::validation::ManifestError;

/// The operations anyone may call without a credential. Everything else is protected.
pub const PUBLIC_OPERATIONS: &[(RouteMethod, &str)] = &[
    (RouteMethod::Get, "/api/v1/health"),
    (RouteMethod::Get, "/api/v1/ready"),
    (RouteMethod::Get, "/api/v1/version"),
    (RouteMethod::Post, "/api/v1/auth/login"),
    (RouteMethod::Post, "/api/v1/auth/refresh"),
    (RouteMethod::Post, "/api/v1/auth/logout"),
    (RouteMethod::Post, "/api/v1/auth/register"),
    // AuthZEN's PDP metadata: where a gateway finds the endpoints before it holds a credential.
    (RouteMethod::Get, "/.well-known/authzen-configuration"),
];

/// The security schemes every protected operation accepts.
const SECURITY_SCHEMES: &[&str] = &["ApiKeyAuth", "BearerAuth"];

/// Whether `(method, path)` (an OpenAPI path template) is public.
pub fn is_public(method: &Method, path: &str) -> bool {
    PUBLIC_OPERATIONS
        .iter()
        .any(|(m, p)| m.as_str() == method.as_str() && *p == path)
}

/// A route set and who owns it (`kernel` or a capability ID).
#[derive(Debug, Clone, Copy)]
pub struct OwnedRouteSet {
    /// `kernel` or the capability ID.
    pub owner: &'static str,
    /// The route set.
    pub routes: RouteSet,
}

impl OwnedRouteSet {
    /// The kernel's own endpoints.
    pub fn kernel() -> Self {
        Self {
            owner: "kernel",
            routes: RouteSet::of::<KernelApi>(),
        }
    }

    /// A capability's routes.
    pub fn of(registration: &'static Registration) -> Self {
        Self {
            owner: registration.manifest.id(),
            routes: registration.routes,
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Vec<OwnedRouteSet>>> = const { RefCell::new(None) };
}

/// Runs `f` with `sets` as the aggregator's route sets on this thread.
fn with_sets<R>(sets: &[OwnedRouteSet], f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Vec<OwnedRouteSet>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let previous = CURRENT.with(|c| c.borrow_mut().replace(sets.to_vec()));
    let _restore = Restore(previous);
    f()
}

fn current_sets() -> Vec<OwnedRouteSet> {
    CURRENT
        .with(|c| c.borrow().clone())
        .expect("the aggregator is used only inside with_sets")
}

/// Every route set's operations, as one API: paths merged and sorted, security applied.
fn merged_meta(sets: &[OwnedRouteSet]) -> Vec<MetaApi> {
    let mut paths: BTreeMap<String, Vec<MetaOperation>> = BTreeMap::new();
    for set in sets {
        for api in (set.routes.meta)() {
            for path in api.paths {
                paths.entry(path.path).or_default().extend(path.operations);
            }
        }
    }
    let paths = paths
        .into_iter()
        .map(|(path, mut operations)| {
            operations.sort_by_key(|op| method_rank(&op.method));
            for op in &mut operations {
                crate::http::document::operation_errors(&path, op, is_public(&op.method, &path));
                crate::http::document::parameter_rules(op);
                // An operation that declared its own requirement (a session-only one) keeps it.
                if !is_public(&op.method, &path) && op.security.is_empty() {
                    op.security = SECURITY_SCHEMES
                        .iter()
                        .map(|s| HashMap::from([(*s, Vec::new())]))
                        .collect();
                }
            }
            MetaPath { path, operations }
        })
        .collect();
    vec![MetaApi { paths }]
}

fn method_rank(method: &Method) -> u8 {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        _ => 5,
    }
}

fn register_security(registry: &mut Registry) {
    registry.create_security_scheme(
        "ApiKeyAuth",
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some(
                "An API key (`ply_ak_…`) or the bootstrap key, in the X-Plystra-API-Key header.",
            ),
            name: Some("X-Plystra-API-Key"),
            key_in: Some("header"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        "BearerAuth",
        MetaSecurityScheme {
            ty: "http",
            description: Some(
                "A session access token (`ply_at_…`) or an API key, as `Authorization: Bearer …`.",
            ),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: Some("opaque Plystra token"),
            flows: None,
            openid_connect_url: None,
        },
    );
}

/// The aggregator: implements `OpenApi` over the current route sets; owns the prebuilt tables.
struct LinkedApis {
    tables: Vec<RouteTable>,
}

impl poem_openapi::OpenApi for LinkedApis {
    fn meta() -> Vec<MetaApi> {
        merged_meta(&current_sets())
    }

    fn register(registry: &mut Registry) {
        for set in current_sets() {
            (set.routes.register)(registry);
        }
        register_security(registry);
        crate::http::document::normalize(registry);
    }

    fn add_routes(self, route_table: &mut RouteTable) {
        for table in self.tables {
            for (path, methods) in table {
                route_table.entry(path).or_default().extend(methods);
            }
        }
    }
}

fn service(tables: Vec<RouteTable>) -> OpenApiService<LinkedApis, ()> {
    OpenApiService::new(LinkedApis { tables }, "Plystra Core API", "0.0.1").description(
        "Plystra is a self-hosted governance runtime: identity, a resource registry, \
         explainable authorization and a tamper-evident audit log behind one API. \
         Authenticate with an API key in `X-Plystra-API-Key` or a session token as \
         `Authorization: Bearer …`. Every response carries `request_id`; errors come in the \
         envelope `{error: {code, message, details, request_id}, request_id}`.",
    )
}

/// The document, as JSON, for the linked (or given) capabilities. Needs no database.
pub fn openapi_json(source: &CapabilitySource) -> Result<String, BootError> {
    let sets = document_sets(source)?;
    Ok(crate::http::document::close_objects_json(with_sets(
        &sets,
        || service(Vec::new()).spec(),
    )))
}

/// The document, as YAML.
pub fn openapi_yaml(source: &CapabilitySource) -> Result<String, BootError> {
    let sets = document_sets(source)?;
    Ok(crate::http::document::close_objects_yaml(with_sets(
        &sets,
        || service(Vec::new()).spec_yaml(),
    )))
}

fn document_sets(source: &CapabilitySource) -> Result<Vec<OwnedRouteSet>, BootError> {
    let order = resolve(source)?;
    Ok(std::iter::once(OwnedRouteSet::kernel())
        .chain(order.into_iter().map(OwnedRouteSet::of))
        .collect())
}

/// Builds the application: the merged API with protection on every non-public route, the
/// document at `/openapi.json` and `/openapi.yaml`, Swagger UI at `/docs`, all behind the
/// request pipeline. The documents are generated when the caller says
/// ([`Documents::generate_in_background`]), or on the first request for one of them.
pub(crate) fn application(
    runtime: Arc<Runtime>,
    services: &plystra_contracts::ServiceRegistry,
    sets: &[OwnedRouteSet],
    tables: Vec<RouteTable>,
) -> (BoxEndpoint<'static>, Documents) {
    let sessions = services
        .require::<dyn plystra_contracts::services::SessionVerifier>()
        .ok();
    let api_keys = services
        .require::<dyn plystra_contracts::services::ApiKeyVerifier>()
        .ok();
    let admin = services
        .require::<dyn plystra_contracts::services::AdminAuthorizer>()
        .ok();
    let authenticator = Arc::new(
        Authenticator::new(runtime.config().bootstrap_api_key.clone(), sessions)
            .with_api_keys(api_keys)
            .with_admin(admin.clone())
            .with_feed(
                services
                    .require::<dyn plystra_contracts::feed::FactsFeed>()
                    .ok(),
            ),
    );
    // Each operation's declared access (from the manifest) and path template (from the route
    // set), by route-table key. The kernel's own protected operation is the capability list;
    // anything undeclared needs `*`.
    let access: HashMap<(Method, String), (Access, String)> = runtime
        .entries()
        .iter()
        .flat_map(|e| operations::declared(e.registration))
        .filter_map(|r| {
            let method = Method::from_bytes(r.method.as_str().as_bytes()).ok()?;
            Some(((method, poem_route_path(&r.path)), (r.access, r.path)))
        })
        .chain(std::iter::once((
            (Method::GET, "/api/v1/capabilities".to_owned()),
            (
                Access::Admin {
                    permission: Some("capabilities:read"),
                },
                "/api/v1/capabilities".to_owned(),
            ),
        )))
        .collect();
    // The paths whose operations write their errors as a message string.
    let text_errors: std::collections::HashSet<String> = runtime
        .entries()
        .iter()
        .flat_map(|e| {
            let errors: HashMap<&str, plystra_contracts::ErrorBody> = e
                .registration
                .manifest
                .provides()
                .routes
                .iter()
                .map(|d| (d.operation, d.errors))
                .collect();
            operations::declared(e.registration)
                .into_iter()
                .filter(move |r| {
                    errors.get(r.operation) == Some(&plystra_contracts::ErrorBody::Text)
                })
        })
        .map(|r| r.path)
        .collect();
    // Each operation's ID by route-table key, so metrics and logs can name the operation.
    let operations: HashMap<(Method, String), &'static str> = sets
        .iter()
        .flat_map(|set| (set.routes.meta)())
        .flat_map(|api| api.paths)
        .flat_map(|path| {
            let key = poem_route_path(&path.path);
            path.operations
                .into_iter()
                .filter_map(move |op| Some(((op.method, key.clone()), op.operation_id?)))
        })
        .collect();
    let allowed = allowed_methods(&tables);
    let tables = tables
        .into_iter()
        .map(|table| {
            table
                .into_iter()
                .map(|(path, methods)| {
                    let methods = methods
                        .into_iter()
                        .map(|(method, ep)| {
                            // Public operations have no path parameters, so their route-table
                            // keys equal the document's templates.
                            let ep = if is_public(&method, &path) {
                                ep
                            } else {
                                let (access, template) = access
                                    .get(&(method.clone(), path.clone()))
                                    .map_or((Access::Admin { permission: None }, ""), |(a, t)| {
                                        (*a, t.as_str())
                                    });
                                Protect::new(authenticator.clone(), access, admin.clone())
                                    .for_route(template, &path)
                                    .wrap(ep)
                            };
                            let ep = match operations.get(&(method.clone(), path.clone())) {
                                Some(operation) => metrics::tag(ep, operation),
                                None => ep,
                            };
                            (method, ep)
                        })
                        .collect();
                    (path, methods)
                })
                .collect()
        })
        .collect();
    let api = with_sets(sets, || service(tables).into_endpoint());
    let documents = Documents::new(sets.to_vec());
    let document = |pick: fn(&Generated) -> poem::Response| {
        let documents = documents.clone();
        poem::endpoint::make(move |_| {
            let documents = documents.clone();
            async move { documents.answer(pick).await }
        })
        .boxed()
    };
    let mut route = Route::new()
        .at(
            "/openapi.json",
            metrics::tag(
                document(|d| document_response(d.json.clone(), "application/json")),
                "openapiJson",
            ),
        )
        .at(
            "/openapi.yaml",
            metrics::tag(
                document(|d| document_response(d.yaml.clone(), "application/x-yaml")),
                "openapiYaml",
            ),
        )
        .at(
            "/docs",
            metrics::tag(
                document(|d| {
                    use poem::IntoResponse;
                    poem::web::Html(d.docs.clone()).into_response()
                }),
                "swaggerUi",
            ),
        );
    if metrics::enabled(runtime.config()) {
        let scrape = metrics::endpoint(
            runtime.metrics().clone(),
            runtime
                .config()
                .settings
                .get("PLYSTRA_METRICS_TOKEN")
                .cloned(),
            authenticator.clone(),
            Protect::new(authenticator.clone(), metrics::access(), admin.clone()),
        );
        route = route.at(metrics::METRICS_PATH, metrics::tag(scrape, "metrics"));
    }
    let route = route.nest("/", with_allow(api, allowed));
    let app = pipeline::wrap(
        route.into_endpoint().boxed(),
        runtime.config(),
        runtime.metrics().clone(),
        Arc::new(text_errors),
    );
    (app, documents)
}

/// The methods each route-table key serves, as an `Allow` value (HEAD wherever GET is, as poem
/// answers HEAD with the GET endpoint), in a route that matches paths exactly as the API does.
fn allowed_methods(tables: &[RouteTable]) -> Route {
    let mut methods: BTreeMap<&str, Vec<Method>> = BTreeMap::new();
    for (path, served) in tables.iter().flatten() {
        methods
            .entry(path.as_str())
            .or_default()
            .extend(served.keys().cloned());
    }
    methods
        .into_iter()
        .fold(Route::new(), |route, (path, mut served)| {
            if served.contains(&Method::GET) && !served.contains(&Method::HEAD) {
                served.push(Method::HEAD);
            }
            // HEAD right after GET: `GET, HEAD, POST, …`.
            served.sort_by_key(|m| match *m {
                Method::HEAD => (method_rank(&Method::GET), 1),
                _ => (method_rank(m), 0),
            });
            served.dedup();
            let allow = served
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            route.at(
                path,
                make_sync(move |_| {
                    poem::Response::builder()
                        .header(poem::http::header::ALLOW, allow.clone())
                        .finish()
                }),
            )
        })
}

/// Adds `Allow` to the API's 405 answers, looked up in `allowed` (only when a 405 happens).
fn with_allow(
    api: impl poem::Endpoint<Output = poem::Response> + 'static,
    allowed: Route,
) -> BoxEndpoint<'static> {
    let allowed = Arc::new(allowed);
    api.around(move |ep, req| {
        let allowed = allowed.clone();
        async move {
            let uri = req.uri().clone();
            // Other errors pass through untouched: the pipeline envelopes them by their type.
            let mut response = match ep.call(req).await {
                Ok(response) => response,
                Err(err) if err.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED => {
                    err.into_response()
                }
                Err(err) => return Err(err),
            };
            if response.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
                && !response.headers().contains_key(poem::http::header::ALLOW)
            {
                let probe = poem::Request::builder().uri(uri).finish();
                if let Some(allow) = poem::Endpoint::get_response(allowed.as_ref(), probe)
                    .await
                    .headers()
                    .get(poem::http::header::ALLOW)
                {
                    response
                        .headers_mut()
                        .insert(poem::http::header::ALLOW, allow.clone());
                }
            }
            Ok(response)
        }
    })
    .boxed()
}

/// The served documents: the OpenAPI document as JSON and YAML, and Swagger UI's page with the
/// document in it.
struct Generated {
    json: String,
    yaml: String,
    docs: String,
}

/// The served documents, generated once on a thread of their own when the boot is done with
/// the change feed's load: generating them (about 0.9 MB of JSON, then YAML) takes longer than
/// the rest of a start on an empty database, and nothing but these three routes needs them, so
/// the server answers everything else meanwhile. A request for one of them waits for it (or
/// generates it, if nobody has started to).
#[derive(Clone)]
pub(crate) struct Documents(Arc<(std::sync::OnceLock<Generated>, Vec<OwnedRouteSet>)>);

impl Documents {
    fn new(sets: Vec<OwnedRouteSet>) -> Self {
        Self(Arc::new((std::sync::OnceLock::new(), sets)))
    }

    /// Starts generating the documents on a thread of their own.
    pub(crate) fn generate_in_background(&self) {
        let generating = self.clone();
        std::thread::Builder::new()
            .name("plystra-openapi".to_owned())
            .spawn(move || {
                generating.get();
            })
            .map_err(|e| tracing::warn!(error = %e, "cannot generate the API documents ahead"))
            .ok();
    }

    /// The documents, generated here if nobody has yet (waiting while another thread does).
    fn get(&self) -> &Generated {
        let (generated, sets) = &*self.0;
        generated.get_or_init(|| {
            with_sets(sets, || {
                let service = service(Vec::new());
                let spec = service.spec();
                let json = crate::http::document::close_objects_json(spec.clone());
                let yaml = crate::http::document::close_objects_yaml(service.spec_yaml());
                // Swagger UI embeds the document as it is generated; it gets the finished one.
                let docs = service.swagger_ui_html().replacen(&spec, &json, 1);
                Generated { json, yaml, docs }
            })
        })
    }

    /// The answer `pick` makes from the documents, off the async workers while they are still
    /// being generated.
    async fn answer(&self, pick: fn(&Generated) -> poem::Response) -> poem::Response {
        use poem::IntoResponse;
        if let Some(generated) = self.0.0.get() {
            return pick(generated);
        }
        let documents = self.clone();
        match tokio::task::spawn_blocking(move || pick(documents.get())).await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "generating the API documents failed");
                ApiError::new(
                    ErrorCode::InternalError,
                    "the API documents could not be generated",
                )
                .into_response()
            }
        }
    }
}

fn document_response(body: String, content_type: &'static str) -> poem::Response {
    poem::Response::builder()
        .content_type(content_type)
        .body(body)
}

/// Endpoints answering 503 for every operation of a capability that is not available.
pub(crate) fn unavailable_table(set: &OwnedRouteSet) -> RouteTable {
    let mut table = RouteTable::new();
    for api in (set.routes.meta)() {
        for path in api.paths {
            for op in path.operations {
                let owner = set.owner;
                let ep = make_sync(move |_| -> poem::Result<poem::Response> {
                    Err(ApiError::new(
                        ErrorCode::NotReady,
                        format!("capability {owner} is not available"),
                    )
                    .with_detail("capability", owner)
                    .into())
                });
                table
                    .entry(poem_route_path(&path.path))
                    .or_default()
                    .insert(op.method, ep.boxed());
            }
        }
    }
    table
}

/// Converts an OpenAPI template (`/a/{x}/b/{y}`) into poem-openapi's route key (`/a/:param0/b/:param1`).
fn poem_route_path(template: &str) -> String {
    let mut count = 0;
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                let s = format!(":param{count}");
                count += 1;
                s
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Checks route metadata: every served operation has an operationId, a supported method and an
/// absolute path; a capability's manifest declares exactly the operations its route set serves
/// (by operationId; the method and path are the route set's); no (method, path), operationId or
/// differing schema is claimed twice.
pub(crate) fn check_route_sets(registrations: &[&'static Registration]) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    let mut routes: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut operation_owners: BTreeMap<String, String> = BTreeMap::new();
    let mut schemas: BTreeMap<String, (String, String)> = BTreeMap::new();
    let sets = std::iter::once(OwnedRouteSet::kernel())
        .chain(registrations.iter().map(|r| OwnedRouteSet::of(r)));
    for set in sets {
        let owner = set.owner.to_owned();
        // Each served operationId, with its method and path, to name it in a refusal.
        let mut served: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        for op in operations::served(&set.routes) {
            let method = op.method.as_str().to_owned();
            if !op.path.starts_with('/') {
                errors.push(ManifestError::RoutePathNotAbsolute {
                    id: owner.clone(),
                    path: op.path.clone(),
                });
            }
            let supported = RouteMethod::parse(&method);
            if supported.is_none() {
                errors.push(ManifestError::UnsupportedRouteMethod {
                    id: owner.clone(),
                    method: method.clone(),
                    path: op.path.clone(),
                });
            }
            match op.operation {
                None => errors.push(ManifestError::MissingOperationId {
                    id: owner.clone(),
                    method: method.clone(),
                    path: op.path.clone(),
                }),
                Some(operation) => {
                    served.insert(operation, (method.clone(), op.path.clone()));
                    if let Some(first) =
                        operation_owners.insert(operation.to_owned(), owner.clone())
                    {
                        errors.push(ManifestError::OperationIdCollision {
                            operation: operation.to_owned(),
                            first,
                            second: owner.clone(),
                        });
                    }
                }
            }
            if let Some(first) = routes.insert((method, op.path.clone()), owner.clone()) {
                errors.push(ManifestError::RouteCollision {
                    method: supported.map_or("?", RouteMethod::as_str),
                    path: op.path,
                    first,
                    second: owner.clone(),
                });
            }
        }
        if let Some(reg) = registrations.iter().find(|r| r.manifest.id() == set.owner) {
            let declared: std::collections::BTreeSet<&'static str> = reg
                .manifest
                .provides()
                .routes
                .iter()
                .map(|r| r.operation)
                .collect();
            for operation in &declared {
                if !served.contains_key(operation) {
                    errors.push(ManifestError::RouteMismatch {
                        id: owner.clone(),
                        detail: format!(
                            "provides.routes declares operation {operation} but its route set \
                             does not serve it"
                        ),
                    });
                }
            }
            for (operation, (method, path)) in &served {
                if !declared.contains(operation) {
                    errors.push(ManifestError::RouteMismatch {
                        id: owner.clone(),
                        detail: format!(
                            "serves {method} {path} ({operation}) but provides.routes does not \
                             declare it"
                        ),
                    });
                }
            }
        }
        let mut registry = Registry::new();
        (set.routes.register)(&mut registry);
        for (name, schema) in registry.schemas {
            let json = serde_json::to_string(&schema).unwrap_or_default();
            match schemas.get(&name) {
                Some((first, first_json)) if *first_json != json => {
                    errors.push(ManifestError::SchemaCollision {
                        schema: name.clone(),
                        first: first.clone(),
                        second: owner.clone(),
                    })
                }
                Some(_) => {}
                None => {
                    schemas.insert(name, (owner.clone(), json));
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_templates_become_poem_route_keys() {
        assert_eq!(poem_route_path("/api/v1/health"), "/api/v1/health");
        assert_eq!(
            poem_route_path("/api/v1/spaces/{space_id}/groups/{group_id}"),
            "/api/v1/spaces/:param0/groups/:param1"
        );
    }
}
