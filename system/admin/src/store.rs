//! The `sys_admin` tables: API keys and admin grants, their rows, the API objects made from them,
//! and the inserts and updates both the HTTP handlers and `plystractl admin` use. Every statement
//! is built with sea-query.

use plystra_contracts::entity::Lifecycle;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Order, Query, Value};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::{
    Conn, Database, JsonColumn, Metadata, StorageError, Transaction, metadata_out,
};
use poem_openapi::{Enum, Object};

/// The API key table.
pub const API_KEYS: &str = crate::schema::API_KEYS.name;
/// The admin grant table.
pub const GRANTS: &str = crate::schema::ADMIN_GRANTS.name;
/// The identity users table (grants are active only while their user is).
pub(crate) const USERS: &str = plystra_system_schema::identity::USERS.name;

pub(crate) use plystra_contracts::entity::name as a;

/// An API key's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "ApiKeyLevel")]
pub enum KeyLevel {
    /// The whole instance.
    Instance,
    /// One space (`space_id`).
    Space,
    /// One group subtree (`group_id`).
    Group,
}

impl KeyLevel {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Space => "space",
            Self::Group => "group",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "instance" => Some(Self::Instance),
            "space" => Some(Self::Space),
            "group" => Some(Self::Group),
            _ => None,
        }
    }
}

/// An admin grant's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "AdminGrantLevel")]
pub enum GrantLevel {
    /// Everything, and the only level that manages instance-level grants.
    InstanceSuperAdmin,
    /// The whole instance.
    InstanceAdmin,
    /// One space (`space_id`).
    SpaceAdmin,
    /// One group subtree (`group_id`).
    GroupAdmin,
}

impl GrantLevel {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceSuperAdmin => "instance_super_admin",
            Self::InstanceAdmin => "instance_admin",
            Self::SpaceAdmin => "space_admin",
            Self::GroupAdmin => "group_admin",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "instance_super_admin" => Some(Self::InstanceSuperAdmin),
            "instance_admin" => Some(Self::InstanceAdmin),
            "space_admin" => Some(Self::SpaceAdmin),
            "group_admin" => Some(Self::GroupAdmin),
            _ => None,
        }
    }

    /// Whether the level reaches the whole instance.
    pub fn instance_level(self) -> bool {
        matches!(self, Self::InstanceSuperAdmin | Self::InstanceAdmin)
    }
}

/// `active` or `revoked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "AdminStatus")]
pub enum AdminStatus {
    /// In force (unless expired).
    Active,
    /// Revoked; never active again.
    Revoked,
}

impl Lifecycle for AdminStatus {
    const ALL: &'static [(Self, &'static str)] =
        &[(Self::Active, "active"), (Self::Revoked, "revoked")];
    const UNKNOWN: Self = Self::Revoked;
}

/// An API key as the API shows it. The secret and its HMAC never leave the server.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ApiKey")]
pub struct ApiKey {
    /// The key's ID (`ak_…`).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The public part of the key, `ply_ak_<id>`.
    pub key_prefix: String,
    /// `instance`, `space` or `group`.
    pub level: KeyLevel,
    /// The space of a space or group key.
    pub space_id: Option<String>,
    /// The group of a group key.
    pub group_id: Option<String>,
    /// The permission keys it holds (never super admin, even with `*`).
    pub permission_keys: Vec<String>,
    /// `active` or `revoked`.
    pub status: AdminStatus,
    /// Whether it authenticates now: active, not revoked, not expired.
    pub active: bool,
    /// The user who created it, when a session did.
    pub created_by_user_id: Option<String>,
    /// The user who revoked it.
    pub revoked_by_user_id: Option<String>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used (coalesced: written periodically, not on every request).
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// A stored key with its HMAC, for verification only.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub(crate) key: ApiKey,
    pub(crate) hmac: String,
}

const KEY_COLUMNS: [&str; 19] = [
    "id",
    "name",
    "key_prefix",
    "key_hmac",
    "level",
    "space_id",
    "group_id",
    "permission_keys",
    "status",
    "created_by_user_id",
    "revoked_by_user_id",
    "revoked_reason",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "metadata",
    "created_at",
    "updated_at",
    "deleted_at",
];

fn expired(expires_at: Option<OffsetDateTime>) -> bool {
    expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc())
}

plystra_contracts::from_rows!(KeyRow, |row| {
    let status = AdminStatus::parse(&row.try_get::<String, _>("status")?);
    let level: String = row.try_get("level")?;
    let expires_at: Option<OffsetDateTime> = row.try_get("expires_at")?;
    let revoked_at: Option<OffsetDateTime> = row.try_get("revoked_at")?;
    let deleted_at: Option<OffsetDateTime> = row.try_get("deleted_at")?;
    let permission_keys = match row
        .try_get::<JsonColumn, _>("permission_keys")?
        .map(|j| j.0)
    {
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let level_parsed = KeyLevel::parse(&level);
    Ok(KeyRow {
        hmac: row.try_get("key_hmac")?,
        key: ApiKey {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            key_prefix: row.try_get("key_prefix")?,
            // An unknown level reads as the narrowest; `active` is false for it below.
            level: level_parsed.unwrap_or(KeyLevel::Group),
            space_id: row.try_get("space_id")?,
            group_id: row.try_get("group_id")?,
            permission_keys,
            status,
            active: status == AdminStatus::Active
                && revoked_at.is_none()
                && deleted_at.is_none()
                && level_parsed.is_some()
                && !expired(expires_at),
            created_by_user_id: row.try_get("created_by_user_id")?,
            revoked_by_user_id: row.try_get("revoked_by_user_id")?,
            revoked_reason: row.try_get("revoked_reason")?,
            expires_at,
            last_used_at: row.try_get("last_used_at")?,
            revoked_at,
            metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
    })
});

fn select_keys() -> plystra_contracts::storage::sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(KEY_COLUMNS.map(|c| (a(API_KEYS), a(c))))
        .from(a(API_KEYS))
        .and_where(Expr::col((a(API_KEYS), a("deleted_at"))).is_null());
    q
}

/// The key with `id`, through the pool or inside a transaction.
pub(crate) async fn key<'c>(
    conn: impl Into<Conn<'c>>,
    id: &str,
) -> Result<Option<KeyRow>, StorageError> {
    let mut q = select_keys();
    q.and_where(Expr::col((a(API_KEYS), a("id"))).eq(id));
    conn.into().fetch_optional(&q).await
}

/// Keys with an ID after `after`, by ID.
pub(crate) async fn keys_after(
    db: &Database,
    after: Option<&str>,
) -> Result<Vec<KeyRow>, StorageError> {
    let mut q = select_keys();
    if let Some(after) = after {
        q.and_where(Expr::col((a(API_KEYS), a("id"))).gt(after));
    }
    q.order_by((a(API_KEYS), a("id")), Order::Asc);
    db.fetch_all(&q).await
}

/// A new key to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key's ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The HMAC of its secret.
    pub hmac: String,
    /// Its level.
    pub level: KeyLevel,
    /// Its space.
    pub space_id: Option<String>,
    /// Its group.
    pub group_id: Option<String>,
    /// Its permission keys, validated.
    pub permission_keys: Vec<String>,
    /// When it expires.
    pub expires_at: Option<OffsetDateTime>,
    /// Who created it.
    pub created_by_user_id: Option<String>,
    /// Free-form data.
    pub metadata: Option<serde_json::Value>,
}

/// Inserts `key` inside `tx` and reads it back.
pub async fn insert_key(tx: &mut Transaction, key: NewKey) -> Result<ApiKey, StorageError> {
    let at = plystra_contracts::storage::now();
    let mut q = Query::insert();
    q.into_table(a(API_KEYS))
        .columns(
            [
                "id",
                "name",
                "key_prefix",
                "key_hmac",
                "level",
                "space_id",
                "group_id",
                "permission_keys",
                "status",
                "created_by_user_id",
                "expires_at",
                "metadata",
                "created_at",
                "updated_at",
            ]
            .map(a),
        )
        .values_panic(
            [
                key.id.clone().into(),
                key.name.into(),
                format!("{}{}", crate::api_key::PREFIX, key.id).into(),
                key.hmac.into(),
                key.level.as_str().into(),
                key.space_id.into(),
                key.group_id.into(),
                Some(serde_json::Value::from(key.permission_keys)).into(),
                AdminStatus::Active.as_str().into(),
                key.created_by_user_id.into(),
                key.expires_at.into(),
                key.metadata.into(),
                at.into(),
                at.into(),
            ]
            .map(|v: Value| Expr::val(v)),
        );
    tx.execute(&q).await?;
    self::key(&mut *tx, &key.id)
        .await?
        .map(|row| row.key)
        .ok_or(StorageError::NotFound)
}

/// Marks key `id` revoked inside `tx`.
pub(crate) async fn revoke_key(
    tx: &mut Transaction,
    id: &str,
    by_user: Option<&str>,
    reason: Option<&str>,
) -> Result<(), StorageError> {
    let at = plystra_contracts::storage::now();
    let mut q = Query::update();
    q.table(a(API_KEYS))
        .values([
            (a("status"), Expr::val(AdminStatus::Revoked.as_str())),
            (a("revoked_at"), Expr::val(at)),
            (
                a("revoked_by_user_id"),
                Expr::val(by_user.map(str::to_owned)),
            ),
            (a("revoked_reason"), Expr::val(reason.map(str::to_owned))),
            (a("updated_at"), Expr::val(at)),
        ])
        .and_where(Expr::col(a("id")).eq(id));
    tx.execute(&q).await?;
    Ok(())
}

/// Writes coalesced last-use times; a time never moves backwards.
pub(crate) async fn touch_keys(
    db: &Database,
    used: &[(String, OffsetDateTime)],
) -> Result<(), StorageError> {
    for (id, at) in used {
        let mut q = Query::update();
        q.table(a(API_KEYS))
            .value(a("last_used_at"), Expr::val(*at))
            .and_where(Expr::col(a("id")).eq(id.as_str()))
            .and_where(
                Expr::col(a("last_used_at"))
                    .is_null()
                    .or(Expr::col(a("last_used_at")).lt(*at)),
            );
        db.execute(&q).await?;
    }
    Ok(())
}

/// An admin grant as the API shows it.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AdminGrant")]
pub struct AdminGrant {
    /// The grant's ID (`ag_…`).
    pub id: String,
    /// The user it is granted to.
    pub user_id: String,
    /// The level.
    pub level: GrantLevel,
    /// The space of a space or group grant.
    pub space_id: Option<String>,
    /// The group of a group grant.
    pub group_id: Option<String>,
    /// Narrows the grant to one permission key; absent means every key at its level.
    pub permission_key: Option<String>,
    /// `active` or `revoked`.
    pub status: AdminStatus,
    /// Whether it is in force now: active, not revoked, not expired, and its user active.
    pub active: bool,
    /// Who granted it (a user, or absent for `plystractl admin bootstrap-super-admin`).
    pub granted_by_user_id: Option<String>,
    /// When it stops.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
    /// When it was granted.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

const GRANT_COLUMNS: [&str; 15] = [
    "id",
    "user_id",
    "level",
    "space_id",
    "group_id",
    "permission_key",
    "status",
    "granted_by_user_id",
    "expires_at",
    "revoked_at",
    "revoked_reason",
    "metadata",
    "created_at",
    "updated_at",
    "deleted_at",
];

plystra_contracts::from_rows!(AdminGrant, |row| {
    let status = AdminStatus::parse(&row.try_get::<String, _>("status")?);
    let level: String = row.try_get("level")?;
    let level_parsed = GrantLevel::parse(&level);
    let expires_at: Option<OffsetDateTime> = row.try_get("expires_at")?;
    let revoked_at: Option<OffsetDateTime> = row.try_get("revoked_at")?;
    let deleted_at: Option<OffsetDateTime> = row.try_get("deleted_at")?;
    let user_status: Option<String> = row.try_get("user_status")?;
    Ok(AdminGrant {
        id: row.try_get("id")?,
        user_id: row
            .try_get::<Option<String>, _>("user_id")?
            .unwrap_or_default(),
        level: level_parsed.unwrap_or(GrantLevel::GroupAdmin),
        space_id: row.try_get("space_id")?,
        group_id: row.try_get("group_id")?,
        permission_key: row.try_get("permission_key")?,
        status,
        active: status == AdminStatus::Active
            && revoked_at.is_none()
            && deleted_at.is_none()
            && level_parsed.is_some()
            && user_status.as_deref() == Some("active")
            && !expired(expires_at),
        granted_by_user_id: row.try_get("granted_by_user_id")?,
        expires_at,
        revoked_at,
        revoked_reason: row.try_get("revoked_reason")?,
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
});

fn select_grants() -> plystra_contracts::storage::sea_query::SelectStatement {
    let mut q = Query::select();
    q.columns(GRANT_COLUMNS.map(|c| (a(GRANTS), a(c))))
        .expr_as(Expr::col((a(USERS), a("status"))), a("user_status"))
        .from(a(GRANTS))
        .left_join(
            a(USERS),
            Expr::col((a(USERS), a("id"))).equals((a(GRANTS), a("user_id"))),
        )
        .and_where(Expr::col((a(GRANTS), a("deleted_at"))).is_null());
    q
}

/// The grant with `id`, through the pool or inside a transaction.
pub(crate) async fn grant<'c>(
    conn: impl Into<Conn<'c>>,
    id: &str,
) -> Result<Option<AdminGrant>, StorageError> {
    let mut q = select_grants();
    q.and_where(Expr::col((a(GRANTS), a("id"))).eq(id));
    conn.into().fetch_optional(&q).await
}

/// Grants with an ID after `after`, by ID.
pub(crate) async fn grants_after(
    db: &Database,
    after: Option<&str>,
) -> Result<Vec<AdminGrant>, StorageError> {
    let mut q = select_grants();
    if let Some(after) = after {
        q.and_where(Expr::col((a(GRANTS), a("id"))).gt(after));
    }
    q.order_by((a(GRANTS), a("id")), Order::Asc);
    db.fetch_all(&q).await
}

/// The grants of `user_id`, active or not.
pub(crate) async fn grants_of(
    db: &Database,
    user_id: &str,
) -> Result<Vec<AdminGrant>, StorageError> {
    let mut q = select_grants();
    q.and_where(Expr::col((a(GRANTS), a("user_id"))).eq(user_id))
        .order_by((a(GRANTS), a("id")), Order::Asc);
    db.fetch_all(&q).await
}

/// The active `instance_super_admin` grants.
pub async fn active_super_admins(db: &Database) -> Result<Vec<AdminGrant>, StorageError> {
    let mut q = select_grants();
    q.and_where(Expr::col((a(GRANTS), a("level"))).eq(GrantLevel::InstanceSuperAdmin.as_str()))
        .and_where(Expr::col((a(GRANTS), a("status"))).eq(AdminStatus::Active.as_str()));
    let rows: Vec<AdminGrant> = db.fetch_all(&q).await?;
    Ok(rows.into_iter().filter(|g| g.active).collect())
}

/// The active `instance_super_admin` grants, read inside `tx`.
pub async fn active_super_admins_in(tx: &mut Transaction) -> Result<Vec<AdminGrant>, StorageError> {
    let mut q = select_grants();
    q.and_where(Expr::col((a(GRANTS), a("level"))).eq(GrantLevel::InstanceSuperAdmin.as_str()))
        .and_where(Expr::col((a(GRANTS), a("status"))).eq(AdminStatus::Active.as_str()));
    // PostgreSQL: lock the super admin rows, so two revocations cannot both see another left.
    // SQLite transactions begin IMMEDIATE and already hold the write lock.
    if tx.dialect() == plystra_contracts::storage::Dialect::Postgres {
        q.lock_with_tables(
            plystra_contracts::storage::sea_query::LockType::Update,
            [a(GRANTS)],
        );
    }
    let rows: Vec<AdminGrant> = tx.fetch_all(&q).await?;
    Ok(rows.into_iter().filter(|g| g.active).collect())
}

/// A new grant to store.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// The grant's ID.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The level.
    pub level: GrantLevel,
    /// The space.
    pub space_id: Option<String>,
    /// The group.
    pub group_id: Option<String>,
    /// An optional narrowing permission key, validated.
    pub permission_key: Option<String>,
    /// When it expires.
    pub expires_at: Option<OffsetDateTime>,
    /// Who granted it.
    pub granted_by_user_id: Option<String>,
    /// Free-form data.
    pub metadata: Option<serde_json::Value>,
}

/// Inserts `grant` inside `tx` and reads it back.
pub async fn insert_grant(
    tx: &mut Transaction,
    grant: NewGrant,
) -> Result<AdminGrant, StorageError> {
    let at = plystra_contracts::storage::now();
    let mut q = Query::insert();
    q.into_table(a(GRANTS))
        .columns(
            [
                "id",
                "user_id",
                "space_id",
                "group_id",
                "level",
                "permission_key",
                "status",
                "granted_by_user_id",
                "expires_at",
                "metadata",
                "created_at",
                "updated_at",
            ]
            .map(a),
        )
        .values_panic(
            [
                grant.id.clone().into(),
                grant.user_id.into(),
                grant.space_id.into(),
                grant.group_id.into(),
                grant.level.as_str().into(),
                grant.permission_key.into(),
                AdminStatus::Active.as_str().into(),
                grant.granted_by_user_id.into(),
                grant.expires_at.into(),
                grant.metadata.into(),
                at.into(),
                at.into(),
            ]
            .map(|v: Value| Expr::val(v)),
        );
    tx.execute(&q).await?;
    self::grant(&mut *tx, &grant.id)
        .await?
        .ok_or(StorageError::NotFound)
}

/// Marks grant `id` revoked inside `tx`.
pub(crate) async fn revoke_grant(
    tx: &mut Transaction,
    id: &str,
    reason: Option<&str>,
) -> Result<(), StorageError> {
    let at = plystra_contracts::storage::now();
    let mut q = Query::update();
    q.table(a(GRANTS))
        .values([
            (a("status"), Expr::val(AdminStatus::Revoked.as_str())),
            (a("revoked_at"), Expr::val(at)),
            (a("revoked_reason"), Expr::val(reason.map(str::to_owned))),
            (a("updated_at"), Expr::val(at)),
        ])
        .and_where(Expr::col(a("id")).eq(id));
    tx.execute(&q).await?;
    Ok(())
}

/// The status of user `id`, `None` when there is no such user.
pub async fn user_status_in(
    tx: &mut Transaction,
    id: &str,
) -> Result<Option<String>, StorageError> {
    let mut q = Query::select();
    q.column(a("status"))
        .from(a(USERS))
        .and_where(Expr::col(a("id")).eq(id));
    Ok(tx
        .fetch_optional::<(String,), _>(&q)
        .await?
        .map(|(status,)| status))
}
