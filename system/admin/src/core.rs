//! The control plane's state and the two services the kernel consults on every protected call:
//! `ApiKeyVerifier` (managed keys, with coalesced `last_used_at`) and `AdminAuthorizer` (the
//! credential's authorities against the operation's permission and target, the bootstrap key's
//! permissions, and the handoff). Both decide from the in-memory [`Credentials`], which follow the
//! change feed: no table is read on a request, and a process that cannot confirm its facts are
//! current answers 503 instead of deciding on old ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use plystra_contracts::events::Event;
use plystra_contracts::feed::FactsFeed;
use plystra_contracts::services::{
    ActorResolver, AdminAuthorizer, AdminTarget, ApiKeyVerifier, AuditRecord, AuditRecorder,
    Credential, ResolveError,
};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::{Database, StorageError};
use plystra_contracts::{ApiError, ErrorCode};

use crate::api_key::{KeySecrets, PresentedKey};
use crate::credentials::{Credentials, State};
use crate::permission::{InvalidPermissionKey, PermissionKey};
use crate::scope::{Authority, Principal, Scope, Target};
use crate::store::{self, AdminGrant, ApiKey, GrantLevel, KeyLevel};

/// The bootstrap key's permissions when `PLYSTRA_API_KEY_PERMISSIONS` is not set (upstream's
/// default, before mapping onto our keys).
pub const DEFAULT_BOOTSTRAP_PERMISSIONS: &str = "authz:check,authz:explain,audit:read,capabilities:read,resource_registry:read,resource_registry:manage";

/// Upstream's kernel permission names that differ from ours, and what they map onto.
fn map_upstream(key: &str) -> Vec<String> {
    match key {
        "authz:explain" => vec!["authz:check".into()],
        "resource_registry:read" => vec!["registry:read".into(), "resources:read".into()],
        "resource_registry:manage" => vec!["registry:manage".into(), "resources:manage".into()],
        "resource_registry:*" => vec!["registry:*".into(), "resources:*".into()],
        other => vec![other.to_owned()],
    }
}

/// Parses `PLYSTRA_API_KEY_PERMISSIONS` (a comma list; the default when absent), mapping
/// upstream's names onto ours. An invalid key is an error: the setting is never half-applied.
pub fn bootstrap_permissions(
    setting: Option<&str>,
) -> Result<Vec<PermissionKey>, InvalidPermissionKey> {
    let mut keys = Vec::new();
    for raw in setting
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(DEFAULT_BOOTSTRAP_PERMISSIONS)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        for mapped in map_upstream(raw) {
            let key = PermissionKey::parse(&mapped)?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> ResolveError {
    ResolveError::Unavailable(e.to_string())
}

/// A `ResolveError` as the API's answer.
pub(crate) fn api_error(e: ResolveError) -> ApiError {
    match e {
        ResolveError::NotFound { entity, id } => {
            ApiError::new(ErrorCode::NotFound, format!("{entity} {id} not found"))
        }
        ResolveError::Unavailable(m) => ApiError::new(ErrorCode::DatabaseUnavailable, m),
    }
}

/// The control plane.
pub struct Admin {
    pub(crate) db: Database,
    pub(crate) secrets: Option<KeySecrets>,
    pub(crate) bootstrap: Vec<PermissionKey>,
    pub(crate) production: bool,
    pub(crate) resolver: Arc<dyn ActorResolver>,
    pub(crate) audit: Arc<dyn AuditRecorder>,
    /// Where `admin.action_authorized` goes out.
    events: Option<Arc<dyn plystra_contracts::events::EventPublisher>>,
    /// Keys, grants, users and groups in memory.
    pub(crate) credentials: Arc<Credentials>,
    /// The change feed the credentials follow; without it nothing is confirmed current.
    feed: Option<Arc<dyn FactsFeed>>,
    last_used: std::sync::Mutex<HashMap<String, OffsetDateTime>>,
    handoff_recorded: AtomicBool,
    development_warned: AtomicBool,
    handed_off: AtomicBool,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("production", &self.production)
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// The control plane over `db`. Its credentials follow `feed` (the caller registers them with
    /// [`FactsFeed::follow`]); without a feed every credential but the bootstrap key is refused
    /// with 503.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Database,
        secrets: Option<KeySecrets>,
        bootstrap: Vec<PermissionKey>,
        production: bool,
        resolver: Arc<dyn ActorResolver>,
        audit: Arc<dyn AuditRecorder>,
        events: Option<Arc<dyn plystra_contracts::events::EventPublisher>>,
        feed: Option<Arc<dyn FactsFeed>>,
    ) -> Self {
        Self {
            credentials: Arc::new(Credentials::new(db.clone(), resolver.clone())),
            feed,
            db,
            secrets,
            bootstrap,
            production,
            resolver,
            audit,
            events,
            last_used: Default::default(),
            handoff_recorded: AtomicBool::new(false),
            development_warned: AtomicBool::new(false),
            handed_off: AtomicBool::new(false),
        }
    }

    async fn group_scope(&self, group_id: &str) -> Result<Option<Scope>, ResolveError> {
        Ok(self.resolver.group(group_id).await?.map(|g| Scope::Group {
            space_id: g.space_id,
            group_id: g.id,
            path: g.path,
        }))
    }

    /// Where an API key reaches; `None` when its space or group is missing.
    pub(crate) async fn key_scope(&self, key: &ApiKey) -> Result<Option<Scope>, ResolveError> {
        match (key.level, &key.space_id, &key.group_id) {
            (KeyLevel::Instance, _, _) => Ok(Some(Scope::Instance)),
            (KeyLevel::Space, Some(space), _) => Ok(Some(Scope::Space(space.clone()))),
            (KeyLevel::Group, _, Some(group)) => self.group_scope(group).await,
            _ => Ok(None),
        }
    }

    /// Where a grant reaches; `None` when its space or group is missing.
    pub(crate) async fn grant_scope(
        &self,
        grant: &AdminGrant,
    ) -> Result<Option<Scope>, ResolveError> {
        match (grant.level, &grant.space_id, &grant.group_id) {
            (GrantLevel::InstanceSuperAdmin | GrantLevel::InstanceAdmin, _, _) => {
                Ok(Some(Scope::Instance))
            }
            (GrantLevel::SpaceAdmin, Some(space), _) => Ok(Some(Scope::Space(space.clone()))),
            (GrantLevel::GroupAdmin, _, Some(group)) => self.group_scope(group).await,
            _ => Ok(None),
        }
    }

    /// The scope named by a level and IDs in a request; 400 for an inconsistent combination,
    /// 404 for a group that does not exist.
    pub(crate) async fn requested_scope(
        &self,
        level: &str,
        space_id: Option<&str>,
        group_id: Option<&str>,
    ) -> Result<Scope, ApiError> {
        match (level, space_id, group_id) {
            ("instance", None, None) => Ok(Scope::Instance),
            ("instance", _, _) => Err(ApiError::invalid_field(
                "space_id",
                "an instance-level object takes neither space_id nor group_id",
            )),
            ("space", Some(space), None) => Ok(Scope::Space(space.to_owned())),
            ("space", _, _) => Err(ApiError::invalid_field(
                "space_id",
                "a space-level object needs space_id and no group_id",
            )),
            ("group", space, Some(group)) => {
                let scope = self
                    .group_scope(group)
                    .await
                    .map_err(api_error)?
                    .ok_or_else(|| ApiError::not_found(ErrorCode::GroupNotFound, "group", group))?;
                if let (Some(space), Scope::Group { space_id, .. }) = (space, &scope)
                    && space != space_id
                {
                    // The request contradicts the group it names: a conflict, as elsewhere.
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        "space_id: the group belongs to another space",
                    )
                    .with_detail("field", "space_id"));
                }
                Ok(scope)
            }
            ("group", _, None) => Err(ApiError::invalid_field(
                "group_id",
                "a group-level object needs group_id",
            )),
            _ => Err(ApiError::invalid_field("level", "is not a known level")),
        }
    }

    /// The change feed this control plane's writes commit through.
    pub(crate) fn feed(&self) -> Option<&Arc<dyn FactsFeed>> {
        self.feed.as_ref()
    }

    /// The credentials, when this process can confirm they are current (the feed was read
    /// within its staleness bound); `Unavailable` otherwise, which callers answer with 503.
    pub(crate) fn current(&self) -> Result<std::sync::RwLockReadGuard<'_, State>, ResolveError> {
        let Some(feed) = &self.feed else {
            return Err(ResolveError::Unavailable(
                "the control plane follows no change feed (no database)".to_owned(),
            ));
        };
        feed.current().map_err(unavailable)?;
        Ok(self.credentials.read())
    }

    /// What `credential` holds, from the credentials in memory (no table is read).
    pub async fn principal(&self, credential: &Credential) -> Result<Principal, ResolveError> {
        let mut authorities = Vec::new();
        match credential {
            Credential::BootstrapKey => authorities.push(Authority {
                scope: Scope::Instance,
                permissions: self.bootstrap.clone(),
                super_admin: false,
            }),
            Credential::ApiKey { id } => {
                let known = {
                    let state = self.current()?;
                    state.key(id).map(|key| {
                        (key.usable(OffsetDateTime::now_utc()))
                            .then(|| state.key_scope(key).map(|s| (s, key.permissions.clone())))
                            .flatten()
                    })
                };
                let held = match known {
                    Some(held) => held,
                    None => self.key_from_tables(id).await?,
                };
                if let Some((scope, permissions)) = held {
                    authorities.push(Authority {
                        scope,
                        permissions,
                        // An API key is never a super admin, even with `*`.
                        super_admin: false,
                    });
                }
            }
            Credential::Session { user_id, .. } => {
                let state = self.current()?;
                for grant in state.grants_of(user_id, OffsetDateTime::now_utc()) {
                    let Some(scope) = state.grant_scope(grant) else {
                        continue;
                    };
                    let permissions = match &grant.permission_key {
                        Some(key) => match PermissionKey::parse(key) {
                            Ok(key) => vec![key],
                            Err(_) => continue,
                        },
                        None => vec![PermissionKey::All],
                    };
                    authorities.push(Authority {
                        scope,
                        permissions,
                        super_admin: grant.level == Some(GrantLevel::InstanceSuperAdmin),
                    });
                }
            }
        }
        Ok(Principal {
            credential: credential.clone(),
            authorities,
        })
    }

    /// What a key this process does not know yet holds, read from the tables: its scope and
    /// permissions when it is active. Only for keys created elsewhere whose fact has not been
    /// applied here (and IDs that name no key); a known key, revoked or not, is never read.
    async fn key_from_tables(
        &self,
        id: &str,
    ) -> Result<Option<(Scope, Vec<PermissionKey>)>, ResolveError> {
        let Some(row) = store::key(&self.db, id).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if !row.key.active {
            return Ok(None);
        }
        Ok(self.key_scope(&row.key).await?.map(|scope| {
            let permissions = row
                .key
                .permission_keys
                .iter()
                .filter_map(|k| PermissionKey::parse(k).ok())
                .collect();
            (scope, permissions)
        }))
    }

    /// The principal of a request's credential; 401 without one.
    pub(crate) async fn principal_of(&self, req: &poem::Request) -> Result<Principal, ApiError> {
        let credential = Credential::of(req).ok_or_else(|| {
            ApiError::new(
                ErrorCode::AuthenticationRequired,
                "this operation needs a credential",
            )
        })?;
        self.principal(credential).await.map_err(api_error)
    }

    /// Where a management call lands. Routes of this capability under `/api/v1/api-keys` and
    /// `/api/v1/admin/` scope their objects themselves. Elsewhere a `group_id` path parameter is
    /// resolved to its group (and must agree with a `space_id`), a `space_id` names the space,
    /// and any other path parameter leaves the target unresolved: only instance-level authorities
    /// reach it. A path without parameters targets the instance.
    pub(crate) fn target(&self, target: &AdminTarget) -> Result<Target, ResolveError> {
        if target.route.starts_with("/api/v1/api-keys")
            || target.route.starts_with("/api/v1/admin/")
        {
            return Ok(Target::HandlerScoped);
        }
        if let Some(group) = target.param("group_id") {
            return Ok(match self.current()?.group_scope(group) {
                Some(scope @ Scope::Group { .. }) => match (&scope, target.param("space_id")) {
                    (Scope::Group { space_id, .. }, Some(space)) if space != space_id => {
                        Target::Unresolved
                    }
                    _ => Target::Scope(scope),
                },
                _ => Target::Unresolved,
            });
        }
        if let Some(space) = target.param("space_id") {
            return Ok(Target::Scope(Scope::Space(space.to_owned())));
        }
        if target.params.is_empty() {
            Ok(Target::Scope(Scope::Instance))
        } else {
            Ok(Target::Unresolved)
        }
    }

    /// Notes that key `id` was used now; written by [`Admin::flush_last_used`].
    fn note_use(&self, id: &str) {
        let mut used = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
        used.insert(id.to_owned(), plystra_contracts::storage::now());
    }

    /// Writes the coalesced last-use times: one UPDATE per key used since the last flush.
    pub async fn flush_last_used(&self) -> Result<(), StorageError> {
        let used: Vec<(String, OffsetDateTime)> = {
            let mut map = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
            map.drain().collect()
        };
        if used.is_empty() {
            return Ok(());
        }
        if let Err(e) = store::touch_keys(&self.db, &used).await {
            // Keep them for the next flush.
            let mut map = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at) in used {
                map.entry(id).or_insert(at);
            }
            return Err(e);
        }
        Ok(())
    }
}

/// The `admin.action_authorized` event for a management call that passed its permission check:
/// who (the credential's kind and its key or user ID, never a secret), which permission, which
/// route.
fn action_authorized(credential: &Credential, permission: &str, route: &str) -> Event {
    let (kind, api_key_id, user_id) = match credential {
        Credential::BootstrapKey => ("bootstrap_key", None, None),
        Credential::ApiKey { id } => ("api_key", Some(id.as_str()), None),
        Credential::Session { user_id, .. } => ("session", None, Some(user_id.as_str())),
    };
    Event {
        name: "admin.action_authorized".to_owned(),
        source: crate::ID.to_owned(),
        payload: serde_json::json!({
            "credential": kind,
            "api_key_id": api_key_id,
            "user_id": user_id,
            "permission": permission,
            "route": route,
        }),
    }
}

#[async_trait]
impl ApiKeyVerifier for Admin {
    async fn verify(&self, presented: &str) -> Result<Option<Credential>, ResolveError> {
        let (Some(secrets), Some(key)) = (&self.secrets, PresentedKey::parse(presented)) else {
            return Ok(None);
        };
        let known = {
            let state = self.current()?;
            state.key(&key.id).map(|entry| {
                // Verify the secret first, in constant time, whatever the key's state.
                secrets.verify(&key.secret, &entry.hmac) && entry.usable(OffsetDateTime::now_utc())
            })
        };
        let usable = match known {
            Some(usable) => usable,
            // Not known here yet: created through another process (`plystractl admin
            // create-api-key`, another replica) and not applied. The table is the truth; nothing
            // is cached (the fact arrives through the feed).
            None => match store::key(&self.db, &key.id).await.map_err(unavailable)? {
                Some(row) => secrets.verify(&key.secret, &row.hmac) && row.key.active,
                None => false,
            },
        };
        if !usable {
            return Ok(None);
        }
        self.note_use(&key.id);
        Ok(Some(Credential::ApiKey { id: key.id }))
    }
}

#[async_trait]
impl AdminAuthorizer for Admin {
    async fn authorize(
        &self,
        credential: &Credential,
        permission: &str,
    ) -> Result<bool, ResolveError> {
        self.authorize_target(
            credential,
            permission,
            &AdminTarget {
                route: String::new(),
                params: Default::default(),
            },
        )
        .await
    }

    async fn authorize_target(
        &self,
        credential: &Credential,
        permission: &str,
        target: &AdminTarget,
    ) -> Result<bool, ResolveError> {
        let Ok(wanted) = PermissionKey::parse(permission) else {
            return Ok(false);
        };
        let principal = self.principal(credential).await?;
        if principal.authorities.is_empty() {
            return Ok(false);
        }
        let route = &target.route;
        let target = self.target(target)?;
        let allowed = principal.allows(&wanted, &target);
        // Built only when someone listens: this runs on every management call and check.
        if allowed
            && let Some(events) = &self.events
            && events.has_listeners("admin.action_authorized")
        {
            events.publish(action_authorized(credential, permission, route));
        }
        Ok(allowed)
    }

    /// The handoff is one-way for the life of the process: once a super admin has been seen,
    /// it is not looked for again (production keeps refusing even if every super admin is later
    /// disabled; a restart re-evaluates). Before that, the credentials in memory say whether one
    /// exists; a process that cannot confirm they are current answers 503.
    async fn accepts_bootstrap_key(&self, request_id: &str) -> Result<bool, ResolveError> {
        if self.handed_off.load(Ordering::SeqCst)
            && (!self.production || self.handoff_recorded.load(Ordering::SeqCst))
        {
            return Ok(!self.production);
        }
        let supers = {
            let state = self.current()?;
            let now = OffsetDateTime::now_utc();
            if !self.handed_off.load(Ordering::SeqCst) && !state.has_super_admin(now) {
                return Ok(true);
            }
            state.super_admins(now)
        };
        if supers.is_empty() && !self.handed_off.load(Ordering::SeqCst) {
            return Ok(true);
        }
        self.handed_off.store(true, Ordering::SeqCst);
        if !self.production {
            if !self.development_warned.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    super_admins = supers.len(),
                    "a managed super admin exists, but development still accepts the bootstrap key PLYSTRA_API_KEY; production refuses it"
                );
            }
            return Ok(true);
        }
        // One request records the handoff; concurrent refusals do not wait for it.
        if !self.handoff_recorded.swap(true, Ordering::SeqCst) {
            tracing::error!(
                super_admins = supers.len(),
                "the bootstrap key PLYSTRA_API_KEY was refused: a managed super admin exists (handoff); use a session or a managed API key and unset PLYSTRA_API_KEY"
            );
            let mut record = AuditRecord::new(request_id, "admin.handoff", "admin.handoff");
            record.decision = Some("deny".into());
            record.resource_type = Some("admin_grant".into());
            record.resource_id = supers.first().cloned();
            record.trace = serde_json::json!({
                "caller": {"kind": "bootstrap_key"},
                "environment": "production",
                "refused": "bootstrap_key",
                "super_admin_grants": supers,
            });
            // The key is refused whether or not the record lands; a failed record is retried on
            // the next attempt.
            if self.audit.record(record).await.is_err() {
                self.handoff_recorded.store(false, Ordering::SeqCst);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_bootstrap_permissions_map_onto_our_keys() {
        let keys: Vec<String> = bootstrap_permissions(None)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            keys,
            [
                "authz:check",
                "audit:read",
                "capabilities:read",
                "registry:read",
                "resources:read",
                "registry:manage",
                "resources:manage"
            ]
        );
        assert!(bootstrap_permissions(Some("users:manage, *:read")).is_err());
        assert_eq!(
            bootstrap_permissions(Some("*")).unwrap(),
            [PermissionKey::All]
        );
    }
}
