//! A resource type's mapping: where its records live (`internal_table`) and which fields carry the
//! ID, space, group, owner, visibility and metadata. One mapping per type, upserted.

use std::collections::BTreeMap;

use plystra_contracts::ids;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::services::Caller;
use plystra_contracts::storage::Transaction;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, ErrorCode};
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;

use crate::model::{RegistryEntryStatus, StorageKind, now, rfc3339};
use crate::resource_types::{self, ResourceType, TypeRow};
use crate::store::{self, Change, Registry, col, name, table};
use crate::validation;

/// The prefix of generated mapping IDs.
pub const ID_PREFIX: &str = "rmap_";

/// The internal table's field names, the defaults of an `internal_table` mapping.
pub const INTERNAL_FIELDS: InternalFields = InternalFields {
    table_name: table::RESOURCES,
    id_field: "id",
    space_field: "space_id",
    group_field: "group_id",
    owner_member_field: "owner_member_id",
    visibility_field: "visibility",
    metadata_field: "metadata",
};

/// The field names of Plystra's own resource table.
#[derive(Debug, Clone, Copy)]
pub struct InternalFields {
    /// The table.
    pub table_name: &'static str,
    /// The ID column.
    pub id_field: &'static str,
    /// The space column.
    pub space_field: &'static str,
    /// The group column.
    pub group_field: &'static str,
    /// The owner member column.
    pub owner_member_field: &'static str,
    /// The visibility column.
    pub visibility_field: &'static str,
    /// The metadata column.
    pub metadata_field: &'static str,
}

/// How a resource type's records are stored.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct ResourceMapping {
    /// The mapping's ID.
    pub id: String,
    /// The key of the resource type it maps.
    pub resource_type: String,
    /// The ID of the resource type it maps.
    pub resource_type_id: String,
    /// Who registered it.
    pub source: String,
    /// Where the records live.
    pub storage_kind: StorageKind,
    /// The table holding the records.
    pub table_name: Option<String>,
    /// The field holding a record's ID.
    pub id_field: String,
    /// The field holding a record's space.
    pub space_field: String,
    /// The field holding a record's group, if records have one.
    pub group_field: Option<String>,
    /// The field holding a record's owner member, if records have one.
    pub owner_member_field: Option<String>,
    /// The field holding a record's visibility, if records have one.
    pub visibility_field: Option<String>,
    /// The field holding a record's metadata, if records have one.
    pub metadata_field: Option<String>,
    /// A name for people.
    pub display_name: Option<String>,
    /// Whether the mapping is in use.
    pub status: RegistryEntryStatus,
    /// Free-form attributes.
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// Sets a resource type's mapping. Absent fields keep their value (or take the internal table's
/// field names on a new mapping); `null` clears an optional one.
#[derive(Debug, Clone, Object)]
pub struct ResourceMappingMutationRequest {
    /// The ID to give a new mapping (`rmap_` followed by `[a-z0-9_]`); generated when absent. On
    /// an existing mapping it must equal its ID.
    #[oai(validator(pattern = r"^rmap_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// Where the records live.
    pub storage_kind: StorageKind,
    /// The table holding the records (a lower-case identifier).
    #[oai(validator(pattern = r"^[a-z_][a-z0-9_]*$", max_length = 63))]
    pub table_name: MaybeUndefined<String>,
    /// The field holding a record's ID.
    #[oai(validator(pattern = r"^[a-z_][a-z0-9_]*$", max_length = 63))]
    pub id_field: Option<String>,
    /// The field holding a record's space.
    #[oai(validator(pattern = r"^[a-z_][a-z0-9_]*$", max_length = 63))]
    pub space_field: Option<String>,
    /// The field holding a record's group.
    #[oai(validator(pattern = r"^[a-z_][a-z0-9_]*$", max_length = 63))]
    pub group_field: MaybeUndefined<String>,
    /// The field holding a record's owner member.
    #[oai(validator(pattern = r"^[a-z_][a-z0-9_]*$", max_length = 63))]
    pub owner_member_field: MaybeUndefined<String>,
    /// The field holding a record's visibility.
    #[oai(validator(pattern = r"^[a-z_][a-z0-9_]*$", max_length = 63))]
    pub visibility_field: MaybeUndefined<String>,
    /// The field holding a record's metadata.
    #[oai(validator(pattern = r"^[a-z_][a-z0-9_]*$", max_length = 63))]
    pub metadata_field: MaybeUndefined<String>,
    /// A name for people.
    #[oai(validator(max_length = 1024))]
    pub display_name: MaybeUndefined<NotBlank>,
    /// Defaults to `active` for a new mapping; kept when absent.
    pub status: Option<RegistryEntryStatus>,
    /// Who registers it; defaults to `api`.
    #[oai(validator(max_length = 1024))]
    pub source: Option<NotBlank>,
    /// Free-form attributes; replaced when present.
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

type MappingRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<Json<serde_json::Value>>,
    OffsetDateTime,
    OffsetDateTime,
);

const COLUMNS: [&str; 16] = [
    "id",
    "resource_type_id",
    "source",
    "storage_kind",
    "table_name",
    "id_field",
    "space_field",
    "group_field",
    "owner_member_field",
    "visibility_field",
    "metadata_field",
    "display_name",
    "status",
    "metadata",
    "created_at",
    "updated_at",
];

fn of_type(type_id: &str) -> SelectStatement {
    Query::select()
        .columns(COLUMNS.map(|c| col(table::MAPPINGS, c)))
        .from(name(table::MAPPINGS))
        .and_where(Expr::col(col(table::MAPPINGS, "resource_type_id")).eq(type_id))
        .order_by(col(table::MAPPINGS, "created_at"), Order::Asc)
        .limit(1)
        .to_owned()
}

fn from_row(t: &ResourceType, row: MappingRow) -> Result<ResourceMapping, ApiError> {
    let (
        id,
        resource_type_id,
        source,
        storage_kind,
        table_name,
        id_field,
        space_field,
        group_field,
        owner_member_field,
        visibility_field,
        metadata_field,
        display_name,
        status,
        metadata,
        created,
        updated,
    ) = row;
    Ok(ResourceMapping {
        id,
        resource_type: t.key.clone(),
        resource_type_id,
        source,
        storage_kind: StorageKind::stored(&storage_kind)?,
        table_name,
        id_field: id_field.unwrap_or_else(|| INTERNAL_FIELDS.id_field.to_owned()),
        space_field: space_field.unwrap_or_else(|| INTERNAL_FIELDS.space_field.to_owned()),
        group_field,
        owner_member_field,
        visibility_field,
        metadata_field,
        display_name,
        status: RegistryEntryStatus::stored(&status)?,
        metadata: validation::metadata_map(metadata.map(|j| j.0)),
        created_at: rfc3339(created),
        updated_at: rfc3339(updated),
    })
}

fn mapping_not_found(t: &ResourceType) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceMappingNotFound,
        format!("the resource type {:?} has no mapping", t.key),
    )
    .with_detail("resource_type", t.key.clone())
}

/// A validated optional field name.
fn field(name: &str, value: MaybeUndefined<String>) -> Result<MaybeUndefined<String>, ApiError> {
    Ok(match value {
        MaybeUndefined::Value(v) => {
            validation::field_name(name, &v)?;
            MaybeUndefined::Value(v)
        }
        other => other,
    })
}

/// The value of a new mapping's optional field: the given one, none for `null`, else `default`.
fn or_default(value: &MaybeUndefined<String>, default: &str) -> Option<String> {
    match value {
        MaybeUndefined::Value(v) => Some(v.clone()),
        MaybeUndefined::Null => None,
        MaybeUndefined::Undefined => Some(default.to_owned()),
    }
}

impl Registry {
    /// The mapping of the type with this key or ID.
    pub async fn get_mapping(&self, type_key_or_id: &str) -> Result<ResourceMapping, ApiError> {
        let t = self.get_type(type_key_or_id).await?;
        let row: Option<MappingRow> = self.db()?.fetch_optional(&of_type(&t.id)).await?;
        from_row(&t, row.ok_or_else(|| mapping_not_found(&t))?)
    }

    /// Sets the mapping of a type; `true` when it was created.
    pub async fn upsert_mapping(
        &self,
        caller: Caller<'_>,
        type_key_or_id: &str,
        req: ResourceMappingMutationRequest,
    ) -> Result<(bool, ResourceMapping), ApiError> {
        store::retry_insert_race(|| self.upsert_mapping_once(caller, type_key_or_id, req.clone()))
            .await
    }

    async fn upsert_mapping_once(
        &self,
        caller: Caller<'_>,
        type_key_or_id: &str,
        req: ResourceMappingMutationRequest,
    ) -> Result<(bool, ResourceMapping), ApiError> {
        let valid = ValidMapping::of(req)?;
        let mut m = self.begin().await?;
        let type_row: Option<TypeRow> =
            m.tx.fetch_optional(&resource_types::by_key_or_id(type_key_or_id))
                .await?;
        let t = resource_types::from_row(
            type_row.ok_or_else(|| resource_types::not_found(type_key_or_id))?,
        )?;
        let existing: Option<MappingRow> = m.tx.fetch_optional(&of_type(&t.id)).await?;
        let created = match existing {
            Some(row) => {
                let current = from_row(&t, row)?;
                valid.update(&mut m.tx, &t, &current).await?;
                false
            }
            None => {
                valid.insert(&mut m.tx, &t).await?;
                true
            }
        };
        let row: Option<MappingRow> = m.tx.fetch_optional(&of_type(&t.id)).await?;
        let saved = from_row(&t, row.ok_or_else(|| mapping_not_found(&t))?)?;
        let change = saved_change(&t, &saved, created);
        self.commit(m, caller, change).await?;
        Ok((created, saved))
    }
}

/// A mapping request with every field checked, before the type is read.
struct ValidMapping {
    id: Option<String>,
    storage_kind: StorageKind,
    status: Option<RegistryEntryStatus>,
    table_name: MaybeUndefined<String>,
    id_field: Option<String>,
    space_field: Option<String>,
    group_field: MaybeUndefined<String>,
    owner_member_field: MaybeUndefined<String>,
    visibility_field: MaybeUndefined<String>,
    metadata_field: MaybeUndefined<String>,
    display_name: MaybeUndefined<String>,
    source: Option<String>,
    metadata: Option<serde_json::Value>,
}

impl ValidMapping {
    /// Checks every field of `req`; the first bad one is a 400 naming it.
    fn of(req: ResourceMappingMutationRequest) -> Result<Self, ApiError> {
        if let Some(id) = &req.id {
            validation::supplied_id("id", ID_PREFIX, id)?;
        }
        let name_of = |field: &str, value: Option<String>| {
            value
                .map(|v| validation::field_name(field, &v).map(|()| v))
                .transpose()
        };
        Ok(Self {
            table_name: field("table_name", req.table_name)?,
            id_field: name_of("id_field", req.id_field)?,
            space_field: name_of("space_field", req.space_field)?,
            group_field: field("group_field", req.group_field)?,
            owner_member_field: field("owner_member_field", req.owner_member_field)?,
            visibility_field: field("visibility_field", req.visibility_field)?,
            metadata_field: field("metadata_field", req.metadata_field)?,
            display_name: req
                .display_name
                .map_value(|d| validation::text("display_name", &d))
                .transpose()?,
            source: req
                .source
                .as_deref()
                .map(|s| validation::text("source", s))
                .transpose()?,
            metadata: validation::metadata(req.metadata),
            id: req.id,
            storage_kind: req.storage_kind,
            status: req.status,
        })
    }

    /// Changes the type's mapping `current`: the fields sent, nothing else. A different `id` is
    /// a 409: a mapping keeps its ID.
    async fn update(
        self,
        tx: &mut Transaction,
        t: &ResourceType,
        current: &ResourceMapping,
    ) -> Result<(), ApiError> {
        if self.id.as_ref().is_some_and(|id| *id != current.id) {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("the mapping of {:?} has the ID {:?}", t.key, current.id),
            )
            .with_detail("field", "id"));
        }
        let mut update = Query::update();
        update
            .table(name(table::MAPPINGS))
            .value(name("storage_kind"), self.storage_kind.as_str())
            .value(name("updated_at"), now())
            .and_where(Expr::col(name("id")).eq(current.id.as_str()));
        for (column, value) in [
            ("table_name", self.table_name),
            ("group_field", self.group_field),
            ("owner_member_field", self.owner_member_field),
            ("visibility_field", self.visibility_field),
            ("metadata_field", self.metadata_field),
            ("display_name", self.display_name),
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
        for (column, value) in [
            ("id_field", self.id_field),
            ("space_field", self.space_field),
            ("source", self.source),
        ] {
            if let Some(v) = value {
                update.value(name(column), v);
            }
        }
        if let Some(s) = self.status {
            update.value(name("status"), s.as_str());
        }
        if let Some(meta) = self.metadata {
            update.value(name("metadata"), meta);
        }
        tx.execute(&update).await?;
        Ok(())
    }

    /// Registers the type's first mapping; absent fields take the internal table's names.
    async fn insert(self, tx: &mut Transaction, t: &ResourceType) -> Result<(), ApiError> {
        let id = self.id.unwrap_or_else(|| ids::generate(ID_PREFIX));
        let f = INTERNAL_FIELDS;
        let at = now();
        let display_name = self.display_name;
        let insert = Query::insert()
            .into_table(name(table::MAPPINGS))
            .columns(COLUMNS.map(name))
            .values_panic([
                id.into(),
                t.id.as_str().into(),
                self.source.unwrap_or_else(|| "api".to_owned()).into(),
                self.storage_kind.as_str().into(),
                or_default(&self.table_name, f.table_name).into(),
                Some(self.id_field.unwrap_or_else(|| f.id_field.to_owned())).into(),
                Some(self.space_field.unwrap_or_else(|| f.space_field.to_owned())).into(),
                or_default(&self.group_field, f.group_field).into(),
                or_default(&self.owner_member_field, f.owner_member_field).into(),
                or_default(&self.visibility_field, f.visibility_field).into(),
                or_default(&self.metadata_field, f.metadata_field).into(),
                display_name.take().into(),
                self.status
                    .unwrap_or(RegistryEntryStatus::Active)
                    .as_str()
                    .into(),
                self.metadata.into(),
                at.into(),
                at.into(),
            ])
            .to_owned();
        tx.execute(&insert).await?;
        Ok(())
    }
}

/// The audit record and event of a saved mapping.
fn saved_change(t: &ResourceType, saved: &ResourceMapping, created: bool) -> Change {
    Change {
        event_type: "resource_types.upsert",
        action: "resource_mappings.upsert",
        entity: "resource_mapping",
        change: if created { "created" } else { "updated" },
        space_id: None,
        resource_type: t.key.clone(),
        resource_id: saved.id.clone(),
        facts: Vec::new(),
        snapshot: serde_json::json!({
            "resource_mapping": {
                "id": saved.id,
                "resource_type": saved.resource_type,
                "resource_type_id": saved.resource_type_id,
                "source": saved.source,
                "storage_kind": saved.storage_kind.as_str(),
                "table_name": saved.table_name,
                "id_field": saved.id_field,
                "space_field": saved.space_field,
                "group_field": saved.group_field,
                "owner_member_field": saved.owner_member_field,
                "visibility_field": saved.visibility_field,
                "metadata_field": saved.metadata_field,
                "display_name": saved.display_name,
                "status": saved.status.as_str(),
                "metadata": saved.metadata,
                "created_at": saved.created_at,
                "updated_at": saved.updated_at,
            }
        }),
    }
}
