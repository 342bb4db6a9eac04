//! The tables of the `sys_authz` namespace, which this capability owns: the shared schema's
//! `authz` module (`plystra_system_schema`), registered with the schema model from here because
//! the namespace is this capability's.

pub use plystra_system_schema::authz::*;

plystra_contracts::declare_tables! {
    namespace: NAMESPACE,
    tables: [ROLES, PERMISSIONS, ROLE_PERMISSIONS, MEMBER_ROLES],
}
