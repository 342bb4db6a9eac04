//! The `resource.registry` service authorization loads its index from: every resource type,
//! action and resource as facts, whole or a bulk chunk at a time. Archived resources are
//! included: archiving keeps a record resolvable for audit.

use async_trait::async_trait;
use plystra_contracts::services::{ResolveError, ResourceLookup};

use crate::store::Registry;

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
        part: &mut (dyn FnMut(plystra_contracts::facts::FactsPart) + Send),
    ) -> Result<(), ResolveError> {
        let db = self
            .db()
            .map_err(|e| ResolveError::Unavailable(e.message))?;
        crate::facts::all_in_parts(db, part)
            .await
            .map_err(|e| ResolveError::Unavailable(e.message))
    }
}
