//! The first super admin, made directly on the database as `plystractl admin
//! bootstrap-super-admin` makes it (with the real audit service), for tests of what a super admin
//! and the handoff change.

use std::sync::Arc;

use plystra_contracts::services::AuditRecorder;
use plystra_contracts::storage::Database;
use plystra_system_admin::bootstrap::{self, Bootstrapped, IfExists};
use plystra_system_audit::redaction::RedactionPolicy;
use plystra_system_audit::service::{AuditService, AuditSettings, WriteMode};

/// The audit service `plystractl` would start on `db`.
pub fn audit_service(db: &Database) -> Arc<AuditService> {
    AuditService::start(
        db.clone(),
        AuditSettings {
            mode: WriteMode::Always,
            policy: RedactionPolicy::with_key(b"plystrad-test-audit-hash-key".to_vec()),
        },
    )
}

/// Makes `user_id` the first super admin; the grant's ID.
pub async fn bootstrap_super_admin(db: &Database, user_id: &str) -> String {
    let audit = audit_service(db);
    let recorder: Arc<dyn AuditRecorder> = audit.clone();
    let outcome = bootstrap::bootstrap_super_admin(db, recorder.as_ref(), user_id, IfExists::Error)
        .await
        .unwrap();
    audit.shutdown().await;
    match outcome {
        Bootstrapped::Created(grant) => grant.id,
        Bootstrapped::Existing(_) => panic!("a super admin existed"),
    }
}
