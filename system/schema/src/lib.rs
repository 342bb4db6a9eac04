//! The system capabilities' tables, named and described once: one module per migration namespace
//! (`sys_audit`, `sys_identity`, `sys_resource`, `sys_authz`, `sys_admin`), each table a typed
//! `Table` (name, columns, indexes, primary key, unique constraints, foreign keys, CHECK
//! constraints) that the owning capability registers with the schema model and that
//! `plystractl ent check` compares with the live database.
//!
//! The five system capabilities are one bounded context over one database. Each writes only the
//! tables of its own namespace (the migration ownership rule), and reads another namespace's
//! tables only through these handles: to join a name onto its own rows (a grant's member, a
//! resource's group path) or to check a reference inside its own transaction (a member's space).
//! A table's name appears in Rust source nowhere else (`cargo xtask tidy`, `table-name`). Business
//! plugins do not read system tables: they go through the service traits of `plystra-contracts`.

pub mod admin;
pub mod audit;
pub mod authz;
pub mod identity;
pub mod resource;
