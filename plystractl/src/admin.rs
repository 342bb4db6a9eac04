//! `plystractl admin`: the operator steps of the bootstrap handoff, straight against the database
//! like `migrate`. `bootstrap-super-admin` creates the first `instance_super_admin` grant;
//! `create-api-key` prints a new managed key once. Each step commits with its audit record.

use std::sync::Arc;

use plystra_contracts::entity::Lifecycle as _;
use plystra_contracts::services::{AuditRecorder, RuntimeInfo};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::time::format_description::well_known::Rfc3339;
use plystra_system_admin::bootstrap::{self, BootstrapError, Bootstrapped, IfExists, KeyRequest};
use plystra_system_audit::service::{AuditService, AuditSettings};

use crate::Outcome;
use crate::cli::{AdminCommand, IfExistsArg, open};

/// The process environment as the capabilities' settings.
struct Environment;

impl RuntimeInfo for Environment {
    fn production(&self) -> bool {
        std::env::var("PLYSTRA_ENV").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "production" | "prod"
            )
        })
    }

    fn setting(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

fn failed(e: &BootstrapError) -> Outcome {
    match e {
        BootstrapError::Invalid(_) => Outcome::Usage,
        _ => Outcome::Failed,
    }
}

/// Runs an `admin` sub-command against `url`.
pub async fn run(command: AdminCommand, url: &str, json: bool) -> anyhow::Result<Outcome> {
    let db = open(url).await?;
    let settings = AuditSettings::from_runtime(&Environment).map_err(anyhow::Error::msg)?;
    let service = AuditService::start(db.clone(), settings);
    let audit: Arc<dyn AuditRecorder> = service.clone();
    let outcome = match command {
        AdminCommand::BootstrapSuperAdmin { user_id, if_exists } => {
            let if_exists = match if_exists {
                IfExistsArg::Ok => IfExists::Ok,
                IfExistsArg::Error => IfExists::Error,
            };
            match bootstrap::bootstrap_super_admin(&db, audit.as_ref(), &user_id, if_exists).await {
                Ok(Bootstrapped::Created(grant)) => {
                    if json {
                        out!(
                            "{}",
                            serde_json::json!({"created": true, "admin_grant_id": grant.id, "user_id": grant.user_id})
                        );
                    } else {
                        out!(
                            "created instance_super_admin grant {} for {}; in production the bootstrap key PLYSTRA_API_KEY is now refused",
                            grant.id,
                            grant.user_id
                        );
                    }
                    Outcome::Ok
                }
                Ok(Bootstrapped::Existing(grants)) => {
                    let ids: Vec<String> = grants.into_iter().map(|g| g.id).collect();
                    if json {
                        out!("{}", serde_json::json!({"created": false, "existing": ids}));
                    } else {
                        out!(
                            "an instance_super_admin grant already exists ({}); nothing changed",
                            ids.join(", ")
                        );
                    }
                    Outcome::Ok
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    failed(&e)
                }
            }
        }
        AdminCommand::CreateApiKey {
            name,
            level,
            permission,
            space_id,
            group_id,
            expires_at,
        } => {
            let Some(primary) = Environment.setting("PLYSTRA_API_KEY_SECRET") else {
                eprintln!(
                    "error: PLYSTRA_API_KEY_SECRET must be set to the server's value, or the key will not verify"
                );
                service.shutdown().await;
                return Ok(Outcome::Usage);
            };
            let secrets = plystra_system_admin::api_key::KeySecrets::new(
                &primary,
                &Environment
                    .setting("PLYSTRA_API_KEY_SECRET_PREVIOUS")
                    .unwrap_or_default(),
            );
            let expires_at = match expires_at
                .as_deref()
                .map(|t| OffsetDateTime::parse(t, &Rfc3339))
            {
                None => None,
                Some(Ok(at)) => Some(at),
                Some(Err(_)) => {
                    eprintln!("error: --expires-at must be an RFC 3339 time");
                    service.shutdown().await;
                    return Ok(Outcome::Usage);
                }
            };
            let permissions = permission
                .iter()
                .flat_map(|p| p.split(','))
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            let request = KeyRequest {
                name,
                level,
                permissions,
                space_id,
                group_id,
                expires_at,
            };
            match bootstrap::create_api_key(&db, audit.as_ref(), &secrets, request).await {
                Ok((key, plaintext)) => {
                    if json {
                        out!(
                            "{}",
                            // The shape `POST /api/v1/api-keys` answers: the record, the plaintext in `api_key`.
                            serde_json::json!({"id": key.id, "name": key.name, "key_prefix": key.key_prefix, "level": key.level.as_str(), "space_id": key.space_id, "group_id": key.group_id, "permission_keys": key.permission_keys, "status": key.status.as_str(), "api_key": plaintext})
                        );
                    } else {
                        out!("created API key {} (shown once, store it now):", key.id);
                        out!("");
                        out!("    {plaintext}");
                    }
                    Outcome::Ok
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    failed(&e)
                }
            }
        }
    };
    service.shutdown().await;
    Ok(outcome)
}
