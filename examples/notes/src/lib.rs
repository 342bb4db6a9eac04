//! `examples.notes`: a business plugin built the way users build theirs. Members write notes
//! into notebooks and read them back; every handler goes through governance in the same order:
//! resolve the actor from the session, ask `authorization.resource` whether it may act, do its
//! own work through the registry, record what it did in the audit log.
//!
//! It registers an ordinary (non-privileged) manifest with `register_capability!`, uses the
//! system capabilities only through the service traits in `plystra-contracts`, and declares its
//! resource types and actions in the registry when it starts:
//!
//! - `notebook` with the action `write`: an administrator registers notebooks (resources of
//!   this type, in a group) and grants `notebook:write` to the members who may write in them;
//! - `note` with the action `read`: each note is a registry resource in its notebook's group,
//!   owned by the member who wrote it, with its title and body in the resource's metadata.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::services::{
    ActorRef, ActorResolver, AuditRecord, AuditRecorder, Authorizer, CheckRequest, Credential,
    NewResource, RequestId, ResolveError, ResourceRegistrar,
};
use plystra_contracts::{
    ApiError, BusinessPluginSpec, Capability, CapabilityError, CapabilityManifest, Envelope,
    ErrorCode, Events, Migrations, Provides, Requires, RouteApi, RouteDecl, ServiceError,
    ServiceRegistry, Stability, register_capability,
};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

/// The plugin's ID.
pub const ID: &str = "examples.notes";
/// Its one service.
pub const SERVICE: &str = "examples.notes";
/// The notebook resource type.
pub const NOTEBOOK: &str = "notebook";
/// The note resource type.
pub const NOTE: &str = "note";

/// The manifest: a business plugin that needs the governance layer.
pub const MANIFEST: CapabilityManifest = CapabilityManifest::business_plugin(BusinessPluginSpec {
    id: ID,
    name: "Notes (example plugin)",
    version: "0.1.0",
    requires: Requires {
        kernel: "^0.0.1",
        capabilities: &[
            "identity.business",
            "resource.registry",
            "authorization.resource",
            "audit.explainable",
        ],
    },
    provides: Provides {
        services: &[SERVICE],
        routes: &[
            RouteDecl::operation("createNote").self_service(),
            RouteDecl::operation("getNote").self_service(),
        ],
        events: Events {
            publishes: &[],
            subscribes: &[],
        },
        migrations: Migrations { namespace: None },
        settings: &[],
    },
    stability: Stability::Experimental,
});

/// The services the plugin works with, taken from the registry once.
struct Governance {
    actors: Arc<dyn ActorResolver>,
    authorizer: Arc<dyn Authorizer>,
    registrar: Arc<dyn ResourceRegistrar>,
    audit: Arc<dyn AuditRecorder>,
}

impl Governance {
    fn from_services(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            actors: services.require::<dyn ActorResolver>()?,
            authorizer: services.require::<dyn Authorizer>()?,
            registrar: services.require::<dyn ResourceRegistrar>()?,
            audit: services.require::<dyn AuditRecorder>()?,
        })
    }

    /// Step 1: who acts. The kernel admitted a user session; identity says which binding it
    /// acts through.
    async fn actor(&self, req: &poem::Request) -> Result<(Credential, ActorRef), ApiError> {
        let (credential, session_id) = match Credential::of(req) {
            Some(c @ Credential::Session { session_id, .. }) => (c.clone(), session_id.clone()),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::AuthenticationRequired,
                    "notes are written and read by members: send a user session",
                ));
            }
        };
        let actor = self
            .actors
            .of_session(&session_id)
            .await
            .map_err(|e| match e {
                ResolveError::NotFound { .. } => ApiError::new(
                    ErrorCode::UserMemberNotFound,
                    "this session acts through no member; switch to one first",
                ),
                ResolveError::Unavailable(why) => {
                    ApiError::new(ErrorCode::DatabaseUnavailable, why)
                }
            })?;
        Ok((credential, actor))
    }

    /// Step 2: may the actor do it? A deny is a 403 carrying the deny code; the decision is
    /// already in the audit log either way.
    async fn authorize(
        &self,
        req: &poem::Request,
        actor: &ActorRef,
        resource_type: &str,
        resource_id: &str,
        action: &str,
    ) -> Result<(), ApiError> {
        let outcome = self
            .authorizer
            .check(CheckRequest {
                actor: actor.clone(),
                resource_type: resource_type.to_owned(),
                resource_id: resource_id.to_owned(),
                action: action.to_owned(),
                ip: req
                    .remote_addr()
                    .as_socket_addr()
                    .map(|a| a.ip().to_string()),
                user_agent: req.header("User-Agent").map(str::to_owned),
                request_id: RequestId::of(req).to_owned(),
            })
            .await
            .map_err(|plystra_contracts::services::CheckError::Refused(e)| e)?;
        if outcome.allowed() {
            return Ok(());
        }
        let code = outcome.deny_code.map(|c| c.as_str()).unwrap_or_default();
        Err(ApiError::new(
            ErrorCode::AuthorizationDenied,
            format!(
                "{action} on {resource_type} {resource_id} is denied: {}",
                outcome.reason
            ),
        )
        .with_detail("deny_code", code)
        .with_detail("trace_id", outcome.trace_id)
        .with_detail("audit_log_id", outcome.audit_log_id))
    }

    /// Step 4: what the plugin did, in the audit log. Fails closed: no record, no answer.
    async fn record(
        &self,
        req: &poem::Request,
        actor: &ActorRef,
        event: &str,
        note_id: &str,
    ) -> Result<(), ApiError> {
        let record = AuditRecord {
            space_id: Some(actor.space_id.clone()),
            actor_user_id: Some(actor.user_id.clone()),
            actor_member_id: Some(actor.member_id.clone()),
            actor_user_member_id: Some(actor.user_member_id.clone()),
            resource_type: Some(NOTE.to_owned()),
            resource_id: Some(note_id.to_owned()),
            decision: Some("allow".to_owned()),
            ..AuditRecord::new(RequestId::of(req), event, event)
        };
        self.audit
            .record(record)
            .await
            .map_err(|e| ApiError::new(ErrorCode::AuditUnavailable, e.to_string()))?;
        Ok(())
    }
}

#[derive(Tags)]
enum NotesTag {
    /// The example notes plugin.
    Notes,
}

/// A note to write.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NoteCreateRequest")]
pub struct NoteCreateRequest {
    /// The title (1-200 characters).
    pub title: String,
    /// The text.
    pub body: String,
}

/// A note.
#[derive(Debug, Clone, Object)]
pub struct Note {
    /// Its ID (a registry resource of type `note`).
    pub id: String,
    /// The notebook it was written in.
    pub notebook_id: String,
    /// The space.
    pub space_id: String,
    /// The group it belongs to (its notebook's).
    pub group_id: Option<String>,
    /// The member who wrote it.
    pub owner_member_id: Option<String>,
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
}

/// A written note.
#[derive(ApiResponse)]
pub enum NoteCreated {
    /// Written.
    #[oai(status = 201)]
    Created(Json<Envelope<Note>>),
}

/// The plugin's routes.
pub struct NotesApi {
    gov: Governance,
}

fn text(metadata: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    metadata
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

#[OpenApi(tag = "NotesTag::Notes")]
impl NotesApi {
    /// Writes a note into a notebook. Needs `notebook:write` on the notebook, through the
    /// member the session acts as; a deny is a 403 `AUTHORIZATION_DENIED` naming the deny code.
    #[oai(
        path = "/api/v1/plugins/notes/notebooks/:notebook_id/notes",
        method = "post",
        operation_id = "createNote"
    )]
    async fn create(
        &self,
        req: &poem::Request,
        notebook_id: Path<String>,
        body: JsonBody<NoteCreateRequest>,
    ) -> Result<NoteCreated, ApiError> {
        let title = body.0.title.trim().to_owned();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(ApiError::invalid_field(
                "title",
                "must be 1 to 200 characters",
            ));
        }
        let (credential, actor) = self.gov.actor(req).await?;
        self.gov
            .authorize(req, &actor, NOTEBOOK, &notebook_id.0, "write")
            .await?;
        let notebook = self
            .gov
            .registrar
            .resource(NOTEBOOK, &notebook_id.0)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(ErrorCode::ResourceNotFound, NOTEBOOK, &notebook_id.0)
            })?;
        let mut metadata = serde_json::Map::new();
        metadata.insert("title".into(), title.clone().into());
        metadata.insert("body".into(), body.0.body.clone().into());
        metadata.insert("notebook_id".into(), notebook.id.clone().into());
        let id = self
            .gov
            .registrar
            .create_resource(NewResource {
                resource_type: NOTE.to_owned(),
                id: None,
                space_id: notebook.space_id.clone(),
                group_id: notebook.group_id.clone(),
                owner_member_id: Some(actor.member_id.clone()),
                metadata: Some(metadata),
                credential: Some(credential),
                request_id: RequestId::of(req).to_owned(),
            })
            .await?;
        self.gov.record(req, &actor, "notes.create", &id).await?;
        Ok(NoteCreated::Created(Json(Envelope::new(Note {
            id,
            notebook_id: notebook.id,
            space_id: notebook.space_id,
            group_id: notebook.group_id,
            owner_member_id: Some(actor.member_id),
            title,
            body: body.0.body,
        }))))
    }

    /// Reads a note. Needs `note:read` on the note.
    #[oai(
        path = "/api/v1/plugins/notes/notes/:note_id",
        method = "get",
        operation_id = "getNote"
    )]
    async fn get(
        &self,
        req: &poem::Request,
        note_id: Path<String>,
    ) -> Result<Json<Envelope<Note>>, ApiError> {
        let (_, actor) = self.gov.actor(req).await?;
        self.gov
            .authorize(req, &actor, NOTE, &note_id.0, "read")
            .await?;
        let note = self
            .gov
            .registrar
            .resource(NOTE, &note_id.0)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::ResourceNotFound, NOTE, &note_id.0))?;
        self.gov.record(req, &actor, "notes.read", &note.id).await?;
        Ok(Json(Envelope::new(Note {
            notebook_id: text(&note.metadata, "notebook_id"),
            title: text(&note.metadata, "title"),
            body: text(&note.metadata, "body"),
            id: note.id,
            space_id: note.space_id,
            group_id: note.group_id,
            owner_member_id: note.owner_member_id,
        })))
    }
}

impl RouteApi for NotesApi {
    fn build(services: &ServiceRegistry) -> Result<Self, ServiceError> {
        Ok(Self {
            gov: Governance::from_services(services)?,
        })
    }
}

/// The lifecycle: declare the plugin's types and actions in the registry at start.
#[derive(Default)]
pub struct NotesPlugin {
    registrar: std::sync::OnceLock<Arc<dyn ResourceRegistrar>>,
}

/// The plugin's marker service (its routes take what they need from the registry).
#[derive(Debug)]
pub struct NotesService;

#[async_trait::async_trait]
impl Capability for NotesPlugin {
    fn register(&self, services: &mut ServiceRegistry) -> Result<(), CapabilityError> {
        let _ = self
            .registrar
            .set(services.require::<dyn ResourceRegistrar>()?);
        services.provide::<NotesService>(SERVICE, Arc::new(NotesService))?;
        Ok(())
    }

    async fn start(&self, _services: &ServiceRegistry) -> Result<(), CapabilityError> {
        let Some(registrar) = self.registrar.get() else {
            return Ok(());
        };
        // Before `migrate up` the registry has no tables; the plugin then reports degraded and
        // declares its types on the next health probe.
        if let Err(e) = declare(registrar.as_ref()).await {
            tracing::warn!(error = %e.message, "notes: cannot declare resource types yet");
        }
        Ok(())
    }

    async fn health(&self) -> plystra_contracts::Health {
        let Some(registrar) = self.registrar.get() else {
            return plystra_contracts::Health::Healthy;
        };
        match registrar.resource(NOTEBOOK, "_").await {
            Ok(_) => plystra_contracts::Health::Healthy,
            Err(e) if e.code == ErrorCode::ResourceTypeNotFound => {
                match declare(registrar.as_ref()).await {
                    Ok(()) => plystra_contracts::Health::Healthy,
                    Err(e) => plystra_contracts::Health::Degraded(e.message),
                }
            }
            Err(e) => plystra_contracts::Health::Degraded(e.message),
        }
    }
}

async fn declare(registrar: &dyn ResourceRegistrar) -> Result<(), ApiError> {
    registrar
        .declare_type(NOTEBOOK, "Notebook", &[("write", "normal")])
        .await?;
    registrar
        .declare_type(NOTE, "Note", &[("read", "normal")])
        .await
}

fn construct() -> Box<dyn Capability> {
    Box::new(NotesPlugin::default())
}

register_capability! { manifest: MANIFEST, capability: construct, routes: NotesApi }
