//! The decision engine: upstream's semantics as a pure function of facts already in memory.
//!
//! Precedence: actor state (user, member, space, binding revoked, binding expired), then the
//! registry (unknown type or action), then cross-space, then "no candidate grant", then the union
//! of the candidates' scopes; when none covers the target, the first candidate's scope code.
//! The trace is built only when asked for; `explain` and `check` run the same code.

use crate::DenyCode;
use crate::Scope;

/// A group as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts {
    /// Its ID, when known (inline context may name a group by path only).
    pub id: Option<String>,
    /// Its dotted path.
    pub path: String,
    /// Its space, when known.
    pub space_id: Option<String>,
}

/// The actor's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorFacts {
    /// The user.
    pub user_id: String,
    /// `active` or not.
    pub user_active: bool,
    /// The member acted as.
    pub member_id: String,
    /// `active` or not.
    pub member_active: bool,
    /// The member's space.
    pub member_space_id: String,
    /// The binding between user and member.
    pub user_member_id: String,
    /// The binding is revoked.
    pub binding_revoked: bool,
    /// The binding's expiry, in Unix seconds.
    pub binding_expires_at: Option<i64>,
    /// The space the request names.
    pub space_id: String,
    /// The space is active.
    pub space_active: bool,
}

/// The target's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFacts {
    /// The resource type.
    pub resource_type: String,
    /// The resource ID.
    pub resource_id: String,
    /// The resource's space.
    pub space_id: String,
    /// The resource's group, if it has one.
    pub group: Option<GroupFacts>,
    /// The owning member, if any.
    pub owner_member_id: Option<String>,
}

/// One grant that applies to (type, action): a role's permission held through a member-role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The role's key.
    pub role_key: String,
    /// The role's ID.
    pub role_id: String,
    /// The role's space.
    pub role_space_id: String,
    /// The permission's ID.
    pub permission_id: String,
    /// The permission's scope.
    pub scope: Scope,
    /// The member-role's ID.
    pub member_role_id: String,
    /// The member-role's space.
    pub member_role_space_id: String,
    /// Whether the grant names an anchor at all.
    pub anchor_named: bool,
    /// The anchor group, when named and found.
    pub anchor: Option<GroupFacts>,
}

/// Everything one decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Who acts.
    pub actor: ActorFacts,
    /// On what.
    pub target: TargetFacts,
    /// The action.
    pub action: String,
    /// The type is registered.
    pub resource_type_known: bool,
    /// The action is registered for the type.
    pub action_known: bool,
    /// Grants for (type, action), in a stable order.
    pub candidates: Vec<Candidate>,
    /// The evaluation instant, in Unix seconds.
    pub now: i64,
}

/// How one candidate's scope judged the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeCheck {
    /// The scope covers the target.
    pub covered: bool,
    /// The rule applied, for example `group_tree: finance.apac within finance`.
    pub rule: String,
    /// Why it is or is not covered.
    pub reason: String,
    /// The code when not covered.
    pub deny_code: Option<DenyCode>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The deny code, or `None` for allow.
    pub deny_code: Option<DenyCode>,
    /// A sentence for people.
    pub reason: String,
    /// Each candidate's scope check (only with the trace on; empty otherwise).
    pub checks: Vec<(usize, ScopeCheck)>,
}

impl Evaluation {
    /// Allowed.
    pub fn allow(&self) -> bool {
        self.deny_code.is_none()
    }

    fn deny(code: DenyCode, reason: impl Into<String>) -> Self {
        Self {
            deny_code: Some(code),
            reason: reason.into(),
            checks: Vec::new(),
        }
    }
}

/// Whether a target path lies in an anchor's subtree: equal, or below it at a `.` boundary.
pub fn path_within(target: &str, anchor: &str) -> bool {
    target == anchor
        || (target.len() > anchor.len()
            && target.starts_with(anchor)
            && target.as_bytes()[anchor.len()] == b'.')
}

/// Decides. With `trace`, every candidate's scope check is recorded.
pub fn evaluate(facts: &Facts, trace: bool) -> Evaluation {
    let actor = &facts.actor;
    if !actor.user_active {
        return Evaluation::deny(
            DenyCode::ActorUserInactive,
            format!("user {} is not active", actor.user_id),
        );
    }
    if !actor.member_active {
        return Evaluation::deny(
            DenyCode::ActorMemberInactive,
            format!("member {} is not active", actor.member_id),
        );
    }
    if !actor.space_active {
        return Evaluation::deny(
            DenyCode::SpaceInactive,
            format!("space {} is not active", actor.space_id),
        );
    }
    if actor.binding_revoked {
        return Evaluation::deny(
            DenyCode::UserMemberRevoked,
            format!("binding {} is revoked", actor.user_member_id),
        );
    }
    if actor.binding_expires_at.is_some_and(|at| at <= facts.now) {
        return Evaluation::deny(
            DenyCode::UserMemberExpired,
            format!("binding {} has expired", actor.user_member_id),
        );
    }
    let target = &facts.target;
    if !facts.resource_type_known {
        return Evaluation::deny(
            DenyCode::InvalidResourceType,
            format!("resource type {} is not registered", target.resource_type),
        );
    }
    if !facts.action_known {
        return Evaluation::deny(
            DenyCode::InvalidResourceAction,
            format!(
                "action {} is not registered for {}",
                facts.action, target.resource_type
            ),
        );
    }
    if let Some(reason) = cross_space(facts) {
        return Evaluation::deny(DenyCode::CrossSpaceViolation, reason);
    }
    if facts.candidates.is_empty() {
        return Evaluation::deny(
            DenyCode::NoMatchingPermission,
            format!(
                "no grant of member {} covers {}:{}",
                actor.member_id, target.resource_type, facts.action
            ),
        );
    }
    let mut checks = Vec::new();
    let mut first_code = None;
    for (i, candidate) in facts.candidates.iter().enumerate() {
        let check = scope_check(facts, candidate);
        if check.covered {
            let reason = format!("allowed by role {} ({})", candidate.role_key, check.rule);
            if trace {
                checks.push((i, check));
                // Keep tracing the rest so explain shows every candidate.
                for (j, rest) in facts.candidates.iter().enumerate().skip(i + 1) {
                    checks.push((j, scope_check(facts, rest)));
                }
            }
            return Evaluation {
                deny_code: None,
                reason,
                checks,
            };
        }
        if first_code.is_none() {
            first_code = Some((
                check.deny_code.unwrap_or(DenyCode::ScopeOutOfBounds),
                check.reason.clone(),
            ));
        }
        if trace {
            checks.push((i, check));
        }
    }
    let (code, reason) = first_code.unwrap_or((
        DenyCode::ScopeOutOfBounds,
        "no scope covers the target".to_owned(),
    ));
    Evaluation {
        deny_code: Some(code),
        reason,
        checks,
    }
}

fn cross_space(facts: &Facts) -> Option<String> {
    let space = &facts.actor.space_id;
    let differs = |what: &str, other: &str| {
        (other != space).then(|| format!("{what} is in space {other}, the request is in {space}"))
    };
    if let Some(r) = differs("member", &facts.actor.member_space_id) {
        return Some(r);
    }
    if let Some(r) = differs("target", &facts.target.space_id) {
        return Some(r);
    }
    if let Some(r) = facts
        .target
        .group
        .as_ref()
        .and_then(|g| g.space_id.as_deref())
        .and_then(|s| differs("target group", s))
    {
        return Some(r);
    }
    for c in &facts.candidates {
        let anchor_space = c.anchor.as_ref().and_then(|a| a.space_id.as_deref());
        let found = differs(&format!("role {}", c.role_key), &c.role_space_id)
            .or_else(|| {
                differs(
                    &format!("member-role {}", c.member_role_id),
                    &c.member_role_space_id,
                )
            })
            .or_else(|| {
                anchor_space.and_then(|s| differs(&format!("anchor of role {}", c.role_key), s))
            });
        if found.is_some() {
            return found;
        }
    }
    None
}

fn scope_check(facts: &Facts, candidate: &Candidate) -> ScopeCheck {
    let not = |rule: String, reason: String, code: DenyCode| ScopeCheck {
        covered: false,
        rule,
        reason,
        deny_code: Some(code),
    };
    let yes = |rule: String, reason: String| ScopeCheck {
        covered: true,
        rule,
        reason,
        deny_code: None,
    };
    let target_group = facts.target.group.as_ref();
    match candidate.scope {
        Scope::Global => not(
            "global".into(),
            "the global scope is disabled".into(),
            DenyCode::GlobalScopeDisabled,
        ),
        Scope::Space => yes(
            "space".into(),
            format!("target is in space {}", facts.target.space_id),
        ),
        Scope::OwnSelf => match &facts.target.owner_member_id {
            Some(owner) if *owner == facts.actor.member_id => {
                yes("self".into(), "the actor member owns the target".into())
            }
            Some(owner) => not(
                "self".into(),
                format!("the target is owned by {owner}"),
                DenyCode::ScopeOutOfBounds,
            ),
            None => not(
                "self".into(),
                "the target has no owner".into(),
                DenyCode::ScopeOutOfBounds,
            ),
        },
        Scope::Group | Scope::GroupTree => {
            let tree = candidate.scope == Scope::GroupTree;
            let name = if tree { "group_tree" } else { "group" };
            let Some(anchor) = candidate.anchor.as_ref().filter(|_| candidate.anchor_named) else {
                return not(
                    name.into(),
                    "the grant has no scope anchor group".into(),
                    DenyCode::ScopeAnchorMissing,
                );
            };
            let Some(group) = target_group else {
                return not(
                    name.into(),
                    "the target has no group".into(),
                    DenyCode::TargetGroupMissing,
                );
            };
            let rule = format!("{name}: {} within {}", group.path, anchor.path);
            let covered = if tree {
                path_within(&group.path, &anchor.path)
            } else {
                match (&group.id, &anchor.id) {
                    (Some(g), Some(a)) => g == a,
                    _ => group.path == anchor.path,
                }
            };
            if covered {
                yes(
                    rule,
                    format!("group {} is covered by anchor {}", group.path, anchor.path),
                )
            } else {
                not(
                    rule,
                    format!("group {} is outside anchor {}", group.path, anchor.path),
                    DenyCode::ScopeOutOfBounds,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(path: &str) -> GroupFacts {
        GroupFacts {
            id: Some(format!("group_{}", path.replace('.', "_"))),
            path: path.to_owned(),
            space_id: Some("space_acme".into()),
        }
    }

    fn facts() -> Facts {
        Facts {
            actor: ActorFacts {
                user_id: "user_alice".into(),
                user_active: true,
                member_id: "member_finance_reviewer".into(),
                member_active: true,
                member_space_id: "space_acme".into(),
                user_member_id: "um_alice_finance_reviewer".into(),
                binding_revoked: false,
                binding_expires_at: None,
                space_id: "space_acme".into(),
                space_active: true,
            },
            target: TargetFacts {
                resource_type: "invoice".into(),
                resource_id: "invoice_001".into(),
                space_id: "space_acme".into(),
                group: Some(group("finance.apac")),
                owner_member_id: Some("member_invoice_creator".into()),
            },
            action: "approve".into(),
            resource_type_known: true,
            action_known: true,
            candidates: vec![candidate(Scope::GroupTree, Some("finance"))],
            now: 1_000,
        }
    }

    fn candidate(scope: Scope, anchor: Option<&str>) -> Candidate {
        Candidate {
            role_key: "finance_approver".into(),
            role_id: "role_finance_approver".into(),
            role_space_id: "space_acme".into(),
            permission_id: "perm_invoice_approve".into(),
            scope,
            member_role_id: "mr_1".into(),
            member_role_space_id: "space_acme".into(),
            anchor_named: anchor.is_some(),
            anchor: anchor.map(group),
        }
    }

    type Edit = Box<dyn Fn(&mut Facts)>;

    fn code(f: &Facts) -> Option<DenyCode> {
        let e = evaluate(f, false);
        assert_eq!(
            e.deny_code,
            evaluate(f, true).deny_code,
            "check and explain agree"
        );
        e.deny_code
    }

    #[test]
    fn finance_reviewer_table_at_engine_level() {
        let f = facts();
        assert_eq!(code(&f), None);
        let mut legal = facts();
        legal.target.group = Some(group("legal.emea"));
        assert_eq!(code(&legal), Some(DenyCode::ScopeOutOfBounds));
        let mut revoked = facts();
        revoked.actor.binding_revoked = true;
        assert_eq!(code(&revoked), Some(DenyCode::UserMemberRevoked));
        let mut expired = facts();
        expired.actor.binding_expires_at = Some(999);
        assert_eq!(code(&expired), Some(DenyCode::UserMemberExpired));
        let mut reject = facts();
        reject.candidates.clear();
        assert_eq!(code(&reject), Some(DenyCode::NoMatchingPermission));
        let mut unknown_type = facts();
        unknown_type.resource_type_known = false;
        assert_eq!(code(&unknown_type), Some(DenyCode::InvalidResourceType));
        let mut unknown_action = facts();
        unknown_action.action_known = false;
        assert_eq!(code(&unknown_action), Some(DenyCode::InvalidResourceAction));
        let mut global = facts();
        global.candidates = vec![candidate(Scope::Global, None)];
        assert_eq!(code(&global), Some(DenyCode::GlobalScopeDisabled));
    }

    #[test]
    fn actor_state_precedes_the_registry_and_is_ordered() {
        let mut f = facts();
        f.resource_type_known = false;
        f.actor.binding_revoked = true;
        f.actor.binding_expires_at = Some(0);
        assert_eq!(code(&f), Some(DenyCode::UserMemberRevoked));
        f.actor.space_active = false;
        assert_eq!(code(&f), Some(DenyCode::SpaceInactive));
        f.actor.member_active = false;
        assert_eq!(code(&f), Some(DenyCode::ActorMemberInactive));
        f.actor.user_active = false;
        assert_eq!(code(&f), Some(DenyCode::ActorUserInactive));
    }

    #[test]
    fn each_cross_space_mutation_denies() {
        let mutations: Vec<Edit> = vec![
            Box::new(|f| f.actor.member_space_id = "space_other".into()),
            Box::new(|f| f.target.space_id = "space_other".into()),
            Box::new(|f| f.target.group.as_mut().unwrap().space_id = Some("space_other".into())),
            Box::new(|f| f.candidates[0].role_space_id = "space_other".into()),
            Box::new(|f| f.candidates[0].member_role_space_id = "space_other".into()),
            Box::new(|f| {
                f.candidates[0].anchor.as_mut().unwrap().space_id = Some("space_other".into())
            }),
            Box::new(|f| f.actor.space_id = "space_other".into()),
        ];
        for (i, mutate) in mutations.iter().enumerate() {
            let mut f = facts();
            mutate(&mut f);
            assert_eq!(
                code(&f),
                Some(DenyCode::CrossSpaceViolation),
                "mutation {i}"
            );
        }
    }

    #[test]
    fn scope_matrix() {
        use DenyCode::*;
        let own = |f: &mut Facts| f.target.owner_member_id = Some("member_finance_reviewer".into());
        let cases: Vec<(Scope, Option<&str>, Edit, Option<DenyCode>)> = vec![
            (Scope::OwnSelf, None, Box::new(own), None),
            (
                Scope::OwnSelf,
                None,
                Box::new(|_| {}),
                Some(ScopeOutOfBounds),
            ),
            (
                Scope::OwnSelf,
                None,
                Box::new(|f| f.target.owner_member_id = None),
                Some(ScopeOutOfBounds),
            ),
            (Scope::Group, Some("finance.apac"), Box::new(|_| {}), None),
            (
                Scope::Group,
                Some("finance"),
                Box::new(|_| {}),
                Some(ScopeOutOfBounds),
            ),
            (
                Scope::Group,
                None,
                Box::new(|_| {}),
                Some(ScopeAnchorMissing),
            ),
            (
                Scope::Group,
                Some("finance.apac"),
                Box::new(|f| f.target.group = None),
                Some(TargetGroupMissing),
            ),
            (Scope::GroupTree, Some("finance"), Box::new(|_| {}), None),
            (
                Scope::GroupTree,
                Some("finance.apac"),
                Box::new(|_| {}),
                None,
            ),
            (
                Scope::GroupTree,
                Some("finance.emea"),
                Box::new(|_| {}),
                Some(ScopeOutOfBounds),
            ),
            (
                Scope::GroupTree,
                None,
                Box::new(|_| {}),
                Some(ScopeAnchorMissing),
            ),
            (
                Scope::GroupTree,
                Some("finance"),
                Box::new(|f| f.target.group = None),
                Some(TargetGroupMissing),
            ),
            (Scope::Space, None, Box::new(|_| {}), None),
            (
                Scope::Global,
                None,
                Box::new(|_| {}),
                Some(GlobalScopeDisabled),
            ),
        ];
        for (i, (scope, anchor, edit, expected)) in cases.iter().enumerate() {
            let mut f = facts();
            f.candidates = vec![candidate(*scope, *anchor)];
            edit(&mut f);
            assert_eq!(
                code(&f),
                *expected,
                "case {i}: {scope:?} anchored at {anchor:?}"
            );
        }
    }

    #[test]
    fn scopes_are_a_union_and_the_first_candidate_names_the_deny() {
        let mut f = facts();
        f.candidates = vec![
            candidate(Scope::Global, None),
            candidate(Scope::GroupTree, Some("finance")),
        ];
        assert_eq!(code(&f), None, "any covering candidate allows");
        f.candidates = vec![
            candidate(Scope::Group, None),
            candidate(Scope::Global, None),
        ];
        assert_eq!(code(&f), Some(DenyCode::ScopeAnchorMissing));
        let traced = evaluate(&f, true);
        assert_eq!(traced.checks.len(), 2);
    }

    #[test]
    fn group_tree_is_strict_about_boundaries() {
        assert!(path_within("finance", "finance"));
        assert!(path_within("finance.apac", "finance"));
        assert!(path_within("finance.apac.sg", "finance"));
        assert!(!path_within("finance-old", "finance"));
        assert!(!path_within("financeops", "finance"));
        assert!(!path_within("legal", "finance"));
        assert!(!path_within("fin", "finance"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn reference(target: &str, anchor: &str) -> bool {
            let t: Vec<&str> = target.split('.').collect();
            let a: Vec<&str> = anchor.split('.').collect();
            t.len() >= a.len() && t[..a.len()] == a[..]
        }

        fn path() -> impl Strategy<Value = String> {
            proptest::collection::vec("[a-c][a-c_]{0,2}", 1..4).prop_map(|s| s.join("."))
        }

        proptest! {
            #[test]
            fn group_tree_matches_the_segment_reference(target in path(), anchor in path()) {
                prop_assert_eq!(path_within(&target, &anchor), reference(&target, &anchor));
            }

            #[test]
            fn explain_always_decides_like_check(
                user in any::<bool>(), member in any::<bool>(), space in any::<bool>(), revoked in any::<bool>(),
                expires in proptest::option::of(0i64..2000), known in any::<bool>(), action in any::<bool>(),
                other_space in any::<bool>(), scopes in proptest::collection::vec(0u8..5, 0..4), anchored in any::<bool>(),
                target_path in path(), anchor_path in path(), owned in any::<bool>(), grouped in any::<bool>(),
            ) {
                let mut f = super::facts();
                f.actor.user_active = user;
                f.actor.member_active = member;
                f.actor.space_active = space;
                f.actor.binding_revoked = revoked;
                f.actor.binding_expires_at = expires;
                f.resource_type_known = known;
                f.action_known = action;
                if other_space { f.target.space_id = "space_other".into(); }
                f.target.group = grouped.then(|| super::group(&target_path));
                if owned { f.target.owner_member_id = Some(f.actor.member_id.clone()); }
                f.candidates = scopes.iter().map(|s| {
                    let scope = [Scope::OwnSelf, Scope::Group, Scope::GroupTree, Scope::Space, Scope::Global][*s as usize];
                    super::candidate(scope, anchored.then_some(anchor_path.as_str()))
                }).collect();
                prop_assert_eq!(evaluate(&f, false).deny_code, evaluate(&f, true).deny_code);
            }
        }
    }
}
