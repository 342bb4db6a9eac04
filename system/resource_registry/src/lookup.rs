//! The lookup context service (`resource.registry`): the registry entry for (type, action) and
//! the target resource with its group snapshot, as authorization needs them.
//!
//! Registry problems are answers, not errors, so authorization can deny with
//! `INVALID_RESOURCE_TYPE` / `INVALID_RESOURCE_ACTION` before anything else:
//! - an unregistered or disabled type: `resource_type_known = false`, `action_known = false`, no
//!   target;
//! - a registered type with an unregistered action: `action_known = false`, the target filled in
//!   when it exists, and no error when it does not;
//! - a registered type and action with no such resource: `ResolveError::NotFound` (`resource`).
//!
//! Archived resources are still found: archiving keeps a record resolvable for audit.

use async_trait::async_trait;
use plystra_contracts::services::{LookupContext, ResolveError, ResourceLookup};
use plystra_contracts::storage::StorageError;

use crate::actions;
use crate::model::RegistryEntryStatus;
use crate::resource_types::{self, TypeRow};
use crate::resources::{self, ResourceRow};
use crate::store::Registry;

fn unavailable(e: StorageError) -> ResolveError {
    ResolveError::Unavailable(format!("resource registry: {e}"))
}

#[async_trait]
impl ResourceLookup for Registry {
    async fn facts(&self) -> Result<Vec<plystra_contracts::facts::Fact>, ResolveError> {
        let db = self
            .db()
            .map_err(|e| ResolveError::Unavailable(e.message))?;
        crate::facts::all(db)
            .await
            .map_err(|e| ResolveError::Unavailable(e.message))
    }

    async fn facts_in_parts(
        &self,
        part: &mut (dyn FnMut(Vec<plystra_contracts::facts::Fact>) + Send),
    ) -> Result<(), ResolveError> {
        let db = self
            .db()
            .map_err(|e| ResolveError::Unavailable(e.message))?;
        crate::facts::all_in_parts(db, part)
            .await
            .map_err(|e| ResolveError::Unavailable(e.message))
    }

    async fn lookup(
        &self,
        resource_type: &str,
        action: &str,
        resource_id: &str,
    ) -> Result<LookupContext, ResolveError> {
        let db = self
            .db()
            .map_err(|e| ResolveError::Unavailable(e.message))?;
        let type_row: Option<TypeRow> = db
            .fetch_optional(&resource_types::by_key_or_id(resource_type))
            .await
            .map_err(unavailable)?;
        let Some(type_row) = type_row else {
            return Ok(LookupContext::default());
        };
        let (type_id, status) = (type_row.0, type_row.5);
        if RegistryEntryStatus::parse(&status) != Some(RegistryEntryStatus::Active) {
            return Ok(LookupContext::default());
        }
        let action_known = db
            .fetch_optional::<(String,), _>(
                &actions::by_key(&type_id, action)
                    .clear_selects()
                    .column(crate::store::name("id"))
                    .to_owned(),
            )
            .await
            .map_err(unavailable)?
            .is_some();
        let row: Option<ResourceRow> = db
            .fetch_optional(&resources::by_type_and_id(&type_id, resource_id))
            .await
            .map_err(unavailable)?;
        let mut context = LookupContext {
            resource_type_known: true,
            action_known,
            ..LookupContext::default()
        };
        match row {
            Some(row) => {
                let (space_id, group_id, owner_member_id, group_path) =
                    (row.1, row.5, row.6, row.13);
                context.space_id = Some(space_id);
                context.group = group_id.zip(group_path);
                context.owner_member_id = owner_member_id;
                Ok(context)
            }
            None if action_known => Err(ResolveError::NotFound {
                entity: "resource",
                id: resource_id.to_owned(),
            }),
            None => Ok(context),
        }
    }
}
