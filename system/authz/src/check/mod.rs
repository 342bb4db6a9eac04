//! `authz/check`, `authz/check/batch` and `authz/explain`: resolve the request against the
//! authorization index's current snapshot (no database read), decide with the engine, make
//! exactly one audit record durable per decision, answer.
//!
//! Managed mode names the actor and the target by ID; Context Mode (API keys and the bootstrap
//! key only) brings the target and the grants inline, and the registry still judges the type
//! and action. An error anywhere on this path is an error response, never an allow. A decision
//! is returned only after its audit record has committed (503 `AUDIT_UNAVAILABLE` otherwise).
//!
//! The parts, along the path a request takes: `routes`, `request` (the body's wire types),
//! `parse` (managed mode or Context Mode), `facts` (the engine's facts), `trace` (the decision
//! and its trace), `decide` (the audit record made durable before the answer), `record` (the
//! record's columns and trace JSON) and `answer` (the answers' wire types).

mod answer;
mod decide;
mod facts;
#[cfg(test)]
mod fixtures;
mod parse;
mod record;
mod request;
mod routes;
mod trace;

pub use answer::{
    ActorTrace, AuditRef, BatchCheckItem, BatchCheckResult, CandidateTrace, CheckMode, CheckResult,
    ConditionInputTrace, ConditionResult, ConditionTrace, ExplainTrace, GroupTrace, InputSource,
    RegistryTrace, RequestTrace, ScopeCheckTrace, TRACE_VERSION, TargetTrace,
};
pub use decide::{Caller, Decider, Decisions};
pub(crate) use facts::resolve_error;
pub(crate) use parse::request_attributes;
pub use request::{
    AuthzActor, AuthzRequest, AuthzRequestBody, AuthzResource, BatchCheckRequest, Consistency,
    InlineGrant,
};
pub use routes::{CheckApi, CheckResponse, ExplainResponse};
