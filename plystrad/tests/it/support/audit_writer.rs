//! A business plugin for the audit tests: it records whatever it is sent through the
//! `AuditRecorder` contract, on its own (`POST /test/audit`) or inside a transaction of its own
//! (`POST /test/audit/in-transaction`), like a real plugin would.

use std::sync::Arc;

use plystra_contracts::registration::{Registration, RouteSet};
use plystra_contracts::services::{AuditRecord, AuditRecorder, RequestId};
use plystra_contracts::storage::Database;
use plystra_contracts::{
    ApiError, BusinessPluginSpec, Capability, CapabilityError, CapabilityManifest, Envelope,
    ErrorCode, Events, Migrations, Provides, Requires, RouteApi, RouteDecl, ServiceError,
    ServiceRegistry, Stability,
};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

const MANIFEST: CapabilityManifest = CapabilityManifest::business_plugin(BusinessPluginSpec {
    id: "test.audit_writer",
    name: "Audit writer (test)",
    version: "0.1.0",
    requires: Requires {
        kernel: "^0.0.1",
        capabilities: &["audit.explainable"],
    },
    provides: Provides {
        services: &["test.audit_writer"],
        routes: &[
            RouteDecl::operation("testWriteAudit"),
            RouteDecl::operation("testWriteAuditInTransaction"),
        ],
        events: Events::NONE,
        migrations: Migrations { namespace: None },
        settings: &[],
    },
    stability: Stability::Experimental,
});

struct Marker;

struct WriterCapability;

impl Capability for WriterCapability {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        services.provide::<Marker>("test.audit_writer", Arc::new(Marker))?;
        Ok(())
    }
}

fn construct() -> Box<dyn Capability> {
    Box::new(WriterCapability)
}

/// A record as the test sends it.
#[derive(Debug, Clone, Object)]
pub struct TestRecord {
    event_type: String,
    action: String,
    space_id: Option<String>,
    actor_user_id: Option<String>,
    actor_member_id: Option<String>,
    actor_user_member_id: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    decision: Option<String>,
    deny_code: Option<String>,
    trace: Value,
}

impl TestRecord {
    /// The record, caused by the request `request_id`.
    fn record(self, request_id: &str) -> AuditRecord {
        let t = self;
        AuditRecord {
            space_id: t.space_id,
            actor_user_id: t.actor_user_id,
            actor_member_id: t.actor_member_id,
            actor_user_member_id: t.actor_user_member_id,
            resource_type: t.resource_type,
            resource_id: t.resource_id,
            decision: t.decision,
            deny_code: t.deny_code,
            ip_address: Some("192.0.2.10".to_owned()),
            user_agent: Some("audit-test".to_owned()),
            trace: t.trace,
            ..AuditRecord::new(request_id, t.event_type, t.action)
        }
    }
}

struct WriterApi {
    audit: Arc<dyn AuditRecorder>,
    db: Arc<Database>,
}

impl RouteApi for WriterApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            audit: services.require::<dyn AuditRecorder>()?,
            db: services.require::<Database>()?,
        })
    }
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::AuditUnavailable, e.to_string())
}

#[OpenApi]
impl WriterApi {
    /// Records through the group-commit writer.
    #[oai(path = "/test/audit", method = "post", operation_id = "testWriteAudit")]
    async fn write(
        &self,
        req: &poem::Request,
        body: Json<TestRecord>,
    ) -> Result<Json<Envelope<Option<String>>>, ApiError> {
        let id = self
            .audit
            .record(body.0.record(RequestId::of(req)))
            .await
            .map_err(unavailable)?;
        Ok(Json(Envelope::new(id)))
    }

    /// Records inside a transaction of the caller's.
    #[oai(
        path = "/test/audit/in-transaction",
        method = "post",
        operation_id = "testWriteAuditInTransaction"
    )]
    async fn write_in_transaction(
        &self,
        req: &poem::Request,
        body: Json<TestRecord>,
    ) -> Result<Json<Envelope<String>>, ApiError> {
        let mut tx = self.db.begin().await?;
        let id = self
            .audit
            .record_in(&mut tx, body.0.record(RequestId::of(req)))
            .await
            .map_err(unavailable)?;
        tx.commit().await?;
        Ok(Json(Envelope::new(id)))
    }
}

/// The plugin, for [`super::app::boot`]'s `plugins`.
pub static PLUGIN: Registration = Registration {
    manifest: &MANIFEST,
    construct,
    routes: RouteSet::of::<WriterApi>(),
    package: env!("CARGO_PKG_NAME"),
};
