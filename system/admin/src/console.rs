//! `GET /api/v1/console/overview`: counts of the instance's main objects and the state of every
//! linked capability, for an operator console. Read-only counts over the system tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use plystra_contracts::services::CapabilityStates;
use plystra_contracts::storage::sea_query::{Alias, Expr, Query};
use plystra_contracts::{ApiError, Envelope};
use plystra_system_schema::{admin, audit, identity, resource};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::core::Admin;

/// What the overview counts, and the table each count reads.
pub const COUNTED: &[(&str, &str)] = &[
    ("users", identity::USERS.name),
    ("spaces", identity::SPACES.name),
    ("members", identity::MEMBERS.name),
    ("resources", resource::RESOURCES.name),
    ("admin_grants", admin::ADMIN_GRANTS.name),
    ("api_keys", admin::API_KEYS.name),
    ("audit_records", audit::AUDIT_LOGS.name),
];

/// The console overview.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ConsoleOverview")]
pub struct ConsoleOverview {
    /// Rows per kind: users, spaces, members, resources, admin_grants, api_keys, audit_records.
    pub counts: BTreeMap<String, i64>,
    /// Each linked capability's state (`ready`, `degraded`, `failed`, …).
    pub capabilities: BTreeMap<String, String>,
}

/// The console route.
pub struct ConsoleApi {
    pub(crate) admin: Arc<Admin>,
    pub(crate) states: Option<Arc<dyn CapabilityStates>>,
}

#[OpenApi(tag = "crate::AdminTag::Admin")]
impl ConsoleApi {
    /// Counts of users, spaces, members, resources, admin grants, API keys and audit records, and
    /// the state of every linked capability.
    #[oai(
        path = "/api/v1/console/overview",
        method = "get",
        operation_id = "getConsoleOverview"
    )]
    async fn overview(&self) -> Result<Json<Envelope<ConsoleOverview>>, ApiError> {
        let mut counts = BTreeMap::new();
        for (name, table) in COUNTED {
            let mut q = Query::select();
            q.expr(Expr::cust("COUNT(*)")).from(Alias::new(*table));
            let (n,): (i64,) = self.admin.db.fetch_one(&q).await?;
            counts.insert((*name).to_owned(), n);
        }
        let capabilities = self
            .states
            .as_ref()
            .map(|s| s.states().into_iter().collect())
            .unwrap_or_default();
        Ok(Json(Envelope::new(ConsoleOverview {
            counts,
            capabilities,
        })))
    }
}
