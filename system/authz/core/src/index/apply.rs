//! Applying one fact (an entity's full new state) to a snapshot: one function per fact kind,
//! each keeping its rows, names and reverse indexes and marking the members whose grants it
//! reaches for `Snapshot::settle` to recompute.

use super::{
    BindingRow, Carriers, GroupRow, Key, MemberRoleRow, MemberRow, Num, PermissionRow,
    ResourceExtras, ResourceRow, ResourcesByType, RolePermissionRow, RoleRow, Shared, Snapshot,
    Status, TypeRow, Unlisted, Word, add_to, parse_unix, take_from,
};
use std::sync::Arc;

use crate::condition::Condition;
use crate::{Fact, ResourceFact, Scope};

impl Snapshot {
    /// Applies one fact (the entity's full new state); [`Snapshot::settle`] finishes it.
    pub(super) fn apply_one<S: AsRef<str>>(&mut self, fact: Fact<S>) {
        fn text<S: AsRef<str>>(s: &S) -> &str {
            s.as_ref()
        }
        fn opt<S: AsRef<str>>(s: &Option<S>) -> Option<&str> {
            s.as_ref().map(AsRef::as_ref)
        }
        match &fact {
            Fact::User {
                id,
                status,
                username,
                metadata,
            } => {
                self.apply_user(text(id), text(status), opt(username));
                let n = self.user_names.intern(text(id));
                Self::keep_metadata(&mut self.user_metadata, n, opt(metadata));
            }
            Fact::Space { id, status } => {
                let n = self.space_names.intern(text(id));
                self.spaces.set(n, Status::of(text(status)));
            }
            Fact::Member {
                id,
                space_id,
                status,
                metadata,
            } => {
                self.apply_member(text(id), text(space_id), text(status));
                let n = self.member_names.intern(text(id));
                Self::keep_metadata(&mut self.member_metadata, n, opt(metadata));
            }
            Fact::UserMember {
                id,
                user_id,
                member_id,
                status,
                expires_at,
            } => self.apply_user_member(
                text(id),
                text(user_id),
                text(member_id),
                text(status),
                opt(expires_at),
            ),
            Fact::Group {
                id,
                space_id,
                path,
                status: _,
            } => self.apply_group(text(id), text(space_id), text(path)),
            Fact::ResourceType { id, key, status } => {
                self.apply_resource_type(text(id), text(key), text(status));
            }
            Fact::ResourceAction {
                resource_type,
                key,
                risk_level,
            } => self.apply_resource_action(text(resource_type), text(key), opt(risk_level)),
            Fact::Resource(resource) => self.apply_resource(resource.as_deref()),
            Fact::Role {
                id,
                space_id,
                key,
                status,
            } => self.apply_role(text(id), text(space_id), text(key), text(status)),
            Fact::Permission {
                id,
                resource,
                action,
                scope,
                status,
                condition,
            } => self.apply_permission(
                text(id),
                (text(resource), text(action), text(scope)),
                text(status),
                opt(condition),
            ),
            Fact::RolePermission {
                id,
                role_id,
                permission_id,
                deleted,
            } => self.apply_role_permission(text(id), text(role_id), text(permission_id), *deleted),
            Fact::MemberRole {
                id,
                space_id,
                member_id,
                role_id,
                scope_anchor_group_id,
                status,
            } => self.apply_member_role(
                text(id),
                text(space_id),
                text(member_id),
                text(role_id),
                opt(scope_anchor_group_id),
                text(status),
            ),
        }
    }

    /// An action a resource type declares: kept sorted in the type's row, with its risk level
    /// where the fact carries one.
    fn apply_resource_action(&mut self, resource_type: &str, key: &str, risk_level: Option<&str>) {
        let type_key = self.type_keys.intern(resource_type);
        let action = self.action_names.intern(key);
        let declared = self.actions.get(type_key).map_or(&[][..], |a| &a[..]);
        if let Err(at) = declared.binary_search(&action) {
            let mut actions = declared.to_vec();
            actions.insert(at, action);
            self.actions.set(type_key, actions.into());
        }
        match risk_level {
            Some(risk) => {
                self.action_risk
                    .insert((type_key, action), super::status_text(risk));
            }
            None => {
                self.action_risk.remove(&(type_key, action));
            }
        }
    }

    /// Keeps entity `n`'s stored metadata (JSON object text) in `rows`, or none when it has none.
    fn keep_metadata(rows: &mut super::Rows<Shared>, n: Num, metadata: Option<&str>) {
        match metadata.filter(|m| !matches!(m.trim(), "" | "{}" | "null")) {
            Some(text) => {
                rows.set(n, Shared::from(text));
            }
            None => rows.remove(n),
        }
    }

    /// A user: its status, the copy in each of its bindings, and its username.
    fn apply_user(&mut self, id: &str, status: &str, username: Option<&str>) {
        let n = self.user_names.intern(id);
        let status = Status::of(status);
        self.users.set(n, status.clone());
        self.update_bindings(
            |s| &s.bindings_of_user,
            n,
            |row| {
                row.user_row = Some(status.clone());
            },
        );
        self.rename_user(n, username);
    }

    /// Gives user `n` the username `username` (none: the fact carries none). The old name is
    /// given up only while it still names this user: another user may hold it since.
    fn rename_user(&mut self, n: Num, username: Option<&str>) {
        let old = self.username_of_user.get(n);
        if old.map(|o| &**o) == username {
            return;
        }
        if let Some(old) = old.cloned() {
            if self.user_of_username.get(&*old) == Some(&n) {
                self.user_of_username.remove(&*old);
            }
            self.username_of_user.remove(n);
        }
        if let Some(username) = username {
            let text = Shared::from(username);
            self.user_of_username.insert(Shared::clone(&text), n);
            self.username_of_user.set(n, text);
        }
    }

    /// A member: its row, and the copy in each of its bindings.
    fn apply_member(&mut self, id: &str, space_id: &str, status: &str) {
        let n = self.member_names.intern(id);
        let space = self.space_names.intern(space_id);
        let row = MemberRow {
            space,
            space_id: self.space_names.shared(space),
            status: Status::of(status),
        };
        self.members.set(n, row.clone());
        self.update_bindings_of(n, |binding| binding.member_row = Some(row.clone()));
    }

    /// A user-member binding: moved between its user's and member's reverse indexes, with
    /// copies of their rows and the member's grants.
    fn apply_user_member(
        &mut self,
        id: &str,
        user_id: &str,
        member_id: &str,
        status: &str,
        expires_at: Option<&str>,
    ) {
        let n = self.binding_names.intern(id);
        let user = self.user_names.intern(user_id);
        let member = self.member_names.intern(member_id);
        if let Some(old) = self.bindings.get(n) {
            let (old_user, old_member) = (old.user, old.member);
            take_from(&mut self.bindings_of_user, old_user, n);
            take_from(&mut self.bindings_of_member, old_member, n);
        }
        add_to(&mut self.bindings_of_user, user, n);
        add_to(&mut self.bindings_of_member, member, n);
        let row = BindingRow {
            user_row: self.users.get(user).cloned(),
            member_row: self.members.get(member).cloned(),
            grants: self.grants_of_member.get(member).cloned(),
            user,
            member,
            user_id: Key::new(user_id),
            member_id: Key::new(member_id),
            revoked: status == "revoked",
            status: Status::of(status),
            expires_unix: expires_at.and_then(parse_unix),
            expires_at: expires_at.map(Shared::from),
        };
        self.bindings.set(n, row);
    }

    /// A group: its space and path (moving it recomputes nothing; anchors are looked up).
    fn apply_group(&mut self, id: &str, space_id: &str, path: &str) {
        let n = self.group_names.intern(id);
        let space = self.space_names.intern(space_id);
        let row = GroupRow {
            id: self.group_names.shared(n),
            space_id: self.space_names.shared(space),
            path: path.into(),
        };
        self.groups_by_path.insert((space, row.path.clone(), n));
        if let Some(old) = self.groups.set(n, row)
            && let Some(old_space) = self.space_names.get(&old.space_id)
            && (old_space, &*old.path) != (space, path)
        {
            self.groups_by_path.remove(&(old_space, old.path, n));
        }
    }

    /// A resource type: its key (a renamed type gives up its old key) and whether it is active.
    fn apply_resource_type(&mut self, id: &str, key: &str, status: &str) {
        let n = self.type_names.intern(id);
        let key = self.type_keys.intern(key);
        if let Some(old) = self.types.get(n)
            && old.key != key
            && self.type_of_key.get(old.key) == Some(&n)
        {
            let old_key = old.key;
            self.type_of_key.remove(old_key);
        }
        self.type_of_key.set(key, n);
        self.types.set(
            n,
            TypeRow {
                key,
                active: status == "active",
            },
        );
    }

    /// A resource (named by type key, ID and external ID): its row, and the carriers of its
    /// external name when that changed. Its status, visibility and metadata are kept for
    /// conditions.
    fn apply_resource(&mut self, resource: ResourceFact<&str>) {
        let ResourceFact {
            resource_type,
            id,
            external_id,
            space_id,
            group_id,
            owner_member_id,
            status,
            visibility,
            metadata,
        } = resource;
        let type_key = self.type_keys.intern(resource_type);
        let n = self.resource_names.intern(type_key, id);
        let external = self.external_names.intern(type_key, external_id);
        let owner = owner_member_id.map(|m| self.member_names.intern(m));
        let space = self.space_names.intern(space_id);
        let group = group_id.map(|g| self.group_names.intern(g));
        let row = ResourceRow {
            external,
            space,
            group,
            owner,
            status: Word::of(Some(status)),
            visibility: Word::of(visibility),
        };
        let unusual = |word: Word, text: Option<&str>| {
            (word == Word::ELSEWHERE)
                .then(|| text.map(Shared::from))
                .flatten()
        };
        let extras = ResourceExtras {
            status: unusual(row.status, Some(status)),
            visibility: unusual(row.visibility, visibility),
            metadata: metadata
                .filter(|m| !matches!(m.trim(), "" | "{}" | "null"))
                .map(Shared::from),
        };
        if extras.status.is_some() || extras.visibility.is_some() || extras.metadata.is_some() {
            self.resource_extras.set(n, extras);
        } else {
            self.resource_extras.remove(n);
        }
        let old = self.resources.set(n, row);
        self.relist_resource(type_key, n, old.as_ref(), space, group, owner);
        if let Some(old) = old {
            if old.external == external {
                return;
            }
            self.unname_external(old.external, n);
        }
        self.name_external(external, n);
    }

    /// Moves resource `n` (of type key `type_key`) in the lookup indexes from where `old` put it
    /// to its space, group and owner now.
    fn relist_resource(
        &mut self,
        type_key: Num,
        n: Num,
        old: Option<&ResourceRow>,
        space: Num,
        group: Option<Num>,
        owner: Option<Num>,
    ) {
        if let Some(old) = old {
            // A resource listed before: what this change has not listed yet is listed first,
            // so that the old entries below are there to take out.
            self.list_unlisted();
            if let Some(ids) = self.resources_in_space.get_mut(&(type_key, old.space)) {
                ids.remove(n, &self.resource_names);
                if ids.is_empty() {
                    self.resources_in_space.remove(&(type_key, old.space));
                }
            }
            if let Some(old_group) = old.group {
                ResourcesByType::remove(&mut self.resources_in_group, old_group, type_key, n);
            }
            if let Some(old_owner) = old.owner {
                ResourcesByType::remove(&mut self.resources_of_owner, old_owner, type_key, n);
            }
        }
        self.resources_in_space
            .entry((type_key, space))
            .or_default()
            .insert(n, &self.resource_names);
        // Listed by group and owner when the change is settled, all at once (see `Unlisted`).
        if let Some(group) = group {
            self.unlisted.in_group.push((group, type_key, n));
        }
        if let Some(owner) = owner {
            self.unlisted.of_owner.push((owner, type_key, n));
        }
    }

    /// Lists the resources this change added by group and owner (see `Unlisted`).
    pub(super) fn list_unlisted(&mut self) {
        let Unlisted { in_group, of_owner } = std::mem::take(&mut self.unlisted);
        ResourcesByType::add_all(&mut self.resources_in_group, in_group, &self.resource_names);
        ResourcesByType::add_all(&mut self.resources_of_owner, of_owner, &self.resource_names);
    }

    /// A role: its row; every member holding it is recomputed.
    fn apply_role(&mut self, id: &str, space_id: &str, key: &str, status: &str) {
        let n = self.role_names.intern(id);
        self.unsettle_role(n);
        let row = RoleRow {
            key: key.into(),
            space_id: self.shared_space(space_id),
            active: status == "active",
        };
        self.roles.set(n, row);
    }

    /// A permission (its type key, action and scope): its row, its condition compiled (kept
    /// when the source is unchanged); every member holding a role that holds it is recomputed.
    fn apply_permission(
        &mut self,
        id: &str,
        (resource, action, scope): (&str, &str, &str),
        status: &str,
        condition: Option<&str>,
    ) {
        let n = self.permission_names.intern(id);
        let condition = condition.filter(|c| !c.trim().is_empty()).map(|source| {
            match self.permissions.get(n).and_then(|p| p.condition.clone()) {
                Some(same) if same.source() == source => same,
                _ => Arc::new(Condition::stored(source)),
            }
        });
        let roles: Vec<Num> = self
            .role_permissions_of_permission
            .get(n)
            .into_iter()
            .flatten()
            .filter_map(|&rp| self.role_permissions.get(rp))
            .map(|rp| rp.role)
            .collect();
        for role in roles {
            self.unsettle_role(role);
        }
        let row = PermissionRow {
            type_key: self.type_keys.intern(resource),
            action: self.action_names.intern(action),
            scope: Scope::parse(scope),
            active: status == "active",
            condition,
        };
        self.permissions.set(n, row);
    }

    /// A role-permission: moved between its roles' and permissions' reverse indexes (a deleted
    /// one is kept only in its permission's); the members of its old and new role are
    /// recomputed.
    fn apply_role_permission(
        &mut self,
        id: &str,
        role_id: &str,
        permission_id: &str,
        deleted: bool,
    ) {
        let n = self.role_permission_names.intern(id);
        let role = self.role_names.intern(role_id);
        let permission = self.permission_names.intern(permission_id);
        if let Some(old) = self.role_permissions.get(n).cloned() {
            if !old.deleted {
                take_from(&mut self.permissions_of_role, old.role, n);
            }
            if old.permission != permission {
                take_from(&mut self.role_permissions_of_permission, old.permission, n);
            }
            self.unsettle_role(old.role);
        }
        self.unsettle_role(role);
        add_to(&mut self.role_permissions_of_permission, permission, n);
        if !deleted {
            add_to(&mut self.permissions_of_role, role, n);
        }
        self.role_permissions.set(
            n,
            RolePermissionRow {
                role,
                permission,
                deleted,
            },
        );
    }

    /// A member-role: moved between its members' and roles' reverse indexes; its old and new
    /// member are recomputed.
    fn apply_member_role(
        &mut self,
        id: &str,
        space_id: &str,
        member_id: &str,
        role_id: &str,
        scope_anchor_group_id: Option<&str>,
        status: &str,
    ) {
        let n = self.member_role_names.intern(id);
        let member = self.member_names.intern(member_id);
        let role = self.role_names.intern(role_id);
        if let Some(old) = self.member_roles.get(n).cloned() {
            if old.member != member {
                take_from(&mut self.roles_of_member, old.member, n);
            }
            if old.role != role {
                take_from(&mut self.member_roles_of_role, old.role, n);
            }
            self.unsettled.insert(old.member);
        }
        self.unsettled.insert(member);
        add_to(&mut self.member_roles_of_role, role, n);
        add_to(&mut self.roles_of_member, member, n);
        let row = MemberRoleRow {
            member,
            space_id: self.shared_space(space_id),
            role,
            anchor: scope_anchor_group_id.map(|g| self.group_names.intern(g)),
            active: status == "active",
        };
        self.member_roles.set(n, row);
    }

    /// Marks every member holding `role` for recomputation.
    fn unsettle_role(&mut self, role: Num) {
        if let Some(member_roles) = self.member_roles_of_role.get(role) {
            for &mr in member_roles {
                if let Some(row) = self.member_roles.get(mr) {
                    self.unsettled.insert(row.member);
                }
            }
        }
    }

    /// Space `id`'s text, shared with its name (a role and a member-role hold their space as
    /// text: the trace shows it and the engine compares it).
    fn shared_space(&mut self, id: &str) -> Shared {
        let n = self.space_names.intern(id);
        self.space_names.shared(n)
    }

    /// Records that resource `n` carries external name `external`, keeping the list in ID
    /// order.
    fn name_external(&mut self, external: Num, n: Num) {
        let Some(carriers) = self.carriers.get(external) else {
            // Nearly always the first to carry it (every resource of a load).
            self.carriers.set(external, Carriers::One(n));
            return;
        };
        let mut list = carriers.to_vec();
        if !list.contains(&n) {
            list.push(n);
            list.sort_by(|a, b| {
                self.resource_names
                    .text(*a)
                    .cmp(self.resource_names.text(*b))
            });
        }
        if let Some(carriers) = Carriers::of(list) {
            self.carriers.set(external, carriers);
        }
    }

    /// Records that resource `n` no longer carries external name `external`.
    fn unname_external(&mut self, external: Num, n: Num) {
        let Some(carriers) = self.carriers.get(external) else {
            return;
        };
        let rest: Vec<Num> = carriers.to_vec().into_iter().filter(|r| *r != n).collect();
        match Carriers::of(rest) {
            Some(carriers) => {
                self.carriers.set(external, carriers);
            }
            None => self.carriers.remove(external),
        }
    }
}
