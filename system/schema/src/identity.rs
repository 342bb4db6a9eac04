//! The tables of the `sys_identity` migration namespace, as the schema model declares them.
//!
//! The migrations `migrations/{sqlite,postgres}/*_sys_identity_*.sql` create them; `plystractl ent check`
//! compares this model with the live database. Keep both in step.

use plystra_contracts::schema::{Column, ColumnType, ForeignKey, Index, Stamps, Table};

/// The migration namespace these tables belong to.
pub const NAMESPACE: &str = "sys_identity";

/// Business users. `password_hash` holds an encoded password hash, never a password.
pub const USERS: Table = Table::new(
    "sys_identity_users",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("username", ColumnType::Text),
        Column::optional("email", ColumnType::Text),
        Column::optional("phone", ColumnType::Text),
        Column::optional("password_hash", ColumnType::Text),
        Column::required("status", ColumnType::Text),
        Column::optional("last_login_at", ColumnType::Timestamp),
        Column::optional("password_changed_at", ColumnType::Timestamp),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[
    Index::unique("sys_identity_users_username", &["username"]),
    Index::unique("sys_identity_users_email", &["email"]),
]);

/// Spaces (tenants).
pub const SPACES: Table = Table::new(
    "sys_identity_spaces",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("name", ColumnType::Text),
        Column::required("slug", ColumnType::Text),
        Column::required("type", ColumnType::Text),
        Column::required("status", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[Index::unique("sys_identity_spaces_slug", &["slug"])]);

/// The group tree of a space; a parent is in the same space.
pub const GROUPS: Table = Table::new(
    "sys_identity_groups",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("space_id", ColumnType::Text),
        Column::optional("parent_id", ColumnType::Text),
        Column::required("name", ColumnType::Text),
        Column::optional("display_name", ColumnType::Text),
        Column::required("path", ColumnType::Text),
        Column::required("depth", ColumnType::BigInt),
        Column::required("sort_order", ColumnType::BigInt),
        Column::required("status", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[
    Index::unique("sys_identity_groups_space_id_id", &["space_id", "id"]),
    Index::unique("sys_identity_groups_space_path", &["space_id", "path"]),
    Index::plain("sys_identity_groups_parent", &["space_id", "parent_id"]),
])
.foreign_keys(&[
    ForeignKey::new(&["space_id"], SPACES.name, &["id"]),
    ForeignKey::new(
        &["space_id", "parent_id"],
        // The table itself: a const cannot read its own `name`.
        "sys_identity_groups",
        &["space_id", "id"],
    ),
]);

/// Members of a space.
pub const MEMBERS: Table = Table::new(
    "sys_identity_members",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("space_id", ColumnType::Text),
        Column::required("member_type", ColumnType::Text),
        Column::required("display_name", ColumnType::Text),
        Column::required("status", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[Index::unique(
    "sys_identity_members_space_id_id",
    &["space_id", "id"],
)])
.foreign_keys(&[ForeignKey::new(&["space_id"], SPACES.name, &["id"])]);

/// Links between users and members; the member and the linking member are in the same space. A
/// user may hold several links to one member (an active one beside a revoked or expired one).
pub const USER_MEMBERS: Table = Table::new(
    "sys_identity_user_members",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("space_id", ColumnType::Text),
        Column::required("user_id", ColumnType::Text),
        Column::required("member_id", ColumnType::Text),
        Column::required("relation_type", ColumnType::Text),
        Column::required("is_primary", ColumnType::Boolean),
        Column::required("status", ColumnType::Text),
        Column::optional("linked_at", ColumnType::Timestamp),
        Column::optional("linked_by_member_id", ColumnType::Text),
        Column::optional("expires_at", ColumnType::Timestamp),
        Column::optional("revoked_at", ColumnType::Timestamp),
        Column::optional("revoked_reason", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[
    Index::plain("sys_identity_user_members_user", &["user_id", "member_id"]),
    Index::plain(
        "sys_identity_user_members_member",
        &["space_id", "member_id"],
    ),
])
.foreign_keys(&[
    ForeignKey::new(&["user_id"], USERS.name, &["id"]),
    ForeignKey::new(
        &["space_id", "member_id"],
        MEMBERS.name,
        &["space_id", "id"],
    ),
    ForeignKey::new(
        &["space_id", "linked_by_member_id"],
        MEMBERS.name,
        &["space_id", "id"],
    ),
]);

/// User sessions; `token_hmac` and `refresh_token_hmac` are HMACs of the access and refresh tokens,
/// never the tokens.
pub const SESSIONS: Table = Table::new(
    "sys_identity_sessions",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("user_id", ColumnType::Text),
        Column::required("token_hmac", ColumnType::Text),
        Column::required("status", ColumnType::Text),
        Column::optional("user_member_id", ColumnType::Text),
        Column::optional("ip_address", ColumnType::Text),
        Column::optional("user_agent", ColumnType::Text),
        Column::required("created_at", ColumnType::Timestamp),
        Column::required("expires_at", ColumnType::Timestamp),
        Column::optional("last_seen_at", ColumnType::Timestamp),
        Column::optional("revoked_at", ColumnType::Timestamp),
        Column::optional("refresh_token_hmac", ColumnType::Text),
        Column::optional("refresh_expires_at", ColumnType::Timestamp),
    ],
)
.indexes(&[
    Index::unique("sys_identity_sessions_token_hmac", &["token_hmac"]),
    Index::unique(
        "sys_identity_sessions_refresh_token_hmac",
        &["refresh_token_hmac"],
    ),
    Index::plain("sys_identity_sessions_user", &["user_id"]),
])
.foreign_keys(&[
    ForeignKey::new(&["user_id"], USERS.name, &["id"]),
    ForeignKey::new(&["user_member_id"], USER_MEMBERS.name, &["id"]),
]);

/// Failed logins, for the login lockout across every process on the database. `email_key` is the
/// SHA-256 (hex) of the trimmed, lowercased email, never the email.
pub const LOGIN_FAILURES: Table = Table::new(
    "sys_identity_login_failures",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("email_key", ColumnType::Text),
        Column::required("ip_address", ColumnType::Text),
        Column::required("failed_at", ColumnType::Timestamp),
    ],
)
.indexes(&[Index::plain(
    "sys_identity_login_failures_pair",
    &["email_key", "ip_address", "failed_at"],
)]);
