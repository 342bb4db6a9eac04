//! Roles: named bundles of permissions, local to one space, with a key unique in that space.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, LockType, Value};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use crate::GrantsTag;
use crate::store::{
    Change, Conn, Created, Ctx, Grant, GrantKind, JsonColumn, KeyPage, Lifecycle, Metadata, ROLES,
    a, conflict, entity_id, from_rows, keyword, metadata_in, metadata_out, now, require_space,
    status_change, text,
};
use plystra_contracts::entity::{self, InSpace, Stored};

/// A role's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "RoleStatus")]
pub enum RoleStatus {
    /// Its grants count.
    Active,
    /// Its grants are ignored by authorization; it can be made active again.
    Disabled,
}

impl Lifecycle for RoleStatus {
    const ALL: &'static [(Self, &'static str)] =
        &[(Self::Active, "active"), (Self::Disabled, "disabled")];
    const UNKNOWN: Self = Self::Disabled;
}

const MOVES: &[(RoleStatus, RoleStatus)] = &[
    (RoleStatus::Active, RoleStatus::Disabled),
    (RoleStatus::Disabled, RoleStatus::Active),
];

/// A role of a space.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Role")]
pub struct Role {
    /// The role's ID (`role_…`).
    pub id: String,
    /// The space the role belongs to; it can only be granted to members of this space.
    pub space_id: String,
    /// A stable name, unique in the space (`^[a-z][a-z0-9_]*$`), for example `finance_approver`.
    pub key: String,
    /// A name for people.
    pub name: String,
    /// `active` or `disabled`.
    pub status: RoleStatus,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the role was created.
    pub created_at: OffsetDateTime,
    /// When the role last changed.
    pub updated_at: OffsetDateTime,
    /// Always empty: roles are disabled, not deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

from_rows!(Role, |row| {
    Ok(Role {
        id: row.try_get("id")?,
        space_id: row.try_get("space_id")?,
        key: row.try_get("key")?,
        name: row.try_get("name")?,
        status: RoleStatus::parse(&row.try_get::<String, _>("status")?),
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl Grant for Role {
    const KIND: GrantKind = GrantKind::Role;

    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "space_id": self.space_id,
            "key": self.key,
            "name": self.name,
            "status": self.status.as_str(),
            "metadata": self.metadata,
        })
    }
}

/// Creates a role in a space.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RoleCreateRequest")]
pub struct RoleCreateRequest {
    /// A caller-chosen ID (`role_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^role_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The key, unique in the space (`^[a-z][a-z0-9_]*$`, at most 64 characters).
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub key: String,
    /// A name for people, at most 200 characters and not blank.
    #[oai(validator(max_length = 200))]
    pub name: NotBlank,
    /// `active` (the default) or `disabled`.
    pub status: Option<RoleStatus>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

/// Changes a role. Absent fields keep their value.
#[derive(Debug, Clone, Object, Default)]
#[oai(rename = "RoleUpdateRequest")]
pub struct RoleUpdateRequest {
    /// A new key, unique in the space (409 when taken).
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub key: Option<String>,
    /// A new name for people, at most 200 characters and not blank.
    #[oai(validator(max_length = 200))]
    pub name: Option<NotBlank>,
    /// A new status (`active` or `disabled`).
    pub status: Option<RoleStatus>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
}

impl Stored for Role {
    const TABLE: &'static str = ROLES;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "space_id",
        "key",
        "name",
        "status",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
    ];
    const ENTITY: &'static str = "role";
    const NOT_FOUND: ErrorCode = ErrorCode::RoleNotFound;

    fn id(&self) -> &str {
        &self.id
    }
}

impl InSpace for Role {
    fn space_id(&self) -> &str {
        &self.space_id
    }
}

/// The role with `id`, locked until the transaction ends (PostgreSQL; SQLite transactions hold
/// the write lock already), so a grant and a concurrent disable or duplicate grant serialize.
pub(crate) async fn get_locked(conn: &mut Conn<'_>, id: &str) -> Result<Option<Role>, ApiError> {
    let mut q = Role::select();
    q.and_where(Expr::col((a(ROLES), a("id"))).eq(id))
        .lock(LockType::Update);
    Ok(conn.fetch_optional(&q).await?)
}

async fn key_taken(conn: &mut Conn<'_>, space_id: &str, key: &str) -> Result<bool, ApiError> {
    let mut q = Role::select();
    q.and_where(Expr::col((a(ROLES), a("space_id"))).eq(space_id))
        .and_where(Expr::col((a(ROLES), a("key"))).eq(key));
    Ok(conn.fetch_optional::<Role, _>(&q).await?.is_some())
}

/// The role routes.
pub struct RolesApi {
    pub(crate) ctx: Arc<Ctx>,
}

impl RolesApi {
    async fn change(
        &self,
        req: &poem::Request,
        space_id: &str,
        role_id: &str,
        event_type: &'static str,
        update: RoleUpdateRequest,
        strict: Option<RoleStatus>,
    ) -> Result<Json<Envelope<Role>>, ApiError> {
        let key = update
            .key
            .as_deref()
            .map(|k| keyword("key", k))
            .transpose()?;
        let name = update
            .name
            .as_deref()
            .map(|n| text("name", n, 200))
            .transpose()?;
        let mut tx = self.ctx.begin().await?;
        require_space(&mut Conn::Tx(&mut tx), space_id).await?;
        let current = entity::require_in::<Role>(&mut tx, space_id, role_id).await?;
        let mut sets: Vec<(&str, Value)> = Vec::new();
        if let Some(to) = status_change("role", current.status, update.status, strict, MOVES)? {
            sets.push(("status", to.as_str().into()));
        }
        if let Some(key) = key
            && key != current.key
        {
            if key_taken(&mut Conn::Tx(&mut tx), space_id, &key).await? {
                return Err(conflict(
                    format!("space {space_id} already has a role with key {key}"),
                    "key",
                ));
            }
            sets.push(("key", key.into()));
        }
        if let Some(name) = name {
            sets.push(("name", name.into()));
        }
        if update.metadata.is_some() {
            sets.push(("metadata", metadata_in(&update.metadata).into()));
        }
        sets.push(("updated_at", now().into()));
        entity::update(&mut tx, ROLES, role_id, sets).await?;
        let role = entity::require::<Role>(&mut tx, role_id).await?;
        let change = Change::of(&role, event_type, Some(&role.space_id));
        self.ctx.commit_audited(tx, req, change).await?;
        Ok(Json(Envelope::new(role)))
    }
}

#[OpenApi(tag = "GrantsTag::Roles")]
impl RolesApi {
    /// Lists a space's roles by ID, a page at a time.
    #[oai(
        path = "/api/v1/spaces/:space_id/roles",
        method = "get",
        operation_id = "listRoles"
    )]
    async fn list(
        &self,
        /// The space's ID.
        space_id: Path<String>,
        /// Only roles with this status.
        status: QueryParam<Option<RoleStatus>>,
        /// Roles per page, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: QueryParam<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: QueryParam<Option<String>>,
    ) -> Result<Json<ListEnvelope<Role>>, ApiError> {
        let page = KeyPage::parse(limit.0, cursor.0.as_deref())?;
        let mut conn = Conn::Db(&self.ctx.db);
        require_space(&mut conn, &space_id.0).await?;
        let mut q = Role::select();
        q.and_where(Expr::col((a(ROLES), a("space_id"))).eq(space_id.0.as_str()));
        if let Some(status) = status.0 {
            q.and_where(Expr::col((a(ROLES), a("status"))).eq(status.as_str()));
        }
        Ok(Json(entity::list(&mut conn, q, &page).await?))
    }

    /// Creates a role in a space. 409 when the space already has a role with this key or ID.
    #[oai(
        path = "/api/v1/spaces/:space_id/roles",
        method = "post",
        operation_id = "createRole"
    )]
    async fn create(
        &self,
        req: &poem::Request,
        /// The space's ID.
        space_id: Path<String>,
        body: JsonBody<RoleCreateRequest>,
    ) -> Result<Created<Role>, ApiError> {
        let body = body.0;
        let id = entity_id("role_", body.id.as_deref())?;
        let key = keyword("key", &body.key)?;
        let name = text("name", &body.name, 200)?;
        let status = body.status.unwrap_or(RoleStatus::Active);
        let mut tx = self.ctx.begin().await?;
        require_space(&mut Conn::Tx(&mut tx), &space_id.0).await?;
        if entity::get::<Role>(&mut tx, &id).await?.is_some() {
            return Err(conflict("a role with this ID exists", "id"));
        }
        if key_taken(&mut Conn::Tx(&mut tx), &space_id.0, &key).await? {
            return Err(conflict(
                format!("space {} already has a role with key {key}", space_id.0),
                "key",
            ));
        }
        let at = now();
        entity::insert(
            &mut tx,
            ROLES,
            vec![
                ("id", id.clone().into()),
                ("space_id", space_id.0.clone().into()),
                ("key", key.into()),
                ("name", name.into()),
                ("status", status.as_str().into()),
                ("metadata", metadata_in(&body.metadata).into()),
                ("created_at", at.into()),
                ("updated_at", at.into()),
            ],
        )
        .await?;
        let role = entity::require::<Role>(&mut tx, &id).await?;
        let change = Change::of(&role, "roles.create", Some(&role.space_id));
        self.ctx.commit_audited(tx, req, change).await?;
        Ok(Created::new(role))
    }

    /// Reads one role of a space.
    #[oai(
        path = "/api/v1/spaces/:space_id/roles/:role_id",
        method = "get",
        operation_id = "getRole"
    )]
    async fn get_in_space(
        &self,
        /// The space's ID.
        space_id: Path<String>,
        /// The role's ID.
        role_id: Path<String>,
    ) -> Result<Json<Envelope<Role>>, ApiError> {
        let mut conn = Conn::Db(&self.ctx.db);
        require_space(&mut conn, &space_id.0).await?;
        Ok(Json(Envelope::new(
            entity::require_in::<Role>(&mut conn, &space_id.0, &role_id.0).await?,
        )))
    }

    /// Changes a role's key, name, status or metadata.
    #[oai(
        path = "/api/v1/spaces/:space_id/roles/:role_id",
        method = "patch",
        operation_id = "updateRole"
    )]
    async fn update(
        &self,
        req: &poem::Request,
        /// The space's ID.
        space_id: Path<String>,
        /// The role's ID.
        role_id: Path<String>,
        body: JsonBody<RoleUpdateRequest>,
    ) -> Result<Json<Envelope<Role>>, ApiError> {
        self.change(req, &space_id.0, &role_id.0, "roles.update", body.0, None)
            .await
    }

    /// Disables an active role, so authorization ignores its grants. 409 when already disabled.
    #[oai(
        path = "/api/v1/spaces/:space_id/roles/:role_id/disable",
        method = "post",
        operation_id = "disableRole"
    )]
    async fn disable(
        &self,
        req: &poem::Request,
        /// The space's ID.
        space_id: Path<String>,
        /// The role's ID.
        role_id: Path<String>,
    ) -> Result<Json<Envelope<Role>>, ApiError> {
        self.change(
            req,
            &space_id.0,
            &role_id.0,
            "roles.disable",
            RoleUpdateRequest::default(),
            Some(RoleStatus::Disabled),
        )
        .await
    }

    /// Reads one role by ID, whatever its space.
    #[oai(
        path = "/api/v1/roles/:role_id",
        method = "get",
        operation_id = "getRoleByID"
    )]
    async fn get_by_id(
        &self,
        /// The role's ID.
        role_id: Path<String>,
    ) -> Result<Json<Envelope<Role>>, ApiError> {
        let role = entity::require::<Role>(&mut Conn::Db(&self.ctx.db), &role_id.0).await?;
        Ok(Json(Envelope::new(role)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_fails_closed() {
        for s in [RoleStatus::Active, RoleStatus::Disabled] {
            assert_eq!(RoleStatus::parse(s.as_str()), s);
        }
        assert_eq!(RoleStatus::parse("archived"), RoleStatus::Disabled);
    }

    #[test]
    fn a_disabled_role_cannot_be_disabled_again() {
        use RoleStatus::{Active, Disabled};
        assert!(status_change("role", Active, None, Some(Disabled), MOVES).is_ok());
        assert!(status_change("role", Disabled, None, Some(Active), MOVES).is_ok());
        let err = status_change("role", Disabled, None, Some(Disabled), MOVES).unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
    }
}
