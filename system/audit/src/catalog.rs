//! The documented catalog of audit event types.

use poem_openapi::Object;

/// The catalog of audit event types: (key, category, description).
pub const EVENT_TYPES: &[(&str, &str, &str)] = &[
    (
        "authz.decision",
        "authorization",
        "An authorization check, explain or AuthZEN evaluation was decided.",
    ),
    (
        "authz.lookup",
        "authorization",
        "A lookup or an AuthZEN search page of resources, subjects or actions was answered: the query and how many were found.",
    ),
    ("users.create", "management", "A user was created."),
    ("users.update", "management", "A user was changed."),
    ("users.disable", "management", "A user was disabled."),
    ("users.restore", "management", "A user was restored."),
    ("spaces.create", "management", "A space was created."),
    ("spaces.update", "management", "A space was changed."),
    ("spaces.disable", "management", "A space was disabled."),
    ("spaces.restore", "management", "A space was restored."),
    ("groups.create", "management", "A group was created."),
    ("groups.update", "management", "A group was changed."),
    ("groups.disable", "management", "A group was disabled."),
    ("members.create", "management", "A member was created."),
    ("members.update", "management", "A member was changed."),
    ("members.disable", "management", "A member was disabled."),
    (
        "user_members.create",
        "management",
        "A user was bound to a member.",
    ),
    (
        "user_members.update",
        "management",
        "A binding was changed.",
    ),
    (
        "user_members.revoke",
        "management",
        "A binding was revoked.",
    ),
    ("roles.create", "management", "A role was created."),
    ("roles.update", "management", "A role was changed."),
    ("roles.disable", "management", "A role was disabled."),
    (
        "permissions.create",
        "management",
        "A permission was created.",
    ),
    (
        "permissions.update",
        "management",
        "A permission was changed.",
    ),
    (
        "permissions.disable",
        "management",
        "A permission was disabled.",
    ),
    (
        "role_permissions.create",
        "management",
        "A permission was granted to a role.",
    ),
    (
        "role_permissions.delete",
        "management",
        "A permission was taken from a role.",
    ),
    (
        "member_roles.create",
        "management",
        "A role was granted to a member.",
    ),
    (
        "member_roles.revoke",
        "management",
        "A role was revoked from a member.",
    ),
    (
        "resource_types.upsert",
        "management",
        "A resource type, action or mapping was registered.",
    ),
    ("resources.create", "management", "A resource was created."),
    ("resources.update", "management", "A resource was changed."),
    (
        "resources.archive",
        "management",
        "A resource was archived.",
    ),
    ("api_keys.create", "admin", "An API key was created."),
    ("api_keys.revoke", "admin", "An API key was revoked."),
    (
        "admin_grants.create",
        "admin",
        "An admin grant was created.",
    ),
    (
        "admin_grants.revoke",
        "admin",
        "An admin grant was revoked.",
    ),
    (
        "admin.bootstrap",
        "admin",
        "The first super admin was created.",
    ),
    (
        "admin.handoff",
        "admin",
        "The environment bootstrap key was retired in favour of managed credentials.",
    ),
    (
        "admin.permission_denied",
        "admin",
        "A management call was refused for lack of permission.",
    ),
];

/// One audit event type.
#[derive(Debug, Clone, Object)]
pub struct AuditEventType {
    /// The event type key, for example `users.create`.
    pub key: String,
    /// `authorization`, `management` or `admin`.
    pub category: String,
    /// What it records.
    pub description: String,
}

/// Every event type, in catalog order.
pub fn event_types() -> Vec<AuditEventType> {
    EVENT_TYPES
        .iter()
        .map(|(key, category, description)| AuditEventType {
            key: (*key).to_owned(),
            category: (*category).to_owned(),
            description: (*description).to_owned(),
        })
        .collect()
}
