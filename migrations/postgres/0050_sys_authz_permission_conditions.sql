-- sys_authz: a permission may carry a condition (postgres).
--
-- `condition` holds the CEL source, or '' when the permission has none: NOT NULL so that the
-- rule's unique index counts "no condition" once. A permission is now unique by resource,
-- action, scope and condition (the same action and scope may be granted under several
-- conditions, and once without one).

ALTER TABLE sys_authz_permissions ADD COLUMN condition TEXT NOT NULL DEFAULT '';

DROP INDEX sys_authz_permissions_resource_action_scope;

CREATE UNIQUE INDEX sys_authz_permissions_rule ON sys_authz_permissions (resource, action, scope, condition);
