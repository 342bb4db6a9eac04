//! Members: who acts inside a space. Users act as members through user-member bindings.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::storage::Transaction;
use plystra_contracts::storage::sea_query::Value;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode};
use poem_openapi::Object;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;

use crate::ApiTag;
use crate::store::{
    Created, Ctx, JsonColumn, Lifecycle, MEMBERS, Metadata, STATUS_MOVES, Status, entity_id,
    from_rows, keyword, metadata_in, metadata_out, now, status_change, text,
};
use plystra_contracts::entity::{self, AuditedInSpace, InSpace, Stored};

/// A member of a space.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Member")]
pub struct Member {
    /// The member's ID (`member_…`).
    pub id: String,
    /// The space the member belongs to.
    pub space_id: String,
    /// What kind of member this is (for example `human`, `service`).
    pub member_type: String,
    /// A name for people.
    pub display_name: String,
    /// `active` or `disabled`; authorization denies a disabled member.
    pub status: Status,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the member was created.
    pub created_at: OffsetDateTime,
    /// When the member last changed.
    pub updated_at: OffsetDateTime,
    /// Always empty: members are disabled, not deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Stored for Member {
    const TABLE: &'static str = MEMBERS;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "space_id",
        "member_type",
        "display_name",
        "status",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
    ];
    const ENTITY: &'static str = "member";
    const NOT_FOUND: ErrorCode = ErrorCode::MemberNotFound;

    fn id(&self) -> &str {
        &self.id
    }
}

impl InSpace for Member {
    fn space_id(&self) -> &str {
        &self.space_id
    }
}

from_rows!(Member, |row| {
    Ok(Member {
        id: row.try_get("id")?,
        space_id: row.try_get("space_id")?,
        member_type: row.try_get("member_type")?,
        display_name: row.try_get("display_name")?,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl AuditedInSpace for Member {
    const RESOURCE_TYPE: &'static str = "member";

    /// Every field but the timestamps (none of them secret).
    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "space_id": self.space_id,
            "member_type": self.member_type,
            "display_name": self.display_name,
            "status": self.status.as_str(),
            "metadata": self.metadata,
        })
    }
}

/// Creates a member.
#[derive(Debug, Clone, Object)]
#[oai(rename = "MemberCreateRequest")]
pub struct MemberCreateRequest {
    /// A caller-chosen ID (`member_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^member_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// A name for people, at most 200 characters and not blank.
    #[oai(validator(max_length = 200))]
    pub display_name: NotBlank,
    /// The kind of member (`^[a-z][a-z0-9_]*$`); `human` when absent.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub member_type: Option<String>,
    /// `active` (the default) or `disabled`.
    pub status: Option<Status>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

/// Changes a member. Absent fields keep their value.
#[derive(Debug, Clone, Object, Default)]
#[oai(rename = "MemberUpdateRequest")]
pub struct MemberUpdateRequest {
    /// A new name for people, at most 200 characters and not blank.
    #[oai(validator(max_length = 200))]
    pub display_name: Option<NotBlank>,
    /// A new kind.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub member_type: Option<String>,
    /// A new status; the move must be allowed (409 otherwise).
    pub status: Option<Status>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
}

/// A validated new member.
pub(crate) struct NewMember {
    pub(crate) id: String,
    pub(crate) space_id: String,
    pub(crate) display_name: String,
    pub(crate) member_type: String,
    pub(crate) status: Status,
    pub(crate) metadata: Option<Metadata>,
}

impl NewMember {
    pub(crate) fn validate(space_id: String, body: MemberCreateRequest) -> Result<Self, ApiError> {
        Ok(Self {
            id: entity_id("member_", body.id.as_deref())?,
            space_id,
            display_name: text("display_name", &body.display_name, 200)?,
            member_type: keyword(
                "member_type",
                body.member_type.as_deref().unwrap_or("human"),
            )?,
            status: body.status.unwrap_or(Status::Active),
            metadata: body.metadata,
        })
    }

    /// Inserts inside `tx` (the space must exist) and returns the member.
    pub(crate) async fn insert(self, tx: &mut Transaction) -> Result<Member, ApiError> {
        entity::require::<crate::spaces::Space>(&mut *tx, &self.space_id).await?;
        if entity::get::<Member>(&mut *tx, &self.id).await?.is_some() {
            return Err(
                ApiError::new(ErrorCode::Conflict, "a member with this ID exists")
                    .with_detail("field", "id"),
            );
        }
        let at = now();
        entity::insert(
            tx,
            MEMBERS,
            vec![
                ("id", self.id.clone().into()),
                ("space_id", self.space_id.into()),
                ("member_type", self.member_type.into()),
                ("display_name", self.display_name.into()),
                ("status", self.status.as_str().into()),
                ("metadata", metadata_in(&self.metadata).into()),
                ("created_at", at.into()),
                ("updated_at", at.into()),
            ],
        )
        .await?;
        entity::require::<Member>(&mut *tx, &self.id).await
    }
}

/// The member routes.
pub struct MembersApi {
    pub(crate) ctx: Arc<Ctx>,
}

impl MembersApi {
    async fn change(
        &self,
        req: &poem::Request,
        space_id: &str,
        member_id: &str,
        action: &str,
        update: MemberUpdateRequest,
        strict: Option<Status>,
    ) -> Result<Json<Envelope<Member>>, ApiError> {
        let mut tx = self.ctx.begin().await?;
        entity::require::<crate::spaces::Space>(&mut tx, space_id).await?;
        let current = entity::require_in::<Member>(&mut tx, space_id, member_id).await?;
        let mut sets: Vec<(&str, Value)> = Vec::new();
        if let Some(to) = status_change(
            "member",
            current.status,
            update.status,
            strict,
            STATUS_MOVES,
        )? {
            sets.push(("status", to.as_str().into()));
        }
        if let Some(d) = &update.display_name {
            sets.push(("display_name", text("display_name", d, 200)?.into()));
        }
        if let Some(t) = &update.member_type {
            sets.push(("member_type", keyword("member_type", t)?.into()));
        }
        if update.metadata.is_some() {
            sets.push(("metadata", metadata_in(&update.metadata).into()));
        }
        sets.push(("updated_at", now().into()));
        self.ctx
            .commit_update(tx, req, action, member_id, sets)
            .await
    }
}

crate::space_scoped::space_scoped_routes! {
    impl MembersApi for Member, tag "ApiTag::Members", id member_id "The member's ID.";
    /// Lists a space's members by ID, a page at a time.
    list "listMembers" at "/api/v1/spaces/:space_id/members"
        "Members per page, 1-200 (default 50).";
    /// Reads one member of a space.
    get "getMember" at "/api/v1/spaces/:space_id/members/:member_id";
    /// Changes a member's display name, kind, status or metadata.
    update "updateMember" with MemberUpdateRequest as "members.update";
    /// Reads one member by ID, whatever its space.
    get_by_id "getMemberByID" at "/api/v1/members/:member_id";
    /// Disables an active member. 409 when already disabled.
    disable "disableMember" at "/api/v1/spaces/:space_id/members/:member_id/disable"
        as "members.disable";
    routes {
        /// Creates a member in a space.
        #[oai(
            path = "/api/v1/spaces/:space_id/members",
            method = "post",
            operation_id = "createMember"
        )]
        async fn create(
            &self,
            req: &poem::Request,
            /// The space's ID.
            space_id: Path<String>,
            body: JsonBody<MemberCreateRequest>,
        ) -> Result<Created<Member>, ApiError> {
            let new = NewMember::validate(space_id.0.clone(), body.0)?;
            let mut tx = self.ctx.begin().await?;
            let member = new.insert(&mut tx).await?;
            self.ctx
                .commit_change(tx, req, "members.create", &member)
                .await?;
            Ok(Created::new(member))
        }
    }
}
