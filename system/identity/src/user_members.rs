//! User-members: the bindings that let a user act as a member of a space. A binding's member (and
//! linking member) is in the binding's space; a binding is `active` until revoked (terminal) and
//! may expire.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::storage::sea_query::{
    Expr, ExprTrait, JoinType, Query, SelectStatement, Value,
};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::{Database, Transaction};
use plystra_contracts::{ApiError, Envelope, ErrorCode};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object};

use crate::ApiTag;
use crate::store::{
    Created, Ctx, JsonColumn, Lifecycle, MEMBERS, Metadata, USER_MEMBERS, USERS, a, entity_id,
    from_rows, keyword, metadata_in, metadata_out, now, status_change,
};
use plystra_contracts::entity::{self, AuditedInSpace, InSpace, Stored};

/// A binding's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "UserMemberStatus")]
pub enum BindingStatus {
    /// The user may act as the member (unless `expires_at` has passed).
    Active,
    /// Ended for good.
    Revoked,
}

impl Lifecycle for BindingStatus {
    const ALL: &'static [(Self, &'static str)] =
        &[(Self::Active, "active"), (Self::Revoked, "revoked")];
    const UNKNOWN: Self = Self::Revoked;
}

const MOVES: &[(BindingStatus, BindingStatus)] = &[(BindingStatus::Active, BindingStatus::Revoked)];

/// A user-member binding.
#[derive(Debug, Clone, Object)]
#[oai(rename = "UserMember")]
pub struct UserMember {
    /// The binding's ID (`um_…`).
    pub id: String,
    /// The space of the member.
    pub space_id: String,
    /// The user.
    pub user_id: String,
    /// The user's email.
    pub email: Option<String>,
    /// The member the user acts as.
    pub member_id: String,
    /// The member's display name.
    pub member_display_name: Option<String>,
    /// How the user relates to the member (for example `login`, `delegate`).
    pub relation_type: String,
    /// Whether this is the user's preferred binding at login.
    pub is_primary: bool,
    /// `active` or `revoked`.
    pub status: BindingStatus,
    /// When the link was made.
    pub linked_at: Option<OffsetDateTime>,
    /// The member (of the same space) who made the link.
    pub linked_by_member_id: Option<String>,
    /// When the binding stops working; absent for never.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the binding was created.
    pub created_at: OffsetDateTime,
    /// When the binding last changed.
    pub updated_at: OffsetDateTime,
    /// Always empty: bindings are revoked, not deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Stored for UserMember {
    const TABLE: &'static str = USER_MEMBERS;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "space_id",
        "user_id",
        "member_id",
        "relation_type",
        "is_primary",
        "status",
        "linked_at",
        "linked_by_member_id",
        "expires_at",
        "revoked_at",
        "revoked_reason",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
    ];
    const ENTITY: &'static str = "user-member";
    const NOT_FOUND: ErrorCode = ErrorCode::UserMemberNotFound;

    fn id(&self) -> &str {
        &self.id
    }

    fn select() -> SelectStatement {
        let mut select = Query::select();
        select
            .columns(Self::COLUMNS.iter().map(|c| (a(USER_MEMBERS), a(c))))
            .expr_as(Expr::col((a(USERS), a("email"))), a("email"))
            .expr_as(
                Expr::col((a(MEMBERS), a("display_name"))),
                a("member_display_name"),
            )
            .from(a(USER_MEMBERS))
            .join(
                JoinType::LeftJoin,
                a(USERS),
                Expr::col((a(USERS), a("id"))).equals((a(USER_MEMBERS), a("user_id"))),
            )
            .join(
                JoinType::LeftJoin,
                a(MEMBERS),
                Expr::col((a(MEMBERS), a("id"))).equals((a(USER_MEMBERS), a("member_id"))),
            );
        select
    }
}

impl InSpace for UserMember {
    fn space_id(&self) -> &str {
        &self.space_id
    }
}

from_rows!(UserMember, |row| {
    Ok(UserMember {
        id: row.try_get("id")?,
        space_id: row.try_get("space_id")?,
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        member_id: row.try_get("member_id")?,
        member_display_name: row.try_get("member_display_name")?,
        relation_type: row.try_get("relation_type")?,
        is_primary: row.try_get("is_primary")?,
        status: BindingStatus::parse(&row.try_get::<String, _>("status")?),
        linked_at: row.try_get("linked_at")?,
        linked_by_member_id: row.try_get("linked_by_member_id")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_reason: row.try_get("revoked_reason")?,
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl AuditedInSpace for UserMember {
    const RESOURCE_TYPE: &'static str = "user_member";

    /// Every field but the timestamps (none of them secret).
    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "space_id": self.space_id,
            "user_id": self.user_id,
            "member_id": self.member_id,
            "relation_type": self.relation_type,
            "is_primary": self.is_primary,
            "status": self.status.as_str(),
            "linked_by_member_id": self.linked_by_member_id,
            "expires_at": self.expires_at.map(|t| t.unix_timestamp()),
            "revoked_reason": self.revoked_reason,
            "metadata": self.metadata,
        })
    }
}

impl UserMember {
    /// Whether the binding works at `at`: active and not expired.
    pub(crate) fn usable_at(&self, at: OffsetDateTime) -> bool {
        self.status == BindingStatus::Active && self.expires_at.is_none_or(|e| e > at)
    }
}

/// Creates a binding.
#[derive(Debug, Clone, Object)]
#[oai(rename = "UserMemberCreateRequest")]
pub struct UserMemberCreateRequest {
    /// A caller-chosen ID (`um_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^um_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The user.
    pub user_id: String,
    /// The member, which must be in this space.
    pub member_id: String,
    /// How the user relates to the member (`^[a-z][a-z0-9_]*$`); `login` when absent.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub relation_type: Option<String>,
    /// Whether this is the user's preferred binding (default false).
    pub is_primary: Option<bool>,
    /// `active` (the default) or `revoked`.
    pub status: Option<BindingStatus>,
    /// When the link was made; now when absent.
    pub linked_at: Option<OffsetDateTime>,
    /// The member (of this space) making the link.
    pub linked_by_member_id: Option<String>,
    /// When the binding stops working.
    pub expires_at: Option<OffsetDateTime>,
    /// Why, when created revoked; blank means no reason.
    #[oai(validator(max_length = 500))]
    pub revoked_reason: Option<String>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

/// Changes a binding. The user and member never change: sending a different value contradicts the
/// binding (409 `CONFLICT` naming the field).
#[derive(Debug, Clone, Object)]
#[oai(rename = "UserMemberUpdateRequest")]
pub struct UserMemberUpdateRequest {
    /// A new relation.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub relation_type: Option<String>,
    /// A new primary flag.
    pub is_primary: Option<bool>,
    /// A new expiry; `null` removes it.
    pub expires_at: MaybeUndefined<OffsetDateTime>,
    /// `revoked` revokes (409 when already revoked; a revoked binding never becomes active).
    pub status: Option<BindingStatus>,
    /// Why it is revoked; blank means no reason (a reason already stored is kept).
    #[oai(validator(max_length = 500))]
    pub revoked_reason: Option<String>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
    /// Immutable; accepted only when unchanged.
    pub user_id: Option<String>,
    /// Immutable; accepted only when unchanged.
    pub member_id: Option<String>,
}

/// Revokes a binding.
#[derive(Debug, Clone, Object)]
#[oai(rename = "UserMemberRevokeRequest")]
pub struct UserMemberRevokeRequest {
    /// Why it is revoked; blank means no reason (a reason already stored is kept).
    #[oai(validator(max_length = 500))]
    pub revoked_reason: Option<String>,
}

/// A `revoked_reason` as stored: trimmed, and a blank one means none (the reason is optional).
/// It is free text, so tab and line breaks pass; other control characters never reach here.
fn revoked_reason(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
}

/// Every binding of `user_id`, by ID.
pub(crate) async fn of_user(db: &Database, user_id: &str) -> Result<Vec<UserMember>, ApiError> {
    let mut q = UserMember::select();
    q.and_where(Expr::col((a(USER_MEMBERS), a("user_id"))).eq(user_id))
        .order_by(
            (a(USER_MEMBERS), a("id")),
            plystra_contracts::storage::sea_query::Order::Asc,
        );
    Ok(db.fetch_all(&q).await?)
}

/// A validated new binding.
pub(crate) struct NewBinding {
    pub(crate) id: String,
    pub(crate) space_id: String,
    pub(crate) user_id: String,
    pub(crate) member_id: String,
    pub(crate) relation_type: String,
    pub(crate) is_primary: bool,
    pub(crate) status: BindingStatus,
    pub(crate) linked_at: Option<OffsetDateTime>,
    pub(crate) linked_by_member_id: Option<String>,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) revoked_reason: Option<String>,
    pub(crate) metadata: Option<Metadata>,
}

impl NewBinding {
    pub(crate) fn validate(
        space_id: String,
        body: UserMemberCreateRequest,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            id: entity_id("um_", body.id.as_deref())?,
            space_id,
            user_id: body.user_id,
            member_id: body.member_id,
            relation_type: keyword(
                "relation_type",
                body.relation_type.as_deref().unwrap_or("login"),
            )?,
            is_primary: body.is_primary.unwrap_or(false),
            status: body.status.unwrap_or(BindingStatus::Active),
            linked_at: body.linked_at,
            linked_by_member_id: body.linked_by_member_id,
            expires_at: body.expires_at,
            revoked_reason: revoked_reason(body.revoked_reason.as_deref()),
            metadata: body.metadata,
        })
    }

    /// Inserts inside `tx` after checking the same-space rules, and returns the binding.
    pub(crate) async fn insert(self, tx: &mut Transaction) -> Result<UserMember, ApiError> {
        entity::require::<crate::spaces::Space>(&mut *tx, &self.space_id).await?;
        if entity::get::<crate::users::User>(&mut *tx, &self.user_id)
            .await?
            .is_none()
        {
            return Err(
                crate::users::User::not_found(&self.user_id).with_detail("field", "user_id")
            );
        }
        match entity::get::<crate::members::Member>(&mut *tx, &self.member_id).await? {
            None => {
                return Err(ApiError::not_found(
                    ErrorCode::MemberNotFound,
                    "member",
                    &self.member_id,
                )
                .with_detail("field", "member_id"));
            }
            // A member of another space is no member of this one.
            Some(m) if m.space_id != self.space_id => {
                return Err(ApiError::not_found(
                    ErrorCode::MemberNotFound,
                    "member of this space",
                    &self.member_id,
                )
                .with_detail("field", "member_id"));
            }
            Some(_) => {}
        }
        if let Some(by) = &self.linked_by_member_id {
            match entity::get::<crate::members::Member>(&mut *tx, by).await? {
                Some(m) if m.space_id == self.space_id => {}
                _ => {
                    return Err(ApiError::not_found(
                        ErrorCode::MemberNotFound,
                        "member of this space",
                        by,
                    )
                    .with_detail("field", "linked_by_member_id"));
                }
            }
        }
        if entity::get::<UserMember>(&mut *tx, &self.id)
            .await?
            .is_some()
        {
            return Err(
                ApiError::new(ErrorCode::Conflict, "a user-member with this ID exists")
                    .with_detail("field", "id"),
            );
        }
        let at = now();
        let revoked_at = (self.status == BindingStatus::Revoked).then_some(at);
        entity::insert(
            tx,
            USER_MEMBERS,
            vec![
                ("id", self.id.clone().into()),
                ("space_id", self.space_id.into()),
                ("user_id", self.user_id.into()),
                ("member_id", self.member_id.into()),
                ("relation_type", self.relation_type.into()),
                ("is_primary", self.is_primary.into()),
                ("status", self.status.as_str().into()),
                ("linked_at", Some(self.linked_at.unwrap_or(at)).into()),
                ("linked_by_member_id", self.linked_by_member_id.into()),
                ("expires_at", self.expires_at.into()),
                ("revoked_at", revoked_at.into()),
                ("revoked_reason", self.revoked_reason.into()),
                ("metadata", metadata_in(&self.metadata).into()),
                ("created_at", at.into()),
                ("updated_at", at.into()),
            ],
        )
        .await?;
        entity::require::<UserMember>(&mut *tx, &self.id).await
    }
}

/// The user-member routes.
pub struct UserMembersApi {
    pub(crate) ctx: Arc<Ctx>,
}

impl UserMembersApi {
    async fn change(
        &self,
        req: &poem::Request,
        space_id: &str,
        um_id: &str,
        action: &str,
        update: UserMemberUpdateRequest,
        strict: Option<BindingStatus>,
    ) -> Result<Json<Envelope<UserMember>>, ApiError> {
        let mut tx = self.ctx.begin().await?;
        entity::require::<crate::spaces::Space>(&mut tx, space_id).await?;
        let current = entity::require_in::<UserMember>(&mut tx, space_id, um_id).await?;
        for (field, sent, have) in [
            ("user_id", &update.user_id, &current.user_id),
            ("member_id", &update.member_id, &current.member_id),
        ] {
            if sent.as_ref().is_some_and(|s| s != have) {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("{field} is immutable; create a new binding instead"),
                )
                .with_detail("field", field));
            }
        }
        let mut sets: Vec<(&str, Value)> = Vec::new();
        let at = now();
        if let Some(to) =
            status_change("user-member", current.status, update.status, strict, MOVES)?
        {
            sets.push(("status", to.as_str().into()));
            sets.push(("revoked_at", Some(at).into()));
        }
        if let Some(r) = revoked_reason(update.revoked_reason.as_deref()) {
            sets.push(("revoked_reason", Some(r).into()));
        }
        if let Some(r) = &update.relation_type {
            sets.push(("relation_type", keyword("relation_type", r)?.into()));
        }
        if let Some(p) = update.is_primary {
            sets.push(("is_primary", p.into()));
        }
        match update.expires_at {
            MaybeUndefined::Value(e) => sets.push(("expires_at", Some(e).into())),
            MaybeUndefined::Null => {
                sets.push(("expires_at", Option::<OffsetDateTime>::None.into()))
            }
            MaybeUndefined::Undefined => {}
        }
        if update.metadata.is_some() {
            sets.push(("metadata", metadata_in(&update.metadata).into()));
        }
        sets.push(("updated_at", at.into()));
        self.ctx.commit_update(tx, req, action, um_id, sets).await
    }
}

crate::space_scoped::space_scoped_routes! {
    impl UserMembersApi for UserMember, tag "ApiTag::UserMembers",
        id user_member_id "The binding's ID.";
    /// Lists a space's user-member bindings by ID, a page at a time.
    list "listUserMembers" at "/api/v1/spaces/:space_id/user-members"
        "Bindings per page, 1-200 (default 50).";
    /// Reads one binding of a space.
    get "getUserMember" at "/api/v1/spaces/:space_id/user-members/:user_member_id";
    /// Changes a binding's relation, primary flag, expiry, metadata, or revokes it.
    update "updateUserMember" with UserMemberUpdateRequest as "user_members.update";
    /// Reads one binding by ID, whatever its space.
    get_by_id "getUserMemberByID" at "/api/v1/user-members/:user_member_id";
    routes {
        /// Binds a user to a member of this space.
        #[oai(
            path = "/api/v1/spaces/:space_id/user-members",
            method = "post",
            operation_id = "createUserMember"
        )]
        async fn create(
            &self,
            req: &poem::Request,
            /// The space's ID.
            space_id: Path<String>,
            body: JsonBody<UserMemberCreateRequest>,
        ) -> Result<Created<UserMember>, ApiError> {
            let new = NewBinding::validate(space_id.0.clone(), body.0)?;
            let mut tx = self.ctx.begin().await?;
            let binding = new.insert(&mut tx).await?;
            self.ctx
                .commit_change(tx, req, "user_members.create", &binding)
                .await?;
            Ok(Created::new(binding))
        }

        /// Revokes an active binding for good. 409 when already revoked.
        #[oai(
            path = "/api/v1/spaces/:space_id/user-members/:user_member_id/revoke",
            method = "post",
            operation_id = "revokeUserMember"
        )]
        async fn revoke(
            &self,
            req: &poem::Request,
            /// The space's ID.
            space_id: Path<String>,
            /// The binding's ID.
            user_member_id: Path<String>,
            body: JsonBody<UserMemberRevokeRequest>,
        ) -> Result<Json<Envelope<UserMember>>, ApiError> {
            let update = UserMemberUpdateRequest {
                relation_type: None,
                is_primary: None,
                expires_at: MaybeUndefined::Undefined,
                status: None,
                revoked_reason: body.0.revoked_reason,
                metadata: None,
                user_id: None,
                member_id: None,
            };
            self.change(
                req,
                &space_id.0,
                &user_member_id.0,
                "user_members.revoke",
                update,
                Some(BindingStatus::Revoked),
            )
            .await
        }
    }
}
