//! Lookups. Resource lookup: the resources of a type an actor may perform an action on, one
//! page at a time in ID order. Never by checking every resource: the member's precomputed grants for
//! (type, action) name where allowed resources can be — the space (a `space` grant), an anchor
//! group (`group`), the groups of an anchor's subtree (`group_tree`, a range of
//! `groups_by_path`), the member's own resources (`self`) — and the lookup indexes list the
//! resources there. Each one found is then decided by the engine exactly as a check decides it,
//! so a lookup answers what checking every resource would, deny precedence included.
//!
//! Subject lookup: the actors (binding, with its user and member) that may perform an action on
//! one resource, by member ID then binding ID. The members holding any grant for (type, action)
//! are listed in [`Snapshot::holders`]; each of their bindings is decided by the engine as a
//! check by that actor, in the member's own space, would be.
//!
//! Action lookup: the actions of the type an actor may perform on one resource, by key; each
//! action the registry declares for the type is decided as its check would be.

use super::{Num, Request, Snapshot};

/// Resource IDs in ID order, from one index.
type Source<'s> = Box<dyn Iterator<Item = &'s str> + 's>;
use crate::engine::{CrossSpace, Outcome, evaluate};
use crate::{ResolveError, Scope};

/// One page of a resource lookup, asked in managed mode (by IDs, as a check is).
#[derive(Debug, Clone, Copy)]
pub struct ResourceLookup<'a> {
    /// The actor, the space, the type and the action, as a check names them (its `resource_id`
    /// is not read).
    pub request: Request<'a>,
    /// Only resources whose ID sorts after this one (the previous page's last).
    pub after: Option<&'a str>,
    /// At most this many (a limit of 0 is taken as 1, so that every page makes progress).
    pub limit: usize,
}

/// The resources a lookup found, in ID order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePage {
    /// Their IDs.
    pub ids: Vec<String>,
    /// Whether an allowed resource sorts after the last one: ask again `after` it.
    pub more: bool,
    /// The snapshot's revision.
    pub revision: u64,
}

/// One page of a subject lookup: who may perform `action` on one resource.
#[derive(Debug, Clone, Copy)]
pub struct SubjectLookup<'a> {
    /// The type, by key or ID.
    pub resource_type: &'a str,
    /// The resource, by ID or external ID (as a check names it).
    pub resource_id: &'a str,
    /// The action.
    pub action: &'a str,
    /// Only subjects after this (member ID, binding ID): the previous page's last.
    pub after: Option<(&'a str, &'a str)>,
    /// At most this many (a limit of 0 is taken as 1, so that every page makes progress).
    pub limit: usize,
}

/// An actor a subject lookup found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subject {
    /// The member (the order's first key).
    pub member_id: String,
    /// The binding through which the user acts as the member (the order's second key).
    pub user_member_id: String,
    /// The user.
    pub user_id: String,
}

/// The subjects a lookup found, by member ID then binding ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPage {
    /// Who.
    pub subjects: Vec<Subject>,
    /// Whether an allowed subject sorts after the last one: ask again `after` it.
    pub more: bool,
    /// The snapshot's revision.
    pub revision: u64,
}

/// Whether a denial holds for every resource: it was decided before the target was looked at
/// (the actor, the space, the registry, a candidate in another space).
fn whatever_the_target(outcome: Outcome) -> bool {
    match outcome {
        Outcome::UserInactive
        | Outcome::MemberInactive
        | Outcome::SpaceInactive
        | Outcome::BindingRevoked
        | Outcome::BindingExpired
        | Outcome::UnknownType
        | Outcome::UnknownAction
        | Outcome::NoCandidate => true,
        Outcome::CrossSpace(which) => {
            !matches!(which, CrossSpace::Target | CrossSpace::TargetGroup)
        }
        Outcome::Allowed(_) | Outcome::OutOfScope | Outcome::ConditionNotMet(_) => false,
    }
}

impl Snapshot {
    /// The active permissions for the type (by key or ID) and `action` (any action of the type
    /// when `None`) whose condition reads what only a request brings ([`Condition::needs_request`]):
    /// a lookup has no request attributes, so it decides their grants as not met. Their IDs, in
    /// order.
    ///
    /// [`Condition::needs_request`]: crate::condition::Condition::needs_request
    pub fn conditions_needing_request(
        &self,
        type_key_or_id: &str,
        action: Option<&str>,
    ) -> Vec<&str> {
        let Some(type_key) = self.active_type(type_key_or_id) else {
            return Vec::new();
        };
        let action = match action {
            Some(a) => match self.action_names.get(a) {
                Some(n) => Some(n),
                None => return Vec::new(),
            },
            None => None,
        };
        let mut ids: Vec<&str> = (0..self.permissions.rows.len())
            .filter_map(|n| {
                let n = Num::try_from(n).ok()?;
                let p = self.permissions.get(n)?;
                let needs = p.active
                    && p.type_key == type_key
                    && action.is_none_or(|a| a == p.action)
                    && p.condition.as_ref().is_some_and(|c| c.needs_request());
                needs.then(|| self.permission_names.text(n))
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The resources of the request's type that its actor may perform its action on, after
    /// `lookup.after`, at most `lookup.limit` of them. Unknown actor IDs are `NotFound`, as in
    /// a check; an actor a check would deny whatever the target (inactive, revoked, expired, an
    /// unknown type or action) finds nothing.
    pub fn lookup_resources(
        &self,
        lookup: &ResourceLookup<'_>,
        now: i64,
    ) -> Result<ResourcePage, ResolveError> {
        let mut page = ResourcePage {
            ids: Vec::new(),
            more: false,
            revision: self.revision,
        };
        let request = |resource_id| Request {
            resource_id,
            ..lookup.request
        };
        let actor = self.actor(&request(""))?;
        let space_id = lookup.request.space_id;
        let space = if space_id.is_empty() {
            actor.member.space
        } else {
            self.space_names
                .get(space_id)
                .ok_or_else(|| super::not_found("space", space_id))?
        };
        let Some((type_key, action)) =
            self.type_and_action(lookup.request.resource_type, lookup.request.action)
        else {
            return Ok(page);
        };
        let after = lookup.after;
        let mut sources: Vec<_> = self
            .sources(
                actor.binding.grants.as_deref(),
                actor.binding.member,
                space,
                type_key,
                action,
                after,
            )
            .into_iter()
            .map(Iterator::peekable)
            .collect();
        loop {
            // The smallest ID any source holds next: the sources are merged in ID order.
            let Some(next) = sources
                .iter_mut()
                .filter_map(|range| range.peek().copied())
                .min()
            else {
                return Ok(page);
            };
            for source in &mut sources {
                if source.peek() == Some(&next) {
                    source.next();
                }
            }
            let resolved = self.resolve(&request(next), now)?;
            let evaluation = evaluate(&resolved.facts, false);
            if evaluation.allow() {
                if page.ids.len() == lookup.limit.max(1) {
                    page.more = true;
                    return Ok(page);
                }
                page.ids.push(next.to_string());
            } else if whatever_the_target(evaluation.outcome) {
                return Ok(page);
            }
        }
    }

    /// The actors that may perform `lookup.action` on `lookup.resource_id`, after
    /// `lookup.after`, at most `lookup.limit` of them. A resource a check would not find (of a
    /// known type and action) is `NotFound`; an unknown type or action finds nobody.
    pub fn lookup_subjects(
        &self,
        lookup: &SubjectLookup<'_>,
        now: i64,
    ) -> Result<SubjectPage, ResolveError> {
        let mut page = SubjectPage {
            subjects: Vec::new(),
            more: false,
            revision: self.revision,
        };
        let Some((type_key, action)) = self.type_and_action(lookup.resource_type, lookup.action)
        else {
            return Ok(page);
        };
        if !self.declares(type_key, action) {
            return Ok(page);
        }
        if self.resource(type_key, lookup.resource_id).is_none() {
            return Err(super::not_found("resource", lookup.resource_id));
        }
        let Some(holders) = self.holders.get(&(type_key, action)) else {
            return Ok(page);
        };
        // The cursor's member comes first again, for its bindings after the cursor's.
        let (after_member, after_binding) = lookup.after.unzip();
        let resumed = lookup
            .after
            .and_then(|(member, _)| self.member_names.get(member));
        let members = resumed
            .into_iter()
            .chain(holders.nums_after(after_member, &self.member_names));
        for member in members {
            let member_id = self.member_names.text(member);
            let mut bindings: Vec<&str> = self
                .bindings_of_member
                .get(member)
                .into_iter()
                .flatten()
                .map(|b| self.binding_names.text(*b))
                .filter(|b| Some(member) != resumed || after_binding.is_none_or(|after| *b > after))
                .collect();
            bindings.sort_unstable();
            for user_member_id in bindings {
                let Some(binding) = self
                    .binding_names
                    .get(user_member_id)
                    .and_then(|b| self.bindings.get(b))
                else {
                    continue;
                };
                let user_id = self.user_names.text(binding.user);
                let request = Request {
                    user_id,
                    member_id,
                    user_member_id,
                    space_id: "",
                    resource_type: lookup.resource_type,
                    resource_id: lookup.resource_id,
                    action: lookup.action,
                };
                // An actor a check cannot resolve (a user with no row yet) is nobody's answer.
                let Ok(resolved) = self.resolve(&request, now) else {
                    continue;
                };
                if !evaluate(&resolved.facts, false).allow() {
                    continue;
                }
                if page.subjects.len() == lookup.limit.max(1) {
                    page.more = true;
                    return Ok(page);
                }
                page.subjects.push(Subject {
                    member_id: member_id.to_owned(),
                    user_member_id: user_member_id.to_owned(),
                    user_id: user_id.to_owned(),
                });
            }
        }
        Ok(page)
    }

    /// The active type named by key or ID and the action, by number, when the index knows both.
    fn type_and_action(&self, type_key_or_id: &str, action: &str) -> Option<(Num, Num)> {
        Some((
            self.active_type(type_key_or_id)?,
            self.action_names.get(action)?,
        ))
    }

    /// The actions declared for `request.resource_type` that `request`'s actor may perform on
    /// `request.resource_id` (its `action` is not read), by key. Errors as the check of any of
    /// them would: unknown actor IDs, or a resource of a known type that is not found.
    pub fn lookup_actions(
        &self,
        request: &Request<'_>,
        now: i64,
    ) -> Result<Vec<String>, ResolveError> {
        // The actor and the space, as every check names them (no action: no target lookup).
        self.resolve(
            &Request {
                action: "",
                ..*request
            },
            now,
        )?;
        let Some(type_key) = self.active_type(request.resource_type) else {
            return Ok(Vec::new());
        };
        let mut actions: Vec<&str> = self
            .actions
            .get(type_key)
            .map_or(&[][..], |a| &a[..])
            .iter()
            .map(|a| self.action_names.text(*a))
            .collect();
        actions.sort_unstable();
        let mut allowed = Vec::new();
        for action in actions {
            let resolved = self.resolve(&Request { action, ..*request }, now)?;
            if evaluate(&resolved.facts, false).allow() {
                allowed.push(action.to_owned());
            }
        }
        Ok(allowed)
    }

    /// The resource IDs after `after`, each source in ID order, where the member's grants for
    /// (type key, action) can allow in the request's space: the whole space when a grant is
    /// space-wide, else the anchors' groups and subtrees and the member's own resources.
    fn sources<'s>(
        &'s self,
        grants: Option<&super::MemberGrants>,
        member: Num,
        space: Num,
        type_key: Num,
        action: Num,
        after: Option<&'s str>,
    ) -> Vec<Source<'s>> {
        let Some(list) = super::grant_list(grants, type_key, action) else {
            return Vec::new();
        };
        if list.grants.iter().any(|g| g.scope == Scope::Space) {
            return self
                .resources_in_space
                .get(&(type_key, space))
                .into_iter()
                .map(|ids| -> Source<'s> { Box::new(ids.after(after, &self.resource_names)) })
                .collect();
        }
        let mut groups: Vec<Num> = Vec::new();
        let mut owned = false;
        for grant in &list.grants {
            match (grant.scope, grant.anchor) {
                (Scope::Group, Some(anchor)) => groups.push(anchor),
                (Scope::GroupTree, Some(anchor)) => groups.extend(self.subtree(anchor)),
                (Scope::OwnSelf, _) => owned = true,
                _ => {}
            }
        }
        groups.sort_unstable();
        groups.dedup();
        let mut lists: Vec<&[Num]> = groups
            .into_iter()
            .filter_map(|g| self.resources_in_group.get(g))
            .map(|r| r.of(type_key))
            .collect();
        if owned && let Some(r) = self.resources_of_owner.get(member) {
            lists.push(r.of(type_key));
        }
        lists
            .into_iter()
            .filter(|list| !list.is_empty())
            .map(|list| -> Source<'s> {
                let names = &self.resource_names;
                let start =
                    after.map_or(0, |after| list.partition_point(|n| names.text(*n) <= after));
                Box::new(list[start..].iter().map(move |n| names.text(*n)))
            })
            .collect()
    }

    /// Group `anchor` and every group of its space below it, by path.
    fn subtree(&self, anchor: Num) -> Vec<Num> {
        let Some(row) = self.groups.get(anchor) else {
            return Vec::new();
        };
        let Some(space) = self.space_names.get(&row.space_id) else {
            return Vec::new();
        };
        let path = &row.path;
        let from = (space, path.clone(), 0);
        self.groups_by_path
            .range(from..)
            .take_while(|(s, p, _)| *s == space && p.starts_with(&**path))
            .filter(|(_, p, _)| crate::engine::path_within(p, path))
            .map(|(_, _, g)| *g)
            .collect()
    }
}
