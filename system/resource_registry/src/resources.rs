//! Resources: registered records of a type, each in one space, optionally in a group of that
//! space and owned by a member of it. Created, changed and archived; never deleted.

use std::collections::BTreeMap;

use plystra_contracts::ids;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::pagination::PageRequest;
use plystra_contracts::services::Caller;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::{Database, Transaction};
use plystra_contracts::{ApiError, ErrorCode, Pagination};
use poem_openapi::Object;
use poem_openapi::registry::{MetaSchemaRef, Registry as SchemaRegistry};
use poem_openapi::types::{MaybeUndefined, ParseFromJSON, ParseResult, ToJSON, Type};

use crate::model::{RegistryEntryStatus, ResourceStatus, ResourceVisibility, now, rfc3339};
use crate::resource_types::{self, TypeRow};
use crate::store::{self, Change, Registry, col, name, table};
use crate::validation;

/// The prefix of generated resource IDs. Callers may supply their own IDs (`invoice_001`).
pub const ID_PREFIX: &str = "res_";
/// The longest external ID accepted.
pub const MAX_EXTERNAL_ID_LEN: usize = 255;

/// A registered resource.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct Resource {
    /// The resource's ID.
    pub id: String,
    /// The key of its resource type.
    pub resource_type: String,
    /// Its space.
    pub space_id: String,
    /// Its space's name, when the space still exists.
    pub space_name: Option<String>,
    /// The ID the application knows it by; unique per space and type.
    pub external_id: String,
    /// A name for people.
    pub display_name: Option<String>,
    /// Its group, in the same space.
    pub group_id: Option<String>,
    /// Its group's path (`finance.apac`), a snapshot of the group at read time.
    pub group_path: Option<String>,
    /// The member that owns it, in the same space.
    pub owner_member_id: Option<String>,
    /// The owner member's display name at read time.
    pub owner_member_display_name: Option<String>,
    /// Who may discover it.
    pub visibility: ResourceVisibility,
    /// Its lifecycle state.
    pub status: ResourceStatus,
    /// Free-form attributes.
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// When it was deleted (RFC 3339); archived resources keep this empty.
    pub deleted_at: Option<String>,
}

/// Registers a resource.
#[derive(Debug, Clone, Object)]
pub struct ResourceCreateRequest {
    /// The resource's ID: 1-120 characters of `[a-z0-9_]` (`invoice_001`); generated (`res_…`)
    /// when absent.
    #[oai(validator(pattern = r"^[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The key (or ID) of a registered, active resource type.
    pub resource_type: String,
    /// The space. Required on `POST /api/v1/resources`; on the space route it may be omitted and
    /// must otherwise equal the path's space (409 `CONFLICT` when it does not).
    pub space_id: Option<String>,
    /// The ID the application knows it by (at most 255 characters); defaults to the ID.
    #[oai(validator(max_length = 255))]
    pub external_id: Option<NotBlank>,
    /// A name for people.
    #[oai(validator(max_length = 1024))]
    pub display_name: Option<NotBlank>,
    /// A group of the resource's space.
    #[oai(validator(min_length = 1))]
    pub group_id: Option<String>,
    /// A member of the resource's space that owns it.
    #[oai(validator(min_length = 1))]
    pub owner_member_id: Option<String>,
    /// Defaults to `space`.
    pub visibility: Option<ResourceVisibility>,
    /// Defaults to `active`.
    pub status: Option<ResourceStatus>,
    /// Free-form attributes.
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

/// A [`ResourceCreateRequest`] as `POST /api/v1/resources` takes it: the same fields, parsing and
/// rules, under its own schema name, where `space_id` is required and not empty (no route names
/// the space), which the shared schema cannot say.
#[derive(Debug, Clone)]
pub struct ResourceCreateAnywhereRequest(pub ResourceCreateRequest);

impl ResourceCreateAnywhereRequest {
    const NAME: &'static str = "ResourceCreateAnywhereRequest";
}

impl Type for ResourceCreateAnywhereRequest {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        Self::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(Self::NAME.to_owned())
    }

    fn register(registry: &mut SchemaRegistry) {
        ResourceCreateRequest::register(registry);
        let Some(shared) = registry.schemas.get("ResourceCreateRequest") else {
            return;
        };
        let mut schema = shared.clone();
        schema.title = Some(Self::NAME.to_owned());
        schema.description =
            Some("Registers a resource in the space the body names (`space_id` is required).");
        schema.required.push("space_id");
        for (field, property) in &mut schema.properties {
            if *field == "space_id"
                && let MetaSchemaRef::Inline(property) = property
            {
                property.min_length = Some(1);
                property.description = Some("The space to register the resource in.");
            }
        }
        registry.schemas.insert(Self::NAME.to_owned(), schema);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromJSON for ResourceCreateAnywhereRequest {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        ResourceCreateRequest::parse_from_json(value)
            .map(Self)
            .map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl ToJSON for ResourceCreateAnywhereRequest {
    fn to_json(&self) -> Option<serde_json::Value> {
        self.0.to_json()
    }
}

/// Changes a resource. Absent fields keep their value; `null` clears an optional one. `id`,
/// `resource_type` and `space_id` cannot change: when present they must equal the resource's
/// (409 `CONFLICT` when they do not).
#[derive(Debug, Clone, Object)]
pub struct ResourceUpdateRequest {
    /// Must equal the resource's ID when present.
    pub id: Option<String>,
    /// Must equal the resource's type key when present.
    pub resource_type: Option<String>,
    /// Must equal the resource's space when present.
    pub space_id: Option<String>,
    /// The ID the application knows it by.
    #[oai(validator(max_length = 255))]
    pub external_id: Option<NotBlank>,
    /// A name for people.
    #[oai(validator(max_length = 1024))]
    pub display_name: MaybeUndefined<NotBlank>,
    /// A group of the resource's space.
    #[oai(validator(min_length = 1))]
    pub group_id: MaybeUndefined<String>,
    /// A member of the resource's space that owns it.
    #[oai(validator(min_length = 1))]
    pub owner_member_id: MaybeUndefined<String>,
    /// Who may discover it.
    pub visibility: Option<ResourceVisibility>,
    /// `active` or `archived`.
    pub status: Option<ResourceStatus>,
    /// Free-form attributes; replaced when present.
    pub metadata: MaybeUndefined<BTreeMap<String, serde_json::Value>>,
}

/// Archives a resource.
#[derive(Debug, Clone, Default, Object)]
pub struct ResourceArchiveRequest {
    /// Why, for the audit record; blank means no reason.
    #[oai(validator(max_length = 1024))]
    pub reason: Option<String>,
}

/// Filters of a resource list.
#[derive(Debug, Clone, Default)]
pub struct ResourceFilter {
    /// Only this space.
    pub space_id: Option<String>,
    /// Only this type (key or ID).
    pub resource_type: Option<String>,
}

pub(crate) type ResourceRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<Json<serde_json::Value>>,
    OffsetDateTime,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Resources joined with their type key, group path, owner name and space name.
pub(crate) fn select() -> SelectStatement {
    let r = table::RESOURCES;
    Query::select()
        .columns([
            col(r, "id"),
            col(r, "space_id"),
            col(table::TYPES, "key"),
            col(r, "external_id"),
            col(r, "display_name"),
            col(r, "group_id"),
            col(r, "owner_member_id"),
            col(r, "visibility"),
            col(r, "status"),
            col(r, "metadata"),
            col(r, "created_at"),
            col(r, "updated_at"),
            col(r, "deleted_at"),
            col(table::GROUPS, "path"),
            col(table::MEMBERS, "display_name"),
            col(table::SPACES, "name"),
        ])
        .from(name(r))
        .inner_join(
            name(table::TYPES),
            Expr::col(col(table::TYPES, "id")).equals(col(r, "resource_type_id")),
        )
        .left_join(
            name(table::GROUPS),
            Expr::col(col(table::GROUPS, "id"))
                .equals(col(r, "group_id"))
                .and(Expr::col(col(table::GROUPS, "space_id")).equals(col(r, "space_id"))),
        )
        .left_join(
            name(table::MEMBERS),
            Expr::col(col(table::MEMBERS, "id"))
                .equals(col(r, "owner_member_id"))
                .and(Expr::col(col(table::MEMBERS, "space_id")).equals(col(r, "space_id"))),
        )
        .left_join(
            name(table::SPACES),
            Expr::col(col(table::SPACES, "id")).equals(col(r, "space_id")),
        )
        .to_owned()
}

/// The resource of type ID `type_id` whose ID (or, failing that, external ID) is `resource_id`.
/// IDs win; an external ID shared by resources of several spaces matches the oldest ID first.
pub(crate) fn by_type_and_id(type_id: &str, resource_id: &str) -> SelectStatement {
    let r = table::RESOURCES;
    select()
        .and_where(Expr::col(col(r, "resource_type_id")).eq(type_id))
        .cond_where(
            Expr::col(col(r, "id"))
                .eq(resource_id)
                .or(Expr::col(col(r, "external_id")).eq(resource_id)),
        )
        .order_by_expr(Expr::col(col(r, "id")).eq(resource_id), Order::Desc)
        .order_by(col(r, "id"), Order::Asc)
        .limit(1)
        .to_owned()
}

fn by_space_and_id(space_id: &str, resource_id: &str) -> SelectStatement {
    let r = table::RESOURCES;
    select()
        .and_where(Expr::col(col(r, "space_id")).eq(space_id))
        .and_where(Expr::col(col(r, "id")).eq(resource_id))
        .to_owned()
}

/// The API form of a stored row.
pub(crate) fn from_row(row: ResourceRow) -> Result<Resource, ApiError> {
    let (
        id,
        space_id,
        resource_type,
        external_id,
        display_name,
        group_id,
        owner_member_id,
        visibility,
        status,
        metadata,
        created,
        updated,
        deleted,
        group_path,
        owner_member_display_name,
        space_name,
    ) = row;
    Ok(Resource {
        id,
        resource_type,
        space_id,
        space_name,
        external_id,
        display_name,
        group_id,
        group_path,
        owner_member_id,
        owner_member_display_name,
        visibility: ResourceVisibility::stored(&visibility)?,
        status: ResourceStatus::stored(&status)?,
        metadata: validation::metadata_map(metadata.map(|j| j.0)),
        created_at: rfc3339(created),
        updated_at: rfc3339(updated),
        deleted_at: deleted.map(rfc3339),
    })
}

fn resource_not_found(resource_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFound,
        format!("no resource has the ID {resource_id:?} here"),
    )
    .with_detail("resource_id", resource_id)
}

/// 409 `CONFLICT`: a body field repeats an immutable value of the record, and differs from it.
fn cannot_change(field: &str, actual: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("{field}: cannot change; the resource's is {actual:?}"),
    )
    .with_detail("field", field)
}

fn space_not_found(space_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::SpaceNotFound,
        format!("no space has the ID {space_id:?}"),
    )
    .with_detail("space_id", space_id)
}

/// The resource as the audit trace and the event carry it: values, not only IDs.
pub(crate) fn snapshot(r: &Resource) -> serde_json::Value {
    serde_json::json!({
        "resource": {
            "id": r.id,
            "resource_type": r.resource_type,
            "space_id": r.space_id,
            "space_name": r.space_name,
            "external_id": r.external_id,
            "display_name": r.display_name,
            "group_id": r.group_id,
            "group_path": r.group_path,
            "owner_member_id": r.owner_member_id,
            "owner_member_display_name": r.owner_member_display_name,
            "visibility": r.visibility.as_str(),
            "status": r.status.as_str(),
            "metadata": r.metadata,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }
    })
}

fn external_id(value: &str) -> Result<String, ApiError> {
    let v = validation::text("external_id", value)?;
    if v.chars().count() > MAX_EXTERNAL_ID_LEN {
        return Err(ApiError::invalid_field(
            "external_id",
            format!("must be at most {MAX_EXTERNAL_ID_LEN} characters"),
        ));
    }
    Ok(v)
}

/// Checks the group and owner references of a resource in `space_id`.
async fn check_references(
    tx: &mut Transaction,
    space_id: &str,
    group_id: Option<&str>,
    owner_member_id: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(g) = group_id {
        store::same_space(
            tx,
            table::GROUPS,
            "group_id",
            g,
            space_id,
            ErrorCode::GroupNotFound,
        )
        .await?;
    }
    if let Some(m) = owner_member_id {
        store::same_space(
            tx,
            table::MEMBERS,
            "owner_member_id",
            m,
            space_id,
            ErrorCode::MemberNotFound,
        )
        .await?;
    }
    Ok(())
}

async fn space_must_exist_db(db: &Database, space_id: &str) -> Result<(), ApiError> {
    let q = Query::select()
        .column(name("id"))
        .from(name(table::SPACES))
        .and_where(Expr::col(name("id")).eq(space_id))
        .and_where(Expr::col(name("deleted_at")).is_null())
        .to_owned();
    match db.fetch_optional::<(String,), _>(&q).await? {
        Some(_) => Ok(()),
        None => Err(space_not_found(space_id)),
    }
}

async fn reread(tx: &mut Transaction, space_id: &str, id: &str) -> Result<Resource, ApiError> {
    let row: Option<ResourceRow> = tx.fetch_optional(&by_space_and_id(space_id, id)).await?;
    from_row(row.ok_or_else(|| resource_not_found(id))?)
}

impl Registry {
    /// One page of resources, by ID.
    pub async fn list_resources(
        &self,
        filter: &ResourceFilter,
        page: &PageRequest,
    ) -> Result<(Vec<Resource>, Pagination), ApiError> {
        let db = self.db()?;
        let r = table::RESOURCES;
        let mut q = select();
        if let Some(space_id) = &filter.space_id {
            space_must_exist_db(db, space_id).await?;
            q.and_where(Expr::col(col(r, "space_id")).eq(space_id.as_str()));
        }
        if let Some(t) = &filter.resource_type {
            let t = self.get_type(t).await?;
            q.and_where(Expr::col(col(r, "resource_type_id")).eq(t.id));
        }
        if let Some(after) = page.after.as_ref().and_then(|a| a.as_str()) {
            q.and_where(Expr::col(col(r, "id")).gt(after));
        }
        q.order_by(col(r, "id"), Order::Asc).limit(page.fetch());
        let rows: Vec<ResourceRow> = db.fetch_all(&q).await?;
        let items = rows
            .into_iter()
            .map(from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.page(items, |r| serde_json::json!(r.id)))
    }

    /// The resource of this type (key or ID) with this ID or external ID.
    pub async fn get_resource_by_type(
        &self,
        type_key_or_id: &str,
        resource_id: &str,
    ) -> Result<Resource, ApiError> {
        let t = self.get_type(type_key_or_id).await?;
        let row: Option<ResourceRow> = self
            .db()?
            .fetch_optional(&by_type_and_id(&t.id, resource_id))
            .await?;
        from_row(row.ok_or_else(|| resource_not_found(resource_id))?)
    }

    /// The resource with this ID in this space.
    pub async fn get_space_resource(
        &self,
        space_id: &str,
        resource_id: &str,
    ) -> Result<Resource, ApiError> {
        let db = self.db()?;
        space_must_exist_db(db, space_id).await?;
        let row: Option<ResourceRow> = db
            .fetch_optional(&by_space_and_id(space_id, resource_id))
            .await?;
        from_row(row.ok_or_else(|| resource_not_found(resource_id))?)
    }

    /// Registers a resource. `path_space` is the space of the space route, if that was used.
    pub async fn create_resource(
        &self,
        caller: Caller<'_>,
        path_space: Option<&str>,
        req: ResourceCreateRequest,
    ) -> Result<Resource, ApiError> {
        let space_id = match (path_space, req.space_id.as_deref()) {
            // The body names another space than the route's: a conflict with the target.
            (Some(p), Some(b)) if p != b => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("space_id: must equal the path's space {p:?} when present"),
                )
                .with_detail("field", "space_id"));
            }
            (Some(p), _) => p.to_owned(),
            (None, Some(b)) => b.to_owned(),
            (None, None) => return Err(ApiError::invalid_field("space_id", "is required")),
        };
        // A path's space that no space could have (over 128 characters) names nothing: the
        // lookup below answers 404. The body's is held to the rule, as its schema declares.
        if path_space.is_none() {
            validation::reference("space_id", &space_id)?;
        }
        if req.resource_type.is_empty() {
            return Err(ApiError::invalid_field("resource_type", "is required"));
        }
        let id = match req.id {
            Some(id) => {
                validation::supplied_id("id", "", &id)?;
                id
            }
            None => ids::generate(ID_PREFIX),
        };
        let external = match req.external_id.as_deref() {
            Some(e) => external_id(e)?,
            None => id.clone(),
        };
        let display_name = req
            .display_name
            .as_deref()
            .map(|d| validation::text("display_name", d))
            .transpose()?;
        if let Some(g) = &req.group_id {
            validation::reference("group_id", g)?;
        }
        if let Some(m) = &req.owner_member_id {
            validation::reference("owner_member_id", m)?;
        }
        let metadata = validation::metadata(req.metadata);

        let mut m = self.begin().await?;
        let type_row: Option<TypeRow> =
            m.tx.fetch_optional(&resource_types::by_key_or_id(&req.resource_type))
                .await?;
        let t = resource_types::from_row(
            type_row.ok_or_else(|| resource_types::not_found(&req.resource_type))?,
        )?;
        // A well-formed request the type's state refuses: a conflict, as granting a disabled
        // role is, not a malformed field.
        if t.status != RegistryEntryStatus::Active {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "resource_type: {:?} is {}, so it accepts no new resources; enable it first",
                    t.key,
                    t.status.as_str()
                ),
            )
            .with_detail("field", "resource_type"));
        }
        if !store::space_exists(&mut m.tx, &space_id).await? {
            return Err(space_not_found(&space_id));
        }
        check_references(
            &mut m.tx,
            &space_id,
            req.group_id.as_deref(),
            req.owner_member_id.as_deref(),
        )
        .await?;
        let at = now();
        let insert = Query::insert()
            .into_table(name(table::RESOURCES))
            .columns(
                [
                    "id",
                    "space_id",
                    "resource_type_id",
                    "external_id",
                    "display_name",
                    "group_id",
                    "owner_member_id",
                    "visibility",
                    "status",
                    "metadata",
                    "created_at",
                    "updated_at",
                ]
                .map(name),
            )
            .values_panic([
                id.as_str().into(),
                space_id.as_str().into(),
                t.id.as_str().into(),
                external.into(),
                display_name.into(),
                req.group_id.into(),
                req.owner_member_id.into(),
                req.visibility
                    .unwrap_or(ResourceVisibility::Space)
                    .as_str()
                    .into(),
                req.status.unwrap_or(ResourceStatus::Active).as_str().into(),
                metadata.into(),
                at.into(),
                at.into(),
            ])
            .to_owned();
        m.tx.execute(&insert).await?;
        let saved = reread(&mut m.tx, &space_id, &id).await?;
        let change = Change {
            event_type: "resources.create",
            action: "resources.create",
            entity: "resource",
            change: "created",
            space_id: Some(saved.space_id.clone()),
            resource_type: saved.resource_type.clone(),
            resource_id: saved.id.clone(),
            facts: vec![plystra_contracts::facts::Fact::from(&saved)],
            snapshot: snapshot(&saved),
        };
        self.commit(m, caller, change).await?;
        Ok(saved)
    }

    /// Changes a resource of a space.
    pub async fn update_resource(
        &self,
        caller: Caller<'_>,
        space_id: &str,
        resource_id: &str,
        req: ResourceUpdateRequest,
    ) -> Result<Resource, ApiError> {
        let external = req.external_id.as_deref().map(external_id).transpose()?;
        let display_name = req
            .display_name
            .map_value(|d| validation::text("display_name", &d))
            .transpose()?;
        if let MaybeUndefined::Value(g) = &req.group_id {
            validation::reference("group_id", g)?;
        }
        if let MaybeUndefined::Value(o) = &req.owner_member_id {
            validation::reference("owner_member_id", o)?;
        }

        let mut m = self.begin().await?;
        if !store::space_exists(&mut m.tx, space_id).await? {
            return Err(space_not_found(space_id));
        }
        let current = reread(&mut m.tx, space_id, resource_id).await?;
        for (field, given, actual) in [
            ("id", &req.id, &current.id),
            ("space_id", &req.space_id, &current.space_id),
        ] {
            if given.as_ref().is_some_and(|g| g != actual) {
                return Err(cannot_change(field, actual));
            }
        }
        if let Some(t) = &req.resource_type {
            let row: Option<TypeRow> =
                m.tx.fetch_optional(&resource_types::by_key_or_id(t))
                    .await?;
            if row.is_none_or(|row| row.1 != current.resource_type) {
                return Err(cannot_change("resource_type", &current.resource_type));
            }
        }
        check_references(
            &mut m.tx,
            space_id,
            req.group_id.as_opt_ref().flatten().map(String::as_str),
            req.owner_member_id
                .as_opt_ref()
                .flatten()
                .map(String::as_str),
        )
        .await?;
        let mut update = Query::update();
        update
            .table(name(table::RESOURCES))
            .value(name("updated_at"), now())
            .and_where(Expr::col(name("id")).eq(resource_id))
            .and_where(Expr::col(name("space_id")).eq(space_id));
        if let Some(e) = external {
            update.value(name("external_id"), e);
        }
        for (column, value) in [
            ("display_name", display_name),
            ("group_id", req.group_id),
            ("owner_member_id", req.owner_member_id),
        ] {
            match value {
                MaybeUndefined::Value(v) => {
                    update.value(name(column), v);
                }
                MaybeUndefined::Null => {
                    update.value(name(column), Option::<String>::None);
                }
                MaybeUndefined::Undefined => {}
            }
        }
        if let Some(v) = req.visibility {
            update.value(name("visibility"), v.as_str());
        }
        if let Some(s) = req.status {
            update.value(name("status"), s.as_str());
        }
        match req.metadata {
            MaybeUndefined::Value(meta) => {
                update.value(name("metadata"), validation::metadata(Some(meta)));
            }
            MaybeUndefined::Null => {
                update.value(name("metadata"), Option::<serde_json::Value>::None);
            }
            MaybeUndefined::Undefined => {}
        }
        m.tx.execute(&update).await?;
        let saved = reread(&mut m.tx, space_id, resource_id).await?;
        let change = Change {
            event_type: "resources.update",
            action: "resources.update",
            entity: "resource",
            change: "updated",
            space_id: Some(saved.space_id.clone()),
            resource_type: saved.resource_type.clone(),
            resource_id: saved.id.clone(),
            facts: vec![plystra_contracts::facts::Fact::from(&saved)],
            snapshot: snapshot(&saved),
        };
        self.commit(m, caller, change).await?;
        Ok(saved)
    }

    /// Archives a resource of a space; archiving an archived resource is a 409.
    pub async fn archive_resource(
        &self,
        caller: Caller<'_>,
        space_id: &str,
        resource_id: &str,
        req: ResourceArchiveRequest,
    ) -> Result<Resource, ApiError> {
        // The reason is optional, so a blank one means none.
        let reason = req
            .reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .map(|r| validation::text("reason", r))
            .transpose()?;
        let mut m = self.begin().await?;
        if !store::space_exists(&mut m.tx, space_id).await? {
            return Err(space_not_found(space_id));
        }
        let current = reread(&mut m.tx, space_id, resource_id).await?;
        if current.status == ResourceStatus::Archived {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("the resource {resource_id:?} is already archived"),
            ));
        }
        let update = Query::update()
            .table(name(table::RESOURCES))
            .value(name("status"), ResourceStatus::Archived.as_str())
            .value(name("updated_at"), now())
            .and_where(Expr::col(name("id")).eq(resource_id))
            .and_where(Expr::col(name("space_id")).eq(space_id))
            .to_owned();
        m.tx.execute(&update).await?;
        let saved = reread(&mut m.tx, space_id, resource_id).await?;
        let mut trace = snapshot(&saved);
        if let Some(reason) = reason {
            trace["reason"] = serde_json::Value::String(reason);
        }
        let change = Change {
            event_type: "resources.archive",
            action: "resources.archive",
            entity: "resource",
            change: "archived",
            space_id: Some(saved.space_id.clone()),
            resource_type: saved.resource_type.clone(),
            resource_id: saved.id.clone(),
            facts: vec![plystra_contracts::facts::Fact::from(&saved)],
            snapshot: trace,
        };
        self.commit(m, caller, change).await?;
        Ok(saved)
    }
}
