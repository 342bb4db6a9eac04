//! The operator steps of the bootstrap handoff, run by `plystractl admin` directly against the
//! database: the first `instance_super_admin` grant, and API keys for headless setups. Each step
//! commits together with its audit record, or not at all.

use plystra_contracts::facts::Fact;
use plystra_contracts::services::{AuditRecord, AuditRecorder, AuditUnavailable};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::{Database, StorageError, Transaction};

use crate::api_key::KeySecrets;
use crate::grants::grant_snapshot;
use crate::keys::key_snapshot;
use crate::permission::PermissionKey;
use crate::store::{self, AdminGrant, ApiKey, GrantLevel, KeyLevel, NewGrant, NewKey};

/// Why a bootstrap step did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// No user has the ID.
    #[error("no user has the ID {0}")]
    UserNotFound(String),
    /// The user is disabled.
    #[error("user {0} is disabled; the super admin must be an active user")]
    UserInactive(String),
    /// An active super admin exists and `--if-exists error` was asked for.
    #[error("an active instance_super_admin grant already exists ({0}); nothing was changed")]
    SuperAdminExists(String),
    /// An argument is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The database refused or is unreachable.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The audit record could not be made, so nothing was changed.
    #[error(transparent)]
    Audit(#[from] AuditUnavailable),
}

/// What to do when a super admin already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Succeed without change.
    Ok,
    /// Fail.
    Error,
}

/// What `bootstrap_super_admin` did.
#[derive(Debug, Clone)]
pub enum Bootstrapped {
    /// A new grant.
    Created(AdminGrant),
    /// Super admins existed already (with `IfExists::Ok`); their grants.
    Existing(Vec<AdminGrant>),
}

fn operator_record(
    action: &str,
    resource_type: &str,
    id: &str,
    trace: serde_json::Value,
) -> AuditRecord {
    let mut record = plystra_contracts::entity::change_record(
        plystra_contracts::services::Caller::internal(),
        action,
        resource_type,
        id,
        None,
        serde_json::Value::Null,
    );
    record.trace = trace;
    record
}

/// Commits `tx` with `record` and, when something changed, its `facts` on the change feed, so
/// that running servers' credentials follow (the audit chain head is taken first, as on every
/// commit path).
async fn commit(
    audit: &dyn AuditRecorder,
    mut tx: Transaction,
    record: AuditRecord,
    facts: &[Fact],
) -> Result<(), BootstrapError> {
    if let Err(e) = audit.record_in(&mut tx, record).await {
        let _ = tx.rollback().await;
        return Err(e.into());
    }
    if !facts.is_empty() {
        plystra_contracts::feed::append(&mut tx, facts).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Creates the first `instance_super_admin` grant for `user_id`, or, when one exists, does
/// nothing (`IfExists::Ok`) or fails (`IfExists::Error`). Every outcome is audited as
/// `admin.bootstrap_super_admin`.
pub async fn bootstrap_super_admin(
    db: &Database,
    audit: &dyn AuditRecorder,
    user_id: &str,
    if_exists: IfExists,
) -> Result<Bootstrapped, BootstrapError> {
    let mut tx = db.begin().await?;
    match store::user_status_in(&mut tx, user_id).await?.as_deref() {
        None => return Err(BootstrapError::UserNotFound(user_id.to_owned())),
        Some("active") => {}
        Some(_) => return Err(BootstrapError::UserInactive(user_id.to_owned())),
    }
    let existing = store::active_super_admins_in(&mut tx).await?;
    if !existing.is_empty() {
        let ids: Vec<String> = existing.iter().map(|g| g.id.clone()).collect();
        let mut record = operator_record(
            "admin.bootstrap_super_admin",
            "admin_grant",
            &ids[0],
            serde_json::json!({
                "caller": {"kind": "plystractl"},
                "user_id": user_id,
                "outcome": "exists",
                "if_exists": if if_exists == IfExists::Ok { "ok" } else { "error" },
                "existing": ids,
            }),
        );
        if if_exists == IfExists::Error {
            record.decision = Some("deny".into());
        }
        commit(audit, tx, record, &[]).await?;
        return match if_exists {
            IfExists::Ok => Ok(Bootstrapped::Existing(existing)),
            IfExists::Error => Err(BootstrapError::SuperAdminExists(ids.join(", "))),
        };
    }
    let id = plystra_contracts::ids::generate("ag_");
    let grant = store::insert_grant(
        &mut tx,
        NewGrant {
            id: id.clone(),
            user_id: user_id.to_owned(),
            level: GrantLevel::InstanceSuperAdmin,
            space_id: None,
            group_id: None,
            permission_key: None,
            expires_at: None,
            granted_by_user_id: None,
            metadata: Some(serde_json::json!({"source": "plystractl admin bootstrap-super-admin"})),
        },
    )
    .await?;
    let mut record = operator_record(
        "admin.bootstrap_super_admin",
        "admin_grant",
        &id,
        serde_json::json!({
            "caller": {"kind": "plystractl"},
            "outcome": "created",
            "after": grant_snapshot(&grant),
        }),
    );
    record.actor_user_id = None;
    commit(audit, tx, record, &[crate::credentials::grant_fact(&grant)]).await?;
    Ok(Bootstrapped::Created(grant))
}

/// A key to create from the command line.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// Its name.
    pub name: String,
    /// `instance`, `space` or `group`.
    pub level: String,
    /// Its permission keys.
    pub permissions: Vec<String>,
    /// The space of a space or group key.
    pub space_id: Option<String>,
    /// The group of a group key.
    pub group_id: Option<String>,
    /// When it expires.
    pub expires_at: Option<OffsetDateTime>,
}

/// Creates an API key, hashed under `secrets`' primary secret, audited as `api_keys.create`.
/// Returns the key and its plaintext (shown once).
pub async fn create_api_key(
    db: &Database,
    audit: &dyn AuditRecorder,
    secrets: &KeySecrets,
    request: KeyRequest,
) -> Result<(ApiKey, String), BootstrapError> {
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(BootstrapError::Invalid(
            "--name must be 1-200 characters".into(),
        ));
    }
    let level = KeyLevel::parse(&request.level).ok_or_else(|| {
        BootstrapError::Invalid(format!(
            "--level {:?}: expected instance, space or group",
            request.level
        ))
    })?;
    match (level, &request.space_id, &request.group_id) {
        (KeyLevel::Instance, None, None)
        | (KeyLevel::Space, Some(_), None)
        | (KeyLevel::Group, Some(_), Some(_)) => {}
        _ => {
            return Err(BootstrapError::Invalid(
                "an instance key takes no --space-id or --group-id; a space key needs --space-id; a group key needs --space-id and --group-id".into(),
            ));
        }
    }
    if request.permissions.is_empty() {
        return Err(BootstrapError::Invalid(
            "give at least one --permission".into(),
        ));
    }
    let mut permissions: Vec<String> = Vec::new();
    for p in &request.permissions {
        let key = PermissionKey::parse(p).map_err(|e| BootstrapError::Invalid(e.to_string()))?;
        let key = key.to_string();
        if !permissions.contains(&key) {
            permissions.push(key);
        }
    }
    if request
        .expires_at
        .is_some_and(|at| at <= OffsetDateTime::now_utc())
    {
        return Err(BootstrapError::Invalid(
            "--expires-at must be in the future".into(),
        ));
    }
    let id = plystra_contracts::ids::generate("ak_");
    let minted = secrets.mint(&id);
    let mut tx = db.begin().await?;
    let key = store::insert_key(
        &mut tx,
        NewKey {
            id: id.clone(),
            name,
            hmac: minted.hash,
            level,
            space_id: request.space_id.clone(),
            group_id: request.group_id,
            permission_keys: permissions,
            expires_at: request.expires_at,
            created_by_user_id: None,
            metadata: Some(serde_json::json!({"source": "plystractl admin create-api-key"})),
        },
    )
    .await?;
    let mut record = operator_record(
        "api_keys.create",
        "api_key",
        &id,
        serde_json::json!({"caller": {"kind": "plystractl"}, "after": key_snapshot(&key)}),
    );
    record.space_id = request.space_id;
    let row = store::key(&mut tx, &id)
        .await?
        .ok_or(StorageError::NotFound)?;
    commit(audit, tx, record, &[crate::credentials::key_fact(&row)]).await?;
    Ok((key, minted.plaintext))
}
