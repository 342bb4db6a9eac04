//! Spaces: the tenants that isolate groups, members and their bindings. Slugs are unique.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::entity::{self, Audited, Stored, conflict};
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::storage::Transaction;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query, Value};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::ApiTag;
use crate::store::{
    Created, Ctx, JsonColumn, KeyPage, Lifecycle, Metadata, SPACES, STATUS_MOVES, Status, a,
    entity_id, from_rows, keyword, metadata_in, metadata_out, now, status_change, text,
};

/// A space.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Space")]
pub struct Space {
    /// The space's ID (`space_…`).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// A unique URL-safe name (`a-z`, `0-9`, `-`).
    pub slug: String,
    /// What kind of space this is (for example `team`).
    #[oai(rename = "type")]
    pub space_type: String,
    /// `active` or `disabled`; authorization denies actors of a disabled space.
    pub status: Status,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the space was created.
    pub created_at: OffsetDateTime,
    /// When the space last changed.
    pub updated_at: OffsetDateTime,
    /// Always empty: spaces are disabled, not deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Stored for Space {
    const TABLE: &'static str = SPACES;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "name",
        "slug",
        "type",
        "status",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
    ];
    const ENTITY: &'static str = "space";
    const NOT_FOUND: ErrorCode = ErrorCode::SpaceNotFound;

    fn id(&self) -> &str {
        &self.id
    }
}

from_rows!(Space, |row| {
    Ok(Space {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        space_type: row.try_get("type")?,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl Audited for Space {
    const RESOURCE_TYPE: &'static str = "space";

    fn audit_space(&self) -> Option<&str> {
        Some(&self.id)
    }

    /// Every field but the timestamps (none of them secret).
    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "type": self.space_type,
            "status": self.status.as_str(),
            "metadata": self.metadata,
        })
    }
}

/// Creates a space.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SpaceCreateRequest")]
pub struct SpaceCreateRequest {
    /// A caller-chosen ID (`space_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^space_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// A name for people, at most 200 characters and not blank.
    #[oai(validator(max_length = 200))]
    pub name: NotBlank,
    /// A unique URL-safe name; derived from the name when absent.
    #[oai(validator(pattern = r"^[a-z0-9][a-z0-9-]*$", max_length = 64))]
    pub slug: Option<String>,
    /// The kind of space (`^[a-z][a-z0-9_]*$`); `team` when absent.
    #[oai(
        rename = "type",
        validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64)
    )]
    pub space_type: Option<String>,
    /// `active` (the default) or `disabled`.
    pub status: Option<Status>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

/// Changes a space. Absent fields keep their value.
#[derive(Debug, Clone, Object, Default)]
#[oai(rename = "SpaceUpdateRequest")]
pub struct SpaceUpdateRequest {
    /// A new name, at most 200 characters and not blank.
    #[oai(validator(max_length = 200))]
    pub name: Option<NotBlank>,
    /// A new unique slug.
    #[oai(validator(pattern = r"^[a-z0-9][a-z0-9-]*$", max_length = 64))]
    pub slug: Option<String>,
    /// A new kind.
    #[oai(
        rename = "type",
        validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64)
    )]
    pub space_type: Option<String>,
    /// A new status; the move must be allowed (409 otherwise).
    pub status: Option<Status>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
}

fn slug(value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid_field(
            "slug",
            "must be 1-64 characters of a-z, 0-9 and -, not starting with -",
        ))
    }
}

fn slug_from(name: &str, id: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(64).collect();
    if out.is_empty() {
        id.replace('_', "-")
    } else {
        out
    }
}

async fn slug_taken(tx: &mut Transaction, slug: &str, except: &str) -> Result<bool, ApiError> {
    let mut q = Query::select();
    q.column(a("id"))
        .from(a(SPACES))
        .and_where(Expr::col(a("slug")).eq(slug))
        .and_where(Expr::col(a("id")).ne(except));
    Ok(tx.fetch_optional::<(String,), _>(&q).await?.is_some())
}

fn slug_conflict() -> ApiError {
    conflict("another space already has this slug", "slug")
}

/// The space routes.
pub struct SpacesApi {
    pub(crate) ctx: Arc<Ctx>,
}

impl SpacesApi {
    async fn change(
        &self,
        req: &poem::Request,
        space_id: &str,
        action: &str,
        update: SpaceUpdateRequest,
        strict: Option<Status>,
    ) -> Result<Json<Envelope<Space>>, ApiError> {
        let mut tx = self.ctx.begin().await?;
        let current: Space = entity::require(&mut tx, space_id).await?;
        let mut sets: Vec<(&str, Value)> = Vec::new();
        if let Some(to) =
            status_change("space", current.status, update.status, strict, STATUS_MOVES)?
        {
            sets.push(("status", to.as_str().into()));
        }
        if let Some(n) = &update.name {
            sets.push(("name", text("name", n, 200)?.into()));
        }
        if let Some(s) = &update.slug {
            let s = slug(s)?;
            if s != current.slug {
                if slug_taken(&mut tx, &s, space_id).await? {
                    return Err(slug_conflict());
                }
                sets.push(("slug", s.into()));
            }
        }
        if let Some(t) = &update.space_type {
            sets.push(("type", keyword("type", t)?.into()));
        }
        if update.metadata.is_some() {
            sets.push(("metadata", metadata_in(&update.metadata).into()));
        }
        sets.push(("updated_at", now().into()));
        self.ctx
            .commit_update(tx, req, action, space_id, sets)
            .await
    }
}

#[OpenApi(tag = "ApiTag::Spaces")]
impl SpacesApi {
    /// Lists spaces by ID, a page at a time.
    #[oai(path = "/api/v1/spaces", method = "get", operation_id = "listSpaces")]
    async fn list(
        &self,
        /// Spaces per page, 1-200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: QueryParam<Option<i64>>,
        /// The `pagination.cursor` of the previous page.
        cursor: QueryParam<Option<String>>,
    ) -> Result<Json<ListEnvelope<Space>>, ApiError> {
        let page = KeyPage::parse(limit.0, cursor.0.as_deref())?;
        Ok(Json(
            entity::list(&self.ctx.db, Space::select(), &page).await?,
        ))
    }

    /// Creates a space.
    #[oai(path = "/api/v1/spaces", method = "post", operation_id = "createSpace")]
    async fn create(
        &self,
        req: &poem::Request,
        body: JsonBody<SpaceCreateRequest>,
    ) -> Result<Created<Space>, ApiError> {
        let body = body.0;
        let id = entity_id("space_", body.id.as_deref())?;
        let name = text("name", &body.name, 200)?;
        let slug = match &body.slug {
            Some(s) => slug(s)?,
            None => slug_from(&name, &id),
        };
        let space_type = keyword("type", body.space_type.as_deref().unwrap_or("team"))?;
        let mut tx = self.ctx.begin().await?;
        if entity::get::<Space>(&mut tx, &id).await?.is_some() {
            return Err(conflict("a space with this ID exists", "id"));
        }
        if slug_taken(&mut tx, &slug, &id).await? {
            return Err(slug_conflict());
        }
        let at = now();
        entity::insert(
            &mut tx,
            SPACES,
            vec![
                ("id", id.clone().into()),
                ("name", name.into()),
                ("slug", slug.into()),
                ("type", space_type.into()),
                (
                    "status",
                    body.status.unwrap_or(Status::Active).as_str().into(),
                ),
                ("metadata", metadata_in(&body.metadata).into()),
                ("created_at", at.into()),
                ("updated_at", at.into()),
            ],
        )
        .await?;
        let space: Space = entity::require(&mut tx, &id).await?;
        self.ctx
            .commit_change(tx, req, "spaces.create", &space)
            .await?;
        Ok(Created::new(space))
    }

    /// Reads one space.
    #[oai(
        path = "/api/v1/spaces/:space_id",
        method = "get",
        operation_id = "getSpace"
    )]
    async fn get(
        &self,
        /// The space's ID.
        space_id: Path<String>,
    ) -> Result<Json<Envelope<Space>>, ApiError> {
        Ok(Json(Envelope::new(
            entity::require::<Space>(&self.ctx.db, &space_id.0).await?,
        )))
    }

    /// Changes a space's name, slug, kind, status or metadata.
    #[oai(
        path = "/api/v1/spaces/:space_id",
        method = "patch",
        operation_id = "updateSpace"
    )]
    async fn update(
        &self,
        req: &poem::Request,
        /// The space's ID.
        space_id: Path<String>,
        body: JsonBody<SpaceUpdateRequest>,
    ) -> Result<Json<Envelope<Space>>, ApiError> {
        self.change(req, &space_id.0, "spaces.update", body.0, None)
            .await
    }

    /// Disables an active space. 409 when already disabled.
    #[oai(
        path = "/api/v1/spaces/:space_id/disable",
        method = "post",
        operation_id = "disableSpace"
    )]
    async fn disable(
        &self,
        req: &poem::Request,
        /// The space's ID.
        space_id: Path<String>,
    ) -> Result<Json<Envelope<Space>>, ApiError> {
        self.change(
            req,
            &space_id.0,
            "spaces.disable",
            SpaceUpdateRequest::default(),
            Some(Status::Disabled),
        )
        .await
    }

    /// Restores a disabled space. 409 when already active.
    #[oai(
        path = "/api/v1/spaces/:space_id/restore",
        method = "post",
        operation_id = "restoreSpace"
    )]
    async fn restore(
        &self,
        req: &poem::Request,
        /// The space's ID.
        space_id: Path<String>,
    ) -> Result<Json<Envelope<Space>>, ApiError> {
        self.change(
            req,
            &space_id.0,
            "spaces.restore",
            SpaceUpdateRequest::default(),
            Some(Status::Active),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_checked_and_derived() {
        assert!(slug("acme-2").is_ok());
        for bad in ["", "-x", "Acme", "a_b", "a b"] {
            assert!(slug(bad).is_err(), "{bad}");
        }
        assert_eq!(slug_from("Acme Corp.", "space_x"), "acme-corp");
        assert_eq!(slug_from("!!!", "space_x"), "space-x");
    }
}
