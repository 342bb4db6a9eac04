-- sys_resource: resource types gain a description; a resource type has at most one mapping
-- (postgres).

ALTER TABLE sys_resource_resource_types ADD COLUMN description TEXT;

CREATE UNIQUE INDEX sys_resource_resource_mappings_type_unique ON sys_resource_resource_mappings (resource_type_id);
