//! `plystractl demo seed`: loads the Finance Reviewer fixture (`../shared/contract`'s reference
//! scenario) into a running server through its HTTP API, as any client would. Safe to rerun:
//! what already exists (409) is left as it is.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::Outcome;

pub mod finance_reviewer;

/// The password every demo user gets (they can log in with it).
pub const DEMO_PASSWORD: &str = "correct horse battery";

/// Seeds the server at `base` with `key`.
pub async fn seed(base: &str, key: Option<String>, json_out: bool) -> anyhow::Result<Outcome> {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        bail!(
            "no API key: pass --api-key or set PLYSTRA_API_KEY (it needs the management permissions, for example PLYSTRA_API_KEY_PERMISSIONS='*' on a development server)"
        );
    };
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build an HTTP client")?;
    let (mut created, mut existing) = (0, 0);
    for (path, body) in finance_reviewer::steps(DEMO_PASSWORD) {
        let response = client
            .post(format!("{base}{path}"))
            .header("X-Plystra-API-Key", &key)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {base}{path}: is the server running?"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match status.as_u16() {
            200 | 201 => created += 1,
            // Already there from an earlier run (or, for the revoke, already revoked).
            409 => existing += 1,
            _ => bail!(
                "POST {path} answered {status}: {}",
                answer["error"]["message"]
                    .as_str()
                    .unwrap_or("no error message")
            ),
        }
    }
    if json_out {
        out!("{}", json!({"created": created, "already_there": existing}));
    } else {
        out!(
            "seeded the Finance Reviewer fixture into {base}: {created} created, {existing} already there"
        );
        out!(
            "users alice@example.com and bob@example.com log in with the password {DEMO_PASSWORD:?}"
        );
    }
    Ok(Outcome::Ok)
}
