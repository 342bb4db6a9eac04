//! The engine's facts for a parsed request: resolved from the snapshot in managed mode, built from
//! the request in Context Mode.

use std::borrow::Cow;

use plystra_contracts::services::ResolveError;
use plystra_contracts::{ApiError, ErrorCode};

use super::answer::CheckMode;
use super::parse::{Context, Managed, Parsed};
use crate::engine::{ActorFacts, Attributes, Candidate, Facts, GroupFacts, TargetFacts};
use crate::index::{ActorStatuses, Request as IndexRequest, Snapshot};

/// A request's facts, with what the trace shows beside them.
pub(super) struct Gathered<'a> {
    /// Managed or Context Mode.
    pub(super) mode: CheckMode,
    /// What the engine decides on.
    pub(super) facts: Facts<'a>,
    /// The actor's statuses.
    pub(super) statuses: ActorStatuses<'a>,
    /// The target's space, when known.
    pub(super) target_space_id: Option<&'a str>,
}

/// The facts of `parsed` on `snapshot`: resolved by ID (managed mode; an unknown ID is an error)
/// or taken from the request (Context Mode).
pub(super) fn gather<'a>(
    snapshot: &'a Snapshot,
    parsed: &'a Parsed,
    now: i64,
) -> Result<Gathered<'a>, ApiError> {
    match parsed {
        Parsed::Managed(m) => managed_facts(snapshot, m, now),
        Parsed::Context(c) => Ok(Gathered {
            mode: CheckMode::Context,
            facts: context_facts(snapshot, c, now),
            statuses: lend(&c.statuses),
            target_space_id: Some(c.space_id.as_str()),
        }),
    }
}

/// Managed mode: everything resolved by ID from the snapshot.
fn managed_facts<'a>(
    snapshot: &'a Snapshot,
    m: &'a Managed,
    now: i64,
) -> Result<Gathered<'a>, ApiError> {
    let resolved = snapshot
        .resolve(
            &IndexRequest {
                user_id: &m.actor.user_id,
                member_id: &m.actor.member_id,
                user_member_id: &m.actor.user_member_id,
                space_id: &m.actor.space_id,
                resource_type: &m.resource_type,
                resource_id: &m.resource_id,
                action: &m.action,
            },
            now,
        )
        .map_err(|e| resolve_error(crate::boundary::resolve_error(e)))?;
    let mut facts = resolved.facts;
    facts.attributes.request = Some(&m.attributes);
    Ok(Gathered {
        mode: CheckMode::Managed,
        facts,
        statuses: resolved.statuses,
        target_space_id: resolved.target_space_id,
    })
}

/// The request's own statuses, borrowed.
fn lend<'a>(statuses: &'a ActorStatuses<'_>) -> ActorStatuses<'a> {
    ActorStatuses {
        user_status: Cow::Borrowed(&statuses.user_status),
        member_status: Cow::Borrowed(&statuses.member_status),
        user_member_status: Cow::Borrowed(&statuses.user_member_status),
        user_member_expires_at: statuses
            .user_member_expires_at
            .as_deref()
            .map(Cow::Borrowed),
        space_status: Cow::Borrowed(&statuses.space_status),
    }
}

/// Context Mode: a group named by ID (the snapshot supplies its path and space when it knows it)
/// or by path, in `space`.
fn inline_group<'a>(
    snapshot: &'a Snapshot,
    id: Option<&'a String>,
    path: Option<&'a String>,
    space: &'a str,
) -> Option<GroupFacts<'a>> {
    match (id, path) {
        (Some(id), path) => Some(snapshot.group(id).unwrap_or(GroupFacts {
            id: Some(Cow::Borrowed(id)),
            path: path.map_or(Cow::Borrowed(""), |p| Cow::Borrowed(p)),
            space_id: Some(Cow::Borrowed(space)),
        })),
        (None, Some(path)) => Some(GroupFacts {
            id: None,
            path: Cow::Borrowed(path),
            space_id: Some(Cow::Borrowed(space)),
        }),
        (None, None) => None,
    }
}

fn borrowed(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

/// Context Mode: the inline grants for the registered type `key` and the request's action, as
/// the engine's candidates.
fn context_candidates<'a>(
    snapshot: &'a Snapshot,
    ctx: &'a Context,
    key: &str,
) -> Vec<Candidate<'a>> {
    ctx.grants
        .iter()
        .zip(&ctx.conditions)
        .enumerate()
        .filter(|(_, (g, _))| *g.resource == *key && *g.action == *ctx.action)
        .map(|(i, (g, condition))| {
            let scope = g.scope;
            let grant_space: &'a str = g
                .space_id
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or(&ctx.actor.space_id);
            let role_space = g
                .role_id
                .as_deref()
                .and_then(|id| snapshot.role_space(id))
                .unwrap_or(grant_space);
            let anchor = inline_group(
                snapshot,
                g.scope_anchor_group_id.as_ref(),
                g.scope_anchor_group_path.as_ref(),
                grant_space,
            );
            Candidate {
                role_key: borrowed(&g.role_key)
                    .or_else(|| borrowed(&g.role_id))
                    .unwrap_or_default(),
                role_id: borrowed(&g.role_id).unwrap_or_default(),
                role_space_id: Cow::Borrowed(role_space),
                permission_id: borrowed(&g.permission_id)
                    .unwrap_or_else(|| Cow::Owned(format!("inline_{i}"))),
                scope,
                member_role_id: Cow::Owned(format!("inline_{i}")),
                member_role_space_id: Cow::Borrowed(grant_space),
                anchor_named: anchor.is_some(),
                anchor,
                condition: condition.as_ref(),
            }
        })
        .collect()
}

/// The engine's facts for a Context Mode request: the registry from the snapshot, everything
/// else from the request. Groups named by ID take their path and space from the snapshot.
fn context_facts<'a>(snapshot: &'a Snapshot, ctx: &'a Context, now: i64) -> Facts<'a> {
    let (type_key, action_known) = snapshot.registry(&ctx.resource_type, &ctx.action);
    let candidates = match type_key {
        Some(key) if action_known => context_candidates(snapshot, ctx, key),
        _ => Vec::new(),
    };
    let expires = ctx
        .statuses
        .user_member_expires_at
        .as_deref()
        .and_then(|e| {
            time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp());
    Facts {
        actor: ActorFacts {
            user_id: Cow::Borrowed(&ctx.actor.user_id),
            user_active: ctx.statuses.user_status == "active",
            member_id: Cow::Borrowed(&ctx.actor.member_id),
            member_active: ctx.statuses.member_status == "active",
            member_space_id: Cow::Borrowed(&ctx.actor.space_id),
            user_member_id: Cow::Borrowed(&ctx.actor.user_member_id),
            binding_revoked: ctx.statuses.user_member_status == "revoked",
            binding_expires_at: expires,
            space_id: Cow::Borrowed(&ctx.actor.space_id),
            space_active: ctx.statuses.space_status == "active",
        },
        target: TargetFacts {
            resource_type: Cow::Borrowed(&ctx.resource_type),
            resource_id: Cow::Borrowed(&ctx.resource_id),
            space_id: Cow::Borrowed(&ctx.space_id),
            group: inline_group(
                snapshot,
                ctx.group_id.as_ref(),
                ctx.group_path.as_ref(),
                &ctx.space_id,
            ),
            owner_member_id: borrowed(&ctx.owner_member_id),
        },
        action: Cow::Borrowed(&ctx.action),
        resource_type_known: type_key.is_some(),
        action_known,
        candidates,
        now,
        // The target is the request's: nothing stored is read for it.
        attributes: Attributes {
            request: Some(&ctx.attributes),
            ..Attributes::default()
        },
    }
}

/// A resolve error as the API answers it: the entity's 404, or 503 when the source is down.
pub(crate) fn resolve_error(e: ResolveError) -> ApiError {
    match e {
        ResolveError::NotFound { entity, id } => {
            let code = match entity {
                "user" => ErrorCode::UserNotFound,
                "member" => ErrorCode::MemberNotFound,
                "user_member" => ErrorCode::UserMemberNotFound,
                "space" => ErrorCode::SpaceNotFound,
                "group" => ErrorCode::GroupNotFound,
                "resource" => ErrorCode::ResourceNotFound,
                _ => ErrorCode::NotFound,
            };
            ApiError::not_found(code, entity, &id)
        }
        ResolveError::Unavailable(reason) => ApiError::new(ErrorCode::DatabaseUnavailable, reason),
    }
}
