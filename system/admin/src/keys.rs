//! The API key routes: list, create (the plaintext shown once), read and revoke. A caller sees and
//! changes only keys in a scope it holds, and creates keys only with permissions it holds in a
//! scope it holds.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::pagination::KeyPage;
use plystra_contracts::services::Caller;
use plystra_contracts::storage::Metadata;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::core::{Admin, api_error};
use crate::permission::PermissionKey;
use crate::scope::{Principal, Scope};
use crate::store::{self, ApiKey, KeyLevel, NewKey};
use plystra_contracts::entity::Lifecycle;

use crate::level_rules::{LevelRules, Leveled};

/// Creates an API key.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ApiKeyCreateRequest")]
pub struct ApiKeyCreateRequest {
    /// A name for people, 1-200 characters, not blank.
    #[oai(validator(max_length = 200))]
    pub name: NotBlank,
    /// `instance`, `space` or `group`.
    pub level: KeyLevel,
    /// The space of a space key (and, optionally, of a group key).
    pub space_id: Option<String>,
    /// The group of a group key.
    pub group_id: Option<String>,
    /// 1-100 permission keys (`*` or lowercase `domain:action`, where the action may be `*`),
    /// each held by the caller in the key's scope.
    #[oai(validator(
        min_items = 1,
        max_items = 100,
        pattern = r"^(\*|[a-z0-9_-]+:(\*|[a-z0-9_-]+))$"
    ))]
    pub permission_keys: Vec<String>,
    /// When the key stops working; must be in the future.
    pub expires_at: Option<OffsetDateTime>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

impl LevelRules for ApiKeyCreateRequest {
    const SCHEMA: &'static str = "ApiKeyCreateRequest";
    const INSTANCE: &'static [&'static str] = &["instance"];
    const SPACE: &'static [&'static str] = &["space"];
    const GROUP: &'static [&'static str] = &["group"];
}

/// A created key: the key's record, as `GET /api/v1/api-keys/{api_key_id}` shows it, with the
/// plaintext in `api_key` (as upstream answers). The plaintext appears here once and is never
/// stored, logged or retrievable again.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ApiKeyCreated")]
pub struct ApiKeyCreated {
    /// The key's record.
    #[oai(flatten)]
    pub key: ApiKey,
    /// `ply_ak_<id>.<secret>`, shown once: store it now.
    pub api_key: String,
}

/// Revokes a key or a grant.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RevokeRequest")]
pub struct RevokeRequest {
    /// Why, for the record (at most 500 characters); stored and shown as `revoked_reason`.
    #[oai(validator(max_length = 500))]
    pub revoked_reason: Option<String>,
    /// The same as `revoked_reason`, accepted for older clients; when both are given they must
    /// agree.
    #[oai(validator(max_length = 500))]
    pub reason: Option<String>,
}

impl RevokeRequest {
    /// The reason given, under either name, trimmed and checked.
    pub(crate) fn revoked_reason(self) -> Result<Option<String>, ApiError> {
        let given = reason("revoked_reason", self.revoked_reason)?;
        let alias = reason("reason", self.reason)?;
        match (given, alias) {
            (Some(a), Some(b)) if a != b => Err(ApiError::invalid_field(
                "revoked_reason",
                "differs from reason, its alias: give one of them",
            )),
            (given, alias) => Ok(given.or(alias)),
        }
    }
}

/// 201 with the new key.
#[derive(ApiResponse)]
pub enum KeyCreated {
    /// Created; the plaintext is in the body, once.
    #[oai(status = 201)]
    Created(Json<Envelope<ApiKeyCreated>>),
}

pub(crate) fn denied(permission: &str, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AdminPermissionRequired,
        format!("this operation needs the admin permission {permission} {why}"),
    )
    .with_detail("permission", permission)
}

pub(crate) fn key(s: &str) -> PermissionKey {
    PermissionKey::parse(s).unwrap_or(PermissionKey::All)
}

/// A revocation reason in `field`: trimmed, at most 500 characters, no control characters.
fn reason(field: &str, reason: Option<String>) -> Result<Option<String>, ApiError> {
    match reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
    {
        Some(r) if r.chars().count() > 500 => Err(ApiError::invalid_field(
            field,
            "must be at most 500 characters",
        )),
        Some(r) if r.chars().any(char::is_control) => Err(ApiError::invalid_field(
            field,
            "must not contain control characters",
        )),
        other => Ok(other),
    }
}

pub(crate) fn name(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 200 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(value.to_owned())
}

pub(crate) fn future(field: &str, at: Option<OffsetDateTime>) -> Result<(), ApiError> {
    match at {
        Some(at) if at <= OffsetDateTime::now_utc() => {
            Err(ApiError::invalid_field(field, "must be in the future"))
        }
        _ => Ok(()),
    }
}

/// The permission keys of a request, validated, deduplicated and non-empty.
pub(crate) fn permission_keys(raw: &[String]) -> Result<Vec<PermissionKey>, ApiError> {
    if raw.is_empty() || raw.len() > 100 {
        return Err(ApiError::invalid_field(
            "permission_keys",
            "must list 1-100 permission keys",
        ));
    }
    let mut keys = Vec::new();
    for k in raw {
        let parsed = PermissionKey::parse(k)
            .map_err(|e| ApiError::invalid_field("permission_keys", e.to_string()))?;
        if !keys.contains(&parsed) {
            keys.push(parsed);
        }
    }
    Ok(keys)
}

/// Creates a key for `principal` after the anti-escalation checks, audited as `caller`'s change.
pub(crate) async fn create_checked(
    admin: &Admin,
    principal: &Principal,
    caller: Caller<'_>,
    body: ApiKeyCreateRequest,
) -> Result<ApiKeyCreated, ApiError> {
    let name = name(&body.name)?;
    let keys = permission_keys(&body.permission_keys)?;
    future("expires_at", body.expires_at)?;
    let scope = admin
        .requested_scope(
            body.level.as_str(),
            body.space_id.as_deref(),
            body.group_id.as_deref(),
        )
        .await?;
    let create = key("api_keys:create");
    // One authority must reach the key's scope with api_keys:create and every requested key.
    let allowed = principal
        .authorities
        .iter()
        .any(|a| a.holds(&create, &scope) && keys.iter().all(|k| a.holds(k, &scope)));
    if !allowed {
        let missing = keys
            .iter()
            .find(|k| !principal.holds(k, &scope))
            .map_or_else(|| "api_keys:create".to_owned(), ToString::to_string);
        return Err(denied(
            &missing,
            &format!("in the {} scope of the new key: a caller creates keys only with permissions it holds, in a scope it holds", scope.level()),
        )
        .with_detail("scope", scope.level()));
    }
    let (space_id, group_id) = match &scope {
        Scope::Instance => (None, None),
        Scope::Space(s) => (Some(s.clone()), None),
        Scope::Group {
            space_id, group_id, ..
        } => (Some(space_id.clone()), Some(group_id.clone())),
    };
    let secrets = admin.secrets.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotReady,
            "managed API keys are off: PLYSTRA_API_KEY_SECRET is not set",
        )
    })?;
    let id = plystra_contracts::ids::generate("ak_");
    let minted = secrets.mint(&id);
    let mut tx = admin.db.begin().await?;
    let api_key = store::insert_key(
        &mut tx,
        NewKey {
            id: id.clone(),
            name,
            hmac: minted.hash,
            level: body.level,
            space_id: space_id.clone(),
            group_id,
            permission_keys: keys.iter().map(ToString::to_string).collect(),
            expires_at: body.expires_at,
            created_by_user_id: principal.user_id().map(str::to_owned),
            metadata: plystra_contracts::storage::metadata_in(&body.metadata),
        },
    )
    .await?;
    let record = plystra_contracts::entity::change_record(
        caller,
        "api_keys.create",
        "api_key",
        &id,
        space_id.as_deref(),
        key_snapshot(&api_key),
    );
    let fact = stored_key_fact(&mut tx, &id).await?;
    commit_audited(admin, tx, record, fact).await?;
    Ok(ApiKeyCreated {
        key: api_key,
        api_key: minted.plaintext,
    })
}

/// The fact of key `id` as `tx` sees it.
async fn stored_key_fact(
    tx: &mut plystra_contracts::storage::Transaction,
    id: &str,
) -> Result<plystra_contracts::facts::Fact, ApiError> {
    let row = store::key(&mut *tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found(ErrorCode::ApiKeyNotFound, "API key", id))?;
    Ok(crate::credentials::key_fact(&row))
}

pub(crate) fn key_snapshot(key: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "id": key.id,
        "name": key.name,
        "level": key.level.as_str(),
        "space_id": key.space_id,
        "group_id": key.group_id,
        "permission_keys": key.permission_keys,
        "status": key.status.as_str(),
        "expires_at": key.expires_at.map(|t| t.unix_timestamp()),
        "revoked_reason": key.revoked_reason,
    })
}

/// Records `record` inside `tx` and commits both, with the changed key's or grant's `fact`,
/// through the one commit path (`plystra_contracts::feed::commit_audited`): every process's
/// credentials follow the fact, this one's before the answer leaves. An audit failure is a 503
/// and rolls back.
pub(crate) async fn commit_audited(
    admin: &Admin,
    tx: plystra_contracts::storage::Transaction,
    record: plystra_contracts::services::AuditRecord,
    fact: plystra_contracts::facts::Fact,
) -> Result<(), ApiError> {
    plystra_contracts::feed::commit_audited(
        tx,
        admin.audit.as_ref(),
        vec![record],
        vec![fact],
        admin.feed(),
        || {},
    )
    .await
    .map(drop)
}

/// The API key routes.
pub struct KeysApi {
    pub(crate) admin: Arc<Admin>,
}

impl KeysApi {
    /// Whether `principal` may use `permission` on `key`.
    async fn reaches(
        &self,
        principal: &Principal,
        permission: &str,
        key: &ApiKey,
    ) -> Result<bool, ApiError> {
        Ok(match self.admin.key_scope(key).await.map_err(api_error)? {
            Some(scope) => principal.holds(&self::key(permission), &scope),
            // A key whose group is gone is reachable only from the instance.
            None => principal.holds(&self::key(permission), &Scope::Instance),
        })
    }

    async fn visible(
        &self,
        req: &poem::Request,
        id: &str,
        permission: &str,
    ) -> Result<(Principal, ApiKey), ApiError> {
        let principal = self.admin.principal_of(req).await?;
        let row = store::key(&self.admin.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::ApiKeyNotFound, "API key", id))?;
        if !self.reaches(&principal, permission, &row.key).await? {
            return Err(denied(permission, "in this key's scope"));
        }
        Ok((principal, row.key))
    }
}

#[OpenApi(tag = "crate::AdminTag::Admin")]
impl KeysApi {
    /// Lists the API keys in the caller's scope, by ID. Secrets are never shown.
    #[oai(
        path = "/api/v1/api-keys",
        method = "get",
        operation_id = "listApiKeys"
    )]
    async fn list(
        &self,
        req: &poem::Request,
        /// Keys per page, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: QueryParam<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: QueryParam<Option<String>>,
    ) -> Result<Json<ListEnvelope<ApiKey>>, ApiError> {
        let page = KeyPage::parse(limit.0, cursor.0.as_deref())?;
        let principal = self.admin.principal_of(req).await?;
        let mut rows = Vec::new();
        for row in store::keys_after(&self.admin.db, page.after.as_deref()).await? {
            if rows.len() as u64 >= page.request.fetch() {
                break;
            }
            if self.reaches(&principal, "api_keys:read", &row.key).await? {
                rows.push(row.key);
            }
        }
        let (rows, pagination) = page.finish(rows, |k| k.id.clone());
        Ok(Json(ListEnvelope::new(rows, pagination)))
    }

    /// Creates an API key with permissions the caller holds, in a scope it holds. The plaintext
    /// key is in this answer only.
    #[oai(
        path = "/api/v1/api-keys",
        method = "post",
        operation_id = "createApiKey"
    )]
    async fn create(
        &self,
        req: &poem::Request,
        body: JsonBody<Leveled<ApiKeyCreateRequest>>,
    ) -> Result<KeyCreated, ApiError> {
        let principal = self.admin.principal_of(req).await?;
        let created = create_checked(&self.admin, &principal, Caller::of(req), body.0.0).await?;
        Ok(KeyCreated::Created(Json(Envelope::new(created))))
    }

    /// Reads one API key.
    #[oai(
        path = "/api/v1/api-keys/:api_key_id",
        method = "get",
        operation_id = "getApiKey"
    )]
    async fn get(
        &self,
        req: &poem::Request,
        /// The key's ID.
        api_key_id: Path<String>,
    ) -> Result<Json<Envelope<ApiKey>>, ApiError> {
        let (_, key) = self.visible(req, &api_key_id.0, "api_keys:read").await?;
        Ok(Json(Envelope::new(key)))
    }

    /// Revokes an API key; it stops authenticating at once. 409 when already revoked.
    #[oai(
        path = "/api/v1/api-keys/:api_key_id/revoke",
        method = "post",
        operation_id = "revokeApiKey"
    )]
    async fn revoke(
        &self,
        req: &poem::Request,
        /// The key's ID.
        api_key_id: Path<String>,
        body: JsonBody<RevokeRequest>,
    ) -> Result<Json<Envelope<ApiKey>>, ApiError> {
        let why = body.0.revoked_reason()?;
        let (principal, key) = self.visible(req, &api_key_id.0, "api_keys:revoke").await?;
        let mut tx = self.admin.db.begin().await?;
        let current = store::key(&mut tx, &key.id)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::ApiKeyNotFound, "API key", &key.id))?;
        if current.key.status == store::AdminStatus::Revoked {
            return Err(
                ApiError::new(ErrorCode::Conflict, "the API key is already revoked")
                    .with_detail("status", "revoked"),
            );
        }
        store::revoke_key(&mut tx, &key.id, principal.user_id(), why.as_deref()).await?;
        let row = store::key(&mut tx, &key.id)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::ApiKeyNotFound, "API key", &key.id))?;
        let fact = crate::credentials::key_fact(&row);
        let after = row.key;
        let record = plystra_contracts::entity::change_record(
            Caller::of(req),
            "api_keys.revoke",
            "api_key",
            &key.id,
            after.space_id.as_deref(),
            key_snapshot(&after),
        );
        commit_audited(&self.admin, tx, record, fact).await?;
        Ok(Json(Envelope::new(after)))
    }
}
