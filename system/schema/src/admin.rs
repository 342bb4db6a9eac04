//! The tables of the `sys_admin` migration namespace, as the schema model declares them.
//!
//! The migrations `migrations/{sqlite,postgres}/*_sys_admin_*.sql` create them; `plystractl ent check`
//! compares this model with the live database. Keep both in step.

use plystra_contracts::schema::{Column, ColumnType, ForeignKey, Index, Stamps, Table};

use crate::identity::{GROUPS, MEMBERS, SPACES, USERS};

/// The migration namespace these tables belong to.
pub const NAMESPACE: &str = "sys_admin";

/// Administrative grants (super admin, space admin, group admin).
pub const ADMIN_GRANTS: Table = Table::new(
    "sys_admin_admin_grants",
    &[
        Column::required("id", ColumnType::Text),
        Column::optional("user_id", ColumnType::Text),
        Column::optional("space_id", ColumnType::Text),
        Column::optional("member_id", ColumnType::Text),
        Column::optional("group_id", ColumnType::Text),
        Column::required("level", ColumnType::Text),
        Column::optional("permission_key", ColumnType::Text),
        Column::required("status", ColumnType::Text),
        Column::optional("granted_by_user_id", ColumnType::Text),
        Column::optional("granted_by_member_id", ColumnType::Text),
        Column::optional("expires_at", ColumnType::Timestamp),
        Column::optional("revoked_at", ColumnType::Timestamp),
        Column::optional("revoked_reason", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[
    Index::plain("sys_admin_admin_grants_user", &["user_id"]),
    Index::plain("sys_admin_admin_grants_member", &["space_id", "member_id"]),
])
.foreign_keys(&[
    ForeignKey::new(&["user_id"], USERS.name, &["id"]),
    ForeignKey::new(&["space_id"], SPACES.name, &["id"]),
    ForeignKey::new(
        &["space_id", "member_id"],
        MEMBERS.name,
        &["space_id", "id"],
    ),
    ForeignKey::new(&["space_id", "group_id"], GROUPS.name, &["space_id", "id"]),
]);

/// API keys; `key_hmac` is an HMAC of the key, never the key.
pub const API_KEYS: Table = Table::new(
    "sys_admin_api_keys",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("name", ColumnType::Text),
        Column::required("key_prefix", ColumnType::Text),
        Column::required("key_hmac", ColumnType::Text),
        Column::required("level", ColumnType::Text),
        Column::optional("space_id", ColumnType::Text),
        Column::optional("group_id", ColumnType::Text),
        Column::optional("permission_keys", ColumnType::Json),
        Column::required("status", ColumnType::Text),
        Column::optional("created_by_user_id", ColumnType::Text),
        Column::optional("created_by_member_id", ColumnType::Text),
        Column::optional("revoked_by_user_id", ColumnType::Text),
        Column::optional("revoked_reason", ColumnType::Text),
        Column::optional("expires_at", ColumnType::Timestamp),
        Column::optional("last_used_at", ColumnType::Timestamp),
        Column::optional("revoked_at", ColumnType::Timestamp),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[
    Index::unique("sys_admin_api_keys_key_hmac", &["key_hmac"]),
    Index::plain("sys_admin_api_keys_prefix", &["key_prefix"]),
])
.foreign_keys(&[
    ForeignKey::new(&["space_id"], SPACES.name, &["id"]),
    ForeignKey::new(&["space_id", "group_id"], GROUPS.name, &["space_id", "id"]),
]);
