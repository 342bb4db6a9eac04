//! Admin grants and `admin/me`. Only user sessions create or revoke grants (never an API key or
//! the bootstrap key, whatever they hold); only super admins manage instance-level grants; a
//! scoped admin reaches only grants in its own space or group subtree; and the last active super
//! admin cannot be revoked (409 `LAST_SUPER_ADMIN`).

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::pagination::KeyPage;
use plystra_contracts::services::{Caller, Credential};
use plystra_contracts::storage::Metadata;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::core::{Admin, api_error};
use crate::keys::{RevokeRequest, commit_audited, denied, future, key};
use crate::permission::PermissionKey;
use crate::scope::{Principal, Scope};
use crate::store::{self, AdminGrant, AdminStatus, GrantLevel, NewGrant};
use plystra_contracts::entity::Lifecycle;

use crate::level_rules::{LevelRules, Leveled};

/// Grants admin rights to a user.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AdminGrantCreateRequest")]
pub struct AdminGrantCreateRequest {
    /// The user.
    #[oai(validator(pattern = r"^user_[a-z0-9_]{1,120}$"))]
    pub user_id: String,
    /// The level.
    pub level: GrantLevel,
    /// The space of a space admin.
    pub space_id: Option<String>,
    /// The group of a group admin.
    pub group_id: Option<String>,
    /// Narrows the grant to one permission key.
    pub permission_key: Option<String>,
    /// When the grant ends; must be in the future.
    pub expires_at: Option<OffsetDateTime>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

impl LevelRules for AdminGrantCreateRequest {
    const SCHEMA: &'static str = "AdminGrantCreateRequest";
    const INSTANCE: &'static [&'static str] = &["instance_super_admin", "instance_admin"];
    const SPACE: &'static [&'static str] = &["space_admin"];
    const GROUP: &'static [&'static str] = &["group_admin"];
}

/// 201 with the new grant.
#[derive(ApiResponse)]
pub enum GrantCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<Envelope<AdminGrant>>),
}

/// One authority of the caller, as `admin/me` shows it.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AdminAuthority")]
pub struct AuthorityView {
    /// `instance`, `space` or `group`.
    pub level: String,
    /// The space of a space or group authority.
    pub space_id: Option<String>,
    /// The group of a group authority.
    pub group_id: Option<String>,
    /// The permission keys it holds.
    pub permission_keys: Vec<String>,
    /// Whether it is a super admin's.
    pub super_admin: bool,
}

/// The caller as an administrator.
#[derive(Debug, Clone, Object)]
#[oai(rename = "AdminMe")]
pub struct AdminMe {
    /// `session`, `api_key` or `bootstrap_key`.
    pub credential_type: String,
    /// The user of a session.
    pub user_id: Option<String>,
    /// The key of an API key credential.
    pub api_key_id: Option<String>,
    /// The active grants of a session's user.
    pub grants: Vec<AdminGrant>,
    /// Whether the caller is an active super admin (never an API key).
    pub super_admin: bool,
    /// What the caller holds, by scope.
    pub authorities: Vec<AuthorityView>,
}

fn session_only(principal: &Principal) -> Result<(), ApiError> {
    if matches!(principal.credential, Credential::Session { .. }) {
        Ok(())
    } else {
        // 401, as for every session-only operation: the document declares `SessionAuth` alone
        // here, so a request without a session lacks the credential the operation requires.
        Err(ApiError::new(
            ErrorCode::AuthenticationRequired,
            "this operation needs a user session (Authorization: Bearer ply_at_…): API keys and \
             the bootstrap key never create or revoke admin grants",
        )
        .with_detail("permission", "admin_grants:manage")
        .with_detail("credential_required", "session"))
    }
}

/// The grant routes and `admin/me`.
pub struct GrantsApi {
    pub(crate) admin: Arc<Admin>,
}

impl GrantsApi {
    /// Whether `principal` may use `permission` on `grant`.
    async fn reaches(
        &self,
        principal: &Principal,
        permission: &str,
        grant: &AdminGrant,
    ) -> Result<bool, ApiError> {
        if grant.level.instance_level() && permission != "admin_grants:read" {
            return Ok(principal.is_super_admin());
        }
        let scope = self
            .admin
            .grant_scope(grant)
            .await
            .map_err(api_error)?
            .unwrap_or(Scope::Instance);
        Ok(principal.holds(&key(permission), &scope))
    }
}

#[OpenApi(tag = "crate::AdminTag::Admin")]
impl GrantsApi {
    /// The caller: its credential type, user, active grants or key permissions.
    #[oai(path = "/api/v1/admin/me", method = "get", operation_id = "getAdminMe")]
    async fn me(&self, req: &poem::Request) -> Result<Json<Envelope<AdminMe>>, ApiError> {
        let principal = self.admin.principal_of(req).await?;
        let (credential_type, user_id, api_key_id) = match &principal.credential {
            Credential::Session { user_id, .. } => ("session", Some(user_id.clone()), None),
            Credential::ApiKey { id } => ("api_key", None, Some(id.clone())),
            Credential::BootstrapKey => ("bootstrap_key", None, None),
        };
        let grants = match &user_id {
            Some(user) => store::grants_of(&self.admin.db, user)
                .await?
                .into_iter()
                .filter(|g| g.active)
                .collect(),
            None => Vec::new(),
        };
        let authorities = principal
            .authorities
            .iter()
            .map(|a| {
                let (space_id, group_id) = match &a.scope {
                    Scope::Instance => (None, None),
                    Scope::Space(s) => (Some(s.clone()), None),
                    Scope::Group {
                        space_id, group_id, ..
                    } => (Some(space_id.clone()), Some(group_id.clone())),
                };
                AuthorityView {
                    level: a.scope.level().to_owned(),
                    space_id,
                    group_id,
                    permission_keys: a.permissions.iter().map(ToString::to_string).collect(),
                    super_admin: a.super_admin,
                }
            })
            .collect();
        Ok(Json(Envelope::new(AdminMe {
            credential_type: credential_type.to_owned(),
            super_admin: principal.is_super_admin(),
            user_id,
            api_key_id,
            grants,
            authorities,
        })))
    }

    /// Lists the admin grants in the caller's scope, by ID.
    #[oai(
        path = "/api/v1/admin/grants",
        method = "get",
        operation_id = "listAdminGrants"
    )]
    async fn list(
        &self,
        req: &poem::Request,
        /// Grants per page, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: QueryParam<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: QueryParam<Option<String>>,
    ) -> Result<Json<ListEnvelope<AdminGrant>>, ApiError> {
        let page = KeyPage::parse(limit.0, cursor.0.as_deref())?;
        let principal = self.admin.principal_of(req).await?;
        let mut rows = Vec::new();
        for grant in store::grants_after(&self.admin.db, page.after.as_deref()).await? {
            if rows.len() as u64 >= page.request.fetch() {
                break;
            }
            if self
                .reaches(&principal, "admin_grants:read", &grant)
                .await?
            {
                rows.push(grant);
            }
        }
        let (rows, pagination) = page.finish(rows, |g| g.id.clone());
        Ok(Json(ListEnvelope::new(rows, pagination)))
    }

    /// Grants admin rights. User sessions only; instance levels need a super admin; a scoped
    /// admin grants only within its own space or group subtree.
    #[oai(
        path = "/api/v1/admin/grants",
        method = "post",
        operation_id = "createAdminGrant"
    )]
    async fn create(
        &self,
        req: &poem::Request,
        _session: plystra_contracts::security::SessionOnly,
        body: JsonBody<Leveled<AdminGrantCreateRequest>>,
    ) -> Result<GrantCreated, ApiError> {
        let body = body.0.0;
        let principal = self.admin.principal_of(req).await?;
        session_only(&principal)?;
        let user_id = plystra_contracts::input::entity_id("user_", Some(&body.user_id))
            .map_err(|_| ApiError::invalid_field("user_id", "is not a user ID"))?;
        let permission_key = match &body.permission_key {
            Some(k) => Some(
                PermissionKey::parse(k)
                    .map_err(|e| ApiError::invalid_field("permission_key", e.to_string()))?
                    .to_string(),
            ),
            None => None,
        };
        future("expires_at", body.expires_at)?;
        let level_word = match body.level {
            GrantLevel::InstanceSuperAdmin | GrantLevel::InstanceAdmin => "instance",
            GrantLevel::SpaceAdmin => "space",
            GrantLevel::GroupAdmin => "group",
        };
        let scope = self
            .admin
            .requested_scope(
                level_word,
                body.space_id.as_deref(),
                body.group_id.as_deref(),
            )
            .await?;
        if body.level.instance_level() {
            if !principal.is_super_admin() {
                return Err(denied(
                    "admin_grants:manage",
                    "as a super admin: only super admins manage instance-level grants",
                )
                .with_detail("level", body.level.as_str()));
            }
        } else if !principal.holds(&key("admin_grants:manage"), &scope) {
            return Err(denied("admin_grants:manage", "in the grant's scope"));
        }
        let (space_id, group_id) = match &scope {
            Scope::Instance => (None, None),
            Scope::Space(s) => (Some(s.clone()), None),
            Scope::Group {
                space_id, group_id, ..
            } => (Some(space_id.clone()), Some(group_id.clone())),
        };
        let mut tx = self.admin.db.begin().await?;
        match store::user_status_in(&mut tx, &user_id).await?.as_deref() {
            None => {
                return Err(ApiError::not_found(
                    ErrorCode::UserNotFound,
                    "user",
                    &user_id,
                ));
            }
            Some("active") => {}
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "the user is disabled; admin grants go to active users",
                )
                .with_detail("field", "user_id"));
            }
        }
        let id = plystra_contracts::ids::generate("ag_");
        let grant = store::insert_grant(
            &mut tx,
            NewGrant {
                id: id.clone(),
                user_id,
                level: body.level,
                space_id: space_id.clone(),
                group_id,
                permission_key,
                expires_at: body.expires_at,
                granted_by_user_id: principal.user_id().map(str::to_owned),
                metadata: plystra_contracts::storage::metadata_in(&body.metadata),
            },
        )
        .await?;
        let record = plystra_contracts::entity::change_record(
            Caller::of(req),
            "admin_grants.create",
            "admin_grant",
            &id,
            space_id.as_deref(),
            grant_snapshot(&grant),
        );
        let fact = crate::credentials::grant_fact(&grant);
        commit_audited(&self.admin, tx, record, fact).await?;
        Ok(GrantCreated::Created(Json(Envelope::new(grant))))
    }

    /// Reads one admin grant.
    #[oai(
        path = "/api/v1/admin/grants/:admin_grant_id",
        method = "get",
        operation_id = "getAdminGrant"
    )]
    async fn get(
        &self,
        req: &poem::Request,
        /// The grant's ID.
        admin_grant_id: Path<String>,
    ) -> Result<Json<Envelope<AdminGrant>>, ApiError> {
        let principal = self.admin.principal_of(req).await?;
        let grant = store::grant(&self.admin.db, &admin_grant_id.0)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(
                    ErrorCode::AdminGrantNotFound,
                    "admin grant",
                    &admin_grant_id.0,
                )
            })?;
        if !self
            .reaches(&principal, "admin_grants:read", &grant)
            .await?
        {
            return Err(denied("admin_grants:read", "in this grant's scope"));
        }
        Ok(Json(Envelope::new(grant)))
    }

    /// Revokes an admin grant. User sessions only. 409 `LAST_SUPER_ADMIN` when it is the last
    /// active super admin's; 409 `CONFLICT` when already revoked.
    #[oai(
        path = "/api/v1/admin/grants/:admin_grant_id/revoke",
        method = "post",
        operation_id = "revokeAdminGrant"
    )]
    async fn revoke(
        &self,
        req: &poem::Request,
        _session: plystra_contracts::security::SessionOnly,
        /// The grant's ID.
        admin_grant_id: Path<String>,
        body: JsonBody<RevokeRequest>,
    ) -> Result<Json<Envelope<AdminGrant>>, ApiError> {
        let why = body.0.revoked_reason()?;
        let principal = self.admin.principal_of(req).await?;
        session_only(&principal)?;
        let id = admin_grant_id.0;
        let not_found = || ApiError::not_found(ErrorCode::AdminGrantNotFound, "admin grant", &id);
        let grant = store::grant(&self.admin.db, &id)
            .await?
            .ok_or_else(not_found)?;
        if !self
            .reaches(&principal, "admin_grants:manage", &grant)
            .await?
        {
            return Err(denied("admin_grants:manage", "in this grant's scope")
                .with_detail("level", grant.level.as_str()));
        }
        let mut tx = self.admin.db.begin().await?;
        // Read the super admins first: on SQLite the transaction holds the write lock from its
        // start, and on PostgreSQL the count is rechecked below under the rows we change.
        let supers = store::active_super_admins_in(&mut tx).await?;
        let current = store::grant(&mut tx, &id).await?.ok_or_else(not_found)?;
        if current.status == AdminStatus::Revoked {
            return Err(
                ApiError::new(ErrorCode::Conflict, "the admin grant is already revoked")
                    .with_detail("status", "revoked"),
            );
        }
        if current.level == GrantLevel::InstanceSuperAdmin
            && current.active
            && supers.iter().all(|g| g.id == current.id)
        {
            return Err(ApiError::new(
                ErrorCode::LastSuperAdmin,
                "this is the last active super admin; grant another before revoking it",
            )
            .with_detail("admin_grant_id", current.id.as_str()));
        }
        store::revoke_grant(&mut tx, &id, why.as_deref()).await?;
        let after = store::grant(&mut tx, &id).await?.ok_or_else(not_found)?;
        let record = plystra_contracts::entity::change_record(
            Caller::of(req),
            "admin_grants.revoke",
            "admin_grant",
            &id,
            after.space_id.as_deref(),
            grant_snapshot(&after),
        );
        let fact = crate::credentials::grant_fact(&after);
        commit_audited(&self.admin, tx, record, fact).await?;
        Ok(Json(Envelope::new(after)))
    }
}

/// A grant as an audit snapshot.
pub fn grant_snapshot(grant: &AdminGrant) -> serde_json::Value {
    serde_json::json!({
        "id": grant.id,
        "user_id": grant.user_id,
        "level": grant.level.as_str(),
        "space_id": grant.space_id,
        "group_id": grant.group_id,
        "permission_key": grant.permission_key,
        "status": grant.status.as_str(),
        "revoked_reason": grant.revoked_reason,
    })
}
