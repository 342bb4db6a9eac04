//! The bundle of Plystra's five system capabilities: linking this crate links all five, and
//! declares their IDs so the kernel notices a crate the linker dropped.

extern crate plystra_system_admin as _;
extern crate plystra_system_audit as _;
extern crate plystra_system_authz as _;
extern crate plystra_system_identity as _;
extern crate plystra_system_resource_registry as _;

plystra_privileged::declare_system_bundle!(
    "audit.explainable",
    "identity.business",
    "resource.registry",
    "authorization.resource",
    "admin.control_plane",
);
