//! Resource types: the kinds of things a space governs (`invoice`, `contract`, …), upserted by
//! key.

use plystra_contracts::not_blank::NotBlank;
use std::collections::BTreeMap;

use plystra_contracts::ids;
use plystra_contracts::pagination::PageRequest;
use plystra_contracts::services::Caller;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, ErrorCode, Pagination};
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;

use crate::model::{RegistryEntryStatus, now, rfc3339};
use crate::store::{self, Change, Registry, col, name, table};
use crate::validation;

/// The prefix of generated resource type IDs.
pub const ID_PREFIX: &str = "rtype_";

/// A registered resource type.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct ResourceType {
    /// The type's ID.
    pub id: String,
    /// The stable key clients and grants name the type by (`^[a-z][a-z0-9_]*$`).
    pub key: String,
    /// A name for people.
    pub display_name: String,
    /// What the type represents, for people.
    pub description: Option<String>,
    /// Whether the type is in use.
    pub status: RegistryEntryStatus,
    /// Who registered it (`api` unless the caller says otherwise, for example a plugin's ID).
    pub source: String,
    /// Free-form attributes.
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// Registers a resource type, or changes the one with the same key.
#[derive(Debug, Clone, Object)]
pub struct ResourceTypeMutationRequest {
    /// The ID to give a new type (`rtype_` followed by `[a-z0-9_]`); generated when absent.
    /// On an existing key it must equal the registered ID.
    #[oai(validator(pattern = r"^rtype_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The type's key (`^[a-z][a-z0-9_]*$`, at most 64 characters); the upsert key.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub key: String,
    /// A name for people; defaults to the key.
    #[oai(validator(max_length = 1024))]
    pub display_name: Option<NotBlank>,
    /// What the type represents; `null` clears it.
    #[oai(validator(
        max_length = 1024,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    ))]
    pub description: MaybeUndefined<String>,
    /// Defaults to `active` for a new type; kept when absent.
    pub status: Option<RegistryEntryStatus>,
    /// Who registers it; defaults to `api`.
    #[oai(validator(max_length = 1024))]
    pub source: Option<NotBlank>,
    /// Free-form attributes; replaced when present.
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

/// A stored type row.
pub(crate) type TypeRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<Json<serde_json::Value>>,
    OffsetDateTime,
    OffsetDateTime,
);

const COLUMNS: [&str; 9] = [
    "id",
    "key",
    "display_name",
    "description",
    "source",
    "status",
    "metadata",
    "created_at",
    "updated_at",
];

pub(crate) fn select() -> SelectStatement {
    Query::select()
        .columns(COLUMNS.map(|c| col(table::TYPES, c)))
        .from(name(table::TYPES))
        .to_owned()
}

/// The type whose key or ID is `key_or_id`.
pub(crate) fn by_key_or_id(key_or_id: &str) -> SelectStatement {
    select()
        .cond_where(
            Expr::col(col(table::TYPES, "key"))
                .eq(key_or_id)
                .or(Expr::col(col(table::TYPES, "id")).eq(key_or_id)),
        )
        // A key wins over an ID that happens to spell another type's key.
        .order_by_expr(
            Expr::col(col(table::TYPES, "key")).eq(key_or_id),
            Order::Desc,
        )
        .limit(1)
        .to_owned()
}

fn by_key(key: &str) -> SelectStatement {
    select()
        .and_where(Expr::col(col(table::TYPES, "key")).eq(key))
        .to_owned()
}

/// The API form of a stored row.
pub(crate) fn from_row(row: TypeRow) -> Result<ResourceType, ApiError> {
    let (id, key, display_name, description, source, status, metadata, created, updated) = row;
    Ok(ResourceType {
        id,
        key,
        display_name,
        description,
        status: RegistryEntryStatus::stored(&status)?,
        source,
        metadata: validation::metadata_map(metadata.map(|j| j.0)),
        created_at: rfc3339(created),
        updated_at: rfc3339(updated),
    })
}

/// 404 `RESOURCE_TYPE_NOT_FOUND` for `key_or_id`.
pub(crate) fn not_found(key_or_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceTypeNotFound,
        format!("no resource type has the key or ID {key_or_id:?}"),
    )
    .with_detail("resource_type", key_or_id)
}

impl Registry {
    /// One page of resource types, by key.
    pub async fn list_types(
        &self,
        page: &PageRequest,
    ) -> Result<(Vec<ResourceType>, Pagination), ApiError> {
        let mut q = select();
        if let Some(after) = page.after.as_ref().and_then(|a| a.as_str()) {
            q.and_where(Expr::col(col(table::TYPES, "key")).gt(after));
        }
        q.order_by(col(table::TYPES, "key"), Order::Asc)
            .limit(page.fetch());
        let rows: Vec<TypeRow> = self.db()?.fetch_all(&q).await?;
        let items = rows
            .into_iter()
            .map(from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.page(items, |t| serde_json::json!(t.key)))
    }

    /// The type with this key or ID.
    pub async fn get_type(&self, key_or_id: &str) -> Result<ResourceType, ApiError> {
        let row: Option<TypeRow> = self.db()?.fetch_optional(&by_key_or_id(key_or_id)).await?;
        from_row(row.ok_or_else(|| not_found(key_or_id))?)
    }

    /// Registers or changes a type; `true` when it was created.
    pub async fn upsert_type(
        &self,
        caller: Caller<'_>,
        req: ResourceTypeMutationRequest,
    ) -> Result<(bool, ResourceType), ApiError> {
        store::retry_insert_race(|| self.upsert_type_once(caller, req.clone())).await
    }

    async fn upsert_type_once(
        &self,
        caller: Caller<'_>,
        req: ResourceTypeMutationRequest,
    ) -> Result<(bool, ResourceType), ApiError> {
        let display_name = validation::registration(
            ID_PREFIX,
            &req.key,
            req.id.as_deref(),
            req.display_name.as_deref(),
        )?;
        let description = match &req.description {
            MaybeUndefined::Value(d) => MaybeUndefined::Value(validation::text("description", d)?),
            MaybeUndefined::Null => MaybeUndefined::Null,
            MaybeUndefined::Undefined => MaybeUndefined::Undefined,
        };
        let source = req
            .source
            .as_deref()
            .map(|s| validation::text("source", s))
            .transpose()?;
        let metadata = validation::metadata(req.metadata);

        let mut m = self.begin().await?;
        let existing: Option<TypeRow> = m.tx.fetch_optional(&by_key(&req.key)).await?;
        let at = now();
        let (created, id) = match existing {
            Some(row) => {
                let current = from_row(row)?;
                if req.id.as_ref().is_some_and(|id| *id != current.id) {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        format!(
                            "the key {:?} is registered with the ID {:?}, not {:?}",
                            req.key,
                            current.id,
                            req.id.unwrap_or_default()
                        ),
                    )
                    .with_detail("field", "id"));
                }
                let mut update = Query::update();
                update
                    .table(name(table::TYPES))
                    .value(name("updated_at"), at)
                    .and_where(Expr::col(name("id")).eq(current.id.as_str()));
                if let Some(d) = display_name {
                    update.value(name("display_name"), d);
                }
                match description {
                    MaybeUndefined::Value(d) => {
                        update.value(name("description"), d);
                    }
                    MaybeUndefined::Null => {
                        update.value(name("description"), Option::<String>::None);
                    }
                    MaybeUndefined::Undefined => {}
                }
                if let Some(s) = req.status {
                    update.value(name("status"), s.as_str());
                }
                if let Some(s) = source {
                    update.value(name("source"), s);
                }
                if let Some(meta) = metadata {
                    update.value(name("metadata"), meta);
                }
                m.tx.execute(&update).await?;
                (false, current.id)
            }
            None => {
                let id = req.id.unwrap_or_else(|| ids::generate(ID_PREFIX));
                let insert = Query::insert()
                    .into_table(name(table::TYPES))
                    .columns(COLUMNS.map(name))
                    .values_panic([
                        id.as_str().into(),
                        req.key.as_str().into(),
                        display_name.unwrap_or_else(|| req.key.clone()).into(),
                        description.take().into(),
                        source.unwrap_or_else(|| "api".to_owned()).into(),
                        req.status
                            .unwrap_or(RegistryEntryStatus::Active)
                            .as_str()
                            .into(),
                        metadata.into(),
                        at.into(),
                        at.into(),
                    ])
                    .to_owned();
                m.tx.execute(&insert).await?;
                (true, id)
            }
        };
        let row: Option<TypeRow> = m.tx.fetch_optional(&by_key_or_id(&id)).await?;
        let saved = from_row(row.ok_or_else(|| not_found(&id))?)?;
        let change = Change {
            event_type: "resource_types.upsert",
            action: "resource_types.upsert",
            entity: "resource_type",
            change: if created { "created" } else { "updated" },
            space_id: None,
            resource_type: saved.key.clone(),
            resource_id: saved.id.clone(),
            facts: vec![plystra_contracts::facts::Fact::from(&saved)],
            snapshot: type_snapshot(&saved),
        };
        self.commit(m, caller, change).await?;
        Ok((created, saved))
    }
}

/// The type as the audit trace and the event carry it.
pub(crate) fn type_snapshot(t: &ResourceType) -> serde_json::Value {
    serde_json::json!({
        "resource_type": {
            "id": t.id,
            "key": t.key,
            "display_name": t.display_name,
            "description": t.description,
            "status": t.status.as_str(),
            "source": t.source,
            "metadata": t.metadata,
            "created_at": t.created_at,
            "updated_at": t.updated_at,
        }
    })
}
