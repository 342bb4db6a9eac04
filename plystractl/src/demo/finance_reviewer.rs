//! The Finance Reviewer fixture (`../shared/contract/finance-reviewer.md`, the reference scenario
//! for authorization) as the HTTP calls that create it, with its fixed IDs. Data only: `plystractl
//! demo seed` sends it to a server, and plystrad's end-to-end tests include this file (`#[path]`)
//! and send it through the in-process app, so the two cannot drift apart.

use serde_json::{Value, json};

/// Every call that creates the fixture, in order, as (path, body); all are POSTs, and every user
/// gets `password`.
pub fn steps(password: &str) -> Vec<(String, Value)> {
    let mut steps = Vec::new();
    let mut post = |path: &str, body: Value| steps.push((path.to_owned(), body));
    for (id, email) in [
        ("user_alice", "alice@example.com"),
        ("user_bob", "bob@example.com"),
    ] {
        post(
            "/api/v1/users",
            json!({"id": id, "email": email, "password": password}),
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
