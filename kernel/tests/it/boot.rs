//! Boot tests: one per manifest rule, the dependency graph, and lifecycle failures.

use crate::support::*;
use plystra_contracts::registration::RouteSet;
use plystra_contracts::{CapabilityKind, CapabilityState, Migrations, Stability};
use plystra_kernel::graph::GraphError;
use plystra_kernel::validation::ManifestError;
use plystra_kernel::{BootError, CapabilitySource, boot, resolve};
use poem_openapi::registry::MetaApi;

fn manifest_errors(source: &CapabilitySource) -> Vec<ManifestError> {
    match resolve(source) {
        Err(BootError::Manifest(errors)) => errors,
        other => panic!("expected manifest errors, got {other:?}"),
    }
}

fn one_plugin(edit: impl FnOnce(&mut Spec)) -> Vec<ManifestError> {
    let mut spec = Spec::plugin::<0>("test.plugin");
    edit(&mut spec);
    manifest_errors(&source(vec![spec], &[]))
}

#[test]
fn a_valid_plugin_passes() {
    let order = resolve(&source(vec![Spec::plugin::<0>("test.plugin")], &[])).unwrap();
    assert_eq!(order.len(), 1);
}

#[test]
fn empty_id_is_refused() {
    let errors = one_plugin(|s| s.raw.id = "");
    assert!(
        errors.contains(&ManifestError::EmptyId {
            package: "test-plugin"
        }),
        "{errors:?}"
    );
}

#[test]
fn empty_name_is_refused() {
    let errors = one_plugin(|s| s.raw.name = " ");
    assert!(
        errors.contains(&ManifestError::EmptyName {
            id: "test.plugin".into()
        }),
        "{errors:?}"
    );
}

#[test]
fn invalid_version_is_refused() {
    let errors = one_plugin(|s| s.raw.version = "one");
    assert!(
        matches!(&errors[..], [ManifestError::InvalidVersion { id, version, .. }] if id == "test.plugin" && version == "one"),
        "{errors:?}"
    );
}

#[test]
fn invalid_kernel_requirement_is_refused() {
    let errors = one_plugin(|s| s.raw.requires.kernel = "not a requirement");
    assert!(
        matches!(&errors[..], [ManifestError::InvalidKernelRequirement { id, .. }] if id == "test.plugin"),
        "{errors:?}"
    );
}

#[test]
fn unsatisfied_kernel_requirement_is_refused() {
    let errors = one_plugin(|s| s.raw.requires.kernel = ">=9.0.0");
    assert_eq!(
        errors,
        vec![ManifestError::KernelVersionUnsatisfied {
            id: "test.plugin".into(),
            requirement: ">=9.0.0".into(),
            kernel: "0.0.1".into()
        }]
    );
}

#[test]
fn self_dependency_is_refused() {
    let errors = one_plugin(|s| s.raw.requires.capabilities = &["test.plugin"]);
    assert!(
        errors.contains(&ManifestError::SelfDependency {
            id: "test.plugin".into()
        }),
        "{errors:?}"
    );
}

#[test]
fn missing_dependency_names_both_ends() {
    let errors = one_plugin(|s| s.raw.requires.capabilities = &["test.absent"]);
    let err = ManifestError::MissingDependency {
        id: "test.plugin".into(),
        dependency: "test.absent".into(),
    };
    assert!(errors.contains(&err), "{errors:?}");
    let text = err.to_string();
    assert!(text.contains("test.plugin") && text.contains("test.absent"));
}

#[test]
fn a_capability_without_services_is_refused() {
    let errors = one_plugin(|s| s.raw.provides.services = &[]);
    assert!(
        errors.contains(&ManifestError::NoServices {
            id: "test.plugin".into()
        }),
        "{errors:?}"
    );
}

#[test]
fn a_route_naming_an_undeclared_service_is_refused() {
    let mut spec = Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES);
    let mut raw_routes = spec.raw.provides.routes.to_vec();
    raw_routes[0] = raw_routes[0].served_by("test.undeclared");
    spec.raw.provides.routes = Box::leak(raw_routes.into_boxed_slice());
    let errors = manifest_errors(&source(vec![spec], &[]));
    assert_eq!(
        errors,
        vec![ManifestError::UndeclaredRouteService {
            id: "test.plugin".into(),
            operation: "testPing".into(),
            service: "test.undeclared".into()
        }]
    );
}

#[test]
fn a_route_answers_through_the_first_service_unless_it_names_another() {
    let mut spec = Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES);
    spec.raw.provides.services = &["test.s0", "test.other"];
    let mut raw_routes = spec.raw.provides.routes.to_vec();
    raw_routes[1] = raw_routes[1].served_by("test.other");
    spec.raw.provides.routes = Box::leak(raw_routes.into_boxed_slice());
    let registration = spec.leak();
    let routes = plystra_kernel::http::operations::declared(registration);
    let services: Vec<_> = routes
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.operation, r.service))
        .collect();
    assert_eq!(
        services,
        vec![
            ("GET", "/test/ping", "testPing", "test.s0"),
            ("POST", "/test/echo", "testEcho", "test.other"),
            ("GET", "/test/panic", "testPanic", "test.s0"),
            ("GET", "/test/slow", "testSlow", "test.s0"),
        ]
    );
}

/// `PingApi`'s metadata with `edit` applied to the operation `testPing`, as a hand-written route
/// set could describe it (poem-openapi's derive would not compile these).
fn ping_meta_with(edit: fn(&mut String, &mut poem::http::Method)) -> Vec<MetaApi> {
    let mut apis = <PingApi as poem_openapi::OpenApi>::meta();
    for api in &mut apis {
        for path in &mut api.paths {
            for op in &mut path.operations {
                if op.operation_id == Some("testPing") {
                    edit(&mut path.path, &mut op.method);
                }
            }
        }
    }
    apis
}

#[test]
fn a_relative_route_path_is_refused() {
    fn meta() -> Vec<MetaApi> {
        ping_meta_with(|path, _| *path = "test/ping".to_owned())
    }
    let mut spec = Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES);
    spec.routes = RouteSet {
        meta,
        ..spec.routes
    };
    let errors = manifest_errors(&source(vec![spec], &[]));
    assert_eq!(
        errors,
        vec![ManifestError::RoutePathNotAbsolute {
            id: "test.plugin".into(),
            path: "test/ping".into()
        }]
    );
}

#[test]
fn a_route_on_an_unsupported_method_is_refused() {
    fn meta() -> Vec<MetaApi> {
        ping_meta_with(|_, method| *method = poem::http::Method::OPTIONS)
    }
    let mut spec = Spec::plugin::<0>("test.plugin").routes::<PingApi>(PING_ROUTES);
    spec.routes = RouteSet {
        meta,
        ..spec.routes
    };
    let errors = manifest_errors(&source(vec![spec], &[]));
    assert_eq!(
        errors,
        vec![ManifestError::UnsupportedRouteMethod {
            id: "test.plugin".into(),
            method: "OPTIONS".into(),
            path: "/test/ping".into()
        }]
    );
}

#[test]
fn a_published_event_needs_a_descriptor() {
    let errors = one_plugin(|s| s.raw.provides.events.publishes = &["test.undescribed"]);
    assert!(
        errors.contains(&ManifestError::UndescribedEvent {
            id: "test.plugin".into(),
            event: "test.undescribed".into()
        }),
        "{errors:?}"
    );
}

#[test]
fn duplicate_ids_are_refused() {
    let errors = manifest_errors(&source(
        vec![
            Spec::plugin::<0>("test.same"),
            Spec::plugin::<1>("test.same"),
        ],
        &[],
    ));
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, ManifestError::DuplicateId { id, .. } if id == "test.same")),
        "{errors:?}"
    );
}

#[test]
fn a_system_capability_must_use_an_official_id() {
    let errors = manifest_errors(&source(
        vec![Spec::system::<0>("audit.unofficial", "sys_audit")],
        &["audit.unofficial"],
    ));
    assert!(errors.iter().any(|e| matches!(e, ManifestError::UnofficialSystemId { id, .. } if id == "audit.unofficial")), "{errors:?}");
}

#[test]
fn a_wrong_system_version_stops_the_boot() {
    let mut spec = Spec::system::<0>("audit.explainable", "sys_audit");
    spec.raw.version = "0.0.2";
    let errors = manifest_errors(&source(vec![spec], &["audit.explainable"]));
    assert_eq!(
        errors,
        vec![ManifestError::WrongSystemVersion {
            id: "audit.explainable".into(),
            version: "0.0.2".into()
        }]
    );
    assert!(errors[0].to_string().contains("0.0.1"));
}

#[test]
fn a_wrong_namespace_stops_the_boot() {
    let errors = manifest_errors(&source(
        vec![Spec::system::<0>("audit.explainable", "sys_identity")],
        &["audit.explainable"],
    ));
    assert_eq!(
        errors,
        vec![ManifestError::WrongNamespace {
            id: "audit.explainable".into(),
            found: Some("sys_identity".into()),
            expected: "sys_audit"
        }]
    );
}

#[test]
fn a_missing_namespace_is_a_wrong_namespace() {
    let mut spec = Spec::system::<0>("audit.explainable", "sys_audit");
    spec.raw.provides.migrations = Migrations { namespace: None };
    let errors = manifest_errors(&source(vec![spec], &["audit.explainable"]));
    assert!(
        matches!(
            &errors[..],
            [ManifestError::WrongNamespace { found: None, .. }]
        ),
        "{errors:?}"
    );
}

#[test]
fn system_capabilities_are_privileged_required_and_experimental() {
    let mut spec = Spec::system::<0>("audit.explainable", "sys_audit");
    spec.raw.privileged = false;
    spec.raw.required = false;
    spec.raw.stability = Stability::Stable;
    let errors = manifest_errors(&source(vec![spec], &["audit.explainable"]));
    let fields: Vec<&str> = errors
        .iter()
        .filter_map(|e| match e {
            ManifestError::SystemFlags { field, .. } => Some(*field),
            _ => None,
        })
        .collect();
    assert_eq!(
        fields,
        vec!["privileged", "required", "stability"],
        "{errors:?}"
    );
}

#[test]
fn a_privileged_manifest_from_a_non_system_crate_stops_the_boot() {
    let mut spec = Spec::system::<0>("audit.explainable", "sys_audit");
    spec.package = "acme-notes";
    let errors = manifest_errors(&source(vec![spec], &["audit.explainable"]));
    assert_eq!(
        errors,
        vec![ManifestError::PrivilegedOutsideSystem {
            id: "audit.explainable".into(),
            package: "acme-notes"
        }]
    );
}

#[test]
fn a_privileged_business_plugin_is_refused_too() {
    let errors = one_plugin(|s| s.raw.privileged = true);
    assert!(
        errors.contains(&ManifestError::PrivilegedOutsideSystem {
            id: "test.plugin".into(),
            package: "test-plugin"
        }),
        "{errors:?}"
    );
}

#[test]
fn a_plugin_cannot_shadow_a_system_capability() {
    let system = Spec::system::<0>("audit.explainable", "sys_audit");
    let mut by_id = Spec::plugin::<1>("identity.business");
    by_id.raw.kind = CapabilityKind::BusinessPlugin;
    let mut by_service = Spec::plugin::<2>("test.thief");
    by_service.raw.provides.services = &["test.s0"];
    let errors = manifest_errors(&source(
        vec![system, by_id, by_service],
        &["audit.explainable"],
    ));
    assert!(errors.iter().any(|e| matches!(e, ManifestError::ShadowsSystem { id, what: "id", .. } if id == "identity.business")), "{errors:?}");
    assert!(
        errors.iter().any(|e| matches!(e, ManifestError::ShadowsSystem { id, what: "service", owner, .. } if id == "test.thief" && owner == "audit.explainable")),
        "{errors:?}"
    );
}

#[test]
fn a_system_capability_cannot_depend_on_a_plugin() {
    let system = Spec::system::<0>("audit.explainable", "sys_audit").deps(&["test.plugin"]);
    let errors = manifest_errors(&source(
        vec![system, Spec::plugin::<1>("test.plugin")],
        &["audit.explainable"],
    ));
    assert!(
        errors.contains(&ManifestError::SystemDependsOnPlugin {
            id: "audit.explainable".into(),
            dependency: "test.plugin".into()
        }),
        "{errors:?}"
    );
}

#[test]
fn the_bundle_notices_a_dropped_crate() {
    let errors = manifest_errors(&source(
        vec![Spec::system::<0>("audit.explainable", "sys_audit")],
        &["audit.explainable", "identity.business"],
    ));
    assert_eq!(
        errors,
        vec![ManifestError::BundleMissing {
            package: "test-bundle",
            id: "identity.business".into()
        }]
    );
}

#[test]
fn a_system_capability_outside_every_bundle_is_refused() {
    let errors = manifest_errors(&source(
        vec![Spec::system::<0>("audit.explainable", "sys_audit")],
        &[],
    ));
    assert_eq!(
        errors,
        vec![ManifestError::NotInBundle {
            id: "audit.explainable".into()
        }]
    );
}

#[test]
fn an_operation_served_but_not_declared_is_refused() {
    let spec = Spec::plugin::<0>("test.plugin").routes::<PingApi>(&PING_ROUTES[..3]);
    let errors = manifest_errors(&source(vec![spec], &[]));
    assert_eq!(
        errors,
        vec![ManifestError::RouteMismatch {
            id: "test.plugin".into(),
            detail: "serves GET /test/slow (testSlow) but provides.routes does not declare it"
                .into()
        }]
    );
}

#[test]
fn an_operation_declared_but_not_served_is_refused() {
    let mut declared = PING_ROUTES.to_vec();
    declared.push("testGhost");
    let spec = Spec::plugin::<0>("test.plugin").routes::<PingApi>(&declared);
    let errors = manifest_errors(&source(vec![spec], &[]));
    assert_eq!(
        errors,
        vec![ManifestError::RouteMismatch {
            id: "test.plugin".into(),
            detail: "provides.routes declares operation testGhost but its route set does not \
                     serve it"
                .into()
        }]
    );
}

#[test]
fn an_operation_declared_twice_is_refused() {
    // Declared three times: named once in the refusal.
    let mut declared = PING_ROUTES.to_vec();
    declared.extend(["testEcho", "testEcho"]);
    let spec = Spec::plugin::<0>("test.plugin").routes::<PingApi>(&declared);
    let errors = manifest_errors(&source(vec![spec], &[]));
    assert_eq!(
        errors,
        vec![ManifestError::DuplicateRouteDecl {
            id: "test.plugin".into(),
            operation: "testEcho".into()
        }]
    );
}

#[test]
fn an_operation_without_an_operation_id_is_refused() {
    fn meta() -> Vec<MetaApi> {
        let mut apis = <PingApi as poem_openapi::OpenApi>::meta();
        for op in apis
            .iter_mut()
            .flat_map(|a| &mut a.paths)
            .flat_map(|p| &mut p.operations)
        {
            if op.operation_id == Some("testPing") {
                op.operation_id = None;
            }
        }
        apis
    }
    let mut spec = Spec::plugin::<0>("test.plugin").routes::<PingApi>(&PING_ROUTES[1..]);
    spec.routes = RouteSet {
        meta,
        ..spec.routes
    };
    let errors = manifest_errors(&source(vec![spec], &[]));
    assert_eq!(
        errors,
        vec![ManifestError::MissingOperationId {
            id: "test.plugin".into(),
            method: "GET".into(),
            path: "/test/ping".into()
        }]
    );
}

#[test]
fn a_route_claimed_twice_is_refused() {
    let a = Spec::plugin::<0>("test.a").routes::<PingApi>(PING_ROUTES);
    let b = Spec::plugin::<1>("test.b").routes::<CollidingRouteApi>(&["otherPing"]);
    let errors = manifest_errors(&source(vec![a, b], &[]));
    assert!(
        errors.contains(&ManifestError::RouteCollision {
            method: "GET",
            path: "/test/ping".into(),
            first: "test.a".into(),
            second: "test.b".into()
        }),
        "{errors:?}"
    );
}

#[test]
fn an_operation_id_claimed_twice_is_refused() {
    let a = Spec::plugin::<0>("test.a").routes::<PingApi>(PING_ROUTES);
    let b = Spec::plugin::<1>("test.b").routes::<CollidingOperationApi>(&["testPing"]);
    let errors = manifest_errors(&source(vec![a, b], &[]));
    assert!(
        errors.contains(&ManifestError::OperationIdCollision {
            operation: "testPing".into(),
            first: "test.a".into(),
            second: "test.b".into()
        }),
        "{errors:?}"
    );
}

#[test]
fn a_schema_name_defined_twice_differently_is_refused() {
    let a = Spec::plugin::<0>("test.a").routes::<schema_a::ThingApi>(&["thingA"]);
    let b = Spec::plugin::<1>("test.b").routes::<schema_b::ThingApi>(&["thingB"]);
    let errors = manifest_errors(&source(vec![a, b], &[]));
    assert_eq!(
        errors,
        vec![ManifestError::SchemaCollision {
            schema: "Thing".into(),
            first: "test.a".into(),
            second: "test.b".into()
        }]
    );
}

#[test]
fn every_violation_is_reported_not_just_the_first() {
    let mut a = Spec::plugin::<0>("test.a");
    a.raw.name = "";
    a.raw.version = "x";
    let mut b = Spec::plugin::<1>("test.b");
    b.raw.requires.kernel = ">=9";
    let errors = manifest_errors(&source(vec![a, b], &[]));
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn a_cycle_names_every_capability_on_it() {
    let a = Spec::plugin::<0>("test.a").deps(&["test.c"]);
    let b = Spec::plugin::<1>("test.b").deps(&["test.a"]);
    let c = Spec::plugin::<2>("test.c").deps(&["test.b"]);
    let d = Spec::plugin::<3>("test.d");
    match resolve(&source(vec![a, b, c, d], &[])) {
        Err(BootError::Graph(errors)) => {
            assert_eq!(
                errors,
                vec![GraphError::Cycle {
                    members: vec!["test.a".into(), "test.b".into(), "test.c".into()]
                }]
            );
            let text = BootError::Graph(errors).to_string();
            assert!(
                text.contains("test.a")
                    && text.contains("test.b")
                    && text.contains("test.c")
                    && !text.contains("test.d"),
                "{text}"
            );
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn the_graph_reports_a_missing_dependency_with_both_ends() {
    let a = Spec::plugin::<0>("test.a").deps(&["test.nowhere"]).leak();
    let errors = plystra_kernel::graph::boot_order(&[a]).unwrap_err();
    assert_eq!(
        errors,
        vec![GraphError::Missing {
            from: "test.a".into(),
            to: "test.nowhere".into()
        }]
    );
}

#[test]
fn the_order_is_deterministic_dependencies_first_and_system_first() {
    let specs = || {
        vec![
            Spec::plugin::<0>("test.zeta"),
            Spec::plugin::<1>("test.alpha").deps(&["test.zeta"]),
            Spec::system::<2>("identity.business", "sys_identity").deps(&["audit.explainable"]),
            Spec::system::<3>("audit.explainable", "sys_audit"),
            Spec::plugin::<4>("test.beta"),
        ]
    };
    let bundle = &["audit.explainable", "identity.business"];
    let ids = |s: CapabilitySource| {
        resolve(&s)
            .unwrap()
            .iter()
            .map(|r| r.manifest.id())
            .collect::<Vec<_>>()
    };
    let first = ids(source(specs(), bundle));
    assert_eq!(
        first,
        vec![
            "audit.explainable",
            "identity.business",
            "test.beta",
            "test.zeta",
            "test.alpha"
        ]
    );
    let mut reversed = specs();
    reversed.reverse();
    assert_eq!(ids(source(reversed, bundle)), first);
}

#[tokio::test]
async fn a_failing_required_capability_keeps_the_runtime_unready_with_the_reason() {
    let audit = Spec::system::<0>("audit.explainable", "sys_audit").mode::<0, FAIL_START>();
    let identity =
        Spec::system::<1>("identity.business", "sys_identity").deps(&["audit.explainable"]);
    let plugin = Spec::plugin::<2>("test.plugin").routes::<PingApi>(PING_ROUTES);
    let booted = boot(
        config(),
        source(
            vec![audit, identity, plugin],
            &["audit.explainable", "identity.business"],
        ),
    )
    .await
    .expect("lifecycle failures do not stop the boot");
    let states: Vec<_> = booted
        .runtime
        .entries()
        .iter()
        .map(|e| (e.registration.manifest.id(), e.state()))
        .collect();
    assert_eq!(states[0].1.state, CapabilityState::Failed);
    assert!(
        states[0]
            .1
            .reason
            .as_deref()
            .unwrap()
            .contains("start refused on purpose")
    );
    assert_eq!(
        states[1].1.state,
        CapabilityState::Failed,
        "a dependent of a failed capability does not start"
    );
    assert!(
        states[1]
            .1
            .reason
            .as_deref()
            .unwrap()
            .contains("audit.explainable")
    );
    assert_eq!(states[2].1.state, CapabilityState::Ready);
    let readiness = booted.runtime.readiness().await;
    assert!(
        readiness
            .problems
            .iter()
            .any(|p| p.contains("audit.explainable is failed: start: start refused on purpose")),
        "{readiness:?}"
    );
}

#[tokio::test]
async fn a_capability_that_does_not_provide_its_declared_services_fails() {
    let mut spec = Spec::plugin::<0>("test.plugin");
    spec.raw.provides.services = &["test.s0", "test.promised"];
    let booted = boot(config(), source(vec![spec], &[])).await.unwrap();
    let cell = booted.runtime.entries()[0].state();
    assert_eq!(cell.state, CapabilityState::Failed);
    assert!(cell.reason.unwrap().contains("test.promised"));
}

#[tokio::test]
async fn a_register_failure_marks_the_capability_failed() {
    let spec = Spec::plugin::<0>("test.plugin").mode::<0, FAIL_REGISTER>();
    let booted = boot(config(), source(vec![spec], &[])).await.unwrap();
    let cell = booted.runtime.entries()[0].state();
    assert_eq!(cell.state, CapabilityState::Failed);
    assert!(cell.reason.unwrap().contains("register refused on purpose"));
}

#[tokio::test]
async fn a_degraded_required_capability_is_not_ready() {
    let spec = Spec::system::<0>("audit.explainable", "sys_audit").mode::<0, DEGRADED>();
    let booted = boot(config(), source(vec![spec], &["audit.explainable"]))
        .await
        .unwrap();
    let readiness = booted.runtime.readiness().await;
    assert_eq!(
        readiness.states,
        vec![("audit.explainable", CapabilityState::Degraded)]
    );
    assert!(readiness.problems[0].contains("running on one leg"));
}

#[test]
fn system_capability_constructor_refuses_nothing_the_kernel_needs() {
    // The privileged path produces exactly what the kernel's rules demand.
    let spec = Spec::system::<0>("audit.explainable", "sys_audit");
    assert!(
        spec.raw.privileged && spec.raw.required && spec.raw.stability == Stability::Experimental
    );
    assert!(resolve(&source(vec![spec], &["audit.explainable"])).is_ok());
}
