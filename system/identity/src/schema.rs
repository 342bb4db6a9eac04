//! The tables of the `sys_identity` namespace, which this capability owns: the shared schema's
//! `identity` module (`plystra_system_schema`), registered with the schema model from here because
//! the namespace is this capability's.

pub use plystra_system_schema::identity::*;

plystra_contracts::declare_tables! {
    namespace: NAMESPACE,
    tables: [USERS, SPACES, GROUPS, MEMBERS, USER_MEMBERS, SESSIONS, LOGIN_FAILURES],
}
