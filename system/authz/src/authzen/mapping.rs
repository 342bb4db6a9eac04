//! AuthZEN's subjects onto Plystra's actors, and back: a `user` by ID or username acting
//! through one of its bindings, a `member` through its first usable binding, a `user_member`
//! (a binding) as itself; the space from `properties.space_id` or from the binding's member.
//!
//! A subject that names nothing, or more than one actor, is not decided: it is a `false`
//! decision whose context carries the error (404 unknown, 400 ambiguous or unsupported), the
//! `ApiError` its own request would have had.

use plystra_contracts::services::ActorRef;
use plystra_contracts::{ApiError, ErrorCode};

use super::wire::{AuthzenSubject, Properties};
use crate::index::{BindingView, Snapshot};

/// The subject types a mapping knows.
pub const SUBJECT_TYPES: [&str; 3] = ["user", "member", "user_member"];

/// The error of a subject type no mapping knows.
pub fn unsupported_type(kind: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ValidationFailed,
        format!(
            "subject.type {kind:?} is not one of {}",
            SUBJECT_TYPES.join(", ")
        ),
    )
}

/// A text property of the subject, or a 400 when it is present and not a non-empty string.
fn text_property<'a>(
    properties: Option<&'a Properties>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match properties.and_then(|p| p.get(name)) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("subject.properties.{name} must be a non-empty string"),
        )),
    }
}

/// The actor `subject` names on `snapshot` at `now`.
pub fn actor(
    snapshot: &Snapshot,
    subject: &AuthzenSubject,
    now: i64,
) -> Result<ActorRef, ApiError> {
    let space = text_property(subject.properties.as_ref(), "space_id")?;
    let id = subject.id.as_str();
    let binding = match subject.kind.as_str() {
        "user" => {
            let user = snapshot.user_named(id).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UserNotFound,
                    format!("no user has the ID or username {id}"),
                )
            })?;
            let bindings: Vec<BindingView<'_>> = snapshot
                .user_bindings(user, now)
                .into_iter()
                .filter(|b| space.is_none_or(|s| b.space_id == Some(s)))
                .collect();
            one_binding(&bindings).map_err(|found| {
                let within = space.map_or_else(String::new, |s| format!(" in space {s}"));
                if found == 0 {
                    ApiError::new(
                        ErrorCode::UserMemberNotFound,
                        format!("user {id} has no binding to a member{within}"),
                    )
                } else {
                    ApiError::new(
                        ErrorCode::ValidationFailed,
                        format!(
                            "user {id} acts as {found} members{within}: name the space in \
                             subject.properties.space_id, or the binding as a subject of type \
                             user_member"
                        ),
                    )
                }
            })?
        }
        "member" => {
            let bindings = snapshot.member_bindings(id, now);
            first_usable(&bindings).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::MemberNotFound,
                    format!("no member with ID {id} has a binding to a user"),
                )
            })?
        }
        "user_member" => snapshot.binding_view(id, now).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UserMemberNotFound,
                format!("no user-member binding has ID {id}"),
            )
        })?,
        other => return Err(unsupported_type(other)),
    };
    Ok(ActorRef {
        user_id: binding.user_id.to_owned(),
        member_id: binding.member_id.to_owned(),
        user_member_id: binding.id.to_owned(),
        space_id: space.or(binding.space_id).unwrap_or_default().to_owned(),
    })
}

/// The binding a user acts through among `bindings` (binding-ID order): the only one; else the
/// first usable one when every usable one is to the same member (they decide alike); else the
/// first when none is usable (the engine then says why). `Err` holds how many members the
/// usable ones reach (0 when there is no binding at all).
fn one_binding<'a>(bindings: &[BindingView<'a>]) -> Result<BindingView<'a>, usize> {
    match bindings {
        [] => Err(0),
        [only] => Ok(*only),
        _ => {
            let usable: Vec<&BindingView<'a>> = bindings.iter().filter(|b| b.usable).collect();
            let Some(first) = usable.first() else {
                return Ok(bindings[0]);
            };
            let mut members: Vec<&str> = usable.iter().map(|b| b.member_id).collect();
            members.sort_unstable();
            members.dedup();
            if members.len() == 1 {
                Ok(**first)
            } else {
                Err(members.len())
            }
        }
    }
}

/// A member's binding: its first usable one, else its first.
fn first_usable<'a>(bindings: &[BindingView<'a>]) -> Option<BindingView<'a>> {
    bindings
        .iter()
        .find(|b| b.usable)
        .or_else(|| bindings.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding<'a>(id: &'a str, member: &'a str, usable: bool) -> BindingView<'a> {
        BindingView {
            id,
            user_id: "user_a",
            member_id: member,
            space_id: Some("space_a"),
            usable,
        }
    }

    #[test]
    fn a_user_acts_through_its_one_binding_or_its_usable_ones_to_one_member() {
        let only = [binding("um_1", "member_a", false)];
        assert_eq!(one_binding(&only).unwrap().id, "um_1");
        let revoked_then_active = [
            binding("um_1", "member_a", false),
            binding("um_2", "member_a", true),
            binding("um_3", "member_a", true),
        ];
        assert_eq!(one_binding(&revoked_then_active).unwrap().id, "um_2");
        let none_usable = [
            binding("um_1", "member_a", false),
            binding("um_2", "member_b", false),
        ];
        assert_eq!(one_binding(&none_usable).unwrap().id, "um_1");
        let two_members = [
            binding("um_1", "member_a", true),
            binding("um_2", "member_b", true),
        ];
        assert_eq!(one_binding(&two_members), Err(2));
        assert_eq!(one_binding(&[]), Err(0));
    }

    #[test]
    fn a_member_acts_through_its_first_usable_binding() {
        let bindings = [
            binding("um_1", "member_a", false),
            binding("um_2", "member_a", true),
        ];
        assert_eq!(first_usable(&bindings).unwrap().id, "um_2");
        assert_eq!(first_usable(&bindings[..1]).unwrap().id, "um_1");
        assert_eq!(first_usable(&[]), None);
    }
}
