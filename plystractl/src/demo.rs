//! `plystractl demo seed`: loads the Finance Reviewer fixture (`../shared/contract`'s reference
//! scenario) into a running server through its HTTP API, as any client would. Safe to rerun:
//! what already exists (409) is left as it is.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::Outcome;

/// The password every demo user gets (they can log in with it).
pub const DEMO_PASSWORD: &str = "correct horse battery";

/// Every call the seed makes, in order: (path, body). All are POSTs.
fn steps() -> Vec<(String, Value)> {
    let mut steps = Vec::new();
    let mut post = |path: &str, body: Value| steps.push((path.to_owned(), body));
    for (id, email) in [
        ("user_alice", "alice@example.com"),
        ("user_bob", "bob@example.com"),
    ] {
        post(
            "/api/v1/users",
            json!({"id": id, "email": email, "password": DEMO_PASSWORD}),
        );
    }
    post(
        "/api/v1/spaces",
        json!({"id": "space_acme", "name": "Acme"}),
    );
    for (id, path) in [
        ("group_finance", "finance"),
        ("group_finance_apac", "finance.apac"),
        ("group_finance_emea", "finance.emea"),
        ("group_legal", "legal"),
        ("group_legal_emea", "legal.emea"),
    ] {
        post(
            "/api/v1/spaces/space_acme/groups",
            json!({"id": id, "path": path}),
        );
    }
    for (id, name) in [
        ("member_finance_reviewer", "Finance reviewer"),
        ("member_invoice_creator", "Invoice creator"),
    ] {
        post(
            "/api/v1/spaces/space_acme/members",
            json!({"id": id, "display_name": name}),
        );
    }
    for (id, user, relation, expires) in [
        ("um_alice_finance_reviewer", "user_alice", "delegate", None),
        ("um_bob_finance_reviewer", "user_bob", "login", None),
        (
            "um_alice_finance_reviewer_revoked",
            "user_alice",
            "delegate",
            None,
        ),
        (
            "um_alice_finance_reviewer_expired",
            "user_alice",
            "delegate",
            Some("2020-01-01T00:00:00Z"),
        ),
    ] {
        let mut body = json!({"id": id, "user_id": user, "member_id": "member_finance_reviewer", "relation_type": relation});
        if let Some(at) = expires {
            body["expires_at"] = json!(at);
        }
        post("/api/v1/spaces/space_acme/user-members", body);
    }
    post(
        "/api/v1/spaces/space_acme/user-members/um_alice_finance_reviewer_revoked/revoke",
        json!({"revoked_reason": "rotated"}),
    );
    post(
        "/api/v1/resource-types",
        json!({"key": "invoice", "display_name": "Invoice"}),
    );
    for (key, risk) in [
        ("read", "normal"),
        ("create", "normal"),
        ("approve", "high"),
        ("reject", "high"),
        ("delete", "critical"),
    ] {
        post(
            "/api/v1/resource-types/invoice/actions",
            json!({"key": key, "risk_level": risk}),
        );
    }
    post(
        "/api/v1/resource-types/invoice/mapping",
        json!({"storage_kind": "internal_table"}),
    );
    for (id, group) in [
        ("invoice_001", "group_finance_apac"),
        ("invoice_002", "group_legal_emea"),
    ] {
        post(
            "/api/v1/spaces/space_acme/resources",
            json!({"id": id, "resource_type": "invoice", "group_id": group, "owner_member_id": "member_invoice_creator"}),
        );
    }
    post(
        "/api/v1/spaces/space_acme/roles",
        json!({"id": "role_finance_approver", "key": "finance_approver", "name": "Finance approver"}),
    );
    post(
        "/api/v1/permissions",
        json!({"id": "perm_invoice_approve_group_tree", "resource": "invoice", "action": "approve", "scope": "group_tree"}),
    );
    post(
        "/api/v1/role-permissions",
        json!({"id": "rp_finance_approver_invoice_approve", "role_id": "role_finance_approver", "permission_id": "perm_invoice_approve_group_tree"}),
    );
    post(
        "/api/v1/spaces/space_acme/member-roles",
        json!({"id": "mr_finance_reviewer_approver", "member_id": "member_finance_reviewer", "role_id": "role_finance_approver", "scope_anchor_group_id": "group_finance"}),
    );
    steps
}

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
    for (path, body) in steps() {
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
