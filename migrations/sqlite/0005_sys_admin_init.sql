-- sys_admin: initial tables (sqlite).

CREATE TABLE sys_admin_admin_grants (
    id TEXT NOT NULL,
    user_id TEXT,
    space_id TEXT,
    member_id TEXT,
    group_id TEXT,
    level TEXT NOT NULL,
    permission_key TEXT,
    status TEXT NOT NULL,
    granted_by_user_id TEXT,
    granted_by_member_id TEXT,
    expires_at TEXT,
    revoked_at TEXT,
    revoked_reason TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_admin_admin_grants_user_id_fkey FOREIGN KEY (user_id) REFERENCES sys_identity_users (id),
    CONSTRAINT sys_admin_admin_grants_space_id_fkey FOREIGN KEY (space_id) REFERENCES sys_identity_spaces (id),
    CONSTRAINT sys_admin_admin_grants_space_id_member_id_fkey FOREIGN KEY (space_id, member_id) REFERENCES sys_identity_members (space_id, id),
    CONSTRAINT sys_admin_admin_grants_space_id_group_id_fkey FOREIGN KEY (space_id, group_id) REFERENCES sys_identity_groups (space_id, id)
);

CREATE INDEX sys_admin_admin_grants_user ON sys_admin_admin_grants (user_id);

CREATE INDEX sys_admin_admin_grants_member ON sys_admin_admin_grants (space_id, member_id);

CREATE TABLE sys_admin_api_keys (
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_prefix TEXT NOT NULL,
    key_hmac TEXT NOT NULL,
    level TEXT NOT NULL,
    space_id TEXT,
    group_id TEXT,
    permission_keys TEXT,
    status TEXT NOT NULL,
    created_by_user_id TEXT,
    created_by_member_id TEXT,
    revoked_by_user_id TEXT,
    revoked_reason TEXT,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_admin_api_keys_space_id_fkey FOREIGN KEY (space_id) REFERENCES sys_identity_spaces (id),
    CONSTRAINT sys_admin_api_keys_space_id_group_id_fkey FOREIGN KEY (space_id, group_id) REFERENCES sys_identity_groups (space_id, id)
);

CREATE UNIQUE INDEX sys_admin_api_keys_key_hmac ON sys_admin_api_keys (key_hmac);

CREATE INDEX sys_admin_api_keys_prefix ON sys_admin_api_keys (key_prefix);
