//! The tables of the `sys_resource` namespace, which this capability owns: the shared schema's
//! `resource` module (`plystra_system_schema`), registered with the schema model from here because
//! the namespace is this capability's.

pub use plystra_system_schema::resource::*;

plystra_contracts::declare_tables! {
    namespace: NAMESPACE,
    tables: [RESOURCE_TYPES, RESOURCE_ACTIONS, RESOURCE_MAPPINGS, RESOURCES],
}
