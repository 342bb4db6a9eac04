//! Groups: a tree per space. A group's path is its parent's path plus its name
//! (`finance.apac`), follows `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`, and never changes; a parent
//! is always in the same space.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::storage::Transaction;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Value};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode, ListEnvelope};
use poem_openapi::Object;
use poem_openapi::param::{Path, Query as QueryParam};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};

use crate::ApiTag;
use crate::store::{
    Created, Ctx, GROUPS, JsonColumn, KeyPage, Lifecycle, Metadata, STATUS_MOVES, Status, a,
    entity_id, from_rows, keyword, metadata_in, metadata_out, now, status_change, text,
};
use plystra_contracts::entity::{self, AuditedInSpace, InSpace, Stored};

/// The deepest a tree may go (segments in a path).
pub const MAX_DEPTH: usize = 32;

/// A group.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Group")]
pub struct Group {
    /// The group's ID (`group_…`).
    pub id: String,
    /// The space the group belongs to.
    pub space_id: String,
    /// The parent group, in the same space; absent for a root.
    pub parent_id: Option<String>,
    /// The same as `parent_id`.
    pub parent_group_id: Option<String>,
    /// The last segment of the path.
    pub name: String,
    /// A name for people.
    pub display_name: Option<String>,
    /// The full, immutable path: the parent's path, a dot, the name.
    pub path: String,
    /// 0 for a root, the parent's depth plus one otherwise.
    pub depth: i64,
    /// Ordering among siblings, ascending.
    pub sort_order: i64,
    /// `active` or `disabled`.
    pub status: Status,
    /// Free-form data the caller attached.
    pub metadata: Option<Metadata>,
    /// When the group was created.
    pub created_at: OffsetDateTime,
    /// When the group last changed.
    pub updated_at: OffsetDateTime,
    /// Always empty: groups are disabled, not deleted.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Stored for Group {
    const TABLE: &'static str = GROUPS;
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "space_id",
        "parent_id",
        "name",
        "display_name",
        "path",
        "depth",
        "sort_order",
        "status",
        "metadata",
        "created_at",
        "updated_at",
        "deleted_at",
    ];
    const ENTITY: &'static str = "group";
    const NOT_FOUND: ErrorCode = ErrorCode::GroupNotFound;

    fn id(&self) -> &str {
        &self.id
    }
}

impl InSpace for Group {
    fn space_id(&self) -> &str {
        &self.space_id
    }
}

from_rows!(Group, |row| {
    let parent_id: Option<String> = row.try_get("parent_id")?;
    Ok(Group {
        id: row.try_get("id")?,
        space_id: row.try_get("space_id")?,
        parent_group_id: parent_id.clone(),
        parent_id,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        path: row.try_get("path")?,
        depth: row.try_get("depth")?,
        sort_order: row.try_get("sort_order")?,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        metadata: metadata_out(row.try_get::<JsonColumn, _>("metadata")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
});

impl AuditedInSpace for Group {
    const RESOURCE_TYPE: &'static str = "group";

    /// Every field but the timestamps (none of them secret).
    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "space_id": self.space_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "display_name": self.display_name,
            "path": self.path,
            "depth": self.depth,
            "sort_order": self.sort_order,
            "status": self.status.as_str(),
            "metadata": self.metadata,
        })
    }
}

/// Creates a group. Give `name` (and a parent for a child), or the full `path` (its parent is
/// found by path), or both when they agree.
#[derive(Debug, Clone, Object)]
#[oai(rename = "GroupCreateRequest")]
pub struct GroupCreateRequest {
    /// A caller-chosen ID (`group_` then a-z, 0-9, _); generated when absent.
    #[oai(validator(pattern = r"^group_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The last path segment, `^[a-z][a-z0-9_]*$`.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub name: Option<String>,
    /// The full path; must equal the parent's path plus the name.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"))]
    pub path: Option<String>,
    /// The parent group, in the same space.
    pub parent_id: Option<String>,
    /// The same as `parent_id` (either may be used; when both name groups, they must name the
    /// same one: 409 `CONFLICT` otherwise).
    pub parent_group_id: Option<String>,
    /// A name for people, at most 200 characters and not blank.
    #[oai(validator(max_length = 200))]
    pub display_name: Option<NotBlank>,
    /// Ordering among siblings (default 0).
    pub sort_order: Option<i64>,
    /// `active` (the default) or `disabled`.
    pub status: Option<Status>,
    /// Free-form data.
    pub metadata: Option<Metadata>,
}

/// Changes a group's display fields. The name, path and parent never change: sending a different
/// value contradicts the group (409 `CONFLICT` naming the field).
#[derive(Debug, Clone, Object, Default)]
#[oai(rename = "GroupUpdateRequest")]
pub struct GroupUpdateRequest {
    /// A new name for people, at most 200 characters and not blank.
    #[oai(validator(max_length = 200))]
    pub display_name: Option<NotBlank>,
    /// A new sibling order.
    pub sort_order: Option<i64>,
    /// A new status; the move must be allowed (409 otherwise).
    pub status: Option<Status>,
    /// Replaces the metadata.
    pub metadata: Option<Metadata>,
    /// Immutable; accepted only when unchanged.
    pub name: Option<String>,
    /// Immutable; accepted only when unchanged.
    pub path: Option<String>,
    /// Immutable; accepted only when unchanged.
    pub parent_id: Option<String>,
    /// Immutable; accepted only when unchanged.
    pub parent_group_id: Option<String>,
}

/// A [`GroupCreateRequest`] as the route takes it: the same fields and parsing, and a schema that
/// also says that `name` or `path` is required (`anyOf`), which poem-openapi's derive cannot. The
/// handler refuses a request with neither, naming `name`.
#[derive(Debug, Clone)]
pub struct GroupCreateBody(pub GroupCreateRequest);

impl Type for GroupCreateBody {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        GroupCreateRequest::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        GroupCreateRequest::schema_ref()
    }

    fn register(registry: &mut Registry) {
        GroupCreateRequest::register(registry);
        if let Some(schema) = registry.schemas.get_mut("GroupCreateRequest") {
            schema.any_of = ["name", "path"]
                .into_iter()
                .map(|field| {
                    MetaSchemaRef::Inline(Box::new(MetaSchema {
                        required: vec![field],
                        properties: vec![(
                            field,
                            MetaSchemaRef::Inline(Box::new(MetaSchema::new("string"))),
                        )],
                        ..MetaSchema::ANY
                    }))
                })
                .collect();
        }
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromJSON for GroupCreateBody {
    fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
        GroupCreateRequest::parse_from_json(value)
            .map(Self)
            .map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl ToJSON for GroupCreateBody {
    fn to_json(&self) -> Option<serde_json::Value> {
        self.0.to_json()
    }
}

/// Whether `path` follows the group path pattern.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_lowercase())
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

async fn get_in(tx: &mut Transaction, space_id: &str, id: &str) -> Result<Option<Group>, ApiError> {
    let mut q = Group::select();
    q.and_where(Expr::col((a(GROUPS), a("id"))).eq(id))
        .and_where(Expr::col((a(GROUPS), a("space_id"))).eq(space_id));
    Ok(tx.fetch_optional(&q).await?)
}

async fn by_path(
    tx: &mut Transaction,
    space_id: &str,
    path: &str,
) -> Result<Option<Group>, ApiError> {
    let mut q = Group::select();
    q.and_where(Expr::col((a(GROUPS), a("path"))).eq(path))
        .and_where(Expr::col((a(GROUPS), a("space_id"))).eq(space_id));
    Ok(tx.fetch_optional(&q).await?)
}

/// The parent ID a request names through `parent_id` and/or `parent_group_id`; two different
/// groups contradict each other (409 `CONFLICT`, checked once both are known to exist).
fn parent_of(
    parent_id: &Option<String>,
    parent_group_id: &Option<String>,
) -> Result<Option<String>, ApiError> {
    match (parent_id, parent_group_id) {
        (Some(x), Some(y)) if x != y => Err(ApiError::new(
            ErrorCode::Conflict,
            "parent_group_id names another group than parent_id",
        )
        .with_detail("field", "parent_group_id")),
        (Some(x), _) | (None, Some(x)) => Ok(Some(x.clone())),
        (None, None) => Ok(None),
    }
}

/// The group routes.
pub struct GroupsApi {
    pub(crate) ctx: Arc<Ctx>,
}

impl GroupsApi {
    async fn change(
        &self,
        req: &poem::Request,
        space_id: &str,
        group_id: &str,
        action: &str,
        update: GroupUpdateRequest,
        strict: Option<Status>,
    ) -> Result<Json<Envelope<Group>>, ApiError> {
        let mut tx = self.ctx.begin().await?;
        entity::require::<crate::spaces::Space>(&mut tx, space_id).await?;
        let current = get_in(&mut tx, space_id, group_id)
            .await?
            .ok_or_else(|| Group::not_found(group_id))?;
        let immutable = |field: &str, sent: &Option<String>, have: Option<&str>| match sent {
            Some(v) if Some(v.as_str()) != have => Err(ApiError::new(
                ErrorCode::Conflict,
                format!("{field} is immutable; a group keeps its name, path and parent"),
            )
            .with_detail("field", field)),
            _ => Ok(()),
        };
        immutable("name", &update.name, Some(&current.name))?;
        immutable("path", &update.path, Some(&current.path))?;
        immutable("parent_id", &update.parent_id, current.parent_id.as_deref())?;
        immutable(
            "parent_group_id",
            &update.parent_group_id,
            current.parent_id.as_deref(),
        )?;
        let mut sets: Vec<(&str, Value)> = Vec::new();
        if let Some(to) =
            status_change("group", current.status, update.status, strict, STATUS_MOVES)?
        {
            sets.push(("status", to.as_str().into()));
        }
        if let Some(d) = &update.display_name {
            sets.push(("display_name", Some(text("display_name", d, 200)?).into()));
        }
        if let Some(o) = update.sort_order {
            sets.push(("sort_order", o.into()));
        }
        if update.metadata.is_some() {
            sets.push(("metadata", metadata_in(&update.metadata).into()));
        }
        sets.push(("updated_at", now().into()));
        self.ctx
            .commit_update(tx, req, action, group_id, sets)
            .await
    }

    /// One page of a space's groups in path order: a parent right before its descendants.
    async fn tree_page(
        &self,
        space_id: &str,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Json<ListEnvelope<Group>>, ApiError> {
        let page = KeyPage::parse(limit, cursor)?;
        entity::require::<crate::spaces::Space>(&self.ctx.db, space_id).await?;
        let mut q = Group::select();
        q.and_where(Expr::col((a(GROUPS), a("space_id"))).eq(space_id));
        page.apply(&mut q, GROUPS, "path");
        let rows: Vec<Group> = self.ctx.db.fetch_all(&q).await?;
        let (rows, pagination) = page.finish(rows, |g| g.path.clone());
        Ok(Json(ListEnvelope::new(rows, pagination)))
    }
}

crate::space_scoped::space_scoped_routes! {
    impl GroupsApi for Group, tag "ApiTag::Groups", id group_id "The group's ID.";
    /// Lists a space's groups by ID, a page at a time.
    list "listGroups" at "/api/v1/spaces/:space_id/groups"
        "Groups per page, 1-200 (default 50).";
    /// Reads one group of a space.
    get "getGroup" at "/api/v1/spaces/:space_id/groups/:group_id";
    /// Changes a group's display name, sibling order, status or metadata.
    update "updateGroup" with GroupUpdateRequest as "groups.update";
    /// Reads one group by ID, whatever its space.
    get_by_id "getGroupByID" at "/api/v1/groups/:group_id";
    /// Disables an active group. 409 when already disabled.
    disable "disableGroup" at "/api/v1/spaces/:space_id/groups/:group_id/disable"
        as "groups.disable";
    routes {
        /// A space's group tree, flattened in path order (a parent comes right before its
        /// descendants; `depth` gives the level), a page at a time.
        #[oai(
            path = "/api/v1/spaces/:space_id/groups/tree",
            method = "get",
            operation_id = "getGroupTree"
        )]
        async fn tree(
            &self,
            /// The space's ID.
            space_id: Path<String>,
            /// Groups per page, 1-200 (default 50).
            #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
            limit: QueryParam<Option<i64>>,
            /// The `pagination.cursor` of the previous page.
            cursor: QueryParam<Option<String>>,
        ) -> Result<Json<ListEnvelope<Group>>, ApiError> {
            self.tree_page(&space_id.0, limit.0, cursor.0.as_deref())
                .await
        }

        /// Creates a group in a space, as a root or under a parent of the same space.
        #[oai(
            path = "/api/v1/spaces/:space_id/groups",
            method = "post",
            operation_id = "createGroup"
        )]
        async fn create(
            &self,
            req: &poem::Request,
            /// The space's ID.
            space_id: Path<String>,
            body: JsonBody<GroupCreateBody>,
        ) -> Result<Created<Group>, ApiError> {
            let space_id = space_id.0;
            let body = body.0.0;
            let id = entity_id("group_", body.id.as_deref())?;
            if let Some(p) = &body.path
                && !valid_path(p)
            {
                return Err(ApiError::invalid_field(
                    "path",
                    r"must match ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
                ));
            }
            let name = match (&body.name, &body.path) {
                (Some(n), _) => keyword("name", n)?,
                (None, Some(p)) => p.rsplit('.').next().unwrap_or(p).to_owned(),
                (None, None) => {
                    return Err(ApiError::invalid_field(
                        "name",
                        "is required (or give the full path)",
                    ));
                }
            };
            let display_name = body
                .display_name
                .as_deref()
                .map(|d| text("display_name", d, 200))
                .transpose()?;
            let mut tx = self.ctx.begin().await?;
            entity::require::<crate::spaces::Space>(&mut tx, &space_id).await?;
            // A parent that names nothing is a 404 before two parents can disagree.
            for (field, named) in [
                ("parent_id", &body.parent_id),
                ("parent_group_id", &body.parent_group_id),
            ] {
                if let Some(id) = named
                    && get_in(&mut tx, &space_id, id).await?.is_none()
                {
                    return Err(Group::not_found(id).with_detail("field", field));
                }
            }
            let parent_id = parent_of(&body.parent_id, &body.parent_group_id)?;
            let parent = match (&parent_id, &body.path) {
                (Some(pid), _) => Some(
                    get_in(&mut tx, &space_id, pid)
                        .await?
                        .ok_or_else(|| Group::not_found(pid).with_detail("field", "parent_id"))?,
                ),
                (None, Some(p)) => match p.rsplit_once('.') {
                    Some((parent_path, _)) => Some(
                        by_path(&mut tx, &space_id, parent_path)
                            .await?
                            .ok_or_else(|| {
                                ApiError::new(
                                    ErrorCode::GroupNotFound,
                                    format!("no group of this space has the parent path {parent_path}"),
                                )
                                .with_detail("field", "path")
                            })?,
                    ),
                    None => None,
                },
                (None, None) => None,
            };
            let path = match &parent {
                Some(parent) => format!("{}.{name}", parent.path),
                None => name.clone(),
            };
            if let Some(p) = &body.path
                && *p != path
            {
                // Two fields of the body name different groups: a conflict, as two different
                // parents are (the document cannot state a relation between fields).
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("path: must be the parent's path plus the name: {path}"),
                )
                .with_detail("field", "path")
                .with_detail("expected_path", path));
            }
            let depth = path.split('.').count();
            if depth > MAX_DEPTH {
                return Err(ApiError::invalid_field(
                    "path",
                    format!("may have at most {MAX_DEPTH} segments"),
                ));
            }
            let mut any = Group::select();
            any.and_where(Expr::col((a(GROUPS), a("id"))).eq(id.as_str()));
            if tx.fetch_optional::<Group, _>(&any).await?.is_some() {
                return Err(
                    ApiError::new(ErrorCode::Conflict, "a group with this ID exists")
                        .with_detail("field", "id"),
                );
            }
            if by_path(&mut tx, &space_id, &path).await?.is_some() {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("this space already has a group at {path}"),
                )
                .with_detail("field", "path"));
            }
            let at = now();
            entity::insert(
                &mut tx,
                GROUPS,
                vec![
                    ("id", id.clone().into()),
                    ("space_id", space_id.clone().into()),
                    ("parent_id", parent.map(|p| p.id).into()),
                    ("name", name.into()),
                    ("display_name", display_name.into()),
                    ("path", path.into()),
                    ("depth", (depth as i64 - 1).into()),
                    ("sort_order", body.sort_order.unwrap_or(0).into()),
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
            let group = get_in(&mut tx, &space_id, &id)
                .await?
                .ok_or_else(|| Group::not_found(&id))?;
            self.ctx
                .commit_change(tx, req, "groups.create", &group)
                .await?;
            Ok(Created::new(group))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_pattern() {
        for ok in ["finance", "finance.apac", "a1_b.c2"] {
            assert!(valid_path(ok), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "Finance",
            "1a",
            "a-b",
            "finance.APAC",
        ] {
            assert!(!valid_path(bad), "{bad}");
        }
    }

    #[test]
    fn parent_aliases_must_agree() {
        let p = |x: &str| Some(x.to_owned());
        assert_eq!(parent_of(&p("g"), &None).unwrap(), p("g"));
        assert_eq!(parent_of(&None, &p("g")).unwrap(), p("g"));
        assert!(parent_of(&p("g"), &p("h")).is_err());
    }
}
