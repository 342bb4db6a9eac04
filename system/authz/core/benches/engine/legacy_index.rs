//! The authorization index as it was before issue 17 (string keys in persistent hash maps),
//! kept here only so that the engine benchmark can measure the dense index against it in the
//! same run. Not used by the server.

#![allow(dead_code)]

use std::borrow::Cow;
use std::hash::Hash;
use std::sync::Arc;

use equivalent::Equivalent;
use imbl::shared_ptr::DefaultSharedPtr;
use imbl::{OrdMap, OrdSet};
use plystra_authz_core::ResolveError;
use plystra_authz_core::Scope;
use plystra_authz_core::engine::{ActorFacts, Candidate, Facts, GroupFacts, TargetFacts};
use plystra_authz_core::index::{ActorStatuses, Request, Resolved};
use plystra_authz_core::{Fact, ResourceFact};

/// A persistent hash map with a fast (non-SipHash) hasher: a check makes a dozen lookups.
type HashMap<K, V> = imbl::GenericHashMap<K, V, foldhash::fast::RandomState, DefaultSharedPtr>;
/// The set counterpart of [`HashMap`].
type HashSet<A> = imbl::GenericHashSet<A, foldhash::fast::RandomState, DefaultSharedPtr>;

/// A borrowed `(String, String)` key: hashes and compares like the owned pair, so a lookup by
/// (type key, ID) allocates nothing.
#[derive(Hash)]
struct Pair<'a>(&'a str, &'a str);

impl Equivalent<(String, String)> for Pair<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// A status as text (for the trace), with whether it is `active` worked out once, so that a
/// decision compares a flag instead of reading the text.
#[derive(Debug, Clone)]
struct Status {
    text: String,
    active: bool,
}

impl Status {
    fn of(text: String) -> Self {
        Self {
            active: text == "active",
            text,
        }
    }
}

#[derive(Debug, Clone)]
struct MemberRow {
    space_id: String,
    status: Status,
}

#[derive(Debug, Clone)]
struct BindingRow {
    user_id: String,
    member_id: String,
    status: String,
    revoked: bool,
    expires_at: Option<String>,
    expires_unix: Option<i64>,
}

#[derive(Debug, Clone)]
struct GroupRow {
    space_id: String,
    path: String,
}

#[derive(Debug, Clone)]
struct TypeRow {
    key: String,
    active: bool,
}

#[derive(Debug, Clone)]
struct ResourceRow {
    external_id: String,
    space_id: String,
    group_id: Option<String>,
    owner_member_id: Option<String>,
}

#[derive(Debug, Clone)]
struct RoleRow {
    key: Shared,
    space_id: Shared,
    status: String,
}

#[derive(Debug, Clone)]
struct PermissionRow {
    id: Shared,
    resource: String,
    action: String,
    scope: Option<Scope>,
    status: String,
}

#[derive(Debug, Clone)]
struct RolePermissionRow {
    role_id: String,
    permission_id: String,
}

#[derive(Debug, Clone)]
struct MemberRoleRow {
    id: Shared,
    space_id: Shared,
    role_id: Shared,
    anchor: Option<Shared>,
    status: String,
}

/// A string shared by every row that repeats it: a role's key is held once however many
/// members' grants name it.
type Shared = Arc<str>;

/// One grant a member holds: an active member-role of an active role, and an active permission
/// of a known scope. Everything a candidate needs but the anchor's group, which is looked up
/// when a check uses it. Its strings are shared with the role, permission and member-role rows.
#[derive(Debug)]
struct GrantRow {
    member_role_id: Shared,
    member_role_space_id: Shared,
    role_id: Shared,
    role_key: Shared,
    role_space_id: Shared,
    permission_id: Shared,
    scope: Scope,
    anchor: Option<Shared>,
}

/// A member's grants by (type key, action), each list in candidate order (member-roles by ID,
/// then each role's permissions by ID). A plain (not persistent) map: it is rebuilt whole when
/// one of its grants changes, and looked up with a borrowed [`Pair`].
type MemberGrants =
    hashbrown::HashMap<(String, String), Vec<GrantRow>, foldhash::fast::RandomState>;

/// One immutable state of the index. Cloning is cheap: the maps are persistent.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    revision: u64,
    users: HashMap<String, Status>,
    spaces: HashMap<String, Status>,
    members: HashMap<String, MemberRow>,
    bindings: HashMap<String, BindingRow>,
    groups: HashMap<String, GroupRow>,
    /// Types by ID; `type_ids` maps keys to IDs.
    types: HashMap<String, TypeRow>,
    type_ids: HashMap<String, String>,
    /// (type key, action key).
    actions: HashSet<(String, String)>,
    /// (type key, resource ID).
    resources: HashMap<(String, String), ResourceRow>,
    /// (type key, external ID) → resource IDs.
    external_ids: HashMap<(String, String), OrdSet<String>>,
    roles: HashMap<String, RoleRow>,
    permissions: HashMap<String, PermissionRow>,
    role_permissions: HashMap<String, RolePermissionRow>,
    /// role → (permission, role-permission) of role-permissions not removed.
    permissions_of_role: HashMap<String, OrdSet<(String, String)>>,
    /// member-role → its member.
    member_of_member_role: HashMap<String, String>,
    /// member → its member-roles, in ID order.
    roles_of_member: HashMap<String, OrdMap<String, MemberRoleRow>>,
    /// role → the member-roles of it (any status): whose grants a role change reaches.
    member_roles_of_role: HashMap<String, OrdSet<String>>,
    /// permission → the role-permissions of it (removed or not): whose grants a permission
    /// change reaches.
    role_permissions_of_permission: HashMap<String, OrdSet<String>>,
    /// member → its grants by (type, action): what a check reads.
    grants_of_member: HashMap<String, Arc<MemberGrants>>,
    /// Members whose grants an applied fact may have changed; empty in a published snapshot.
    unsettled: std::collections::BTreeSet<String>,
}

fn parse_unix(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn not_found(entity: &'static str, id: &str) -> ResolveError {
    ResolveError::NotFound {
        entity,
        id: id.to_owned(),
    }
}

impl Snapshot {
    /// The change feed's revision this snapshot has applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Applies facts (each the entity's full new state) as one change, then recomputes the
    /// grants of every member they reach.
    pub fn apply_all(&mut self, facts: impl IntoIterator<Item = Fact>) {
        for fact in facts {
            self.apply_one(fact);
        }
        self.settle();
    }

    /// Recomputes the grants of the members the applied facts reached.
    fn settle(&mut self) {
        for member_id in std::mem::take(&mut self.unsettled) {
            let grants = self.grants_of(&member_id);
            if grants.is_empty() {
                self.grants_of_member.remove(&member_id);
            } else {
                self.grants_of_member.insert(member_id, Arc::new(grants));
            }
        }
    }

    /// Marks every member holding `role_id` for recomputation.
    fn unsettle_role(&mut self, role_id: &str) {
        if let Some(member_roles) = self.member_roles_of_role.get(role_id) {
            for mr_id in member_roles {
                if let Some(member_id) = self.member_of_member_role.get(mr_id) {
                    self.unsettled.insert(member_id.clone());
                }
            }
        }
    }

    /// A member's grants, computed from the member-roles, roles, role-permissions and
    /// permissions.
    fn grants_of(&self, member_id: &str) -> MemberGrants {
        let mut out = MemberGrants::default();
        let Some(rows) = self.roles_of_member.get(member_id) else {
            return out;
        };
        for mr in rows.values() {
            if mr.status != "active" {
                continue;
            }
            let Some(role) = self
                .roles
                .get(&*mr.role_id)
                .filter(|r| r.status == "active")
            else {
                continue;
            };
            let Some(grants) = self.permissions_of_role.get(&*mr.role_id) else {
                continue;
            };
            for (permission_id, _) in grants {
                let Some(p) = self.permissions.get(permission_id) else {
                    continue;
                };
                // A scope this build does not know grants nothing.
                let (true, Some(scope)) = (p.status == "active", p.scope) else {
                    continue;
                };
                out.entry((p.resource.clone(), p.action.clone()))
                    .or_default()
                    .push(GrantRow {
                        member_role_id: mr.id.clone(),
                        member_role_space_id: mr.space_id.clone(),
                        role_id: mr.role_id.clone(),
                        role_key: role.key.clone(),
                        role_space_id: role.space_id.clone(),
                        permission_id: p.id.clone(),
                        scope,
                        anchor: mr.anchor.clone(),
                    });
            }
        }
        out
    }

    /// Applies one fact (the entity's full new state); [`Snapshot::settle`] finishes it.
    fn apply_one(&mut self, fact: Fact) {
        match fact {
            Fact::User { id, status, .. } => {
                self.users.insert(id, Status::of(status));
            }
            Fact::Space { id, status } => {
                self.spaces.insert(id, Status::of(status));
            }
            Fact::Member {
                id,
                space_id,
                status,
                ..
            } => {
                self.members.insert(
                    id,
                    MemberRow {
                        space_id,
                        status: Status::of(status),
                    },
                );
            }
            Fact::UserMember {
                id,
                user_id,
                member_id,
                status,
                expires_at,
            } => {
                let expires_unix = expires_at.as_deref().and_then(parse_unix);
                self.bindings.insert(
                    id,
                    BindingRow {
                        user_id,
                        member_id,
                        revoked: status == "revoked",
                        status,
                        expires_at,
                        expires_unix,
                    },
                );
            }
            Fact::Group {
                id,
                space_id,
                path,
                status: _,
            } => {
                self.groups.insert(id, GroupRow { space_id, path });
            }
            Fact::ResourceType { id, key, status } => {
                if let Some(old) = self.types.get(&id)
                    && old.key != key
                {
                    self.type_ids.remove(&old.key);
                }
                self.type_ids.insert(key.clone(), id.clone());
                self.types.insert(
                    id,
                    TypeRow {
                        key,
                        active: status == "active",
                    },
                );
            }
            Fact::ResourceAction {
                resource_type, key, ..
            } => {
                self.actions.insert((resource_type, key));
            }
            Fact::Resource(ResourceFact {
                resource_type,
                id,
                external_id,
                space_id,
                group_id,
                owner_member_id,
                status: _,
                ..
            }) => {
                let key = (resource_type.clone(), id.clone());
                if let Some(old) = self.resources.get(&key) {
                    let old_ext = Pair(&resource_type, &old.external_id);
                    if let Some(ids) = self.external_ids.get_mut(&old_ext) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.external_ids.remove(&old_ext);
                        }
                    }
                }
                self.external_ids
                    .entry((resource_type, external_id.clone()))
                    .or_default()
                    .insert(id);
                self.resources.insert(
                    key,
                    ResourceRow {
                        external_id,
                        space_id,
                        group_id,
                        owner_member_id,
                    },
                );
            }
            Fact::Role {
                id,
                space_id,
                key,
                status,
            } => {
                self.unsettle_role(&id);
                self.roles.insert(
                    id,
                    RoleRow {
                        key: key.into(),
                        space_id: space_id.into(),
                        status,
                    },
                );
            }
            Fact::Permission {
                id,
                resource,
                action,
                scope,
                status,
                ..
            } => {
                let roles: Vec<String> = self
                    .role_permissions_of_permission
                    .get(&id)
                    .into_iter()
                    .flatten()
                    .filter_map(|rp| self.role_permissions.get(rp))
                    .map(|rp| rp.role_id.clone())
                    .collect();
                for role_id in roles {
                    self.unsettle_role(&role_id);
                }
                self.permissions.insert(
                    id.clone(),
                    PermissionRow {
                        id: id.into(),
                        resource,
                        action,
                        scope: Scope::parse(&scope),
                        status,
                    },
                );
            }
            Fact::RolePermission {
                id,
                role_id,
                permission_id,
                deleted,
            } => {
                if let Some(old) = self.role_permissions.get(&id).cloned() {
                    if let Some(set) = self.permissions_of_role.get_mut(&old.role_id) {
                        set.remove(&(old.permission_id.clone(), id.clone()));
                    }
                    if old.permission_id != permission_id
                        && let Some(set) = self
                            .role_permissions_of_permission
                            .get_mut(&old.permission_id)
                    {
                        set.remove(&id);
                    }
                    self.unsettle_role(&old.role_id);
                }
                self.unsettle_role(&role_id);
                self.role_permissions_of_permission
                    .entry(permission_id.clone())
                    .or_default()
                    .insert(id.clone());
                if !deleted {
                    self.permissions_of_role
                        .entry(role_id.clone())
                        .or_default()
                        .insert((permission_id.clone(), id.clone()));
                }
                self.role_permissions.insert(
                    id,
                    RolePermissionRow {
                        role_id,
                        permission_id,
                    },
                );
            }
            Fact::MemberRole {
                id,
                space_id,
                member_id,
                role_id,
                scope_anchor_group_id,
                status,
            } => {
                if let Some(old_member) = self.member_of_member_role.get(&id).cloned() {
                    let old_row = self.roles_of_member.get_mut(&old_member).and_then(|rows| {
                        if old_member == member_id {
                            rows.get(&id).cloned()
                        } else {
                            rows.remove(&id)
                        }
                    });
                    if let Some(old_row) = old_row
                        && *old_row.role_id != *role_id
                        && let Some(set) = self.member_roles_of_role.get_mut(&*old_row.role_id)
                    {
                        set.remove(&id);
                    }
                    self.unsettled.insert(old_member);
                }
                self.unsettled.insert(member_id.clone());
                self.member_roles_of_role
                    .entry(role_id.clone())
                    .or_default()
                    .insert(id.clone());
                self.roles_of_member
                    .entry(member_id.clone())
                    .or_default()
                    .insert(
                        id.clone(),
                        MemberRoleRow {
                            id: id.as_str().into(),
                            space_id: space_id.into(),
                            role_id: role_id.into(),
                            anchor: scope_anchor_group_id.map(Into::into),
                            status,
                        },
                    );
                self.member_of_member_role.insert(id, member_id);
            }
        }
    }

    /// The group with ID `id`, as the engine sees it.
    pub fn group<'a>(&'a self, id: &'a str) -> Option<GroupFacts<'a>> {
        self.groups.get(id).map(|g| GroupFacts {
            id: Some(Cow::Borrowed(id)),
            path: Cow::Borrowed(&g.path),
            space_id: Some(Cow::Borrowed(&g.space_id)),
        })
    }

    /// The space of the role with ID `id`.
    pub fn role_space(&self, id: &str) -> Option<&str> {
        self.roles.get(id).map(|r| &*r.space_id)
    }

    /// The member's active grants for (type key, action): member-roles in ID order, each
    /// role's permissions in ID order.
    pub fn candidates(&self, member_id: &str, type_key: &str, action: &str) -> Vec<Candidate<'_>> {
        let Some(grants) = self
            .grants_of_member
            .get(member_id)
            .and_then(|grants| grants.get(&Pair(type_key, action)))
        else {
            return Vec::new();
        };
        grants
            .iter()
            .map(|g| Candidate {
                role_key: Cow::Borrowed(&g.role_key),
                role_id: Cow::Borrowed(&g.role_id),
                role_space_id: Cow::Borrowed(&g.role_space_id),
                permission_id: Cow::Borrowed(&g.permission_id),
                scope: g.scope,
                member_role_id: Cow::Borrowed(&g.member_role_id),
                member_role_space_id: Cow::Borrowed(&g.member_role_space_id),
                anchor_named: g.anchor.is_some(),
                anchor: g.anchor.as_deref().and_then(|a| self.group(a)),
                condition: None,
            })
            .collect()
    }

    /// Whether `type_key` is an active type with the action `action`: (type known, action known).
    pub fn registry(&self, type_key_or_id: &str, action: &str) -> (Option<&str>, bool) {
        let id = self
            .type_ids
            .get(type_key_or_id)
            .map(String::as_str)
            .unwrap_or(type_key_or_id);
        match self.types.get(id) {
            Some(t) if t.active => {
                let known = self.actions.contains(&Pair(&t.key, action));
                (Some(t.key.as_str()), known)
            }
            _ => (None, false),
        }
    }

    /// The resource with ID `id`, else the first (by ID) whose external ID is `id`.
    fn resource(&self, type_key: &str, id: &str) -> Option<&ResourceRow> {
        if let Some(row) = self.resources.get(&Pair(type_key, id)) {
            return Some(row);
        }
        let first = self.external_ids.get(&Pair(type_key, id))?.get_min()?;
        self.resources.get(&Pair(type_key, first))
    }

    /// Resolves a managed-mode request. Unknown actor IDs, and an unknown resource of a known
    /// type and action, are `NotFound`; everything else becomes a fact the engine judges.
    pub fn resolve<'a>(
        &'a self,
        req: &Request<'a>,
        now: i64,
    ) -> Result<Resolved<'a>, ResolveError> {
        let user_status = self
            .users
            .get(req.user_id)
            .ok_or_else(|| not_found("user", req.user_id))?;
        let member = self
            .members
            .get(req.member_id)
            .ok_or_else(|| not_found("member", req.member_id))?;
        let binding = self
            .bindings
            .get(req.user_member_id)
            .filter(|b| b.user_id == req.user_id && b.member_id == req.member_id)
            .ok_or_else(|| not_found("user_member", req.user_member_id))?;
        let space_id = if req.space_id.is_empty() {
            member.space_id.as_str()
        } else {
            req.space_id
        };
        let space_status = self
            .spaces
            .get(space_id)
            .ok_or_else(|| not_found("space", space_id))?;
        let (type_key, action_known) = self.registry(req.resource_type, req.action);
        let resource = match type_key {
            Some(key) => match self.resource(key, req.resource_id) {
                Some(found) => Some(found),
                None if action_known => return Err(not_found("resource", req.resource_id)),
                None => None,
            },
            None => None,
        };
        let target_space_id = resource.map(|r| r.space_id.as_str());
        let candidates = match type_key {
            Some(key) if action_known => self.candidates(req.member_id, key, req.action),
            _ => Vec::new(),
        };
        let facts = Facts {
            actor: ActorFacts {
                user_id: Cow::Borrowed(req.user_id),
                user_active: user_status.active,
                member_id: Cow::Borrowed(req.member_id),
                member_active: member.status.active,
                member_space_id: Cow::Borrowed(&member.space_id),
                user_member_id: Cow::Borrowed(req.user_member_id),
                binding_revoked: binding.revoked,
                binding_expires_at: binding.expires_unix,
                space_id: Cow::Borrowed(space_id),
                space_active: space_status.active,
            },
            target: TargetFacts {
                resource_type: Cow::Borrowed(req.resource_type),
                resource_id: Cow::Borrowed(req.resource_id),
                space_id: Cow::Borrowed(target_space_id.unwrap_or(space_id)),
                group: resource
                    .and_then(|r| r.group_id.as_deref())
                    .and_then(|g| self.group(g)),
                owner_member_id: resource
                    .and_then(|r| r.owner_member_id.as_deref())
                    .map(Cow::Borrowed),
            },
            action: Cow::Borrowed(req.action),
            resource_type_known: type_key.is_some(),
            action_known,
            candidates,
            now,
            attributes: Default::default(),
        };
        Ok(Resolved {
            facts,
            statuses: ActorStatuses {
                user_status: Cow::Borrowed(&user_status.text),
                member_status: Cow::Borrowed(&member.status.text),
                user_member_status: Cow::Borrowed(&binding.status),
                user_member_expires_at: binding.expires_at.as_deref().map(Cow::Borrowed),
                space_status: Cow::Borrowed(&space_status.text),
            },
            target_space_id,
            revision: self.revision,
        })
    }

    /// The number of resources indexed.
    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }
}

/// Builds a snapshot from facts.
pub fn snapshot_of(facts: impl IntoIterator<Item = Fact>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    snapshot.apply_all(facts);
    snapshot
}
