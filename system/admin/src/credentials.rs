//! The control plane's credentials in memory: API keys, admin grants, and what their scopes and
//! their validity need (user statuses, group spaces and paths). Loaded from the tables and kept
//! current by the change feed, like the authorization index, so that authenticating a key,
//! judging a principal's permissions and the bootstrap handoff read no table on a request.
//!
//! Every write of a key or a grant (the routes, and `plystractl admin …` in another process)
//! appends its full state as a [`Fact::ApiKey`] or [`Fact::AdminGrant`] through the one commit
//! path; users and groups arrive as identity's facts. Expiry is judged at the time of the request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use plystra_contracts::facts::Fact;
use plystra_contracts::feed::{Change, FactsConsumer};
use plystra_contracts::services::ActorResolver;
use plystra_contracts::storage::Database;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::time::format_description::well_known::Rfc3339;

use crate::permission::PermissionKey;
use crate::scope::Scope;
use crate::store::{self, AdminGrant, AdminStatus, GrantLevel, KeyLevel, KeyRow};

/// An API key as verification needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyEntry {
    /// The stored HMAC of the secret, hex.
    pub(crate) hmac: String,
    level: Option<KeyLevel>,
    space_id: Option<String>,
    group_id: Option<String>,
    /// The permission keys it holds, parsed (an unparsable one is dropped).
    pub(crate) permissions: Vec<PermissionKey>,
    status_active: bool,
    expires_at: Option<OffsetDateTime>,
}

impl KeyEntry {
    /// Whether it authenticates at `now`.
    pub(crate) fn usable(&self, now: OffsetDateTime) -> bool {
        self.status_active && self.level.is_some() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// An admin grant as a principal needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GrantEntry {
    pub(crate) id: String,
    user_id: String,
    pub(crate) level: Option<GrantLevel>,
    space_id: Option<String>,
    group_id: Option<String>,
    pub(crate) permission_key: Option<String>,
    status_active: bool,
    expires_at: Option<OffsetDateTime>,
}

/// A group's space and path.
#[derive(Debug, Clone, PartialEq)]
struct GroupEntry {
    space_id: String,
    path: String,
}

/// Everything the control plane decides on.
#[derive(Debug, Default)]
pub(crate) struct State {
    keys: HashMap<String, KeyEntry>,
    grants: HashMap<String, GrantEntry>,
    /// user → its grants' IDs, in ID order.
    grants_of_user: HashMap<String, BTreeSet<String>>,
    /// user → whether its status is `active`.
    users: HashMap<String, bool>,
    groups: HashMap<String, GroupEntry>,
}

fn parse_time(value: Option<&str>) -> Option<OffsetDateTime> {
    // An unreadable expiry is treated as already past: fail closed.
    value.map(|v| OffsetDateTime::parse(v, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

fn format_time(value: Option<OffsetDateTime>) -> Option<String> {
    value.and_then(|t| t.format(&Rfc3339).ok())
}

/// The fact of a stored key.
pub(crate) fn key_fact(row: &KeyRow) -> Fact {
    let key = &row.key;
    Fact::ApiKey {
        id: key.id.clone(),
        key_hmac: row.hmac.clone(),
        level: key.level.as_str().to_owned(),
        space_id: key.space_id.clone(),
        group_id: key.group_id.clone(),
        permission_keys: key.permission_keys.clone(),
        status: if key.status == AdminStatus::Active && key.revoked_at.is_none() {
            "active"
        } else {
            "revoked"
        }
        .to_owned(),
        expires_at: format_time(key.expires_at),
    }
}

/// The fact of a stored grant.
pub(crate) fn grant_fact(grant: &AdminGrant) -> Fact {
    Fact::AdminGrant {
        id: grant.id.clone(),
        user_id: grant.user_id.clone(),
        level: grant.level.as_str().to_owned(),
        space_id: grant.space_id.clone(),
        group_id: grant.group_id.clone(),
        permission_key: grant.permission_key.clone(),
        status: if grant.status == AdminStatus::Active && grant.revoked_at.is_none() {
            "active"
        } else {
            "revoked"
        }
        .to_owned(),
        expires_at: format_time(grant.expires_at),
    }
}

impl State {
    fn apply(&mut self, fact: &Fact) {
        match fact {
            Fact::ApiKey {
                id,
                key_hmac,
                level,
                space_id,
                group_id,
                permission_keys,
                status,
                expires_at,
            } => {
                self.keys.insert(
                    id.clone(),
                    KeyEntry {
                        hmac: key_hmac.clone(),
                        level: KeyLevel::parse(level),
                        space_id: space_id.clone(),
                        group_id: group_id.clone(),
                        permissions: permission_keys
                            .iter()
                            .filter_map(|k| PermissionKey::parse(k).ok())
                            .collect(),
                        status_active: status == "active",
                        expires_at: parse_time(expires_at.as_deref()),
                    },
                );
            }
            Fact::AdminGrant {
                id,
                user_id,
                level,
                space_id,
                group_id,
                permission_key,
                status,
                expires_at,
            } => {
                if let Some(old) = self.grants.get(id)
                    && old.user_id != *user_id
                    && let Some(ids) = self.grants_of_user.get_mut(&old.user_id)
                {
                    ids.remove(id);
                }
                self.grants_of_user
                    .entry(user_id.clone())
                    .or_default()
                    .insert(id.clone());
                self.grants.insert(
                    id.clone(),
                    GrantEntry {
                        id: id.clone(),
                        user_id: user_id.clone(),
                        level: GrantLevel::parse(level),
                        space_id: space_id.clone(),
                        group_id: group_id.clone(),
                        permission_key: permission_key.clone(),
                        status_active: status == "active",
                        expires_at: parse_time(expires_at.as_deref()),
                    },
                );
            }
            Fact::User { id, status, .. } => {
                self.users.insert(id.clone(), status == "active");
            }
            Fact::Group {
                id, space_id, path, ..
            } => {
                self.groups.insert(
                    id.clone(),
                    GroupEntry {
                        space_id: space_id.clone(),
                        path: path.clone(),
                    },
                );
            }
            _ => {}
        }
    }

    /// The key with `id`, whatever its state.
    pub(crate) fn key(&self, id: &str) -> Option<&KeyEntry> {
        self.keys.get(id)
    }

    /// The scope of a group, `None` when it is unknown.
    pub(crate) fn group_scope(&self, group_id: &str) -> Option<Scope> {
        self.groups.get(group_id).map(|g| Scope::Group {
            space_id: g.space_id.clone(),
            group_id: group_id.to_owned(),
            path: g.path.clone(),
        })
    }

    /// Where a key reaches; `None` when its level is unknown or its group is missing.
    pub(crate) fn key_scope(&self, key: &KeyEntry) -> Option<Scope> {
        match (key.level?, &key.space_id, &key.group_id) {
            (KeyLevel::Instance, _, _) => Some(Scope::Instance),
            (KeyLevel::Space, Some(space), _) => Some(Scope::Space(space.clone())),
            (KeyLevel::Group, _, Some(group)) => self.group_scope(group),
            _ => None,
        }
    }

    /// Where a grant reaches; `None` when its level is unknown or its group is missing.
    pub(crate) fn grant_scope(&self, grant: &GrantEntry) -> Option<Scope> {
        match (grant.level?, &grant.space_id, &grant.group_id) {
            (GrantLevel::InstanceSuperAdmin | GrantLevel::InstanceAdmin, _, _) => {
                Some(Scope::Instance)
            }
            (GrantLevel::SpaceAdmin, Some(space), _) => Some(Scope::Space(space.clone())),
            (GrantLevel::GroupAdmin, _, Some(group)) => self.group_scope(group),
            _ => None,
        }
    }

    /// Whether `grant` is in force at `now`: active, unexpired, its user known and active.
    fn in_force(&self, grant: &GrantEntry, now: OffsetDateTime) -> bool {
        grant.status_active
            && grant.level.is_some()
            && grant.expires_at.is_none_or(|at| at > now)
            && self.users.get(&grant.user_id).copied().unwrap_or(false)
    }

    /// The grants of `user_id` in force at `now`, in ID order.
    pub(crate) fn grants_of(&self, user_id: &str, now: OffsetDateTime) -> Vec<&GrantEntry> {
        self.grants_of_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.grants.get(id))
            .filter(|g| self.in_force(g, now))
            .collect()
    }

    /// Whether an `instance_super_admin` grant is in force at `now` (no allocation: the
    /// bootstrap key asks on every request until the handoff).
    pub(crate) fn has_super_admin(&self, now: OffsetDateTime) -> bool {
        self.grants
            .values()
            .any(|g| g.level == Some(GrantLevel::InstanceSuperAdmin) && self.in_force(g, now))
    }

    /// The IDs of the `instance_super_admin` grants in force at `now`, in ID order.
    pub(crate) fn super_admins(&self, now: OffsetDateTime) -> Vec<String> {
        let by_id: BTreeMap<&String, &GrantEntry> = self
            .grants
            .iter()
            .filter(|(_, g)| g.level == Some(GrantLevel::InstanceSuperAdmin))
            .filter(|(_, g)| self.in_force(g, now))
            .collect();
        by_id.into_keys().cloned().collect()
    }
}

/// The in-memory credentials, a consumer of the change feed.
pub(crate) struct Credentials {
    state: RwLock<State>,
    db: Database,
    resolver: Arc<dyn ActorResolver>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        f.debug_struct("Credentials")
            .field("keys", &state.keys.len())
            .field("grants", &state.grants.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Empty credentials, loaded from `db` and `resolver` when the feed says so.
    pub(crate) fn new(db: Database, resolver: Arc<dyn ActorResolver>) -> Self {
        Self {
            state: RwLock::new(State::default()),
            db,
            resolver,
        }
    }

    /// The current state. Writers hold the lock only to apply one change, never across an await.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    async fn read_tables(&self) -> Result<State, String> {
        let mut state = State::default();
        for fact in self
            .resolver
            .user_and_group_facts()
            .await
            .map_err(|e| format!("cannot load users and groups: {e}"))?
        {
            state.apply(&fact);
        }
        for row in store::keys_after(&self.db, None)
            .await
            .map_err(|e| format!("cannot load API keys: {e}"))?
        {
            state.apply(&key_fact(&row));
        }
        for grant in store::grants_after(&self.db, None)
            .await
            .map_err(|e| format!("cannot load admin grants: {e}"))?
        {
            state.apply(&grant_fact(&grant));
        }
        Ok(state)
    }
}

#[async_trait]
impl FactsConsumer for Credentials {
    async fn load(&self, _revision: u64) -> Result<(), String> {
        let loaded = self.read_tables().await?;
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(())
    }

    fn apply(&self, change: &Change) {
        let relevant = change.facts.iter().any(|f| {
            matches!(
                f,
                Fact::ApiKey { .. }
                    | Fact::AdminGrant { .. }
                    | Fact::User { .. }
                    | Fact::Group { .. }
            )
        });
        if !relevant {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for fact in change.facts.iter() {
            state.apply(fact);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plystra_contracts::storage::time::Duration;

    fn key(id: &str, status: &str, expires_at: Option<&str>) -> Fact {
        Fact::ApiKey {
            id: id.into(),
            key_hmac: "00".into(),
            level: "group".into(),
            space_id: Some("space_a".into()),
            group_id: Some("group_a".into()),
            permission_keys: vec!["authz:check".into(), "not a key".into()],
            status: status.into(),
            expires_at: expires_at.map(str::to_owned),
        }
    }

    fn grant(id: &str, user: &str, level: &str, status: &str) -> Fact {
        Fact::AdminGrant {
            id: id.into(),
            user_id: user.into(),
            level: level.into(),
            space_id: None,
            group_id: None,
            permission_key: None,
            status: status.into(),
            expires_at: None,
        }
    }

    fn user(id: &str, status: &str) -> Fact {
        Fact::User {
            id: id.into(),
            status: status.into(),
            username: Some(format!("{id}@example.com")),
            metadata: None,
        }
    }

    #[test]
    fn keys_follow_their_facts_and_expire_by_the_clock() {
        let now = OffsetDateTime::now_utc();
        let mut state = State::default();
        state.apply(&key("ak_1", "active", None));
        let entry = state.key("ak_1").unwrap();
        assert!(entry.usable(now));
        assert_eq!(entry.permissions.len(), 1, "an unparsable key is dropped");
        // The group is not known yet: no scope, so no authority.
        assert_eq!(state.key_scope(entry), None);
        state.apply(&Fact::Group {
            id: "group_a".into(),
            space_id: "space_a".into(),
            path: "finance".into(),
            status: "active".into(),
        });
        assert!(matches!(
            state.key_scope(state.key("ak_1").unwrap()),
            Some(Scope::Group { ref path, .. }) if path == "finance"
        ));
        state.apply(&key("ak_1", "revoked", None));
        assert!(!state.key("ak_1").unwrap().usable(now));
        let soon = format_time(Some(now + Duration::minutes(1)));
        state.apply(&key("ak_2", "active", soon.as_deref()));
        assert!(state.key("ak_2").unwrap().usable(now));
        assert!(
            !state
                .key("ak_2")
                .unwrap()
                .usable(now + Duration::minutes(2))
        );
        state.apply(&key("ak_3", "active", Some("not a time")));
        assert!(
            !state.key("ak_3").unwrap().usable(now),
            "an unreadable expiry fails closed"
        );
        let mut unknown_level = key("ak_4", "active", None);
        if let Fact::ApiKey { level, .. } = &mut unknown_level {
            *level = "galaxy".into();
        }
        state.apply(&unknown_level);
        assert!(!state.key("ak_4").unwrap().usable(now));
    }

    #[test]
    fn grants_need_an_active_user_and_super_admins_are_counted_in_force() {
        let now = OffsetDateTime::now_utc();
        let mut state = State::default();
        state.apply(&grant("ag_2", "user_a", "instance_super_admin", "active"));
        assert!(
            state.super_admins(now).is_empty(),
            "a grant of an unknown user is not in force"
        );
        state.apply(&user("user_a", "active"));
        state.apply(&grant("ag_1", "user_a", "space_admin", "active"));
        assert_eq!(state.super_admins(now), ["ag_2"]);
        assert!(state.has_super_admin(now));
        let ids: Vec<&str> = state
            .grants_of("user_a", now)
            .iter()
            .map(|g| g.id.as_str())
            .collect();
        assert_eq!(ids, ["ag_1", "ag_2"]);
        state.apply(&user("user_a", "disabled"));
        assert!(state.grants_of("user_a", now).is_empty());
        assert!(state.super_admins(now).is_empty());
        state.apply(&user("user_a", "active"));
        state.apply(&grant("ag_2", "user_a", "instance_super_admin", "revoked"));
        assert!(state.super_admins(now).is_empty());
        assert!(!state.has_super_admin(now));
        // A grant moved to another user leaves the first one's list.
        state.apply(&user("user_b", "active"));
        state.apply(&grant("ag_1", "user_b", "space_admin", "active"));
        assert!(state.grants_of("user_a", now).is_empty());
        assert_eq!(state.grants_of("user_b", now).len(), 1);
    }
}
