//! Permission keys: `*`, or lowercase `domain:action` with tokens `[a-z0-9_-]+`, where the action
//! (never the domain) may be `*`. `*` covers everything; `domain:*` and `domain:manage` cover every
//! action of their domain; any other key covers only itself.

use std::fmt;

/// A parsed permission key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PermissionKey {
    /// `*`.
    All,
    /// `domain:action`.
    Scoped {
        /// The domain, for example `users`.
        domain: String,
        /// The action, or `*`.
        action: String,
    },
}

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key:?} is not a permission key: {problem} (expected `*` or lowercase `domain:action`)")]
pub struct InvalidPermissionKey {
    /// The key as given.
    pub key: String,
    /// What is wrong.
    pub problem: &'static str,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl PermissionKey {
    /// Parses a key.
    pub fn parse(key: &str) -> Result<Self, InvalidPermissionKey> {
        let err = |problem| InvalidPermissionKey {
            key: key.to_owned(),
            problem,
        };
        if key == "*" {
            return Ok(Self::All);
        }
        let (domain, action) = key.split_once(':').ok_or_else(|| err("it has no `:`"))?;
        if domain == "*" {
            return Err(err("the domain cannot be `*`"));
        }
        if !is_token(domain) {
            return Err(err(
                "the domain must be lowercase letters, digits, `_` or `-`",
            ));
        }
        if action != "*" && !is_token(action) {
            return Err(err(
                "the action must be `*` or lowercase letters, digits, `_` or `-`",
            ));
        }
        Ok(Self::Scoped {
            domain: domain.to_owned(),
            action: action.to_owned(),
        })
    }

    /// Whether holding `self` grants `wanted`.
    pub fn covers(&self, wanted: &PermissionKey) -> bool {
        match (self, wanted) {
            (Self::All, _) => true,
            (Self::Scoped { .. }, Self::All) => false,
            (
                Self::Scoped { domain, action },
                Self::Scoped {
                    domain: d,
                    action: a,
                },
            ) => domain == d && (action == "*" || action == "manage" || action == a),
        }
    }
}

impl fmt::Display for PermissionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Scoped { domain, action } => write!(f, "{domain}:{action}"),
        }
    }
}

/// Whether any held key covers `wanted`.
pub fn any_covers(held: &[PermissionKey], wanted: &PermissionKey) -> bool {
    held.iter().any(|k| k.covers(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PermissionKey {
        PermissionKey::parse(s).unwrap()
    }

    #[test]
    fn valid_and_invalid_forms() {
        for ok in [
            "*",
            "users:read",
            "users:*",
            "api_keys:create",
            "a-b:c_d",
            "x1:y2",
        ] {
            assert_eq!(key(ok).to_string(), ok);
        }
        for bad in [
            "*:read",
            "Users:read",
            "users",
            "users:",
            ":read",
            "users:read:extra",
            "users:Read",
            "",
            "users :read",
        ] {
            assert!(PermissionKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn matching_rules() {
        assert!(key("*").covers(&key("users:read")));
        assert!(key("*").covers(&key("*")));
        assert!(key("users:read").covers(&key("users:read")));
        assert!(!key("users:read").covers(&key("users:manage")));
        assert!(key("users:*").covers(&key("users:disable")));
        assert!(key("users:manage").covers(&key("users:read")));
        assert!(!key("users:manage").covers(&key("spaces:read")));
        assert!(!key("users:*").covers(&key("*")));
        assert!(any_covers(
            &[key("spaces:read"), key("users:manage")],
            &key("users:read")
        ));
    }
}
