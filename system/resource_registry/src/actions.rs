//! The actions a resource type supports (`read`, `approve`, …), each with a risk level and
//! whether its decisions are audited by default; upserted by (type, key).

use std::collections::BTreeMap;

use plystra_contracts::ids;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::pagination::PageRequest;
use plystra_contracts::services::Caller;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, ErrorCode, Pagination};
use poem_openapi::Object;

use crate::model::{RiskLevel, now, rfc3339};
use crate::resource_types::{self, ResourceType, TypeRow};
use crate::store::{self, Change, Registry, col, name, table};
use crate::validation;

/// The prefix of generated action IDs.
pub const ID_PREFIX: &str = "ract_";

/// An action registered for a resource type.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct ResourceAction {
    /// The action's ID.
    pub id: String,
    /// The key of the resource type it belongs to.
    pub resource_type: String,
    /// The ID of the resource type it belongs to.
    pub resource_type_id: String,
    /// The key grants and checks name the action by (`^[a-z][a-z0-9_]*$`).
    pub key: String,
    /// A name for people.
    pub display_name: String,
    /// How much is at stake when it is performed.
    pub risk_level: RiskLevel,
    /// Whether decisions on it are audited by default.
    pub audit_default: bool,
    /// Free-form attributes.
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// Registers an action for a resource type, or changes the one with the same key.
#[derive(Debug, Clone, Object)]
pub struct ResourceActionMutationRequest {
    /// The ID to give a new action (`ract_` followed by `[a-z0-9_]`); generated when absent. On
    /// an existing key it must equal the registered ID.
    #[oai(validator(pattern = r"^ract_[a-z0-9_]{1,120}$"))]
    pub id: Option<String>,
    /// The action's key (`^[a-z][a-z0-9_]*$`, at most 64 characters); the upsert key within the
    /// type.
    #[oai(validator(pattern = r"^[a-z][a-z0-9_]*$", max_length = 64))]
    pub key: String,
    /// A name for people; defaults to the key.
    #[oai(validator(max_length = 1024))]
    pub display_name: Option<NotBlank>,
    /// Defaults to `normal` for a new action; kept when absent.
    pub risk_level: Option<RiskLevel>,
    /// Defaults to `true` for a new action; kept when absent.
    pub audit_default: Option<bool>,
    /// Free-form attributes; replaced when present.
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
}

type ActionRow = (
    String,
    String,
    String,
    String,
    String,
    bool,
    Option<Json<serde_json::Value>>,
    OffsetDateTime,
    OffsetDateTime,
);

const COLUMNS: [&str; 9] = [
    "id",
    "resource_type_id",
    "key",
    "display_name",
    "risk_level",
    "audit_default",
    "metadata",
    "created_at",
    "updated_at",
];

/// The actions of the type with ID `type_id`.
pub(crate) fn of_type(type_id: &str) -> SelectStatement {
    Query::select()
        .columns(COLUMNS.map(|c| col(table::ACTIONS, c)))
        .from(name(table::ACTIONS))
        .and_where(Expr::col(col(table::ACTIONS, "resource_type_id")).eq(type_id))
        .to_owned()
}

/// The action `key` of the type with ID `type_id`.
pub(crate) fn by_key(type_id: &str, key: &str) -> SelectStatement {
    of_type(type_id)
        .and_where(Expr::col(col(table::ACTIONS, "key")).eq(key))
        .to_owned()
}

fn from_row(t: &ResourceType, row: ActionRow) -> Result<ResourceAction, ApiError> {
    let (id, resource_type_id, key, display_name, risk, audit_default, metadata, created, updated) =
        row;
    Ok(ResourceAction {
        id,
        resource_type: t.key.clone(),
        resource_type_id,
        key,
        display_name,
        risk_level: RiskLevel::stored(&risk)?,
        audit_default,
        metadata: validation::metadata_map(metadata.map(|j| j.0)),
        created_at: rfc3339(created),
        updated_at: rfc3339(updated),
    })
}

impl Registry {
    /// One page of a type's actions, by key.
    pub async fn list_actions(
        &self,
        type_key_or_id: &str,
        page: &PageRequest,
    ) -> Result<(Vec<ResourceAction>, Pagination), ApiError> {
        let t = self.get_type(type_key_or_id).await?;
        let mut q = of_type(&t.id);
        if let Some(after) = page.after.as_ref().and_then(|a| a.as_str()) {
            q.and_where(Expr::col(col(table::ACTIONS, "key")).gt(after));
        }
        q.order_by(col(table::ACTIONS, "key"), Order::Asc)
            .limit(page.fetch());
        let rows: Vec<ActionRow> = self.db()?.fetch_all(&q).await?;
        let items = rows
            .into_iter()
            .map(|r| from_row(&t, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.page(items, |a| serde_json::json!(a.key)))
    }

    /// Registers or changes an action of a type; `true` when it was created.
    pub async fn upsert_action(
        &self,
        caller: Caller<'_>,
        type_key_or_id: &str,
        req: ResourceActionMutationRequest,
    ) -> Result<(bool, ResourceAction), ApiError> {
        store::retry_insert_race(|| self.upsert_action_once(caller, type_key_or_id, req.clone()))
            .await
    }

    async fn upsert_action_once(
        &self,
        caller: Caller<'_>,
        type_key_or_id: &str,
        req: ResourceActionMutationRequest,
    ) -> Result<(bool, ResourceAction), ApiError> {
        let display_name = validation::registration(
            ID_PREFIX,
            &req.key,
            req.id.as_deref(),
            req.display_name.as_deref(),
        )?;
        let metadata = validation::metadata(req.metadata);

        let mut m = self.begin().await?;
        let type_row: Option<TypeRow> =
            m.tx.fetch_optional(&resource_types::by_key_or_id(type_key_or_id))
                .await?;
        let t = resource_types::from_row(
            type_row.ok_or_else(|| resource_types::not_found(type_key_or_id))?,
        )?;
        let existing: Option<ActionRow> = m.tx.fetch_optional(&by_key(&t.id, &req.key)).await?;
        let at = now();
        let created = match existing {
            Some(row) => {
                let current = from_row(&t, row)?;
                if req.id.as_ref().is_some_and(|id| *id != current.id) {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        format!(
                            "the action {:?} of {:?} is registered with the ID {:?}",
                            req.key, t.key, current.id
                        ),
                    )
                    .with_detail("field", "id"));
                }
                let mut update = Query::update();
                update
                    .table(name(table::ACTIONS))
                    .value(name("updated_at"), at)
                    .and_where(Expr::col(name("id")).eq(current.id.as_str()));
                if let Some(d) = display_name {
                    update.value(name("display_name"), d);
                }
                if let Some(r) = req.risk_level {
                    update.value(name("risk_level"), r.as_str());
                }
                if let Some(a) = req.audit_default {
                    update.value(name("audit_default"), a);
                }
                if let Some(meta) = metadata {
                    update.value(name("metadata"), meta);
                }
                m.tx.execute(&update).await?;
                false
            }
            None => {
                let id = req.id.unwrap_or_else(|| ids::generate(ID_PREFIX));
                let insert = Query::insert()
                    .into_table(name(table::ACTIONS))
                    .columns(COLUMNS.map(name))
                    .values_panic([
                        id.into(),
                        t.id.as_str().into(),
                        req.key.as_str().into(),
                        display_name.unwrap_or_else(|| req.key.clone()).into(),
                        req.risk_level.unwrap_or(RiskLevel::Normal).as_str().into(),
                        req.audit_default.unwrap_or(true).into(),
                        metadata.into(),
                        at.into(),
                        at.into(),
                    ])
                    .to_owned();
                m.tx.execute(&insert).await?;
                true
            }
        };
        let row: Option<ActionRow> = m.tx.fetch_optional(&by_key(&t.id, &req.key)).await?;
        let saved = from_row(
            &t,
            row.ok_or_else(|| {
                ApiError::new(ErrorCode::ResourceActionNotFound, "the action vanished")
            })?,
        )?;
        let change = Change {
            event_type: "resource_types.upsert",
            action: "resource_actions.upsert",
            entity: "resource_action",
            change: if created { "created" } else { "updated" },
            space_id: None,
            resource_type: t.key.clone(),
            resource_id: saved.id.clone(),
            facts: vec![plystra_contracts::facts::Fact::ResourceAction {
                resource_type: t.key.clone(),
                key: saved.key.clone(),
                risk_level: Some(saved.risk_level.as_str().to_owned()),
            }],
            snapshot: serde_json::json!({
                "resource_action": {
                    "id": saved.id,
                    "resource_type": saved.resource_type,
                    "resource_type_id": saved.resource_type_id,
                    "key": saved.key,
                    "display_name": saved.display_name,
                    "risk_level": saved.risk_level.as_str(),
                    "audit_default": saved.audit_default,
                    "metadata": saved.metadata,
                    "created_at": saved.created_at,
                    "updated_at": saved.updated_at,
                }
            }),
        };
        self.commit(m, caller, change).await?;
        Ok((created, saved))
    }
}
