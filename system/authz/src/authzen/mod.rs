//! OpenID AuthZEN Authorization API 1.0 over the same engine, index and audit log as
//! `authz/check` and the lookups: `wire` (the specification's shapes), `mapping` (its subjects
//! onto Plystra's actors) and `routes` (the endpoints and the PDP metadata).

pub mod mapping;
pub mod routes;
pub mod wire;

pub use routes::AuthzenApi;
