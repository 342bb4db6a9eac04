//! Actor context: who a session acts as (user → binding → member → space), the bindings it could
//! switch to, and the `identity.service` resolver authorization uses.

use std::sync::Arc;

use async_trait::async_trait;
use plystra_contracts::body::JsonBody;
use plystra_contracts::services::{
    ActorRef, ActorResolver, Credential, GroupSnapshot, ResolveError,
};
use plystra_contracts::storage::Database;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::ApiTag;
use crate::store::{Ctx, Lifecycle, Status, credential, now};
use crate::user_members::UserMember;
use plystra_contracts::entity;

/// One binding a user can act through.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ActorBinding")]
pub struct ActorBinding {
    /// The user.
    pub user_id: String,
    /// The user's email.
    pub email: Option<String>,
    /// The binding.
    pub user_member_id: String,
    /// The member acted as.
    pub member_id: String,
    /// The member's display name.
    pub member_display_name: Option<String>,
    /// The member's space.
    pub space_id: String,
    /// How the user relates to the member.
    pub relation_type: String,
    /// Whether this is the user's preferred binding.
    pub is_primary: bool,
    /// When the binding stops working.
    pub expires_at: Option<OffsetDateTime>,
}

impl From<&UserMember> for ActorBinding {
    fn from(b: &UserMember) -> Self {
        Self {
            user_id: b.user_id.clone(),
            email: b.email.clone(),
            user_member_id: b.id.clone(),
            member_id: b.member_id.clone(),
            member_display_name: b.member_display_name.clone(),
            space_id: b.space_id.clone(),
            relation_type: b.relation_type.clone(),
            is_primary: b.is_primary,
            expires_at: b.expires_at,
        }
    }
}

/// A session's actor and the alternatives.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ActorContextResponse")]
pub struct ActorContextResponse {
    /// The binding the session acts through; absent when it has none that works.
    pub actor: Option<ActorBinding>,
    /// Every binding the user can act through now (active, unexpired, member and space active).
    pub available_members: Vec<ActorBinding>,
}

/// Switches the session's actor.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SwitchMemberRequest")]
pub struct SwitchMemberRequest {
    /// The member to act as; the user's primary (else first) working binding to it is used.
    pub member_id: Option<String>,
    /// The binding to act through.
    pub user_member_id: Option<String>,
}

/// The bindings of `user_id` that work now, primary first, then by ID.
pub(crate) async fn available(db: &Database, user_id: &str) -> Result<Vec<UserMember>, ApiError> {
    let at = now();
    let mut out = Vec::new();
    for b in crate::user_members::of_user(db, user_id).await? {
        if !b.usable_at(at) {
            continue;
        }
        let member_ok = entity::get::<crate::members::Member>(db, &b.member_id)
            .await?
            .is_some_and(|m| m.status == Status::Active);
        let space_ok = entity::get::<crate::spaces::Space>(db, &b.space_id)
            .await?
            .is_some_and(|s| s.status == Status::Active);
        if member_ok && space_ok {
            out.push(b);
        }
    }
    out.sort_by(|x, y| y.is_primary.cmp(&x.is_primary).then(x.id.cmp(&y.id)));
    Ok(out)
}

/// The context of a session acting through `current`.
pub(crate) async fn context(
    db: &Database,
    user_id: &str,
    current: Option<&str>,
) -> Result<ActorContextResponse, ApiError> {
    let available = available(db, user_id).await?;
    let actor = current
        .and_then(|id| available.iter().find(|b| b.id == id))
        .map(ActorBinding::from);
    Ok(ActorContextResponse {
        actor,
        available_members: available.iter().map(ActorBinding::from).collect(),
    })
}

fn needs_session() -> ApiError {
    ApiError::new(
        ErrorCode::AuthenticationRequired,
        "this operation needs a user session: send Authorization: Bearer ply_at_…",
    )
}

/// The actor routes.
pub struct ActorApi {
    pub(crate) ctx: Arc<Ctx>,
}

impl ActorApi {
    async fn session(&self, req: &poem::Request) -> Result<crate::sessions::SessionRow, ApiError> {
        let Some(Credential::Session { session_id, .. }) = credential(req) else {
            return Err(needs_session());
        };
        self.ctx
            .sessions
            .by_id(session_id)
            .await?
            .ok_or_else(needs_session)
    }
}

#[OpenApi(tag = "ApiTag::Actor")]
impl ActorApi {
    /// The session's actor (user, binding, member, space) and the bindings it can switch to.
    #[oai(
        path = "/api/v1/actor/context",
        method = "get",
        operation_id = "getActorContext"
    )]
    async fn get_context(
        &self,
        req: &poem::Request,
        _session: plystra_contracts::security::SessionOnly,
    ) -> Result<Json<Envelope<ActorContextResponse>>, ApiError> {
        let session = self.session(req).await?;
        let ctx = context(
            &self.ctx.db,
            &session.user_id,
            session.user_member_id.as_deref(),
        )
        .await?;
        Ok(Json(Envelope::new(ctx)))
    }

    /// Makes the session act through another of the user's working bindings. 404 when the user
    /// has no such binding, 409 when it exists but does not work (revoked, expired, member or
    /// space disabled).
    #[oai(
        path = "/api/v1/actor/switch-member",
        method = "post",
        operation_id = "switchMember"
    )]
    async fn switch_member(
        &self,
        req: &poem::Request,
        _session: plystra_contracts::security::SessionOnly,
        body: JsonBody<SwitchMemberRequest>,
    ) -> Result<Json<Envelope<ActorContextResponse>>, ApiError> {
        let session = self.session(req).await?;
        let body = body.0;
        if body.member_id.is_none() && body.user_member_id.is_none() {
            return Err(ApiError::invalid_field(
                "user_member_id",
                "give user_member_id or member_id",
            ));
        }
        let matches = |b: &UserMember| {
            body.user_member_id.as_ref().is_none_or(|id| *id == b.id)
                && body.member_id.as_ref().is_none_or(|id| *id == b.member_id)
        };
        let available = available(&self.ctx.db, &session.user_id).await?;
        let Some(target) = available.iter().find(|b| matches(b)) else {
            let all = crate::user_members::of_user(&self.ctx.db, &session.user_id).await?;
            let named = body
                .user_member_id
                .clone()
                .or(body.member_id.clone())
                .unwrap_or_default();
            return Err(if all.iter().any(matches) {
                ApiError::new(
                    ErrorCode::Conflict,
                    "that binding does not work now (revoked, expired, or its member or space is disabled)",
                )
                .with_detail("id", named)
            } else {
                ApiError::new(
                    ErrorCode::UserMemberNotFound,
                    "the user has no binding like that",
                )
                .with_detail("id", named)
            });
        };
        let mut tx = self.ctx.begin().await?;
        let facts = self
            .ctx
            .sessions
            .switch_in(&mut tx, &session.id, &target.id)
            .await?
            .into_iter()
            .collect();
        self.ctx.commit_facts(tx, Vec::new(), facts).await?;
        let ctx = context(&self.ctx.db, &session.user_id, Some(&target.id)).await?;
        Ok(Json(Envelope::new(ctx)))
    }
}

/// The `identity.service` resolver.
pub struct Resolver {
    pub(crate) db: Database,
}

fn unavailable(e: ApiError) -> ResolveError {
    ResolveError::Unavailable(e.message)
}

#[async_trait]
impl ActorResolver for Resolver {
    async fn of_session(&self, session_id: &str) -> Result<ActorRef, ResolveError> {
        use crate::store::{MEMBERS, SESSIONS, USER_MEMBERS, a};
        use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query};
        let mut q = Query::select();
        q.columns([
            (a(SESSIONS), a("user_id")),
            (a(USER_MEMBERS), a("id")),
            (a(USER_MEMBERS), a("member_id")),
            (a(MEMBERS), a("space_id")),
        ])
        .from(a(SESSIONS))
        .inner_join(
            a(USER_MEMBERS),
            Expr::col((a(USER_MEMBERS), a("id"))).equals((a(SESSIONS), a("user_member_id"))),
        )
        .inner_join(
            a(MEMBERS),
            Expr::col((a(MEMBERS), a("id"))).equals((a(USER_MEMBERS), a("member_id"))),
        )
        .and_where(Expr::col((a(SESSIONS), a("id"))).eq(session_id));
        let row: Option<(String, String, String, String)> = self
            .db
            .fetch_optional(&q)
            .await
            .map_err(|e| ResolveError::Unavailable(e.to_string()))?;
        let (user_id, user_member_id, member_id, space_id) =
            row.ok_or_else(|| ResolveError::NotFound {
                entity: "user_member",
                id: format!("acting binding of session {session_id}"),
            })?;
        Ok(ActorRef {
            user_id,
            member_id,
            user_member_id,
            space_id,
        })
    }

    async fn facts(&self) -> Result<Vec<plystra_contracts::facts::Fact>, ResolveError> {
        crate::facts::all(&self.db).await.map_err(unavailable)
    }

    async fn facts_in_parts(
        &self,
        part: &mut (dyn FnMut(Vec<plystra_contracts::facts::Fact>) + Send),
    ) -> Result<(), ResolveError> {
        crate::facts::all_in_parts(&self.db, part)
            .await
            .map_err(unavailable)
    }

    async fn user_and_group_facts(
        &self,
    ) -> Result<Vec<plystra_contracts::facts::Fact>, ResolveError> {
        crate::facts::users_and_groups(&self.db)
            .await
            .map_err(unavailable)
    }

    async fn group(&self, group_id: &str) -> Result<Option<GroupSnapshot>, ResolveError> {
        Ok(entity::get::<crate::groups::Group>(&self.db, group_id)
            .await
            .map_err(unavailable)?
            .map(|g| GroupSnapshot {
                id: g.id,
                space_id: g.space_id,
                path: g.path,
                status: g.status.as_str().to_owned(),
            }))
    }
}
