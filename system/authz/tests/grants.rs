//! `grants::load_grants` against a migrated database on the selected backend: it returns exactly
//! the grants in force (active roles and permissions, role-permissions not removed, active
//! member-roles with their anchors) and leaves out a permission whose stored scope is unknown;
//! `grants::load_grant_facts_in_parts`, what the index loads, reads the same grants as facts.

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

use plystra_contracts::storage::Database;
use plystra_contracts::storage::sea_query::{Alias, Expr, Query, Value};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_kernel::storage::testing::TestDatabase;
use plystra_system_authz::Scope;
use plystra_system_authz::grants::{
    GrantSnapshot, MemberRoleGrant, PermissionGrant, RoleGrant, RolePermissionGrant, load_grants,
};

async fn insert(db: &Database, table: &str, mut values: Vec<(&str, Value)>) {
    let now = OffsetDateTime::now_utc();
    let at = now
        .replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap();
    values.push(("created_at", at.into()));
    values.push(("updated_at", at.into()));
    let mut q = Query::insert();
    q.into_table(Alias::new(table))
        .columns(values.iter().map(|(c, _)| Alias::new(*c)))
        .values_panic(values.iter().map(|(_, v)| Expr::val(v.clone())));
    db.execute(&q).await.unwrap();
}

async fn seed(db: &Database) {
    insert(
        db,
        "sys_identity_spaces",
        vec![
            ("id", "space_acme".into()),
            ("name", "Acme".into()),
            ("slug", "acme".into()),
            ("type", "team".into()),
            ("status", "active".into()),
        ],
    )
    .await;
    insert(
        db,
        "sys_identity_groups",
        vec![
            ("id", "group_finance".into()),
            ("space_id", "space_acme".into()),
            ("name", "finance".into()),
            ("path", "finance".into()),
            ("depth", 0i32.into()),
            ("sort_order", 0i32.into()),
            ("status", "active".into()),
        ],
    )
    .await;
    for member in ["member_finance_reviewer", "member_invoice_creator"] {
        insert(
            db,
            "sys_identity_members",
            vec![
                ("id", member.into()),
                ("space_id", "space_acme".into()),
                ("member_type", "human".into()),
                ("display_name", member.into()),
                ("status", "active".into()),
            ],
        )
        .await;
    }
    for (id, key, status) in [
        ("role_finance_approver", "finance_approver", "active"),
        ("role_retired", "retired", "disabled"),
    ] {
        insert(
            db,
            "sys_authz_roles",
            vec![
                ("id", id.into()),
                ("space_id", "space_acme".into()),
                ("key", key.into()),
                ("name", key.into()),
                ("status", status.into()),
            ],
        )
        .await;
    }
    for (id, action, scope, status) in [
        ("perm_invoice_approve", "approve", "group_tree", "active"),
        ("perm_invoice_read", "read", "space", "disabled"),
        ("perm_invoice_strange", "delete", "tree", "active"),
    ] {
        insert(
            db,
            "sys_authz_permissions",
            vec![
                ("id", id.into()),
                ("resource", "invoice".into()),
                ("action", action.into()),
                ("scope", scope.into()),
                ("status", status.into()),
            ],
        )
        .await;
    }
    let removed = OffsetDateTime::now_utc();
    for (id, role, perm, deleted_at) in [
        (
            "rp_approve",
            "role_finance_approver",
            "perm_invoice_approve",
            None,
        ),
        (
            "rp_read_removed",
            "role_finance_approver",
            "perm_invoice_read",
            Some(removed),
        ),
        ("rp_retired", "role_retired", "perm_invoice_approve", None),
    ] {
        insert(
            db,
            "sys_authz_role_permissions",
            vec![
                ("id", id.into()),
                ("space_id", "space_acme".into()),
                ("role_id", role.into()),
                ("permission_id", perm.into()),
                ("deleted_at", deleted_at.into()),
            ],
        )
        .await;
    }
    for (id, member, anchor, status) in [
        (
            "mr_reviewer_finance",
            "member_finance_reviewer",
            Some("group_finance"),
            "active",
        ),
        (
            "mr_creator_unanchored",
            "member_invoice_creator",
            None,
            "active",
        ),
        (
            "mr_reviewer_revoked",
            "member_finance_reviewer",
            None,
            "revoked",
        ),
    ] {
        insert(
            db,
            "sys_authz_member_roles",
            vec![
                ("id", id.into()),
                ("space_id", "space_acme".into()),
                ("member_id", member.into()),
                ("role_id", "role_finance_approver".into()),
                ("scope_anchor_group_id", anchor.map(str::to_owned).into()),
                ("status", status.into()),
            ],
        )
        .await;
    }
}

#[tokio::test]
async fn load_grants_returns_exactly_the_grants_in_force() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    assert_eq!(load_grants(&t.db).await.unwrap(), GrantSnapshot::default());
    seed(&t.db).await;
    let snapshot = load_grants(&t.db).await.unwrap();
    assert_eq!(
        snapshot.roles,
        vec![RoleGrant {
            id: "role_finance_approver".into(),
            space_id: "space_acme".into(),
            key: "finance_approver".into(),
            name: "finance_approver".into(),
        }]
    );
    assert_eq!(
        snapshot.permissions,
        vec![PermissionGrant {
            id: "perm_invoice_approve".into(),
            resource: "invoice".into(),
            action: "approve".into(),
            scope: Scope::GroupTree,
            condition: None,
        }]
    );
    let rp = |id: &str, role: &str| RolePermissionGrant {
        id: id.into(),
        space_id: "space_acme".into(),
        role_id: role.into(),
        permission_id: "perm_invoice_approve".into(),
    };
    assert_eq!(
        snapshot.role_permissions,
        vec![
            rp("rp_approve", "role_finance_approver"),
            rp("rp_retired", "role_retired"),
        ]
    );
    assert_eq!(
        snapshot.member_roles,
        vec![
            MemberRoleGrant {
                id: "mr_creator_unanchored".into(),
                space_id: "space_acme".into(),
                member_id: "member_invoice_creator".into(),
                role_id: "role_finance_approver".into(),
                scope_anchor_group_id: None,
            },
            MemberRoleGrant {
                id: "mr_reviewer_finance".into(),
                space_id: "space_acme".into(),
                member_id: "member_finance_reviewer".into(),
                role_id: "role_finance_approver".into(),
                scope_anchor_group_id: Some("group_finance".into()),
            },
        ]
    );
}

/// What the index's load reads: the same grants as [`load_grants`], as facts, the roles,
/// permissions and role-permissions in the first part and only member-roles after it.
#[tokio::test]
async fn the_index_s_load_reads_the_same_grants_definitions_first() {
    use plystra_contracts::facts::Fact;
    use plystra_system_authz::grants::load_grant_facts_in_parts;

    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    seed(&t.db).await;
    let mut parts: Vec<Vec<Fact>> = Vec::new();
    load_grant_facts_in_parts(&t.db, &mut |part| parts.push(part))
        .await
        .unwrap();
    let (definitions, member_roles) = parts.split_first().unwrap();
    assert!(
        definitions
            .iter()
            .all(|f| !matches!(f, Fact::MemberRole { .. }))
    );
    assert!(
        member_roles
            .iter()
            .flatten()
            .all(|f| matches!(f, Fact::MemberRole { .. }))
    );
    let sorted = |facts: Vec<Fact>| {
        let mut shown: Vec<String> = facts.iter().map(|f| format!("{f:?}")).collect();
        shown.sort();
        shown
    };
    assert_eq!(
        sorted(parts.concat()),
        sorted(load_grants(&t.db).await.unwrap().into_facts())
    );
}
