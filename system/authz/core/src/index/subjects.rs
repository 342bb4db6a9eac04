//! Mapping how a client names subjects and resources onto the index's IDs, and back: a user by
//! ID or username, a user's or member's bindings with whether a check through each could pass
//! the actor stage, and the name an application knows a resource by. Read from the snapshot
//! alone, never from the database.

use super::{Actor, BindingRow, Carriers, Num, Snapshot};

/// One user-member binding as a subject mapping sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingView<'a> {
    /// The binding's ID.
    pub id: &'a str,
    /// The user who acts through it.
    pub user_id: &'a str,
    /// The member the user acts as.
    pub member_id: &'a str,
    /// The member's space, when the member is known.
    pub space_id: Option<&'a str>,
    /// Whether a check through it could pass the actor stage at the time asked about, judged
    /// by the engine's own rules ([`crate::engine::ActorFacts::refusal`]): the user and the
    /// member known and `active`, the binding not revoked and not expired. The space is the one
    /// a request names, so it is not judged here.
    pub usable: bool,
}

impl Snapshot {
    /// The user whose ID is `id_or_username`, else the user whose username is exactly it: the
    /// user's ID. An ID wins over another user's equal username.
    pub fn user_named(&self, id_or_username: &str) -> Option<&str> {
        let n = self
            .user_names
            .get(id_or_username)
            .filter(|n| self.users.get(*n).is_some())
            .or_else(|| self.user_of_username.get(id_or_username).copied())?;
        Some(self.user_names.text(n))
    }

    /// The user's username, if the index has one.
    pub fn username_of(&self, user_id: &str) -> Option<&str> {
        let n = self.user_names.get(user_id)?;
        self.username_of_user.get(n).map(|name| &**name)
    }

    /// The user's bindings, in binding-ID order, as they stand at `now` (Unix seconds).
    pub fn user_bindings(&self, user_id: &str, now: i64) -> Vec<BindingView<'_>> {
        let user = self.user_names.get(user_id);
        self.binding_views(user.and_then(|n| self.bindings_of_user.get(n)), now)
    }

    /// The member's bindings, in binding-ID order, as they stand at `now` (Unix seconds).
    pub fn member_bindings(&self, member_id: &str, now: i64) -> Vec<BindingView<'_>> {
        let member = self.member_names.get(member_id);
        self.binding_views(member.and_then(|n| self.bindings_of_member.get(n)), now)
    }

    /// One binding by ID, as it stands at `now` (Unix seconds).
    pub fn binding_view(&self, id: &str, now: i64) -> Option<BindingView<'_>> {
        let n = self.binding_names.get(id)?;
        self.bindings.get(n).map(|row| self.view(n, row, now))
    }

    /// How an application names the resource `id` (by ID) of type `type_key_or_id` (by key or
    /// ID, whatever the type's status): its external ID when that names this resource alone
    /// (non-empty, differs from the ID, no other resource of the type carries it, and it is not
    /// another resource's ID of that type), else its ID. `None` when the resource is unknown.
    ///
    /// The registry stores the resource's ID as its external ID when it is registered without
    /// one, so such a resource is named by its ID.
    pub fn resource_name(&self, type_key_or_id: &str, id: &str) -> Option<&str> {
        let type_key = self.named_type(type_key_or_id)?.key;
        let n = self.resource_by_id(type_key, id)?;
        let row = self.resources.get(n)?;
        let external = self.external_names.text(row.external);
        let names_it_alone = !external.is_empty()
            && external != id
            && matches!(self.carriers.get(row.external), Some(Carriers::One(only)) if *only == n)
            && self.resource_by_id(type_key, external).is_none();
        Some(if names_it_alone {
            external
        } else {
            self.resource_names.text(n)
        })
    }

    /// The bindings numbered in `bindings`, in binding-ID order.
    fn binding_views<'s>(
        &'s self,
        bindings: Option<&imbl::OrdSet<Num>>,
        now: i64,
    ) -> Vec<BindingView<'s>> {
        let mut views: Vec<BindingView<'s>> = bindings
            .into_iter()
            .flatten()
            .filter_map(|&n| Some(self.view(n, self.bindings.get(n)?, now)))
            .collect();
        views.sort_unstable_by_key(|view| view.id);
        views
    }

    /// Binding `n` (whose row is `row`) as a mapping sees it at `now`.
    fn view<'s>(&'s self, n: Num, row: &'s BindingRow, now: i64) -> BindingView<'s> {
        let id = self.binding_names.text(n);
        let user_id = self.user_names.text(row.user);
        let member_id = self.member_names.text(row.member);
        let space_id = row.member_row.as_ref().map(|m| &*m.space_id);
        // The copies a check reads the actor from; without either, a check finds no actor.
        let usable = match (&row.user_row, &row.member_row) {
            (Some(user), Some(member)) => {
                let actor = Actor {
                    user,
                    member,
                    binding: row,
                };
                // The space is the request's to name: judged as active, so that only the
                // actor's own state decides.
                actor
                    .facts(user_id, member_id, id, &member.space_id, true)
                    .refusal(now)
                    .is_none()
            }
            _ => false,
        };
        BindingView {
            id,
            user_id,
            member_id,
            space_id,
            usable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::snapshot_of;
    use crate::{Fact, ResourceFact};

    /// Two users (Alice active, Bob disabled), two members of one space, and bindings: Alice's
    /// active, revoked and expiring ones, and Bob's.
    fn people() -> Vec<Fact> {
        let s = |v: &str| v.to_owned();
        let user = |id: &str, status: &str, username: &str| Fact::User {
            id: s(id),
            status: s(status),
            username: Some(s(username)),
            metadata: None,
        };
        let binding = |id: &str, user: &str, member: &str, status: &str, expires: Option<&str>| {
            Fact::UserMember {
                id: s(id),
                user_id: s(user),
                member_id: s(member),
                status: s(status),
                expires_at: expires.map(s),
            }
        };
        vec![
            user("user_alice", "active", "alice@example.com"),
            user("user_bob", "disabled", "bob@example.com"),
            Fact::Space {
                id: s("space_acme"),
                status: s("active"),
            },
            Fact::Member {
                id: s("member_fr"),
                space_id: s("space_acme"),
                status: s("active"),
                metadata: None,
            },
            Fact::Member {
                id: s("member_clerk"),
                space_id: s("space_acme"),
                status: s("active"),
                metadata: None,
            },
            binding("um_c_alice", "user_alice", "member_fr", "active", None),
            binding("um_a_alice", "user_alice", "member_clerk", "revoked", None),
            binding(
                "um_b_alice",
                "user_alice",
                "member_clerk",
                "active",
                Some("2030-01-01T00:00:00Z"),
            ),
            binding("um_bob", "user_bob", "member_fr", "active", None),
            // A binding to a member the index does not know.
            binding("um_d_alice", "user_alice", "member_gone", "active", None),
        ]
    }

    /// 2029-01-01 and 2031-01-01, before and after `um_b_alice` expires.
    const BEFORE: i64 = 1_861_920_000;
    const AFTER: i64 = 1_924_992_000;

    fn user(id: &str, status: &str, username: Option<&str>) -> Fact {
        Fact::User {
            id: id.into(),
            status: status.into(),
            username: username.map(str::to_owned),
            metadata: None,
        }
    }

    #[test]
    fn a_user_is_named_by_id_or_username() {
        let snapshot = snapshot_of(people());
        assert_eq!(snapshot.user_named("user_alice"), Some("user_alice"));
        assert_eq!(snapshot.user_named("alice@example.com"), Some("user_alice"));
        assert_eq!(snapshot.user_named("bob@example.com"), Some("user_bob"));
        assert_eq!(
            snapshot.username_of("user_alice"),
            Some("alice@example.com")
        );
        assert_eq!(snapshot.username_of("user_bob"), Some("bob@example.com"));
        // Exactly: no case folding, no trimming.
        assert_eq!(snapshot.user_named("Alice@example.com"), None);
        assert_eq!(snapshot.user_named("nobody"), None);
        assert_eq!(snapshot.username_of("user_nobody"), None);
    }

    #[test]
    fn a_renamed_user_is_found_by_the_new_name_only() {
        let mut snapshot = snapshot_of(people());
        let before = snapshot.clone();
        snapshot.apply_all([user("user_alice", "active", Some("alice.new"))]);
        assert_eq!(snapshot.user_named("alice@example.com"), None);
        assert_eq!(snapshot.user_named("alice.new"), Some("user_alice"));
        assert_eq!(snapshot.username_of("user_alice"), Some("alice.new"));
        // The snapshot published before keeps its view.
        assert_eq!(before.user_named("alice@example.com"), Some("user_alice"));
        assert_eq!(before.user_named("alice.new"), None);
        // Bob takes Alice's old name: it names him.
        snapshot.apply_all([user("user_bob", "disabled", Some("alice@example.com"))]);
        assert_eq!(snapshot.user_named("alice@example.com"), Some("user_bob"));
        assert_eq!(snapshot.user_named("bob@example.com"), None);
        // A fact without a username (written before users carried one) leaves the user none.
        snapshot.apply_all([user("user_alice", "active", None)]);
        assert_eq!(snapshot.user_named("alice.new"), None);
        assert_eq!(snapshot.username_of("user_alice"), None);
        assert_eq!(snapshot.user_named("user_alice"), Some("user_alice"));
    }

    #[test]
    fn a_rename_gives_up_the_old_name_only_while_it_still_names_the_user() {
        // Bob took the name before Alice's rename reached the index (facts of one change may
        // come in any order): Alice's rename must not take it from him.
        let mut snapshot = snapshot_of(people());
        snapshot.apply_all([
            user("user_bob", "disabled", Some("alice@example.com")),
            user("user_alice", "active", Some("alice.new")),
        ]);
        assert_eq!(snapshot.user_named("alice@example.com"), Some("user_bob"));
        assert_eq!(snapshot.user_named("alice.new"), Some("user_alice"));
    }

    #[test]
    fn an_id_wins_over_another_users_equal_username() {
        let mut facts = people();
        facts.push(user("user_carol", "active", Some("user_alice")));
        let snapshot = snapshot_of(facts);
        assert_eq!(snapshot.user_named("user_alice"), Some("user_alice"));
        assert_eq!(snapshot.username_of("user_carol"), Some("user_alice"));
        // An ID named only by a binding (no user fact yet) is no user: the username is.
        let mut facts = people();
        facts.push(Fact::UserMember {
            id: "um_ghost".into(),
            user_id: "user_ghost".into(),
            member_id: "member_fr".into(),
            status: "active".into(),
            expires_at: None,
        });
        facts.push(user("user_dave", "active", Some("user_ghost")));
        let snapshot = snapshot_of(facts);
        assert_eq!(snapshot.user_named("user_ghost"), Some("user_dave"));
    }

    #[test]
    fn a_users_bindings_come_in_id_order_with_their_usability() {
        let snapshot = snapshot_of(people());
        let views = snapshot.user_bindings("user_alice", BEFORE);
        let ids: Vec<&str> = views.iter().map(|v| v.id).collect();
        assert_eq!(
            ids,
            ["um_a_alice", "um_b_alice", "um_c_alice", "um_d_alice"]
        );
        let usable: Vec<bool> = views.iter().map(|v| v.usable).collect();
        // Revoked; active until 2030; active; a member the index does not know.
        assert_eq!(usable, [false, true, true, false]);
        assert_eq!(
            views[1],
            BindingView {
                id: "um_b_alice",
                user_id: "user_alice",
                member_id: "member_clerk",
                space_id: Some("space_acme"),
                usable: true,
            }
        );
        assert_eq!(views[3].space_id, None);
        // Expired once its time has passed.
        let later = snapshot.user_bindings("user_alice", AFTER);
        assert!(!later[1].usable);
        assert!(later[2].usable);
        assert!(snapshot.user_bindings("user_nobody", BEFORE).is_empty());
    }

    #[test]
    fn a_members_bindings_come_in_id_order_and_a_disabled_user_makes_one_unusable() {
        let snapshot = snapshot_of(people());
        let views = snapshot.member_bindings("member_fr", BEFORE);
        let seen: Vec<(&str, &str, bool)> =
            views.iter().map(|v| (v.id, v.user_id, v.usable)).collect();
        assert_eq!(
            seen,
            [
                ("um_bob", "user_bob", false),
                ("um_c_alice", "user_alice", true)
            ]
        );
        assert!(snapshot.member_bindings("member_nobody", BEFORE).is_empty());
    }

    #[test]
    fn a_binding_view_follows_its_user_member_and_binding() {
        let mut snapshot = snapshot_of(people());
        let usable = |s: &Snapshot, id: &str| s.binding_view(id, BEFORE).map(|v| v.usable);
        assert_eq!(usable(&snapshot, "um_c_alice"), Some(true));
        assert_eq!(usable(&snapshot, "um_a_alice"), Some(false));
        assert_eq!(usable(&snapshot, "um_nobody"), None);
        // Expiry is the engine's: expired at the instant itself.
        let expiry = 1_893_456_000;
        assert_eq!(
            snapshot
                .binding_view("um_b_alice", expiry - 1)
                .map(|v| v.usable),
            Some(true)
        );
        assert_eq!(
            snapshot
                .binding_view("um_b_alice", expiry)
                .map(|v| v.usable),
            Some(false)
        );
        snapshot.apply_all([user("user_alice", "disabled", Some("alice@example.com"))]);
        assert_eq!(usable(&snapshot, "um_c_alice"), Some(false));
        snapshot.apply_all([user("user_alice", "active", Some("alice@example.com"))]);
        assert_eq!(usable(&snapshot, "um_c_alice"), Some(true));
        snapshot.apply_all([Fact::<String>::Member {
            id: "member_fr".into(),
            space_id: "space_acme".into(),
            status: "disabled".into(),
            metadata: None,
        }]);
        assert_eq!(usable(&snapshot, "um_c_alice"), Some(false));
        // The space is not judged: a disabled space leaves the binding usable.
        let mut snapshot = snapshot_of(people());
        snapshot.apply_all([Fact::<String>::Space {
            id: "space_acme".into(),
            status: "disabled".into(),
        }]);
        assert_eq!(usable(&snapshot, "um_c_alice"), Some(true));
        // A binding moved to another user is listed under the new one only.
        snapshot.apply_all([Fact::<String>::UserMember {
            id: "um_c_alice".into(),
            user_id: "user_bob".into(),
            member_id: "member_fr".into(),
            status: "active".into(),
            expires_at: None,
        }]);
        let ids = |views: Vec<BindingView<'_>>| -> Vec<String> {
            views.iter().map(|v| v.id.to_owned()).collect()
        };
        assert_eq!(
            ids(snapshot.user_bindings("user_bob", BEFORE)),
            ["um_bob", "um_c_alice"]
        );
        assert!(
            !ids(snapshot.user_bindings("user_alice", BEFORE)).contains(&"um_c_alice".to_owned())
        );
        assert_eq!(usable(&snapshot, "um_c_alice"), Some(false));
    }

    fn resource(type_key: &str, id: &str, external_id: &str) -> Fact {
        Fact::Resource(ResourceFact {
            resource_type: type_key.into(),
            id: id.into(),
            external_id: external_id.into(),
            space_id: "space_acme".into(),
            group_id: None,
            owner_member_id: None,
            status: "active".into(),
            metadata: None,
            visibility: None,
        })
    }

    fn registry() -> Vec<Fact> {
        let mut facts = vec![
            Fact::ResourceType {
                id: "rt_invoice".into(),
                key: "invoice".into(),
                status: "active".into(),
            },
            Fact::ResourceType {
                id: "rt_contract".into(),
                key: "contract".into(),
                status: "disabled".into(),
            },
        ];
        facts.extend([
            resource("invoice", "invoice_001", "INV-1"),
            // Registered without an external ID: the registry stores the ID.
            resource("invoice", "invoice_002", "invoice_002"),
            // Two resources (in any spaces) share one external ID.
            resource("invoice", "invoice_003", "INV-SHARED"),
            resource("invoice", "invoice_004", "INV-SHARED"),
            // An external ID that is another resource's ID.
            resource("invoice", "invoice_005", "invoice_001"),
            resource("invoice", "invoice_006", ""),
            // The same external ID in another type does not count.
            resource("contract", "contract_001", "INV-1"),
            resource("contract", "contract_002", "C-2"),
        ]);
        facts
    }

    #[test]
    fn a_resource_is_named_by_its_external_id_when_that_names_it_alone() {
        let mut snapshot = snapshot_of(registry());
        let name = |s: &Snapshot, id: &str| s.resource_name("invoice", id).map(str::to_owned);
        assert_eq!(name(&snapshot, "invoice_001").as_deref(), Some("INV-1"));
        assert_eq!(
            snapshot.resource_name("rt_invoice", "invoice_001"),
            Some("INV-1")
        );
        assert_eq!(
            name(&snapshot, "invoice_002").as_deref(),
            Some("invoice_002")
        );
        assert_eq!(
            name(&snapshot, "invoice_003").as_deref(),
            Some("invoice_003")
        );
        assert_eq!(
            name(&snapshot, "invoice_004").as_deref(),
            Some("invoice_004")
        );
        assert_eq!(
            name(&snapshot, "invoice_005").as_deref(),
            Some("invoice_005")
        );
        assert_eq!(
            name(&snapshot, "invoice_006").as_deref(),
            Some("invoice_006")
        );
        // Whatever the type's status.
        assert_eq!(
            snapshot.resource_name("contract", "contract_001"),
            Some("INV-1")
        );
        assert_eq!(
            snapshot.resource_name("rt_contract", "contract_002"),
            Some("C-2")
        );
        // Unknown: resource, type, or a resource named by its external ID.
        assert_eq!(name(&snapshot, "invoice_999"), None);
        assert_eq!(snapshot.resource_name("receipt", "invoice_001"), None);
        assert_eq!(name(&snapshot, "INV-1"), None);
        // Once one of the sharers moves to another external ID, the other names itself by it.
        snapshot.apply_all([resource("invoice", "invoice_004", "INV-4")]);
        assert_eq!(
            name(&snapshot, "invoice_003").as_deref(),
            Some("INV-SHARED")
        );
        assert_eq!(name(&snapshot, "invoice_004").as_deref(), Some("INV-4"));
    }

    #[test]
    fn a_resources_name_finds_it_again_as_a_check_does() {
        let snapshot = snapshot_of(registry());
        for id in [
            "invoice_001",
            "invoice_002",
            "invoice_003",
            "invoice_004",
            "invoice_005",
            "invoice_006",
        ] {
            let type_key = snapshot.named_type("invoice").map(|t| t.key).unwrap();
            let name = snapshot.resource_name("invoice", id).unwrap();
            let n = snapshot.resource_by_id(type_key, id).unwrap();
            let (at, found) = snapshot.resource(type_key, name).unwrap();
            assert_eq!(at, n, "{id}");
            assert!(
                std::ptr::eq(found, snapshot.resources.get(n).unwrap()),
                "{id}"
            );
        }
    }
}
