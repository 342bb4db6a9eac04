//! Role-permissions: a permission granted to a role. The grant lives in the role's space.
//! Removing one is a soft delete that keeps the record (with `deleted_at`); granting the same
//! permission to the role again restores that record.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query, SelectStatement, Value};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::permissions::{Permission, PermissionStatus};
use crate::roles::RoleStatus;
use crate::store::{
    Change, Conn, Created, Ctx, Grant, GrantKind, JsonColumn, KeyPage, Metadata, PERMISSIONS,
    ROLE_PERMISSIONS, ROLES, a, conflict, entity_id, from_rows, metadata_in, metadata_out, now,
    other_space, reference, referenced_not_found,
};
use crate::{GrantsTag, Scope};
use plystra_contracts::entity::{self, Stored};

/// A permission granted to a role, with the role's key and the permission's triple as values.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RolePermission")]
pub struct RolePermission {
    /// The grant's ID (`rp_…`).
    pub id: String,
    /// The role's space.
    pub space_id: String,
    /// The role.
    pub role_id: String,
    /// The role's key.
    pub role_key: String,
    /// The permission.
    pub permission_id: String,
    /// The permission's resource type.
    pub resource: String,
    /// The permission's action.
    pub action: String,
    /// The permission's scope.
    pub scope: Scope,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the permission was granted (or last granted again).
    pub created_at: OffsetDateTime,
    /// When the grant last changed.
    pub updated_at: OffsetDateTime,
    /// When the grant was removed; empty while it is in force.
    pub deleted_at: Option<OffsetDateTime>,
}

from_rows!(RolePermission, |row| {
    let scope: String = row.try_get("scope")?;
    Ok(RolePermission {
        id: row.try_get("id")?,
        space_id: row.try_get("space_id")?,
        role_id: row.try_get("role_id")?,
        role_key: row.try_get("role_key")?,
        permission_id: row.try_get("permission_id")?,
        resource: row.try_get("resource")?,
        action: row.try_get("action")?,
        scope: Scope::parse(&scope).unwrap_or(Scope::Global),
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl Grant for RolePermission {
    const KIND: GrantKind = GrantKind::RolePermission;

    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "space_id": self.space_id,
            "role_id": self.role_id,
            "role_key": self.role_key,
            "permission_id": self.permission_id,
            "resource": self.resource,
            "action": self.action,
            "scope": self.scope.as_str(),
            "metadata": self.metadata,
            "deleted": self.deleted_at.is_some(),
        })
    }
}

/// Grants a permission to a role.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RolePermissionCreateRequest")]
pub struct RolePermissionCreateRequest {
    /// A caller-chosen ID (`rp_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^rp_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The role; it must be active.
    #[oai(validator(min_length = 1))]
    pub role_id: String,
    /// The permission; it must be active.
    #[oai(validator(min_length = 1))]
    pub permission_id: String,
    /// Free-form data.
    pub metadata: Option<Metadata>,
    /// When given, must be the role's space (the grant and its audit record live there).
    pub audit_space_id: Option<String>,
}

impl Stored for RolePermission {
    const TABLE: &'static str = ROLE_PERMISSIONS;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "space_id",
        "role_id",
        "permission_id",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
    ];
    const ENTITY: &'static str = "role-permission";
    const NOT_FOUND: ErrorCode = ErrorCode::RolePermissionNotFound;

    fn id(&self) -> &str {
        &self.id
    }

    fn select() -> SelectStatement {
        let mut select = Query::select();
        select
            .columns(Self::COLUMNS.iter().map(|c| (a(ROLE_PERMISSIONS), a(c))))
            .expr_as(Expr::col((a(ROLES), a("key"))), a("role_key"))
            .columns(["resource", "action", "scope"].map(|c| (a(PERMISSIONS), a(c))))
            .from(a(ROLE_PERMISSIONS))
            .inner_join(
                a(ROLES),
                Expr::col((a(ROLES), a("id"))).equals((a(ROLE_PERMISSIONS), a("role_id"))),
            )
            .inner_join(
                a(PERMISSIONS),
                Expr::col((a(PERMISSIONS), a("id")))
                    .equals((a(ROLE_PERMISSIONS), a("permission_id"))),
            );
        select
    }
}

async fn get_pair(
    conn: &mut Conn<'_>,
    role_id: &str,
    permission_id: &str,
) -> Result<Option<RolePermission>, ApiError> {
    let mut q = RolePermission::select();
    q.and_where(Expr::col((a(ROLE_PERMISSIONS), a("role_id"))).eq(role_id))
        .and_where(Expr::col((a(ROLE_PERMISSIONS), a("permission_id"))).eq(permission_id));
    Ok(conn.fetch_optional(&q).await?)
}

/// The role-permission routes.
pub struct RolePermissionsApi {
    pub(crate) ctx: Arc<Ctx>,
}

#[OpenApi(tag = "GrantsTag::RolePermissions")]
impl RolePermissionsApi {
    /// Lists role-permissions by ID, a page at a time, narrowed by space, role or permission.
    /// Removed grants are left out unless `include_deleted` is true.
    #[oai(
        path = "/api/v1/role-permissions",
        method = "get",
        operation_id = "listRolePermissions"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        /// Only grants in this space.
        space_id: QueryParam<Option<String>>,
        /// Only grants to this role.
        role_id: QueryParam<Option<String>>,
        /// Only grants of this permission.
        permission_id: QueryParam<Option<String>>,
        /// Also list removed grants (default false).
        include_deleted: QueryParam<Option<bool>>,
        /// Grants per page, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: QueryParam<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: QueryParam<Option<String>>,
    ) -> Result<Json<ListEnvelope<RolePermission>>, ApiError> {
        let page = KeyPage::parse(limit.0, cursor.0.as_deref())?;
        let mut q = RolePermission::select();
        for (column, value) in [
            ("space_id", space_id.0),
            ("role_id", role_id.0),
            ("permission_id", permission_id.0),
        ] {
            if let Some(v) = value {
                q.and_where(Expr::col((a(ROLE_PERMISSIONS), a(column))).eq(v));
            }
        }
        if !include_deleted.0.unwrap_or(false) {
            q.and_where(Expr::col((a(ROLE_PERMISSIONS), a("deleted_at"))).is_null());
        }
        Ok(Json(entity::list(&self.ctx.db, q, &page).await?))
    }

    /// Grants a permission to a role. 409 when the role already holds it, or when the role or
    /// the permission is disabled; a grant removed earlier is restored with its ID.
    #[oai(
        path = "/api/v1/role-permissions",
        method = "post",
        operation_id = "createRolePermission"
    )]
    async fn create(
        &self,
        req: &poem::Request,
        body: JsonBody<RolePermissionCreateRequest>,
    ) -> Result<Created<RolePermission>, ApiError> {
        let body = body.0;
        let id = entity_id("rp_", body.id.as_deref())?;
        let role_id = reference("role_id", &body.role_id)?;
        let permission_id = reference("permission_id", &body.permission_id)?;
        let mut tx = self.ctx.begin().await?;
        let role = crate::roles::get_locked(&mut Conn::Tx(&mut tx), &role_id)
            .await?
            .ok_or_else(|| {
                referenced_not_found(ErrorCode::RoleNotFound, "role", "role_id", &role_id)
            })?;
        if let Some(audit_space) = body.audit_space_id.as_deref()
            && audit_space != role.space_id
        {
            return Err(other_space(
                "audit_space_id",
                "role",
                &role.space_id,
                audit_space,
            ));
        }
        let permission = entity::get::<Permission>(&mut tx, &permission_id)
            .await?
            .ok_or_else(|| {
                Permission::not_found(&permission_id).with_detail("field", "permission_id")
            })?;
        if role.status != RoleStatus::Active {
            return Err(conflict(
                format!("role {role_id} is disabled; enable it before granting to it"),
                "role_id",
            ));
        }
        if permission.status != PermissionStatus::Active {
            return Err(conflict(
                format!("permission {permission_id} is disabled; enable it before granting it"),
                "permission_id",
            ));
        }
        let at = now();
        let grant_id = match get_pair(&mut Conn::Tx(&mut tx), &role_id, &permission_id).await? {
            Some(existing) if existing.deleted_at.is_none() => {
                return Err(conflict(
                    format!(
                        "role {role_id} already holds permission {permission_id} ({})",
                        existing.id
                    ),
                    "permission_id",
                )
                .with_detail("existing_id", existing.id));
            }
            Some(existing) => {
                if body.id.is_some() && existing.id != id {
                    return Err(conflict(
                        format!(
                            "this grant was removed earlier as {}; granting it again restores that ID",
                            existing.id
                        ),
                        "id",
                    )
                    .with_detail("existing_id", existing.id));
                }
                let mut q = Query::update();
                q.table(a(ROLE_PERMISSIONS))
                    .values([
                        (
                            a("deleted_at"),
                            Expr::val(Value::from(None::<OffsetDateTime>)),
                        ),
                        (a("metadata"), Expr::val(metadata_in(&body.metadata))),
                        (a("created_at"), Expr::val(at)),
                        (a("updated_at"), Expr::val(at)),
                    ])
                    .and_where(Expr::col(a("id")).eq(existing.id.as_str()));
                tx.execute(&q).await?;
                existing.id
            }
            None => {
                if entity::get::<RolePermission>(&mut tx, &id).await?.is_some() {
                    return Err(conflict("a role-permission with this ID exists", "id"));
                }
                entity::insert(
                    &mut tx,
                    ROLE_PERMISSIONS,
                    vec![
                        ("id", id.clone().into()),
                        ("space_id", role.space_id.clone().into()),
                        ("role_id", role_id.clone().into()),
                        ("permission_id", permission_id.clone().into()),
                        ("metadata", metadata_in(&body.metadata).into()),
                        ("created_at", at.into()),
                        ("updated_at", at.into()),
                    ],
                )
                .await?;
                id
            }
        };
        let grant = entity::require::<RolePermission>(&mut tx, &grant_id).await?;
        let change = Change::of(&grant, "role_permissions.create", Some(&grant.space_id));
        self.ctx.commit_audited(tx, req, change).await?;
        Ok(Created::new(grant))
    }

    /// Reads one role-permission, removed or not.
    #[oai(
        path = "/api/v1/role-permissions/:role_permission_id",
        method = "get",
        operation_id = "getRolePermission"
    )]
    async fn get_one(
        &self,
        /// The role-permission's ID.
        role_permission_id: Path<String>,
    ) -> Result<Json<Envelope<RolePermission>>, ApiError> {
        let grant =
            entity::require::<RolePermission>(&mut Conn::Db(&self.ctx.db), &role_permission_id.0)
                .await?;
        Ok(Json(Envelope::new(grant)))
    }

    /// Removes a permission from a role: a soft delete that answers 200 with the record, now
    /// carrying `deleted_at`. 409 when it was already removed.
    #[oai(
        path = "/api/v1/role-permissions/:role_permission_id",
        method = "delete",
        operation_id = "deleteRolePermission"
    )]
    async fn delete(
        &self,
        req: &poem::Request,
        /// The role-permission's ID.
        role_permission_id: Path<String>,
    ) -> Result<Json<Envelope<RolePermission>>, ApiError> {
        let id = role_permission_id.0;
        let mut tx = self.ctx.begin().await?;
        let current = entity::require::<RolePermission>(&mut tx, &id).await?;
        if current.deleted_at.is_some() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("role-permission {id} was already removed"),
            )
            .with_detail("status", "deleted"));
        }
        let at = now();
        let mut q = Query::update();
        q.table(a(ROLE_PERMISSIONS))
            .values([
                (a("deleted_at"), Expr::val(at)),
                (a("updated_at"), Expr::val(at)),
            ])
            .and_where(Expr::col(a("id")).eq(id.as_str()));
        tx.execute(&q).await?;
        let grant = entity::require::<RolePermission>(&mut tx, &id).await?;
        let change = Change::of(&grant, "role_permissions.delete", Some(&grant.space_id));
        self.ctx.commit_audited(tx, req, change).await?;
        Ok(Json(Envelope::new(grant)))
    }
}
