//! Resource lookup: the resources of a type an actor may perform an action on, one page at a
//! time in ID order. Never by checking every resource: the member's precomputed grants for
//! (type, action) name where allowed resources can be — the space (a `space` grant), an anchor
//! group (`group`), the groups of an anchor's subtree (`group_tree`, a range of
//! `groups_by_path`), the member's own resources (`self`) — and the lookup indexes list the
//! resources there. Each one found is then decided by the engine exactly as a check decides it,
//! so a lookup answers what checking every resource would, deny precedence included.

use super::{Num, Request, Snapshot};

/// Resource IDs in ID order, from one index.
type Source<'s> = Box<dyn Iterator<Item = &'s str> + 's>;
use crate::engine::{CrossSpace, Outcome, evaluate};
use crate::{ResolveError, Scope};

/// One page of a resource lookup, asked in managed mode (by IDs, as a check is).
#[derive(Debug, Clone, Copy)]
pub struct ResourceLookup<'a> {
    /// The user.
    pub user_id: &'a str,
    /// The member.
    pub member_id: &'a str,
    /// The binding.
    pub user_member_id: &'a str,
    /// The space; the member's when empty.
    pub space_id: &'a str,
    /// The type, by key or ID.
    pub resource_type: &'a str,
    /// The action.
    pub action: &'a str,
    /// Only resources whose ID sorts after this one (the previous page's last).
    pub after: Option<&'a str>,
    /// At most this many.
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
        Outcome::Allowed(_) | Outcome::OutOfScope => false,
    }
}

impl Snapshot {
    /// The resources of `lookup.resource_type` that `lookup`'s actor may perform
    /// `lookup.action` on, after `lookup.after`, at most `lookup.limit` of them. Unknown actor
    /// IDs are `NotFound`, as in a check; an actor a check would deny whatever the target
    /// (inactive, revoked, expired, an unknown type or action) finds nothing.
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
            user_id: lookup.user_id,
            member_id: lookup.member_id,
            user_member_id: lookup.user_member_id,
            space_id: lookup.space_id,
            resource_type: lookup.resource_type,
            resource_id,
            action: lookup.action,
        };
        let actor = self.actor(&request(""))?;
        let space = if lookup.space_id.is_empty() {
            actor.member.space
        } else {
            self.space_names
                .get(lookup.space_id)
                .ok_or_else(|| super::not_found("space", lookup.space_id))?
        };
        let (Some(type_key), Some(action)) = (
            self.active_type(lookup.resource_type),
            self.action_names.get(lookup.action),
        ) else {
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
                if page.ids.len() == lookup.limit {
                    page.more = true;
                    return Ok(page);
                }
                page.ids.push(next.to_string());
            } else if whatever_the_target(evaluation.outcome) {
                return Ok(page);
            }
        }
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
        let Some(list) = grants.and_then(|lists| {
            lists
                .iter()
                .find(|l| l.type_key == type_key && l.action == action)
        }) else {
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
