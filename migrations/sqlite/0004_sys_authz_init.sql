-- sys_authz: initial tables (sqlite).

CREATE TABLE sys_authz_roles (
    id TEXT NOT NULL,
    space_id TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_authz_roles_space_id_fkey FOREIGN KEY (space_id) REFERENCES sys_identity_spaces (id)
);

CREATE UNIQUE INDEX sys_authz_roles_space_key ON sys_authz_roles (space_id, key);

CREATE UNIQUE INDEX sys_authz_roles_space_id_id ON sys_authz_roles (space_id, id);

CREATE TABLE sys_authz_permissions (
    id TEXT NOT NULL,
    resource TEXT NOT NULL,
    action TEXT NOT NULL,
    scope TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id)
);

CREATE UNIQUE INDEX sys_authz_permissions_resource_action_scope ON sys_authz_permissions (resource, action, scope);

CREATE TABLE sys_authz_role_permissions (
    id TEXT NOT NULL,
    space_id TEXT NOT NULL,
    role_id TEXT NOT NULL,
    permission_id TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_authz_role_permissions_space_id_role_id_fkey FOREIGN KEY (space_id, role_id) REFERENCES sys_authz_roles (space_id, id),
    CONSTRAINT sys_authz_role_permissions_permission_id_fkey FOREIGN KEY (permission_id) REFERENCES sys_authz_permissions (id)
);

CREATE UNIQUE INDEX sys_authz_role_permissions_role_permission ON sys_authz_role_permissions (role_id, permission_id);

CREATE TABLE sys_authz_member_roles (
    id TEXT NOT NULL,
    space_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    role_id TEXT NOT NULL,
    scope_anchor_group_id TEXT,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_authz_member_roles_space_id_member_id_fkey FOREIGN KEY (space_id, member_id) REFERENCES sys_identity_members (space_id, id),
    CONSTRAINT sys_authz_member_roles_space_id_role_id_fkey FOREIGN KEY (space_id, role_id) REFERENCES sys_authz_roles (space_id, id),
    CONSTRAINT sys_authz_member_roles_space_id_scope_anchor_group_id_fkey FOREIGN KEY (space_id, scope_anchor_group_id) REFERENCES sys_identity_groups (space_id, id)
);

CREATE INDEX sys_authz_member_roles_member ON sys_authz_member_roles (space_id, member_id);

CREATE INDEX sys_authz_member_roles_role ON sys_authz_member_roles (space_id, role_id);
