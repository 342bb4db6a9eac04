//! Each route's one declaration: the method and path a route set serves an operation on, read
//! from its poem-openapi metadata, joined by operationId with what the manifest's `RouteDecl`
//! adds (the access, the service).
//!
//! The manifest names operations only; wherever the kernel needs a declared route's method or
//! path (protection, the request guard's parameter names, the shadowing rule, the capability
//! list) it asks here. `assembly::check_route_sets` refuses at boot every way the two halves can
//! disagree, so after a successful resolve each declared operation has exactly one served route.

use plystra_contracts::registration::{Registration, RouteSet};
use plystra_contracts::{Access, RouteMethod};
use poem::http::Method;

/// One operation as the route set serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedOperation {
    /// The HTTP method.
    pub method: Method,
    /// The OpenAPI path template, for example `/api/v1/audit/logs/{audit_log_id}`.
    pub path: String,
    /// The operationId, when the route set gave one (the kernel refuses one without).
    pub operation: Option<&'static str>,
}

/// Every operation `set` serves, in its metadata's order.
pub fn served(set: &RouteSet) -> Vec<ServedOperation> {
    (set.meta)()
        .into_iter()
        .flat_map(|api| api.paths)
        .flat_map(|path| {
            let template = path.path;
            path.operations.into_iter().map(move |op| ServedOperation {
                method: op.method,
                path: template.clone(),
                operation: op.operation_id,
            })
        })
        .collect()
}

/// A route a capability declares, with the method and path its route set serves it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredRoute {
    /// The HTTP method, from the route set.
    pub method: RouteMethod,
    /// The OpenAPI path template, from the route set.
    pub path: String,
    /// The operationId, from the manifest (and the route set).
    pub operation: &'static str,
    /// The service that answers it, from the manifest.
    pub service: &'static str,
    /// Who may call it, from the manifest.
    pub access: Access,
}

/// The routes `registration` declares, in its manifest's order, each with the method and path
/// its route set serves the operation on. A declaration whose operation is not served (on a
/// supported method) is left out; the boot refuses such a registration before it is served.
pub fn declared(registration: &Registration) -> Vec<DeclaredRoute> {
    let served = served(&registration.routes);
    let provides = registration.manifest.provides();
    provides
        .routes
        .iter()
        .filter_map(|decl| {
            let op = served
                .iter()
                .find(|op| op.operation == Some(decl.operation))?;
            Some(DeclaredRoute {
                method: RouteMethod::parse(op.method.as_str())?,
                path: op.path.clone(),
                operation: decl.operation,
                service: decl.service_in(provides).unwrap_or(""),
                access: decl.access,
            })
        })
        .collect()
}
