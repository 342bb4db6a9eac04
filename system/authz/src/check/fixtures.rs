//! The unit tests' shared data: the Finance Reviewer snapshot and requests of
//! `AuthzRequest::example`.

use plystra_contracts::ApiError;
use plystra_contracts::not_blank::NotBlank;
use poem_openapi::types::Example;

use super::answer::ExplainTrace;
use super::parse::{Parsed, parse};
use super::request::{AuthzRequest, InlineGrant};
use super::trace::Traced;
use crate::Scope;
use crate::index::Snapshot;

/// Context Mode: the example request with the Finance Approver grant inline.
pub(super) fn inline() -> AuthzRequest {
    let mut body = AuthzRequest::example();
    body.grants = Some(vec![InlineGrant {
        role_key: Some("finance_approver".into()),
        role_id: None,
        permission_id: None,
        resource: NotBlank::from_static("invoice"),
        action: NotBlank::from_static("approve"),
        scope: Scope::GroupTree,
        space_id: None,
        scope_anchor_group_id: None,
        scope_anchor_group_path: Some("finance".into()),
        condition: None,
    }]);
    body
}

/// The Finance Reviewer data of `AuthzRequest::example`: alice approves invoices in the
/// `finance` subtree; `invoice_001` lies in `finance.apac`, `invoice_002` in `sales`.
pub(super) fn finance_snapshot() -> Snapshot {
    use plystra_authz_core::{Fact, ResourceFact};
    let s = |v: &str| v.to_owned();
    let group = |id: &str, path: &str| Fact::Group {
        id: s(id),
        space_id: s("space_acme"),
        path: s(path),
        status: s("active"),
    };
    let invoice = |id: &str, group: &str| {
        Fact::Resource(ResourceFact {
            resource_type: s("invoice"),
            id: s(id),
            external_id: s(id),
            space_id: s("space_acme"),
            group_id: Some(s(group)),
            owner_member_id: None,
            status: s("active"),
            metadata: None,
            visibility: None,
        })
    };
    crate::index::snapshot_of([
        Fact::User {
            id: s("user_alice"),
            status: s("active"),
            username: Some(s("alice@example.com")),
            metadata: None,
        },
        Fact::Space {
            id: s("space_acme"),
            status: s("active"),
        },
        Fact::Member {
            id: s("member_finance_reviewer"),
            space_id: s("space_acme"),
            status: s("active"),
            metadata: None,
        },
        Fact::UserMember {
            id: s("um_alice_finance_reviewer"),
            user_id: s("user_alice"),
            member_id: s("member_finance_reviewer"),
            status: s("active"),
            expires_at: None,
        },
        group("group_finance", "finance"),
        group("group_apac", "finance.apac"),
        group("group_sales", "sales"),
        Fact::ResourceType {
            id: s("rt_invoice"),
            key: s("invoice"),
            status: s("active"),
        },
        Fact::ResourceAction {
            resource_type: s("invoice"),
            key: s("approve"),
            risk_level: None,
        },
        invoice("invoice_001", "group_apac"),
        invoice("invoice_002", "group_sales"),
        Fact::Role {
            id: s("role_fa"),
            space_id: s("space_acme"),
            key: s("finance_approver"),
            status: s("active"),
        },
        Fact::Permission {
            id: s("perm_approve"),
            resource: s("invoice"),
            action: s("approve"),
            scope: s("group_tree"),
            status: s("active"),
            condition: None,
        },
        Fact::RolePermission {
            id: s("rp_1"),
            role_id: s("role_fa"),
            permission_id: s("perm_approve"),
            deleted: false,
        },
        Fact::MemberRole {
            id: s("mr_1"),
            space_id: s("space_acme"),
            member_id: s("member_finance_reviewer"),
            role_id: s("role_fa"),
            scope_anchor_group_id: Some(s("group_finance")),
            status: s("active"),
        },
    ])
}

/// The full trace, which `trace_of` returns when not told to skip allows.
pub(super) fn traced(traced: Result<Traced, ApiError>) -> ExplainTrace {
    match traced.unwrap() {
        Traced::Full(trace) => trace,
        Traced::Allowed { .. } => panic!("asked for the full trace"),
    }
}

/// Managed mode: the example request on `resource_id`.
pub(super) fn managed(resource_id: &str) -> Parsed {
    let mut body = AuthzRequest::example();
    body.resource_id = Some(NotBlank::new(resource_id).unwrap());
    parse(body, None).unwrap()
}
