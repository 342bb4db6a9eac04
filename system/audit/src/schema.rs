//! The tables of the `sys_audit` namespace, which this capability owns: the shared schema's
//! `audit` module (`plystra_system_schema`), registered with the schema model from here because
//! the namespace is this capability's.

pub use plystra_system_schema::audit::*;

plystra_contracts::declare_tables! {
    namespace: NAMESPACE,
    tables: [AUDIT_LOGS, CHAIN_HEAD],
}
