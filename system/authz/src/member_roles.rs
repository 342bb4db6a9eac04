//! Member-roles: a role granted to a member, optionally anchored at a group that `group` and
//! `group_tree` scopes are measured from. The member, the role and the anchor share one space.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use crate::GrantsTag;
use crate::roles::RoleStatus;
use crate::store::{
    Change, Conn, Created, Ctx, GROUPS, Grant, GrantKind, JsonColumn, KeyPage, Lifecycle,
    MEMBER_ROLES, MEMBERS, Metadata, ROLES, a, conflict, entity_id, from_rows, group_space,
    member_space, metadata_in, metadata_out, now, other_space, reference, referenced_not_found,
    require_space,
};
use plystra_contracts::entity::transition;
use plystra_contracts::entity::{self, InSpace, Stored};

/// A member-role's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "MemberRoleStatus")]
pub enum MemberRoleStatus {
    /// The member holds the role.
    Active,
    /// The grant was withdrawn; final.
    Revoked,
}

/// The status a new member-role may be created with: only `active` (a grant starts in force).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "MemberRoleCreateStatus")]
pub enum MemberRoleCreateStatus {
    /// The member holds the role.
    Active,
}

impl Lifecycle for MemberRoleStatus {
    const ALL: &'static [(Self, &'static str)] =
        &[(Self::Active, "active"), (Self::Revoked, "revoked")];
    const UNKNOWN: Self = Self::Revoked;
}

const MOVES: &[(MemberRoleStatus, MemberRoleStatus)] =
    &[(MemberRoleStatus::Active, MemberRoleStatus::Revoked)];

/// A role granted to a member, with the role, member and anchor described by value.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MemberRole")]
pub struct MemberRole {
    /// The grant's ID (`mr_…`).
    pub id: String,
    /// The space of the member, the role and the anchor.
    pub space_id: String,
    /// The member holding the role.
    pub member_id: String,
    /// The member's display name.
    pub member_display_name: String,
    /// The role.
    pub role_id: String,
    /// The role's key.
    pub role_key: String,
    /// The role's name.
    pub role_name: String,
    /// The group `group` and `group_tree` scopes are measured from; empty when not anchored.
    pub scope_anchor_group_id: Option<String>,
    /// The anchor group's path, for example `finance`.
    pub scope_anchor_path: Option<String>,
    /// `active` or `revoked`.
    pub status: MemberRoleStatus,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the role was granted.
    pub created_at: OffsetDateTime,
    /// When the grant last changed.
    pub updated_at: OffsetDateTime,
    /// Always empty: member-roles are revoked, not deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

from_rows!(MemberRole, |row| {
    Ok(MemberRole {
        id: row.try_get("id")?,
        space_id: row.try_get("space_id")?,
        member_id: row.try_get("member_id")?,
        member_display_name: row.try_get("member_display_name")?,
        role_id: row.try_get("role_id")?,
        role_key: row.try_get("role_key")?,
        role_name: row.try_get("role_name")?,
        scope_anchor_group_id: row.try_get("scope_anchor_group_id")?,
        scope_anchor_path: row.try_get("scope_anchor_path")?,
        status: MemberRoleStatus::parse(&row.try_get::<String, _>("status")?),
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl Grant for MemberRole {
    const KIND: GrantKind = GrantKind::MemberRole;

    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "space_id": self.space_id,
            "member_id": self.member_id,
            "member_display_name": self.member_display_name,
            "role_id": self.role_id,
            "role_key": self.role_key,
            "scope_anchor_group_id": self.scope_anchor_group_id,
            "scope_anchor_path": self.scope_anchor_path,
            "status": self.status.as_str(),
            "metadata": self.metadata,
        })
    }
}

/// Grants a role to a member of the same space.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MemberRoleCreateRequest")]
pub struct MemberRoleCreateRequest {
    /// A caller-chosen ID (`mr_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^mr_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The member; must belong to the path's space.
    pub member_id: String,
    /// The role; must belong to the path's space and be active.
    #[oai(validator(min_length = 1))]
    pub role_id: String,
    /// The anchor group for `group` and `group_tree` scopes; must belong to the path's space.
    #[oai(validator(min_length = 1))]
    pub scope_anchor_group_id: Option<String>,
    /// Only `active` (the default): a grant starts in force.
    pub status: Option<MemberRoleCreateStatus>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

impl Stored for MemberRole {
    const TABLE: &'static str = MEMBER_ROLES;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "space_id",
        "member_id",
        "role_id",
        "scope_anchor_group_id",
        "status",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
    ];
    const ENTITY: &'static str = "member-role";
    const NOT_FOUND: ErrorCode = ErrorCode::MemberRoleNotFound;

    fn id(&self) -> &str {
        &self.id
    }

    fn select() -> SelectStatement {
        let mut select = Query::select();
        select
            .columns(Self::COLUMNS.iter().map(|c| (a(MEMBER_ROLES), a(c))))
            .expr_as(
                Expr::col((a(MEMBERS), a("display_name"))),
                a("member_display_name"),
            )
            .expr_as(Expr::col((a(ROLES), a("key"))), a("role_key"))
            .expr_as(Expr::col((a(ROLES), a("name"))), a("role_name"))
            .expr_as(Expr::col((a(GROUPS), a("path"))), a("scope_anchor_path"))
            .from(a(MEMBER_ROLES))
            .inner_join(
                a(MEMBERS),
                Expr::col((a(MEMBERS), a("id"))).equals((a(MEMBER_ROLES), a("member_id"))),
            )
            .inner_join(
                a(ROLES),
                Expr::col((a(ROLES), a("id"))).equals((a(MEMBER_ROLES), a("role_id"))),
            )
            .left_join(
                a(GROUPS),
                Expr::col((a(GROUPS), a("id")))
                    .equals((a(MEMBER_ROLES), a("scope_anchor_group_id"))),
            );
        select
    }
}

impl InSpace for MemberRole {
    fn space_id(&self) -> &str {
        &self.space_id
    }
}

/// A validated grant request.
struct NewMemberRole {
    id: String,
    member_id: String,
    role_id: String,
    anchor: Option<String>,
}

impl NewMemberRole {
    fn validate(body: &MemberRoleCreateRequest) -> Result<Self, ApiError> {
        Ok(Self {
            id: entity_id("mr_", body.id.as_deref())?,
            member_id: reference("member_id", &body.member_id)?,
            role_id: reference("role_id", &body.role_id)?,
            anchor: body
                .scope_anchor_group_id
                .as_deref()
                .map(|g| reference("scope_anchor_group_id", g))
                .transpose()?,
        })
    }

    /// Checks that the member, the role and the anchor exist and belong to `space_id`.
    async fn check(&self, conn: &mut Conn<'_>, space_id: &str) -> Result<(), ApiError> {
        let member = member_space(conn, &self.member_id).await?.ok_or_else(|| {
            referenced_not_found(
                ErrorCode::MemberNotFound,
                "member",
                "member_id",
                &self.member_id,
            )
        })?;
        if member != space_id {
            return Err(other_space("member_id", "member", &member, space_id));
        }
        let role = crate::roles::get_locked(conn, &self.role_id)
            .await?
            .ok_or_else(|| {
                referenced_not_found(ErrorCode::RoleNotFound, "role", "role_id", &self.role_id)
            })?;
        if role.space_id != space_id {
            return Err(other_space("role_id", "role", &role.space_id, space_id));
        }
        if let Some(anchor) = &self.anchor {
            let group = group_space(conn, anchor).await?.ok_or_else(|| {
                referenced_not_found(
                    ErrorCode::GroupNotFound,
                    "group",
                    "scope_anchor_group_id",
                    anchor,
                )
            })?;
            if group != space_id {
                return Err(other_space(
                    "scope_anchor_group_id",
                    "group",
                    &group,
                    space_id,
                ));
            }
        }
        if role.status != RoleStatus::Active {
            return Err(conflict(
                format!(
                    "role {} is disabled; enable it before granting it",
                    self.role_id
                ),
                "role_id",
            ));
        }
        Ok(())
    }

    /// The ID of an active grant of the same role to the same member at the same anchor.
    async fn duplicate(
        &self,
        conn: &mut Conn<'_>,
        space_id: &str,
    ) -> Result<Option<String>, ApiError> {
        let mut q = MemberRole::select();
        q.and_where(Expr::col((a(MEMBER_ROLES), a("space_id"))).eq(space_id))
            .and_where(Expr::col((a(MEMBER_ROLES), a("member_id"))).eq(self.member_id.as_str()))
            .and_where(Expr::col((a(MEMBER_ROLES), a("role_id"))).eq(self.role_id.as_str()))
            .and_where(Expr::col((a(MEMBER_ROLES), a("status"))).eq("active"));
        match &self.anchor {
            Some(g) => {
                q.and_where(Expr::col((a(MEMBER_ROLES), a("scope_anchor_group_id"))).eq(g.as_str()))
            }
            None => q.and_where(Expr::col((a(MEMBER_ROLES), a("scope_anchor_group_id"))).is_null()),
        };
        Ok(conn
            .fetch_optional::<MemberRole, _>(&q)
            .await?
            .map(|m| m.id))
    }
}

/// The member-role routes.
pub struct MemberRolesApi {
    pub(crate) ctx: Arc<Ctx>,
}

#[OpenApi(tag = "GrantsTag::MemberRoles")]
impl MemberRolesApi {
    /// Lists a space's member-roles by ID, a page at a time, narrowed by member, role or status.
    #[oai(
        path = "/api/v1/spaces/:space_id/member-roles",
        method = "get",
        operation_id = "listMemberRoles"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        /// The space's ID.
        space_id: Path<String>,
        /// Only grants to this member.
        member_id: QueryParam<Option<String>>,
        /// Only grants of this role.
        role_id: QueryParam<Option<String>>,
        /// Only grants with this status.
        status: QueryParam<Option<MemberRoleStatus>>,
        /// Grants per page, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: QueryParam<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: QueryParam<Option<String>>,
    ) -> Result<Json<ListEnvelope<MemberRole>>, ApiError> {
        let page = KeyPage::parse(limit.0, cursor.0.as_deref())?;
        let mut conn = Conn::Db(&self.ctx.db);
        require_space(&mut conn, &space_id.0).await?;
        let mut q = MemberRole::select();
        q.and_where(Expr::col((a(MEMBER_ROLES), a("space_id"))).eq(space_id.0.as_str()));
        for (column, value) in [("member_id", member_id.0), ("role_id", role_id.0)] {
            if let Some(v) = value {
                q.and_where(Expr::col((a(MEMBER_ROLES), a(column))).eq(v));
            }
        }
        if let Some(status) = status.0 {
            q.and_where(Expr::col((a(MEMBER_ROLES), a("status"))).eq(status.as_str()));
        }
        Ok(Json(entity::list(&mut conn, q, &page).await?))
    }

    /// Grants a role to a member, optionally anchored at a group. The member, the role and the
    /// anchor must belong to the path's space (400 naming the field otherwise); 409 when the
    /// member already holds the role at the same anchor or the role is disabled.
    #[oai(
        path = "/api/v1/spaces/:space_id/member-roles",
        method = "post",
        operation_id = "createMemberRole"
    )]
    async fn create(
        &self,
        req: &poem::Request,
        /// The space's ID.
        space_id: Path<String>,
        body: JsonBody<MemberRoleCreateRequest>,
    ) -> Result<Created<MemberRole>, ApiError> {
        let body = body.0;
        let new = NewMemberRole::validate(&body)?;
        let space_id = space_id.0;
        let mut tx = self.ctx.begin().await?;
        require_space(&mut Conn::Tx(&mut tx), &space_id).await?;
        new.check(&mut Conn::Tx(&mut tx), &space_id).await?;
        if let Some(existing) = new.duplicate(&mut Conn::Tx(&mut tx), &space_id).await? {
            return Err(conflict(
                format!(
                    "member {} already holds role {} at this anchor ({existing})",
                    new.member_id, new.role_id
                ),
                "role_id",
            )
            .with_detail("existing_id", existing));
        }
        if entity::get::<MemberRole>(&mut tx, &new.id).await?.is_some() {
            return Err(conflict("a member-role with this ID exists", "id"));
        }
        let at = now();
        entity::insert(
            &mut tx,
            MEMBER_ROLES,
            vec![
                ("id", new.id.clone().into()),
                ("space_id", space_id.clone().into()),
                ("member_id", new.member_id.clone().into()),
                ("role_id", new.role_id.clone().into()),
                ("scope_anchor_group_id", new.anchor.clone().into()),
                ("status", MemberRoleStatus::Active.as_str().into()),
                ("metadata", metadata_in(&body.metadata).into()),
                ("created_at", at.into()),
                ("updated_at", at.into()),
            ],
        )
        .await?;
        let grant = entity::require::<MemberRole>(&mut tx, &new.id).await?;
        let change = Change::of(&grant, "member_roles.create", Some(&grant.space_id));
        self.ctx.commit_audited(tx, req, change).await?;
        Ok(Created::new(grant))
    }

    /// Reads one member-role of a space.
    #[oai(
        path = "/api/v1/spaces/:space_id/member-roles/:member_role_id",
        method = "get",
        operation_id = "getMemberRole"
    )]
    async fn get_one(
        &self,
        /// The space's ID.
        space_id: Path<String>,
        /// The member-role's ID.
        member_role_id: Path<String>,
    ) -> Result<Json<Envelope<MemberRole>>, ApiError> {
        let mut conn = Conn::Db(&self.ctx.db);
        require_space(&mut conn, &space_id.0).await?;
        Ok(Json(Envelope::new(
            entity::require_in::<MemberRole>(&mut conn, &space_id.0, &member_role_id.0).await?,
        )))
    }

    /// Revokes an active member-role; the member no longer holds the role. 409 when already
    /// revoked.
    #[oai(
        path = "/api/v1/spaces/:space_id/member-roles/:member_role_id/revoke",
        method = "post",
        operation_id = "revokeMemberRole"
    )]
    async fn revoke(
        &self,
        req: &poem::Request,
        /// The space's ID.
        space_id: Path<String>,
        /// The member-role's ID.
        member_role_id: Path<String>,
    ) -> Result<Json<Envelope<MemberRole>>, ApiError> {
        let id = member_role_id.0;
        let mut tx = self.ctx.begin().await?;
        require_space(&mut Conn::Tx(&mut tx), &space_id.0).await?;
        let current = entity::require_in::<MemberRole>(&mut tx, &space_id.0, &id).await?;
        transition(
            "member-role",
            current.status,
            MemberRoleStatus::Revoked,
            MOVES,
        )?;
        entity::update(
            &mut tx,
            MEMBER_ROLES,
            &id,
            vec![
                ("status", MemberRoleStatus::Revoked.as_str().into()),
                ("updated_at", now().into()),
            ],
        )
        .await?;
        let grant = entity::require::<MemberRole>(&mut tx, &id).await?;
        let change = Change::of(&grant, "member_roles.revoke", Some(&grant.space_id));
        self.ctx.commit_audited(tx, req, change).await?;
        Ok(Json(Envelope::new(grant)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        status: Option<MemberRoleCreateStatus>,
        anchor: Option<&str>,
    ) -> MemberRoleCreateRequest {
        MemberRoleCreateRequest {
            id: None,
            member_id: "member_finance_reviewer".into(),
            role_id: "role_finance_approver".into(),
            scope_anchor_group_id: anchor.map(str::to_owned),
            status,
            metadata: None,
        }
    }

    #[test]
    fn a_new_grant_names_its_references() {
        let ok = NewMemberRole::validate(&body(None, Some("group_finance"))).unwrap();
        assert!(ok.id.starts_with("mr_"));
        assert_eq!(ok.anchor.as_deref(), Some("group_finance"));
        // Only `active` can be asked for: the type (and the document's enum) has no other value.
        assert!(NewMemberRole::validate(&body(Some(MemberRoleCreateStatus::Active), None)).is_ok());
        let err = NewMemberRole::validate(&body(None, Some("")))
            .err()
            .unwrap();
        assert!(err.details["fields"]["scope_anchor_group_id"].is_string());
    }

    #[test]
    fn revoked_is_final() {
        use MemberRoleStatus::{Active, Revoked};
        assert!(transition("member-role", Active, Revoked, MOVES).is_ok());
        let err = transition("member-role", Revoked, Revoked, MOVES).unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(MemberRoleStatus::parse("weird"), MemberRoleStatus::Revoked);
    }
}
