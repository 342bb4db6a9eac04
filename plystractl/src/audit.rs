//! `plystractl audit verify`: walks the audit log's hash chain and prints the first broken link.

use plystra_system_audit::store;

use crate::Outcome;
use crate::cli::open;

/// Walks the chain at `url`.
pub async fn verify(url: &str, json: bool) -> anyhow::Result<Outcome> {
    let db = open(url).await?;
    let verification = store::verify(&db).await?;
    match &verification.first_broken {
        None => {
            if json {
                out!(
                    "{}",
                    serde_json::json!({"verified": true, "records": verification.records})
                );
            } else {
                out!("audit chain verified ({} records)", verification.records);
            }
            Ok(Outcome::Ok)
        }
        Some((seq, id, reason)) => {
            if json {
                out!(
                    "{}",
                    serde_json::json!({"verified": false, "records": verification.records,
                        "first_broken": {"seq": seq, "audit_log_id": id, "reason": reason}})
                );
            } else {
                let at = if id.is_empty() {
                    format!("seq {seq}")
                } else {
                    format!("seq {seq} ({id})")
                };
                out!("audit chain broken at {at}: {reason}");
            }
            Ok(Outcome::Failed)
        }
    }
}
