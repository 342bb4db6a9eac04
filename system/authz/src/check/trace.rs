//! Tracing: one decision on a snapshot, evaluated with the engine and written out as its trace,
//! every string of which is built here, once.

use plystra_contracts::{ApiError, Decision};

use super::answer::{
    ActorTrace, AuditRef, CandidateTrace, ConditionInputTrace, ConditionResult, ConditionTrace,
    ExplainTrace, GroupTrace, InputSource, RegistryTrace, RequestTrace, ScopeCheckTrace,
    TRACE_VERSION, TargetTrace,
};
use super::decide::Caller;
use super::facts::{Gathered, gather};
use super::parse::Parsed;
use crate::condition;
use crate::engine::{self, ActorFacts, Candidate, ConditionCheck, Facts, GroupFacts, ScopeCheck};
use crate::index::{ActorStatuses, Snapshot};

/// What [`trace_of`] decided.
pub(super) enum Traced {
    /// The decision with its full trace.
    Full(ExplainTrace),
    /// An allow whose trace nobody keeps: the audit log skips it and the answer is short.
    Allowed {
        /// The sentence for people.
        reason: String,
        /// The snapshot's revision.
        revision: u64,
    },
}

/// The trace of one decision on `snapshot`, its audit reference not yet set. Every string of the
/// trace is built here, once; the audit record and the answers take them from the trace.
///
/// With `untraced_allow` (the answer is short and the audit log skips allowed decisions) an
/// allow comes back as [`Traced::Allowed`] without the trace: nothing would keep it.
pub(super) fn trace_of(
    snapshot: &Snapshot,
    caller: &Caller,
    parsed: &Parsed,
    now: i64,
    untraced_allow: bool,
) -> Result<Traced, ApiError> {
    let Gathered {
        mode,
        facts,
        statuses,
        target_space_id,
    } = gather(snapshot, parsed, now)?;
    // An allow nobody keeps is decided without the scope checks' texts; every other decision is
    // traced (the audit record keeps the trace, and explain returns it), a deny found untraced
    // evaluated again with them.
    if untraced_allow {
        let evaluation = engine::evaluate(&facts, false);
        if evaluation.deny_code.is_none() {
            return Ok(Traced::Allowed {
                reason: evaluation.reason(&facts),
                revision: snapshot.revision(),
            });
        }
    }
    let evaluation = engine::evaluate(&facts, true);
    let reason = evaluation.reason(&facts);
    let engine::Evaluation {
        deny_code,
        checks,
        mut conditions,
        ..
    } = evaluation;
    let matched_candidates = checks
        .into_iter()
        .map(|(i, check)| {
            let condition = conditions
                .iter()
                .position(|(at, _)| *at == i)
                .map(|at| conditions.swap_remove(at).1);
            candidate_trace(&facts.candidates[i], check, condition)
        })
        .collect();
    let resource_type = facts.target.resource_type.to_string();
    Ok(Traced::Full(ExplainTrace {
        trace_version: TRACE_VERSION.to_owned(),
        trace_id: plystra_contracts::ids::generate("trace_"),
        mode,
        revision: snapshot.revision(),
        decision: if deny_code.is_none() {
            Decision::Allow
        } else {
            Decision::Deny
        },
        deny_code: deny_code.map(crate::boundary::deny_code),
        reason,
        actor: actor_trace(&facts.actor, &statuses),
        target: target_trace(&facts, resource_type.clone(), target_space_id),
        resource_registry: RegistryTrace {
            resource_type,
            resource_type_known: facts.resource_type_known,
            action: facts.action.to_string(),
            action_known: facts.action_known,
        },
        matched_candidates,
        request: RequestTrace {
            request_id: caller.request_id.clone(),
            ip: caller.ip.clone(),
            user_agent: caller.user_agent.clone(),
        },
        audit: AuditRef::unrecorded(),
    }))
}

fn group_trace(g: &GroupFacts<'_>) -> GroupTrace {
    GroupTrace {
        id: g.id.as_deref().map(str::to_owned),
        path: g.path.to_string(),
        space_id: g.space_id.as_deref().map(str::to_owned),
    }
}

/// A condition's check as the trace shows it. `covered`: whether the candidate's scope covers
/// the target (what an unevaluated condition's reason says).
fn condition_trace(check: ConditionCheck, covered: bool) -> ConditionTrace {
    let (result, reason) = match check.verdict {
        Some(condition::Evaluation::Met) => (ConditionResult::Met, None),
        Some(condition::Evaluation::NotMet) => (ConditionResult::NotMet, None),
        Some(condition::Evaluation::Failed(why)) => (ConditionResult::Failed, Some(why)),
        None if covered => (
            ConditionResult::NotEvaluated,
            Some("an earlier grant allowed".to_owned()),
        ),
        None => (
            ConditionResult::NotEvaluated,
            Some("the scope does not cover the target".to_owned()),
        ),
    };
    let mut input_values = std::collections::BTreeMap::new();
    let inputs = check
        .inputs
        .into_iter()
        .map(|read| {
            let present = read.value.is_some();
            if let Some(value) = read.value {
                input_values.insert(read.path.clone(), value);
            }
            ConditionInputTrace {
                path: read.path,
                source: match read.source {
                    engine::InputSource::Storage => InputSource::Storage,
                    engine::InputSource::Request => InputSource::Request,
                    engine::InputSource::Server => InputSource::Server,
                },
                present,
            }
        })
        .collect();
    ConditionTrace {
        expression: check.source,
        result,
        reason,
        inputs,
        input_values,
    }
}

/// One candidate grant with its scope's verdict and its condition's.
fn candidate_trace(
    c: &Candidate<'_>,
    check: ScopeCheck,
    condition: Option<ConditionCheck>,
) -> CandidateTrace {
    let covered = check.covered;
    CandidateTrace {
        role: c.role_key.to_string(),
        role_id: c.role_id.to_string(),
        role_space_id: c.role_space_id.to_string(),
        permission: c.permission_id.to_string(),
        scope: c.scope,
        scope_anchor: c.anchor.as_ref().map(group_trace),
        scope_check: ScopeCheckTrace {
            covered: check.covered,
            rule: check.rule,
            reason: check.reason,
            deny_code: check.deny_code.map(crate::boundary::deny_code),
        },
        member_role_id: c.member_role_id.to_string(),
        member_role_space_id: c.member_role_space_id.to_string(),
        condition: condition.map(|check| condition_trace(check, covered)),
    }
}

fn actor_trace(actor: &ActorFacts<'_>, statuses: &ActorStatuses<'_>) -> ActorTrace {
    ActorTrace {
        user_id: actor.user_id.to_string(),
        user_status: statuses.user_status.to_string(),
        member_id: actor.member_id.to_string(),
        member_status: statuses.member_status.to_string(),
        member_space_id: actor.member_space_id.to_string(),
        user_member_id: actor.user_member_id.to_string(),
        user_member_status: statuses.user_member_status.to_string(),
        user_member_expires_at: statuses
            .user_member_expires_at
            .as_deref()
            .map(str::to_owned),
        space_id: actor.space_id.to_string(),
        space_status: statuses.space_status.to_string(),
    }
}

fn target_trace(
    facts: &Facts<'_>,
    resource_type: String,
    target_space_id: Option<&str>,
) -> TargetTrace {
    TargetTrace {
        resource_type,
        resource_id: facts.target.resource_id.to_string(),
        space_id: target_space_id.map(str::to_owned),
        group: facts.target.group.as_ref().map(group_trace),
        owner_member_id: facts.target.owner_member_id.as_deref().map(str::to_owned),
    }
}
