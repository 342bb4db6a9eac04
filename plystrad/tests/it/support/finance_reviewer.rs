//! The Finance Reviewer fixture over HTTP, through the in-process app with the bootstrap key: the
//! reference scenario exactly as `plystractl demo seed` sends it (one definition, included from
//! plystractl), then what the cross-space and global-scope cases add: the space `space_other`
//! with its group, clerk and invoice, alice's binding to that clerk, a role there, and the
//! deleter role held globally by the finance reviewer.

use serde_json::json;

use super::app::{Client, PASSWORD, create};

/// The reference scenario's calls, shared with `plystractl demo seed`.
#[path = "../../../../plystractl/src/demo/finance_reviewer.rs"]
mod reference;

/// Creates the fixture.
pub async fn seed(cli: &Client) {
    for (path, body) in reference::steps(PASSWORD) {
        create(cli, &path, body).await;
    }
    create(
        cli,
        "/api/v1/spaces",
        json!({"id": "space_other", "name": "Other"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_other/groups",
        json!({"id": "group_other_ops", "path": "ops"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_other/members",
        json!({"id": "member_other_clerk", "display_name": "Other clerk"}),
    )
    .await;
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
        "/api/v1/spaces/space_other/resources",
        json!({"id": "invoice_other", "resource_type": "invoice", "group_id": "group_other_ops", "owner_member_id": "member_other_clerk"}),
    )
    .await;
    // A role the finance reviewer holds at global scope: delete, anywhere in the space.
    create(
        cli,
        "/api/v1/spaces/space_acme/roles",
        json!({"id": "role_global_deleter", "key": "global_deleter", "name": "Global deleter"}),
    )
    .await;
    let permission = create(
        cli,
        "/api/v1/permissions",
        json!({"resource": "invoice", "action": "delete", "scope": "global"}),
    )
    .await;
    create(
        cli,
        "/api/v1/role-permissions",
        json!({"role_id": "role_global_deleter", "permission_id": permission["data"]["id"]}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_finance_reviewer", "role_id": "role_global_deleter"}),
    )
    .await;
}

/// The permission condition the fixture's junior approver holds its grant under.
pub const JUNIOR_CONDITION: &str =
    "resource.properties.amount <= 10000 && resource.status != 'archived'";

/// What the conditional rows add (after [`seed`]): the junior approver (dana, through
/// `um_dana_junior_approver`) approves invoices under `finance` only when
/// [`JUNIOR_CONDITION`] holds, and four invoices in `finance.apac` to try it on:
/// `invoice_small` (9,000), `invoice_large` (25,000), `invoice_archived` (500, archived) and
/// `invoice_001` (no amount).
pub async fn seed_conditions(cli: &Client) {
    create(
        cli,
        "/api/v1/users",
        json!({"id": "user_dana", "email": "dana@example.com", "password": PASSWORD}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/members",
        json!({"id": "member_junior_approver", "display_name": "Junior approver"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/user-members",
        json!({"id": "um_dana_junior_approver", "user_id": "user_dana", "member_id": "member_junior_approver", "relation_type": "login"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/roles",
        json!({"id": "role_junior_approver", "key": "junior_approver", "name": "Junior approver"}),
    )
    .await;
    create(
        cli,
        "/api/v1/permissions",
        json!({"id": "perm_invoice_approve_limited", "resource": "invoice", "action": "approve", "scope": "group_tree", "condition": JUNIOR_CONDITION}),
    )
    .await;
    create(
        cli,
        "/api/v1/role-permissions",
        json!({"role_id": "role_junior_approver", "permission_id": "perm_invoice_approve_limited"}),
    )
    .await;
    create(
        cli,
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_junior_approver", "role_id": "role_junior_approver", "scope_anchor_group_id": "group_finance"}),
    )
    .await;
    for (id, amount, status) in [
        ("invoice_small", 9_000, "active"),
        ("invoice_large", 25_000, "active"),
        ("invoice_archived", 500, "archived"),
    ] {
        create(
            cli,
            "/api/v1/spaces/space_acme/resources",
            json!({"id": id, "resource_type": "invoice", "group_id": "group_finance_apac", "owner_member_id": "member_invoice_creator", "status": status, "metadata": {"amount": amount}}),
        )
        .await;
    }
}
