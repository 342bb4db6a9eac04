//! Permissions: an action on a resource type within a scope, under an optional condition (a CEL
//! expression, compiled and checked when it is written). They are global (not space-local);
//! roles of any space may hold them. `(resource, action, scope, condition)` is unique.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Value};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object, OpenApi};

use crate::store::{
    Change, Conn, Created, Ctx, Grant, GrantKind, JsonColumn, KeyPage, Lifecycle, Metadata,
    PERMISSIONS, a, conflict, entity_id, from_rows, keyword, metadata_in, metadata_out, now,
    require_space, status_change,
};
use crate::{GrantsTag, Scope};
use plystra_contracts::entity::{self, Stored};

/// A permission's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "PermissionStatus")]
pub enum PermissionStatus {
    /// Roles holding it grant it.
    Active,
    /// Authorization ignores it; it can be made active again.
    Disabled,
}

impl Lifecycle for PermissionStatus {
    const ALL: &'static [(Self, &'static str)] =
        &[(Self::Active, "active"), (Self::Disabled, "disabled")];
    const UNKNOWN: Self = Self::Disabled;
}

const MOVES: &[(PermissionStatus, PermissionStatus)] = &[
    (PermissionStatus::Active, PermissionStatus::Disabled),
    (PermissionStatus::Disabled, PermissionStatus::Active),
];

/// A permission.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Permission")]
pub struct Permission {
    /// The permission's ID (`perm_…`).
    pub id: String,
    /// The resource type it applies to, for example `invoice`.
    pub resource: String,
    /// The action it allows, for example `approve`.
    pub action: String,
    /// Which targets it covers, relative to the member and the grant's anchor group.
    pub scope: Scope,
    /// A CEL expression a request must also satisfy, when the permission has one: a grant of it
    /// covers a request only when the scope covers the target and the condition is true. It
    /// reads `subject`, `resource`, `action`, `context` and `now` (see the README's
    /// "Conditions").
    pub condition: Option<String>,
    /// `active` or `disabled`.
    pub status: PermissionStatus,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the permission was created.
    pub created_at: OffsetDateTime,
    /// When the permission last changed.
    pub updated_at: OffsetDateTime,
    /// Always empty: permissions are disabled, not deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

from_rows!(Permission, |row| {
    let scope: String = row.try_get("scope")?;
    Ok(Permission {
        id: row.try_get("id")?,
        resource: row.try_get("resource")?,
        action: row.try_get("action")?,
        // Only valid scopes are ever written; an unknown one reads as `global`, which denies.
        scope: Scope::parse(&scope).unwrap_or(Scope::Global),
        condition: stored_condition(row.try_get("condition")?),
        status: PermissionStatus::parse(&row.try_get::<String, _>("status")?),
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl Grant for Permission {
    const KIND: GrantKind = GrantKind::Permission;

    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "resource": self.resource,
            "action": self.action,
            "scope": self.scope.as_str(),
            "condition": self.condition,
            "status": self.status.as_str(),
            "metadata": self.metadata,
        })
    }
}

/// Creates a permission.
#[derive(Debug, Clone, Object)]
#[oai(rename = "PermissionCreateRequest")]
pub struct PermissionCreateRequest {
    /// A caller-chosen ID (`perm_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^perm_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The resource type (`^[a-z][a-z0-9_]*$`).
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub resource: String,
    /// The action (`^[a-z][a-z0-9_]*$`).
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub action: String,
    /// The scope.
    pub scope: Scope,
    /// A condition (CEL, at most 1,024 characters): the grant also needs it to be true. A
    /// syntax error, a name other than `subject`, `resource`, `action`, `context` and `now`, a
    /// macro inside a macro or a result that cannot be a boolean is a 400 naming the line and
    /// column.
    #[oai(validator(max_length = 1024))]
    pub condition: Option<String>,
    /// `active` (the default) or `disabled`.
    pub status: Option<PermissionStatus>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
    /// The space the audit record of this change is filed under; must exist. Permissions
    /// themselves belong to no space.
    pub audit_space_id: Option<String>,
}

/// Changes a permission. Absent fields keep their value.
#[derive(Debug, Clone, Object, Default)]
#[oai(rename = "PermissionUpdateRequest")]
pub struct PermissionUpdateRequest {
    /// A new resource type.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub resource: Option<String>,
    /// A new action.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub action: Option<String>,
    /// A new scope.
    pub scope: Option<Scope>,
    /// A new condition (checked as on create); `null` removes it.
    #[oai(validator(max_length = 1024))]
    pub condition: MaybeUndefined<String>,
    /// A new status (`active` or `disabled`).
    pub status: Option<PermissionStatus>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
    /// The space the audit record of this change is filed under; must exist.
    pub audit_space_id: Option<String>,
}

impl Stored for Permission {
    const TABLE: &'static str = PERMISSIONS;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "resource",
        "action",
        "scope",
        "status",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
        "condition",
    ];
    const ENTITY: &'static str = "permission";
    const NOT_FOUND: ErrorCode = ErrorCode::PermissionNotFound;

    fn id(&self) -> &str {
        &self.id
    }
}

/// A stored condition as the API and the index read it: `''` is none.
pub(crate) fn stored_condition(stored: String) -> Option<String> {
    (!stored.is_empty()).then_some(stored)
}

/// A condition as written: compiled and checked (400 naming the line and column otherwise), and
/// stored as given. Blank is refused: `null` (on update) removes a condition.
fn checked_condition(source: &str) -> Result<String, ApiError> {
    plystra_authz_core::condition::Condition::compile(source)
        .map(|_| source.to_owned())
        .map_err(|e| {
            ApiError::invalid_field("condition", e.to_string())
                .with_detail("line", e.line)
                .with_detail("column", e.column)
        })
}

/// The permission that already has this rule (resource, action, scope, condition), if any.
async fn rule_taken(
    conn: &mut Conn<'_>,
    (resource, action, scope): (&str, &str, Scope),
    condition: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let mut q = Permission::select();
    q.and_where(Expr::col((a(PERMISSIONS), a("resource"))).eq(resource))
        .and_where(Expr::col((a(PERMISSIONS), a("action"))).eq(action))
        .and_where(Expr::col((a(PERMISSIONS), a("scope"))).eq(scope.as_str()))
        .and_where(Expr::col((a(PERMISSIONS), a("condition"))).eq(condition.unwrap_or_default()));
    Ok(conn
        .fetch_optional::<Permission, _>(&q)
        .await?
        .map(|p| p.id))
}

fn rule_conflict(existing: &str) -> ApiError {
    conflict(
        format!("permission {existing} already has this resource, action, scope and condition"),
        "scope",
    )
    .with_detail("existing_id", existing)
}

/// Checks `audit_space_id`: absent, or a space that exists (404 `SPACE_NOT_FOUND` naming the
/// field otherwise).
async fn audit_space(conn: &mut Conn<'_>, space: Option<&str>) -> Result<(), ApiError> {
    if let Some(space) = space {
        require_space(conn, space)
            .await
            .map_err(|e| e.with_detail("field", "audit_space_id"))?;
    }
    Ok(())
}

/// The permission routes.
pub struct PermissionsApi {
    pub(crate) ctx: Arc<Ctx>,
}

impl PermissionsApi {
    async fn change(
        &self,
        req: &poem::Request,
        permission_id: &str,
        event_type: &'static str,
        update: PermissionUpdateRequest,
        strict: Option<PermissionStatus>,
    ) -> Result<Json<Envelope<Permission>>, ApiError> {
        let resource = update
            .resource
            .as_deref()
            .map(|r| keyword("resource", r))
            .transpose()?;
        let action = update
            .action
            .as_deref()
            .map(|r| keyword("action", r))
            .transpose()?;
        let condition = match &update.condition {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(source) => Some(Some(checked_condition(source)?)),
        };
        let mut tx = self.ctx.begin().await?;
        audit_space(&mut Conn::Tx(&mut tx), update.audit_space_id.as_deref()).await?;
        let current = entity::require::<Permission>(&mut tx, permission_id).await?;
        let mut sets: Vec<(&str, Value)> = Vec::new();
        if let Some(to) = status_change("permission", current.status, update.status, strict, MOVES)?
        {
            sets.push(("status", to.as_str().into()));
        }
        let resource = resource.unwrap_or_else(|| current.resource.clone());
        let action = action.unwrap_or_else(|| current.action.clone());
        let scope = update.scope.unwrap_or(current.scope);
        let condition = condition.unwrap_or_else(|| current.condition.clone());
        if (
            resource.as_str(),
            action.as_str(),
            scope,
            condition.as_deref(),
        ) != (
            current.resource.as_str(),
            current.action.as_str(),
            current.scope,
            current.condition.as_deref(),
        ) {
            if let Some(existing) = rule_taken(
                &mut Conn::Tx(&mut tx),
                (&resource, &action, scope),
                condition.as_deref(),
            )
            .await?
            {
                return Err(rule_conflict(&existing));
            }
            sets.push(("resource", resource.into()));
            sets.push(("action", action.into()));
            sets.push(("scope", scope.as_str().into()));
            sets.push(("condition", condition.unwrap_or_default().into()));
        }
        if update.metadata.is_some() {
            sets.push(("metadata", metadata_in(&update.metadata).into()));
        }
        sets.push(("updated_at", now().into()));
        entity::update(&mut tx, PERMISSIONS, permission_id, sets).await?;
        let permission = entity::require::<Permission>(&mut tx, permission_id).await?;
        let change = Change::of(&permission, event_type, update.audit_space_id.as_deref());
        self.ctx.commit_audited(tx, req, change).await?;
        Ok(Json(Envelope::new(permission)))
    }
}

#[OpenApi(tag = "GrantsTag::Permissions")]
impl PermissionsApi {
    /// Lists permissions by ID, a page at a time, narrowed by resource type, action, scope or
    /// status.
    #[oai(
        path = "/api/v1/permissions",
        method = "get",
        operation_id = "listPermissions"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        /// Only permissions on this resource type.
        resource: QueryParam<Option<String>>,
        /// Only permissions for this action.
        action: QueryParam<Option<String>>,
        /// Only permissions with this scope.
        scope: QueryParam<Option<Scope>>,
        /// Only permissions with this status.
        status: QueryParam<Option<PermissionStatus>>,
        /// Permissions per page, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: QueryParam<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: QueryParam<Option<String>>,
    ) -> Result<Json<ListEnvelope<Permission>>, ApiError> {
        let page = KeyPage::parse(limit.0, cursor.0.as_deref())?;
        let mut q = Permission::select();
        if let Some(resource) = resource.0 {
            q.and_where(Expr::col((a(PERMISSIONS), a("resource"))).eq(resource));
        }
        if let Some(action) = action.0 {
            q.and_where(Expr::col((a(PERMISSIONS), a("action"))).eq(action));
        }
        if let Some(scope) = scope.0 {
            q.and_where(Expr::col((a(PERMISSIONS), a("scope"))).eq(scope.as_str()));
        }
        if let Some(status) = status.0 {
            q.and_where(Expr::col((a(PERMISSIONS), a("status"))).eq(status.as_str()));
        }
        Ok(Json(entity::list(&self.ctx.db, q, &page).await?))
    }

    /// Creates a permission. 409 when one with the same resource, action, scope and condition
    /// (or ID) exists; 400 naming the line and column when the condition is refused.
    #[oai(
        path = "/api/v1/permissions",
        method = "post",
        operation_id = "createPermission"
    )]
    async fn create(
        &self,
        req: &poem::Request,
        body: JsonBody<PermissionCreateRequest>,
    ) -> Result<Created<Permission>, ApiError> {
        let body = body.0;
        let id = entity_id("perm_", body.id.as_deref())?;
        let resource = keyword("resource", &body.resource)?;
        let action = keyword("action", &body.action)?;
        let condition = body
            .condition
            .as_deref()
            .map(checked_condition)
            .transpose()?;
        let status = body.status.unwrap_or(PermissionStatus::Active);
        let mut tx = self.ctx.begin().await?;
        audit_space(&mut Conn::Tx(&mut tx), body.audit_space_id.as_deref()).await?;
        if entity::get::<Permission>(&mut tx, &id).await?.is_some() {
            return Err(conflict("a permission with this ID exists", "id"));
        }
        if let Some(existing) = rule_taken(
            &mut Conn::Tx(&mut tx),
            (&resource, &action, body.scope),
            condition.as_deref(),
        )
        .await?
        {
            return Err(rule_conflict(&existing));
        }
        let at = now();
        entity::insert(
            &mut tx,
            PERMISSIONS,
            vec![
                ("id", id.clone().into()),
                ("resource", resource.into()),
                ("action", action.into()),
                ("scope", body.scope.as_str().into()),
                ("condition", condition.unwrap_or_default().into()),
                ("status", status.as_str().into()),
                ("metadata", metadata_in(&body.metadata).into()),
                ("created_at", at.into()),
                ("updated_at", at.into()),
            ],
        )
        .await?;
        let permission = entity::require::<Permission>(&mut tx, &id).await?;
        let change = Change::of(
            &permission,
            "permissions.create",
            body.audit_space_id.as_deref(),
        );
        self.ctx.commit_audited(tx, req, change).await?;
        Ok(Created::new(permission))
    }

    /// Reads one permission.
    #[oai(
        path = "/api/v1/permissions/:permission_id",
        method = "get",
        operation_id = "getPermission"
    )]
    async fn get_one(
        &self,
        /// The permission's ID.
        permission_id: Path<String>,
    ) -> Result<Json<Envelope<Permission>>, ApiError> {
        let permission =
            entity::require::<Permission>(&mut Conn::Db(&self.ctx.db), &permission_id.0).await?;
        Ok(Json(Envelope::new(permission)))
    }

    /// Changes a permission's resource type, action, scope, condition, status or metadata.
    /// Every role holding it sees the change.
    #[oai(
        path = "/api/v1/permissions/:permission_id",
        method = "patch",
        operation_id = "updatePermission"
    )]
    async fn update(
        &self,
        req: &poem::Request,
        /// The permission's ID.
        permission_id: Path<String>,
        body: JsonBody<PermissionUpdateRequest>,
    ) -> Result<Json<Envelope<Permission>>, ApiError> {
        self.change(req, &permission_id.0, "permissions.update", body.0, None)
            .await
    }

    /// Disables an active permission, so authorization ignores it in every role. 409 when
    /// already disabled.
    #[oai(
        path = "/api/v1/permissions/:permission_id/disable",
        method = "post",
        operation_id = "disablePermission"
    )]
    async fn disable(
        &self,
        req: &poem::Request,
        /// The permission's ID.
        permission_id: Path<String>,
    ) -> Result<Json<Envelope<Permission>>, ApiError> {
        self.change(
            req,
            &permission_id.0,
            "permissions.disable",
            PermissionUpdateRequest::default(),
            Some(PermissionStatus::Disabled),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_fails_closed() {
        for s in [PermissionStatus::Active, PermissionStatus::Disabled] {
            assert_eq!(PermissionStatus::parse(s.as_str()), s);
        }
        assert_eq!(PermissionStatus::parse(""), PermissionStatus::Disabled);
    }

    #[test]
    fn a_refused_condition_names_its_field_line_and_column() {
        let err = checked_condition("resource.amount <= 10 &&\n  user.role == 'x'").unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        assert_eq!(
            err.details["fields"]["condition"],
            err.message["condition: ".len()..]
        );
        assert_eq!(
            (err.details["line"].clone(), err.details["column"].clone()),
            (2.into(), 3.into())
        );
        assert!(err.message.contains("`user` is not"), "{}", err.message);
        assert_eq!(checked_condition("now > 0").unwrap(), "now > 0");
        assert_eq!(stored_condition(String::new()), None);
    }

    #[test]
    fn a_duplicate_rule_names_the_existing_permission() {
        let err = rule_conflict("perm_invoice_approve");
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(err.details["existing_id"], "perm_invoice_approve");
    }
}
