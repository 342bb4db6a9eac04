-- sys_identity: initial tables (sqlite).

CREATE TABLE sys_identity_users (
    id TEXT NOT NULL,
    username TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    password_hash TEXT,
    status TEXT NOT NULL,
    metadata TEXT,
    last_login_at TEXT,
    password_changed_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id)
);

CREATE UNIQUE INDEX sys_identity_users_username ON sys_identity_users (username);

CREATE UNIQUE INDEX sys_identity_users_email ON sys_identity_users (email);

CREATE TABLE sys_identity_spaces (
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id)
);

CREATE UNIQUE INDEX sys_identity_spaces_slug ON sys_identity_spaces (slug);

CREATE TABLE sys_identity_groups (
    id TEXT NOT NULL,
    space_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    display_name TEXT,
    path TEXT NOT NULL,
    depth INTEGER NOT NULL,
    sort_order INTEGER NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_identity_groups_space_id_fkey FOREIGN KEY (space_id) REFERENCES sys_identity_spaces (id),
    CONSTRAINT sys_identity_groups_space_id_parent_id_fkey FOREIGN KEY (space_id, parent_id) REFERENCES sys_identity_groups (space_id, id)
);

CREATE UNIQUE INDEX sys_identity_groups_space_id_id ON sys_identity_groups (space_id, id);

CREATE UNIQUE INDEX sys_identity_groups_space_path ON sys_identity_groups (space_id, path);

CREATE INDEX sys_identity_groups_parent ON sys_identity_groups (space_id, parent_id);

CREATE TABLE sys_identity_members (
    id TEXT NOT NULL,
    space_id TEXT NOT NULL,
    member_type TEXT NOT NULL,
    display_name TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_identity_members_space_id_fkey FOREIGN KEY (space_id) REFERENCES sys_identity_spaces (id)
);

CREATE UNIQUE INDEX sys_identity_members_space_id_id ON sys_identity_members (space_id, id);

CREATE TABLE sys_identity_user_members (
    id TEXT NOT NULL,
    space_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    relation_type TEXT NOT NULL,
    is_primary INTEGER NOT NULL,
    status TEXT NOT NULL,
    linked_at TEXT,
    linked_by_member_id TEXT,
    expires_at TEXT,
    revoked_at TEXT,
    revoked_reason TEXT,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_identity_user_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES sys_identity_users (id),
    CONSTRAINT sys_identity_user_members_space_id_member_id_fkey FOREIGN KEY (space_id, member_id) REFERENCES sys_identity_members (space_id, id),
    CONSTRAINT sys_identity_user_members_space_id_linked_by_member_id_fkey FOREIGN KEY (space_id, linked_by_member_id) REFERENCES sys_identity_members (space_id, id)
);

CREATE UNIQUE INDEX sys_identity_user_members_user_member ON sys_identity_user_members (user_id, member_id);

CREATE INDEX sys_identity_user_members_member ON sys_identity_user_members (space_id, member_id);

CREATE TABLE sys_identity_sessions (
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    token_hmac TEXT NOT NULL,
    status TEXT NOT NULL,
    user_member_id TEXT,
    ip_address TEXT,
    user_agent TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    last_seen_at TEXT,
    revoked_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_identity_sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES sys_identity_users (id),
    CONSTRAINT sys_identity_sessions_user_member_id_fkey FOREIGN KEY (user_member_id) REFERENCES sys_identity_user_members (id)
);

CREATE UNIQUE INDEX sys_identity_sessions_token_hmac ON sys_identity_sessions (token_hmac);

CREATE INDEX sys_identity_sessions_user ON sys_identity_sessions (user_id);
