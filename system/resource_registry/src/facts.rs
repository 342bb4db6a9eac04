//! The registry's entries as the facts authorization indexes: one conversion per entity and the
//! whole set for the index's first load. Changes travel in `resource.registry_updated`.

use plystra_contracts::ApiError;
use plystra_contracts::facts::{Fact, FactsPart, ResourceRows, metadata_text};
use plystra_contracts::storage::Database;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, JoinType, Query};
use plystra_contracts::text_rows::TextRows;

use crate::model::{ResourceStatus, ResourceVisibility, RiskLevel};
use crate::resource_types::{self, ResourceType, TypeRow};
use crate::resources::Resource;
use crate::store::{col, name, table};

impl From<&ResourceType> for Fact {
    fn from(t: &ResourceType) -> Self {
        Fact::ResourceType {
            id: t.id.clone(),
            key: t.key.clone(),
            status: t.status.as_str().to_owned(),
        }
    }
}

impl From<&Resource> for Fact {
    fn from(r: &Resource) -> Self {
        Fact::Resource {
            resource_type: r.resource_type.clone(),
            id: r.id.clone(),
            external_id: r.external_id.clone(),
            space_id: r.space_id.clone(),
            group_id: r.group_id.clone(),
            owner_member_id: r.owner_member_id.clone(),
            status: r.status.as_str().to_owned(),
            visibility: Some(r.visibility.as_str().to_owned()),
            metadata: metadata_text(r.metadata.as_ref()),
        }
    }
}

/// Every type, action and resource.
pub(crate) async fn all(db: &Database) -> Result<Vec<Fact>, ApiError> {
    let mut facts = Vec::new();
    all_in_parts(db, &mut |part| facts.extend(part.into_facts())).await?;
    Ok(facts)
}

/// [`all`], handed to `part` as it is read: the types and actions first, then the resources
/// one bulk chunk at a time, packed ([`ResourceRows`]).
pub(crate) async fn all_in_parts(
    db: &Database,
    part: &mut (dyn FnMut(FactsPart) + Send),
) -> Result<(), ApiError> {
    let types: Vec<TypeRow> = db.fetch_all(&resource_types::select()).await?;
    let mut facts = Vec::new();
    for row in types {
        facts.push(Fact::from(&resource_types::from_row(row)?));
    }
    let actions = Query::select()
        .column(col(table::TYPES, "key"))
        .column(col(table::ACTIONS, "key"))
        .column(col(table::ACTIONS, "risk_level"))
        .from(name(table::ACTIONS))
        .join(
            JoinType::InnerJoin,
            name(table::TYPES),
            Expr::col(col(table::TYPES, "id")).equals(col(table::ACTIONS, "resource_type_id")),
        )
        .to_owned();
    let actions: Vec<(String, String, String)> = db.fetch_all(&actions).await?;
    for (resource_type, key, risk) in actions {
        facts.push(Fact::ResourceAction {
            resource_type,
            key,
            risk_level: Some(RiskLevel::stored(&risk)?.as_str().to_owned()),
        });
    }
    part(FactsPart::Facts(facts));
    // Only the columns a fact holds (the first load reads every resource: no joins for names,
    // no timestamps to decode), read in bulk as text; stored values are still checked as a
    // full read checks them.
    let r = table::RESOURCES;
    let from = Query::select()
        .from(name(r))
        .inner_join(
            name(table::TYPES),
            Expr::col(col(table::TYPES, "id")).equals(col(r, "resource_type_id")),
        )
        .to_owned();
    // In `ResourceRows::COLUMNS` order.
    let columns = [
        col(table::TYPES, "key"),
        col(r, "id"),
        col(r, "external_id"),
        col(r, "space_id"),
        col(r, "group_id"),
        col(r, "owner_member_id"),
        col(r, "visibility"),
        col(r, "status"),
    ]
    .into_iter()
    .map(Expr::col)
    // Metadata as text on both backends (PostgreSQL holds it as JSONB).
    .chain([Expr::col(col(r, "metadata")).cast_as("TEXT")])
    .collect();
    // A stored value the registry does not know fails the load; later chunks are skipped.
    let mut refused: Option<ApiError> = None;
    db.fetch_text_in_parts(r, &from, columns, |rows| {
        if refused.is_some() {
            return;
        }
        match resource_rows(rows) {
            Ok(rows) => part(FactsPart::Resources(rows)),
            Err(e) => refused = Some(e),
        }
    })
    .await?;
    refused.map_or(Ok(()), Err)
}

/// Bulk-read resource rows as [`ResourceRows`], each stored value checked.
fn resource_rows(rows: TextRows) -> Result<ResourceRows, ApiError> {
    let rows = ResourceRows::new(rows).map_err(|e| {
        tracing::error!(error = %e, "resource rows read in bulk do not decode");
        ApiError::new(
            plystra_contracts::ErrorCode::InternalError,
            "internal error",
        )
    })?;
    for row in rows.iter() {
        ResourceVisibility::stored(row.visibility)?;
        ResourceStatus::stored(row.status)?;
    }
    Ok(rows)
}
