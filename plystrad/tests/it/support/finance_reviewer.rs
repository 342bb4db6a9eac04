//! The Finance Reviewer fixture over HTTP, through the in-process app with the bootstrap key:
//! alice and bob, spaces acme and other, the finance and legal group trees, the reviewer's
//! bindings (live, revoked, expired), the invoice type and its actions, two invoices, and the
//! approver and deleter roles with their grants; and the check requests made against it.

use serde_json::json;

use super::app::{Client, PASSWORD, create};

/// Creates the fixture.
pub async fn seed(cli: &Client) {
    for (id, email) in [
        ("user_alice", "alice@example.com"),
        ("user_bob", "bob@example.com"),
    ] {
        create(
            cli,
            "/api/v1/users",
            json!({"id": id, "email": email, "password": PASSWORD}),
        )
        .await;
    }
    for (id, name) in [("space_acme", "Acme"), ("space_other", "Other")] {
        create(cli, "/api/v1/spaces", json!({"id": id, "name": name})).await;
    }
    for (id, path) in [
        ("group_finance", "finance"),
        ("group_finance_apac", "finance.apac"),
        ("group_finance_emea", "finance.emea"),
        ("group_legal", "legal"),
        ("group_legal_emea", "legal.emea"),
    ] {
        create(
            cli,
            "/api/v1/spaces/space_acme/groups",
            json!({"id": id, "path": path}),
        )
        .await;
    }
    create(
        cli,
        "/api/v1/spaces/space_other/groups",
        json!({"id": "group_other_ops", "path": "ops"}),
    )
    .await;
    for (space, id, name) in [
        ("space_acme", "member_finance_reviewer", "Finance reviewer"),
        ("space_acme", "member_invoice_creator", "Invoice creator"),
        ("space_other", "member_other_clerk", "Other clerk"),
    ] {
        create(
            cli,
            &format!("/api/v1/spaces/{space}/members"),
            json!({"id": id, "display_name": name}),
        )
        .await;
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
        create(cli, "/api/v1/spaces/space_acme/user-members", body).await;
    }
    // Alice also acts for a clerk of the other space (the member-space cross-space case).
    create(
        cli,
        "/api/v1/spaces/space_other/user-members",
        json!({"id": "um_alice_other_clerk", "user_id": "user_alice", "member_id": "member_other_clerk", "relation_type": "delegate"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_other/roles",
        json!({"id": "role_other_approver", "key": "other_approver", "name": "Other approver"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/user-members/um_alice_finance_reviewer_revoked/revoke",
        json!({"revoked_reason": "rotated"}),
    )
    .await;

    create(
        cli,
        "/api/v1/resource-types",
        json!({"key": "invoice", "display_name": "Invoice"}),
    )
    .await;
    for (key, risk) in [
        ("read", "normal"),
        ("create", "normal"),
        ("approve", "high"),
        ("reject", "high"),
        ("delete", "critical"),
    ] {
        create(
            cli,
            "/api/v1/resource-types/invoice/actions",
            json!({"key": key, "risk_level": risk}),
        )
        .await;
    }
    create(
        cli,
        "/api/v1/resource-types/invoice/mapping",
        json!({"storage_kind": "internal_table"}),
    )
    .await;
    for (id, group) in [
        ("invoice_001", "group_finance_apac"),
        ("invoice_002", "group_legal_emea"),
    ] {
        create(
            cli,
            "/api/v1/spaces/space_acme/resources",
            json!({"id": id, "resource_type": "invoice", "group_id": group, "owner_member_id": "member_invoice_creator"}),
        )
        .await;
    }
    create(
        cli,
        "/api/v1/spaces/space_other/resources",
        json!({"id": "invoice_other", "resource_type": "invoice", "group_id": "group_other_ops", "owner_member_id": "member_other_clerk"}),
    )
    .await;

    create(cli, "/api/v1/spaces/space_acme/roles", json!({"id": "role_finance_approver", "key": "finance_approver", "name": "Finance approver"})).await;
    create(
        cli,
        "/api/v1/spaces/space_acme/roles",
        json!({"id": "role_global_deleter", "key": "global_deleter", "name": "Global deleter"}),
    )
    .await;
    for (role, action, scope) in [
        ("role_finance_approver", "approve", "group_tree"),
        ("role_global_deleter", "delete", "global"),
    ] {
        let permission = create(
            cli,
            "/api/v1/permissions",
            json!({"resource": "invoice", "action": action, "scope": scope}),
        )
        .await;
        let permission_id = permission["data"]["id"].as_str().unwrap().to_owned();
        create(
            cli,
            "/api/v1/role-permissions",
            json!({"role_id": role, "permission_id": permission_id}),
        )
        .await;
    }
    create(
        cli,
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver", "scope_anchor_group_id": "group_finance"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_finance_reviewer", "role_id": "role_global_deleter"}),
    )
    .await;
}
