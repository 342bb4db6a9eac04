//! Who a credential is as an administrator: its authorities (a scope and the permission keys it
//! holds there), and whether they reach a target. A scope is the instance, one space, or one group
//! subtree (group_tree's path rule: the group itself and every path below it).

use plystra_contracts::services::Credential;

use crate::permission::{PermissionKey, any_covers};

/// Where an authority reaches, or where an object lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole instance.
    Instance,
    /// One space.
    Space(String),
    /// One group and its subtree.
    Group {
        /// The group's space.
        space_id: String,
        /// The group.
        group_id: String,
        /// Its dotted path.
        path: String,
    },
}

impl Scope {
    /// Whether an authority over `self` reaches an object in `other`.
    pub fn covers(&self, other: &Scope) -> bool {
        match (self, other) {
            (Self::Instance, _) => true,
            (Self::Space(s), Self::Space(o)) => s == o,
            (Self::Space(s), Self::Group { space_id, .. }) => s == space_id,
            (
                Self::Group {
                    space_id, path: p, ..
                },
                Self::Group {
                    space_id: o,
                    path: q,
                    ..
                },
            ) => space_id == o && (q == p || q.starts_with(&format!("{p}."))),
            _ => false,
        }
    }

    /// The level word of this scope (`instance`, `space`, `group`).
    pub fn level(&self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Space(_) => "space",
            Self::Group { .. } => "group",
        }
    }
}

/// One thing a principal holds: permission keys within a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// Where it reaches.
    pub scope: Scope,
    /// What it allows there.
    pub permissions: Vec<PermissionKey>,
    /// Whether it comes from an active `instance_super_admin` grant (never from an API key).
    pub super_admin: bool,
}

impl Authority {
    /// Whether this authority holds `wanted` at `target`.
    pub fn holds(&self, wanted: &PermissionKey, target: &Scope) -> bool {
        self.scope.covers(target) && any_covers(&self.permissions, wanted)
    }
}

/// Where a management call lands, as far as the path tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The handler applies the scope itself (API keys, admin grants, admin/me).
    HandlerScoped,
    /// A known scope.
    Scope(Scope),
    /// The path names an object whose space is not known here: instance authorities only.
    Unresolved,
}

/// A credential and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential.
    pub credential: Credential,
    /// Its authorities; empty for an inactive key or a user without active grants.
    pub authorities: Vec<Authority>,
}

impl Principal {
    /// Whether the principal holds `wanted` at `target`.
    pub fn allows(&self, wanted: &PermissionKey, target: &Target) -> bool {
        self.authorities.iter().any(|a| match target {
            Target::HandlerScoped => any_covers(&a.permissions, wanted),
            Target::Scope(scope) => a.holds(wanted, scope),
            Target::Unresolved => a.holds(wanted, &Scope::Instance),
        })
    }

    /// Whether some authority holds `wanted` over an object in `scope`.
    pub fn holds(&self, wanted: &PermissionKey, scope: &Scope) -> bool {
        self.authorities.iter().any(|a| a.holds(wanted, scope))
    }

    /// Whether the principal is an active super admin (a user session only).
    pub fn is_super_admin(&self) -> bool {
        matches!(self.credential, Credential::Session { .. })
            && self.authorities.iter().any(|a| a.super_admin)
    }

    /// The user behind a session credential.
    pub fn user_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { user_id, .. } => Some(user_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(space: &str, id: &str, path: &str) -> Scope {
        Scope::Group {
            space_id: space.into(),
            group_id: id.into(),
            path: path.into(),
        }
    }

    #[test]
    fn scopes_nest_by_space_and_group_path() {
        let finance = group("space_a", "g1", "finance");
        assert!(Scope::Instance.covers(&finance));
        assert!(Scope::Space("space_a".into()).covers(&finance));
        assert!(!Scope::Space("space_b".into()).covers(&finance));
        assert!(finance.covers(&group("space_a", "g2", "finance.ap")));
        assert!(finance.covers(&finance));
        assert!(
            !finance.covers(&group("space_a", "g3", "financex")),
            "a prefix is not a subtree"
        );
        assert!(!finance.covers(&group("space_a", "g4", "sales")));
        assert!(!finance.covers(&group("space_b", "g5", "finance.ap")));
        assert!(!finance.covers(&Scope::Space("space_a".into())));
        assert!(!Scope::Space("space_a".into()).covers(&Scope::Instance));
    }

    #[test]
    fn unresolved_targets_need_an_instance_authority() {
        let read = PermissionKey::parse("members:read").unwrap();
        let space = Principal {
            credential: Credential::ApiKey { id: "ak_1".into() },
            authorities: vec![Authority {
                scope: Scope::Space("space_a".into()),
                permissions: vec![PermissionKey::All],
                super_admin: false,
            }],
        };
        assert!(space.allows(&read, &Target::Scope(Scope::Space("space_a".into()))));
        assert!(!space.allows(&read, &Target::Scope(Scope::Space("space_b".into()))));
        assert!(!space.allows(&read, &Target::Unresolved));
        assert!(!space.allows(&read, &Target::Scope(Scope::Instance)));
        assert!(space.allows(&read, &Target::HandlerScoped));
        assert!(!space.is_super_admin());
    }
}
