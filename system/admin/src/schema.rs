//! The tables of the `sys_admin` namespace, which this capability owns: the shared schema's
//! `admin` module (`plystra_system_schema`), registered with the schema model from here because
//! the namespace is this capability's.

pub use plystra_system_schema::admin::*;

plystra_contracts::declare_tables! {
    namespace: NAMESPACE,
    tables: [ADMIN_GRANTS, API_KEYS],
}
