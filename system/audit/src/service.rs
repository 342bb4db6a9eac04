//! The audit service other capabilities use through `AuditRecorder`: the write mode, the redaction
//! policy, the group-commit writer for records on their own, and the caller's transaction for
//! records that must commit with a mutation.

use std::sync::Arc;

use async_trait::async_trait;
use plystra_contracts::services::{AuditRecord, AuditRecorder, AuditUnavailable, RuntimeInfo};
use plystra_contracts::storage::{Database, Transaction};

use crate::redaction::{PiiAction, RedactionPolicy};
use crate::store;
use crate::writer::GroupCommitWriter;

/// Which records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every record (the default).
    Always,
    /// Decisions only when they deny; everything that is not a decision is always written.
    DenyOnly,
}

impl WriteMode {
    /// Parses `always` or `deny_only`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "always" => Some(Self::Always),
            "deny_only" => Some(Self::DenyOnly),
            _ => None,
        }
    }
}

/// The audit service's configuration, from `PLYSTRA_AUDIT_*` settings.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// `PLYSTRA_AUDIT_WRITE_MODE`.
    pub mode: WriteMode,
    /// The redaction policy.
    pub policy: RedactionPolicy,
}

impl AuditSettings {
    /// Reads the settings; an invalid value is an error naming the setting.
    ///
    /// - `PLYSTRA_AUDIT_WRITE_MODE`: `always` (default) or `deny_only`;
    /// - `PLYSTRA_AUDIT_PII_EMAIL`, `_PHONE`, `_USERNAME`, `_IP_ADDRESS`, `_USER_AGENT`: `keep`,
    ///   `hash` or `drop`;
    /// - `PLYSTRA_AUDIT_METADATA_ALLOWLIST`: comma-separated metadata keys to keep;
    /// - `PLYSTRA_AUDIT_HASH_KEY`: the key PII hashes use; without it, one derived from
    ///   `PLYSTRA_API_KEY_SECRET`; without that (development), a random key per process.
    pub fn from_runtime(runtime: &dyn RuntimeInfo) -> Result<Self, String> {
        let mode = match runtime.setting("PLYSTRA_AUDIT_WRITE_MODE") {
            None => WriteMode::Always,
            Some(v) => WriteMode::parse(&v).ok_or_else(|| {
                format!("PLYSTRA_AUDIT_WRITE_MODE={v:?}: expected always or deny_only")
            })?,
        };
        let key = match (
            runtime.setting("PLYSTRA_AUDIT_HASH_KEY"),
            runtime.setting("PLYSTRA_API_KEY_SECRET"),
        ) {
            (Some(key), _) => key.into_bytes(),
            (None, Some(secret)) => format!("plystra-audit-pii:{secret}").into_bytes(),
            (None, None) => {
                if runtime.production() {
                    return Err("PLYSTRA_AUDIT_HASH_KEY (or PLYSTRA_API_KEY_SECRET) must be set in production".to_owned());
                }
                tracing::warn!(
                    "no PLYSTRA_AUDIT_HASH_KEY: PII hashes use a random key and will not match across restarts"
                );
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                bytes.to_vec()
            }
        };
        let mut policy = RedactionPolicy::with_key(key);
        for field in ["email", "phone", "username", "ip_address", "user_agent"] {
            let name = format!("PLYSTRA_AUDIT_PII_{}", field.to_ascii_uppercase());
            if let Some(v) = runtime.setting(&name) {
                let action = PiiAction::parse(&v)
                    .ok_or_else(|| format!("{name}={v:?}: expected keep, hash or drop"))?;
                policy = policy.pii(field, action);
            }
        }
        if let Some(list) = runtime.setting("PLYSTRA_AUDIT_METADATA_ALLOWLIST") {
            policy = policy.metadata_allowlist(
                list.split(',')
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty()),
            );
        }
        Ok(Self { mode, policy })
    }
}

/// The audit service.
#[derive(Debug)]
pub struct AuditService {
    settings: AuditSettings,
    writer: GroupCommitWriter,
    db: Database,
}

impl AuditService {
    /// Starts the writer on `db`.
    pub fn start(db: Database, settings: AuditSettings) -> Arc<Self> {
        Self::start_with_events(db, settings, None)
    }

    /// Starts the writer on `db`; it publishes `audit.event_recorded` after each commit.
    pub fn start_with_events(
        db: Database,
        settings: AuditSettings,
        events: Option<Arc<dyn plystra_contracts::events::EventPublisher>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            writer: GroupCommitWriter::start(db.clone(), events),
            settings,
            db,
        })
    }

    /// The database the log lives in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The writer (its counters feed metrics and benchmarks).
    pub fn writer(&self) -> &GroupCommitWriter {
        &self.writer
    }

    /// Commits what is queued and stops the writer.
    pub async fn shutdown(&self) {
        self.writer.shutdown().await;
    }

    fn skipped(&self, record: &AuditRecord) -> bool {
        self.skips_allowed_decisions()
            && record.decision.as_deref() == Some("allow")
            && record.event_type == "authz.decision"
    }
}

#[async_trait]
impl AuditRecorder for AuditService {
    async fn record(&self, record: AuditRecord) -> Result<Option<String>, AuditUnavailable> {
        if self.skipped(&record) {
            return Ok(None);
        }
        let prepared = store::prepare(&self.settings.policy, record);
        self.writer.append(prepared).await.map(Some)
    }

    fn skips_allowed_decisions(&self) -> bool {
        self.settings.mode == WriteMode::DenyOnly
    }

    fn redact(&self, value: serde_json::Value) -> serde_json::Value {
        self.settings.policy.redact_owned(value).value
    }

    async fn record_in(
        &self,
        tx: &mut Transaction,
        record: AuditRecord,
    ) -> Result<String, AuditUnavailable> {
        let prepared = store::prepare(&self.settings.policy, record);
        let ids = store::append(tx, vec![prepared]).await.map_err(|e| {
            // The caller answers 503 with a fixed message; the driver's error is logged here.
            let cause = e
                .driver_error()
                .map_or_else(String::new, ToString::to_string);
            tracing::error!(error = %e, %cause, "audit record could not be appended");
            AuditUnavailable(format!("the audit store could not append: {e}"))
        })?;
        Ok(ids.into_iter().next().unwrap_or_default())
    }
}
