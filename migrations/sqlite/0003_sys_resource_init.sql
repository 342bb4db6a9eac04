-- sys_resource: initial tables (sqlite).

CREATE TABLE sys_resource_resource_types (
    id TEXT NOT NULL,
    key TEXT NOT NULL,
    display_name TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (id)
);

CREATE UNIQUE INDEX sys_resource_resource_types_key ON sys_resource_resource_types (key);

CREATE TABLE sys_resource_resource_actions (
    id TEXT NOT NULL,
    resource_type_id TEXT NOT NULL,
    key TEXT NOT NULL,
    display_name TEXT NOT NULL,
    risk_level TEXT NOT NULL,
    audit_default INTEGER NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT sys_resource_resource_actions_resource_type_id_fkey FOREIGN KEY (resource_type_id) REFERENCES sys_resource_resource_types (id)
);

CREATE UNIQUE INDEX sys_resource_resource_actions_type_key ON sys_resource_resource_actions (resource_type_id, key);

CREATE TABLE sys_resource_resource_mappings (
    id TEXT NOT NULL,
    resource_type_id TEXT NOT NULL,
    source TEXT NOT NULL,
    storage_kind TEXT NOT NULL,
    table_name TEXT,
    id_field TEXT,
    space_field TEXT,
    group_field TEXT,
    owner_member_field TEXT,
    visibility_field TEXT,
    metadata_field TEXT,
    display_name TEXT,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT sys_resource_resource_mappings_resource_type_id_fkey FOREIGN KEY (resource_type_id) REFERENCES sys_resource_resource_types (id)
);

CREATE INDEX sys_resource_resource_mappings_type ON sys_resource_resource_mappings (resource_type_id);

CREATE TABLE sys_resource_resources (
    id TEXT NOT NULL,
    space_id TEXT NOT NULL,
    resource_type_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    display_name TEXT,
    group_id TEXT,
    owner_member_id TEXT,
    visibility TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    PRIMARY KEY (id),
    CONSTRAINT sys_resource_resources_resource_type_id_fkey FOREIGN KEY (resource_type_id) REFERENCES sys_resource_resource_types (id),
    CONSTRAINT sys_resource_resources_space_id_fkey FOREIGN KEY (space_id) REFERENCES sys_identity_spaces (id),
    CONSTRAINT sys_resource_resources_space_id_group_id_fkey FOREIGN KEY (space_id, group_id) REFERENCES sys_identity_groups (space_id, id),
    CONSTRAINT sys_resource_resources_space_id_owner_member_id_fkey FOREIGN KEY (space_id, owner_member_id) REFERENCES sys_identity_members (space_id, id)
);

CREATE UNIQUE INDEX sys_resource_resources_external ON sys_resource_resources (space_id, resource_type_id, external_id);

CREATE INDEX sys_resource_resources_group ON sys_resource_resources (space_id, group_id);

CREATE INDEX sys_resource_resources_owner ON sys_resource_resources (space_id, owner_member_id);
