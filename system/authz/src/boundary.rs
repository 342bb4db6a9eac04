//! The boundary with the pure core (`plystra-authz-core`): the contracts' facts lent to the
//! index without a copy, and the core's deny codes and resolve errors as the contracts' types.

use plystra_authz_core::{Fact as CoreFact, ResourceFact};
use plystra_contracts::DenyCode;
use plystra_contracts::facts::{Fact, ResourceRow};
use plystra_contracts::services::ResolveError;

/// A packed resource row as the index applies it: [`lend`] of the `Fact::Resource` it holds.
pub fn lend_resource<'a>(row: ResourceRow<'a>) -> CoreFact<&'a str> {
    CoreFact::Resource(ResourceFact {
        resource_type: row.resource_type,
        id: row.id,
        external_id: row.external_id,
        space_id: row.space_id,
        group_id: row.group_id,
        owner_member_id: row.owner_member_id,
        status: row.status,
        visibility: Some(row.visibility),
        metadata: row.metadata,
    })
}

/// `fact` as the index applies it, borrowing its texts; `None` for the credentials kinds (API
/// keys, admin grants, sessions), which the control plane and identity follow and decisions do
/// not read.
pub fn lend(fact: &Fact) -> Option<CoreFact<&str>> {
    Some(match fact {
        Fact::User {
            id,
            status,
            username,
            metadata,
        } => CoreFact::User {
            id,
            status,
            username: username.as_deref(),
            metadata: metadata.as_deref(),
        },
        Fact::Space { id, status } => CoreFact::Space { id, status },
        Fact::Member {
            id,
            space_id,
            status,
            metadata,
        } => CoreFact::Member {
            id,
            space_id,
            status,
            metadata: metadata.as_deref(),
        },
        Fact::UserMember {
            id,
            user_id,
            member_id,
            status,
            expires_at,
        } => CoreFact::UserMember {
            id,
            user_id,
            member_id,
            status,
            expires_at: expires_at.as_deref(),
        },
        Fact::Group {
            id,
            space_id,
            path,
            status,
        } => CoreFact::Group {
            id,
            space_id,
            path,
            status,
        },
        Fact::ResourceType { id, key, status } => CoreFact::ResourceType { id, key, status },
        Fact::ResourceAction {
            resource_type,
            key,
            risk_level,
        } => CoreFact::ResourceAction {
            resource_type,
            key,
            risk_level: risk_level.as_deref(),
        },
        Fact::Resource {
            resource_type,
            id,
            external_id,
            space_id,
            group_id,
            owner_member_id,
            status,
            visibility,
            metadata,
        } => CoreFact::Resource(ResourceFact {
            resource_type,
            id,
            external_id,
            space_id,
            group_id: group_id.as_deref(),
            owner_member_id: owner_member_id.as_deref(),
            status,
            visibility: visibility.as_deref(),
            metadata: metadata.as_deref(),
        }),
        Fact::Role {
            id,
            space_id,
            key,
            status,
        } => CoreFact::Role {
            id,
            space_id,
            key,
            status,
        },
        Fact::Permission {
            id,
            resource,
            action,
            scope,
            status,
            condition,
        } => CoreFact::Permission {
            id,
            resource,
            action,
            scope,
            status,
            condition: condition.as_deref(),
        },
        Fact::RolePermission {
            id,
            role_id,
            permission_id,
            deleted,
        } => CoreFact::RolePermission {
            id,
            role_id,
            permission_id,
            deleted: *deleted,
        },
        Fact::MemberRole {
            id,
            space_id,
            member_id,
            role_id,
            scope_anchor_group_id,
            status,
        } => CoreFact::MemberRole {
            id,
            space_id,
            member_id,
            role_id,
            scope_anchor_group_id: scope_anchor_group_id.as_deref(),
            status,
        },
        Fact::ApiKey { .. } | Fact::AdminGrant { .. } | Fact::Session { .. } => return None,
    })
}

/// The core's deny code as the wire type.
pub fn deny_code(code: plystra_authz_core::DenyCode) -> DenyCode {
    use plystra_authz_core::DenyCode as Core;
    match code {
        Core::ActorUserInactive => DenyCode::ActorUserInactive,
        Core::ActorMemberInactive => DenyCode::ActorMemberInactive,
        Core::SpaceInactive => DenyCode::SpaceInactive,
        Core::UserMemberRevoked => DenyCode::UserMemberRevoked,
        Core::UserMemberExpired => DenyCode::UserMemberExpired,
        Core::CrossSpaceViolation => DenyCode::CrossSpaceViolation,
        Core::NoMatchingPermission => DenyCode::NoMatchingPermission,
        Core::ScopeAnchorMissing => DenyCode::ScopeAnchorMissing,
        Core::TargetGroupMissing => DenyCode::TargetGroupMissing,
        Core::ScopeOutOfBounds => DenyCode::ScopeOutOfBounds,
        Core::GlobalScopeDisabled => DenyCode::GlobalScopeDisabled,
        Core::InvalidResourceType => DenyCode::InvalidResourceType,
        Core::InvalidResourceAction => DenyCode::InvalidResourceAction,
        Core::ConditionNotMet => DenyCode::ConditionNotMet,
    }
}

/// The core's resolve error as the contracts' type.
pub fn resolve_error(error: plystra_authz_core::ResolveError) -> ResolveError {
    match error {
        plystra_authz_core::ResolveError::NotFound { entity, id } => {
            ResolveError::NotFound { entity, id }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_deny_code_maps_to_its_own_wire_code_in_the_same_order() {
        let mapped: Vec<DenyCode> = plystra_authz_core::DenyCode::ALL
            .into_iter()
            .map(deny_code)
            .collect();
        // One to one (both lists hold 14 distinct codes) and in precedence order.
        assert_eq!(mapped, DenyCode::ALL);
        for (core, wire) in plystra_authz_core::DenyCode::ALL.into_iter().zip(mapped) {
            assert_eq!(format!("{core:?}"), format!("{wire:?}"));
        }
    }

    #[test]
    fn a_packed_resource_is_lent_as_its_fact_is() {
        let mut packed = plystra_contracts::text_rows::TextRows::new(9);
        for row in [
            [
                Some("invoice"),
                Some("res_1"),
                Some("inv-1"),
                Some("space_1"),
            ]
            .into_iter()
            .chain([Some("group_1"), None, Some("space"), Some("active")])
            .chain([Some(r#"{"amount": 9000}"#)]),
            [
                Some("invoice"),
                Some("res_2"),
                Some("inv-2"),
                Some("space_1"),
            ]
            .into_iter()
            .chain([None, Some("member_1"), Some("private"), Some("archived")])
            .chain([None]),
        ] {
            for value in row {
                packed.push(value).unwrap();
            }
        }
        let rows = plystra_contracts::facts::ResourceRows::new(packed).unwrap();
        assert_eq!(rows.len(), 2);
        for row in rows.iter() {
            let fact = row.to_fact();
            assert_eq!(Some(lend_resource(row)), lend(&fact), "{fact:?}");
        }
    }

    #[test]
    fn every_decision_fact_is_lent_and_credentials_are_not() {
        let user = Fact::User {
            id: "user_a".into(),
            status: "active".into(),
            username: Some("alice@example.com".into()),
            metadata: None,
        };
        assert_eq!(
            lend(&user),
            Some(CoreFact::User {
                id: "user_a",
                status: "active",
                username: Some("alice@example.com"),
                metadata: None,
            })
        );
        let binding = Fact::UserMember {
            id: "um_a".into(),
            user_id: "user_a".into(),
            member_id: "member_a".into(),
            status: "active".into(),
            expires_at: Some("2030-01-01T00:00:00Z".into()),
        };
        assert_eq!(
            lend(&binding),
            Some(CoreFact::UserMember {
                id: "um_a",
                user_id: "user_a",
                member_id: "member_a",
                status: "active",
                expires_at: Some("2030-01-01T00:00:00Z"),
            })
        );
        let session = Fact::Session {
            id: "ses_a".into(),
            user_id: "user_a".into(),
            user_member_id: None,
            token_hmac: "h".into(),
            status: "active".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
        };
        assert_eq!(lend(&session), None);
    }
}
