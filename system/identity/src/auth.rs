//! The public session routes: login (email and password), refresh (rotates both tokens), logout,
//! and registration (off unless configured).

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::facts::Fact;
use plystra_contracts::not_blank::NotBlank;
use plystra_contracts::services::{Caller, RequestId};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::{ApiError, Envelope, ErrorCode};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use subtle::ConstantTimeEq;

use crate::actor::{ActorBinding, available, context};
use crate::members::{MemberCreateRequest, NewMember};
use crate::sessions::Issued;
use crate::store::{Created, Ctx, Metadata, Status, change_of};
use crate::user_members::{NewBinding, UserMemberCreateRequest};
use crate::users::{NewUser, UserCreateRequest};
use crate::{ApiTag, passwords};
use plystra_contracts::entity;

/// The user a session belongs to.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SessionUser")]
pub struct SessionUser {
    /// The user's ID.
    pub id: String,
    /// The login email.
    pub email: Option<String>,
    /// `active` (only active users hold sessions).
    pub status: Status,
}

/// Logs in with an email and a password.
#[derive(Debug, Clone, Object)]
#[oai(rename = "LoginRequest")]
pub struct LoginRequest {
    /// The login email (any case, either Unicode normalization form).
    pub email: String,
    /// The password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Clone, Object)]
#[oai(rename = "LoginResponse")]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer …`; valid for 15 minutes.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When the access token expires.
    pub expires_at: OffsetDateTime,
    /// Exchange at `/api/v1/auth/refresh` for new tokens; valid for 30 days, once.
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_expires_at: OffsetDateTime,
    /// Who logged in.
    pub user: SessionUser,
    /// The binding the session acts through: the primary working one, else the first.
    pub actor: Option<ActorBinding>,
    /// Every binding the user can act through now.
    pub available_members: Vec<ActorBinding>,
}

/// Exchanges a refresh token.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RefreshRequest")]
pub struct RefreshRequest {
    /// The refresh token from login or the last refresh.
    pub refresh_token: String,
}

/// New tokens; the old pair no longer works.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RefreshResponse")]
pub struct RefreshResponse {
    /// The new access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// The new refresh token.
    pub refresh_token: String,
    /// When it expires.
    pub refresh_expires_at: OffsetDateTime,
}

/// Ends a session: name it by its refresh token, or send its access token as a Bearer token
/// (401 `AUTHENTICATION_REQUIRED` when neither names one).
#[derive(Debug, Clone, Object)]
#[oai(rename = "LogoutRequest")]
pub struct LogoutRequest {
    /// The session's refresh token.
    pub refresh_token: Option<String>,
}

/// The outcome of a logout.
#[derive(Debug, Clone, Object)]
#[oai(rename = "LogoutResponse")]
pub struct LogoutResponse {
    /// True when a live session was ended; false when the token named none.
    pub logged_out: bool,
}

/// Registers a user in the configured space.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RegisterRequest")]
pub struct RegisterRequest {
    /// The login email, as on user create (one `@`, a dotted domain, no white space or
    /// invisible characters).
    #[oai(validator(
        pattern = r"^[^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]+@[^@.\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]*\.[^@\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]*[^@.\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8]$"
    ))]
    pub email: String,
    /// The password, at least 12 characters.
    #[oai(validator(min_length = 12, max_length = 1024))]
    pub password: String,
    /// The token the operator configured (`PLYSTRA_AUTH_REGISTRATION_TOKEN`).
    pub registration_token: String,
    /// A handle, at most 128 characters and not blank, as on user create; the email when absent.
    #[oai(validator(max_length = 128))]
    pub username: Option<NotBlank>,
    /// A phone number (not blank), as on user create.
    #[oai(validator(max_length = 64))]
    pub phone: Option<NotBlank>,
    /// The new member's display name, at most 200 characters and not blank, as on member create;
    /// the username when absent.
    #[oai(validator(max_length = 200))]
    pub member_display_name: Option<NotBlank>,
    /// Ignored: registration joins the configured space and never creates one.
    pub space_name: Option<String>,
    /// Ignored, like `space_name`.
    pub space_slug: Option<String>,
    /// Free-form data for the user.
    pub metadata: Option<Metadata>,
}

/// A registered user and its first session.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RegisterResponse")]
pub struct RegisterResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// The refresh token.
    pub refresh_token: String,
    /// When it expires.
    pub refresh_expires_at: OffsetDateTime,
    /// The new user.
    pub user: SessionUser,
    /// The new binding.
    pub actor: Option<ActorBinding>,
    /// Every binding the user can act through.
    pub available_members: Vec<ActorBinding>,
    /// Always `token`: registration needs the configured token.
    pub registration_mode: String,
    /// Always false: registered users are active at once.
    pub registration_requires_approval: bool,
    /// Always false: registration never creates an administrator.
    pub bootstrap_super_admin: bool,
    /// Always false: the user gets a member in the configured space.
    pub user_only: bool,
}

/// Registration settings.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// `PLYSTRA_AUTH_REGISTRATION_ENABLED=true`.
    pub enabled: bool,
    /// `PLYSTRA_AUTH_REGISTRATION_TOKEN`.
    pub token: Option<String>,
    /// `PLYSTRA_AUTH_REGISTRATION_SPACE_ID`.
    pub space_id: Option<String>,
    /// Production needs a token of at least 32 characters.
    pub production: bool,
}

impl Registration {
    /// Reads the settings.
    pub fn from_runtime(runtime: &dyn plystra_contracts::services::RuntimeInfo) -> Self {
        let get = |k: &str| runtime.setting(k).filter(|v| !v.is_empty());
        Self {
            enabled: get("PLYSTRA_AUTH_REGISTRATION_ENABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            token: get("PLYSTRA_AUTH_REGISTRATION_TOKEN"),
            space_id: get("PLYSTRA_AUTH_REGISTRATION_SPACE_ID"),
            production: runtime.production(),
        }
    }

    /// The space to register into, when registration is on and usable.
    fn usable(&self) -> Result<(&str, &str), ApiError> {
        let off = |why: &str| {
            ApiError::new(
                ErrorCode::FeatureDisabled,
                format!("registration is disabled: {why}"),
            )
        };
        if !self.enabled {
            return Err(off("PLYSTRA_AUTH_REGISTRATION_ENABLED is not true"));
        }
        let token = self
            .token
            .as_deref()
            .ok_or_else(|| off("PLYSTRA_AUTH_REGISTRATION_TOKEN is not set"))?;
        if self.production && token.chars().count() < 32 {
            return Err(off(
                "PLYSTRA_AUTH_REGISTRATION_TOKEN is shorter than 32 characters",
            ));
        }
        let space = self
            .space_id
            .as_deref()
            .ok_or_else(|| off("PLYSTRA_AUTH_REGISTRATION_SPACE_ID is not set"))?;
        Ok((token, space))
    }
}

/// The connection's address. Forwarding headers (`X-Forwarded-For`, …) are not read: a client
/// could set them to anything.
fn client_address(req: &poem::Request) -> Option<std::net::IpAddr> {
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

fn client_ip(req: &poem::Request) -> String {
    client_address(req).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

fn user_agent(req: &poem::Request) -> Option<String> {
    req.header("User-Agent").map(str::to_owned)
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "the email or password is not correct",
    )
}

/// The session routes.
pub struct AuthApi {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) registration: Registration,
}

impl AuthApi {
    async fn start_session(
        &self,
        mut tx: plystra_contracts::storage::Transaction,
        req: &poem::Request,
        user_id: &str,
        preferred: Option<String>,
    ) -> Result<Issued, ApiError> {
        let (issued, fact) = self.session_in(&mut tx, req, user_id, preferred).await?;
        self.ctx.commit_facts(tx, Vec::new(), vec![fact]).await?;
        Ok(issued)
    }

    /// Creates a session inside `tx`, which the caller commits with the session's fact.
    async fn session_in(
        &self,
        tx: &mut plystra_contracts::storage::Transaction,
        req: &poem::Request,
        user_id: &str,
        preferred: Option<String>,
    ) -> Result<(Issued, Fact), ApiError> {
        self.ctx
            .sessions
            .create(
                tx,
                user_id,
                preferred.as_deref(),
                Some(&client_ip(req)),
                user_agent(req).as_deref(),
            )
            .await
    }
}

#[OpenApi(tag = "ApiTag::Auth")]
impl AuthApi {
    /// Logs in with an email and a password. Eight failures for one email from one address within
    /// 15 minutes lock logins for that pair for 15 minutes (429 `LOGIN_LOCKED`). One address may
    /// try `PLYSTRA_LOGIN_ATTEMPTS_PER_MINUTE` times a minute, whatever the emails (429
    /// `RATE_LIMITED`); when every password-hashing slot stays busy past the wait, 503
    /// `SERVER_BUSY`. Both carry `Retry-After`. An unknown email costs the same as a wrong
    /// password and gets the same 401.
    #[oai(path = "/api/v1/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &poem::Request,
        body: JsonBody<LoginRequest>,
    ) -> Result<Json<Envelope<LoginResponse>>, ApiError> {
        let body = body.0;
        let sessions = &self.ctx.sessions;
        sessions.attempt_from(client_address(req))?;
        let email = crate::users::normalized_email(&body.email)?;
        let ip = client_ip(req);
        if let Some(left) = sessions.locked(&email, &ip).await? {
            return Err(ApiError::new(
                ErrorCode::LoginLocked,
                "too many failed logins; try again later",
            )
            .with_detail("retry_after_seconds", left.as_secs().max(1)));
        }
        let found = crate::users::by_email_with_hash(&self.ctx.db, &email).await?;
        let (user, hash) = match found {
            Some((user, hash)) if user.status == Status::Active => (Some(user), hash),
            _ => (None, None),
        };
        // Unknown, disabled and password-less users verify against nothing at the same cost.
        let ok = sessions.hashing().verify(body.password, hash).await?;
        let Some(user) = user.filter(|_| ok) else {
            sessions.failed(&email, &ip).await?;
            return Err(invalid_credentials());
        };
        sessions.succeeded(&email, &ip).await?;
        let bindings = available(&self.ctx.db, &user.id).await?;
        let preferred = bindings.first().map(|b| b.id.clone());
        let tx = self.ctx.begin().await?;
        let issued = self
            .start_session(tx, req, &user.id, preferred.clone())
            .await?;
        let ctx = context(&self.ctx.db, &user.id, preferred.as_deref()).await?;
        Ok(Json(Envelope::new(LoginResponse {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_at: issued.expires_at,
            refresh_token: issued.refresh_token,
            refresh_expires_at: issued.refresh_expires_at,
            user: SessionUser {
                id: user.id,
                email: user.email,
                status: user.status,
            },
            actor: ctx.actor,
            available_members: ctx.available_members,
        })))
    }

    /// Exchanges a refresh token for a new access and refresh token; both old tokens stop working.
    #[oai(
        path = "/api/v1/auth/refresh",
        method = "post",
        operation_id = "refreshSession"
    )]
    async fn refresh(
        &self,
        body: JsonBody<RefreshRequest>,
    ) -> Result<Json<Envelope<RefreshResponse>>, ApiError> {
        let sessions = &self.ctx.sessions;
        let token = &body.0.refresh_token;
        // Sessions off is a 503 before any token is judged.
        sessions.secrets()?;
        let session = sessions
            .by_refresh(token)
            .await?
            .ok_or_else(crate::sessions::invalid_token)?;
        let mut tx = self.ctx.begin().await?;
        let (issued, fact) = sessions.refresh_in(&mut tx, &session, token).await?;
        self.ctx.commit_facts(tx, Vec::new(), vec![fact]).await?;
        Ok(Json(Envelope::new(RefreshResponse {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_at: issued.expires_at,
            refresh_token: issued.refresh_token,
            refresh_expires_at: issued.refresh_expires_at,
        })))
    }

    /// Ends a session, named by its refresh token or by a Bearer access token.
    #[oai(path = "/api/v1/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        req: &poem::Request,
        body: JsonBody<LogoutRequest>,
    ) -> Result<Json<Envelope<LogoutResponse>>, ApiError> {
        let sessions = &self.ctx.sessions;
        let session = match &body.0.refresh_token {
            Some(t) => sessions.by_refresh(t).await?,
            None => {
                let bearer = req
                    .header("Authorization")
                    .and_then(|h| h.trim().split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, t)| t.trim().to_owned());
                match bearer {
                    Some(t) => sessions.by_access(&t).await?,
                    // Nothing names a session to end: the caller is not authenticated.
                    None => {
                        return Err(ApiError::new(
                            ErrorCode::AuthenticationRequired,
                            "name the session: give its refresh token, or send its access token as a Bearer token",
                        ));
                    }
                }
            }
        };
        let Some(session) = session else {
            return Ok(Json(Envelope::new(LogoutResponse { logged_out: false })));
        };
        let mut tx = self.ctx.begin().await?;
        let logged_out = match sessions.revoke_in(&mut tx, &session.id).await? {
            Some(fact) => {
                self.ctx.commit_facts(tx, Vec::new(), vec![fact]).await?;
                true
            }
            // Ended meanwhile by another request: nothing to commit.
            None => {
                tx.rollback().await?;
                false
            }
        };
        Ok(Json(Envelope::new(LogoutResponse { logged_out })))
    }

    /// Registers a user with a member and an active binding in the configured space, and starts
    /// its session. Off unless `PLYSTRA_AUTH_REGISTRATION_ENABLED=true` (404 `FEATURE_DISABLED`);
    /// needs the configured registration token. Never creates an administrator.
    #[oai(
        path = "/api/v1/auth/register",
        method = "post",
        operation_id = "register"
    )]
    async fn register(
        &self,
        req: &poem::Request,
        body: JsonBody<RegisterRequest>,
    ) -> Result<Created<RegisterResponse>, ApiError> {
        let (token, space_id) = self.registration.usable()?;
        let body = body.0;
        if !bool::from(token.as_bytes().ct_eq(body.registration_token.as_bytes())) {
            return Err(ApiError::new(
                ErrorCode::InvalidCredentials,
                "the registration token is not correct",
            ));
        }
        passwords::check(&body.password)?;
        let new_user = NewUser::validate(UserCreateRequest {
            id: None,
            email: body.email,
            username: body.username,
            phone: body.phone,
            password: Some(body.password),
            status: None,
            metadata: body.metadata,
        })?;
        let display_name = match body.member_display_name {
            Some(name) => name,
            // A username is never blank: `NewUser::validate` trimmed it and refused an empty one.
            None => NotBlank::field("username", new_user.username.clone())?,
        };
        let mut tx = self.ctx.begin().await?;
        let space = entity::require::<crate::spaces::Space>(&mut tx, space_id)
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::FeatureDisabled,
                    "registration is disabled: the configured space does not exist",
                )
            })?;
        if space.status != Status::Active {
            return Err(ApiError::new(
                ErrorCode::FeatureDisabled,
                "registration is disabled: the configured space is disabled",
            ));
        }
        let user = new_user
            .insert(&mut tx, self.ctx.sessions.hashing())
            .await?;
        let member = NewMember::validate(
            space.id.clone(),
            MemberCreateRequest {
                id: None,
                display_name,
                member_type: None,
                status: None,
                metadata: None,
            },
        )?
        .insert(&mut tx)
        .await?;
        let binding = NewBinding::validate(
            space.id.clone(),
            UserMemberCreateRequest {
                id: None,
                user_id: user.id.clone(),
                member_id: member.id.clone(),
                relation_type: Some("login".into()),
                is_primary: Some(true),
                status: None,
                linked_at: None,
                linked_by_member_id: None,
                expires_at: None,
                revoked_reason: None,
                metadata: None,
            },
        )?
        .insert(&mut tx)
        .await?;
        let as_user = plystra_contracts::services::Credential::Session {
            user_id: user.id.clone(),
            session_id: String::new(),
        };
        let caller = Caller {
            credential: Some(&as_user),
            request_id: RequestId::of(req),
        };
        let records = [
            crate::users::created_record(caller, &user),
            change_of(caller, "members.create", &member),
            change_of(caller, "user_members.create", &binding),
        ];
        let records = records
            .into_iter()
            .map(|mut record| {
                record.actor_member_id = Some(member.id.clone());
                record.actor_user_member_id = Some(binding.id.clone());
                record
            })
            .collect();
        let (issued, session) = self
            .session_in(&mut tx, req, &user.id, Some(binding.id.clone()))
            .await?;
        let facts = vec![(&user).into(), (&member).into(), (&binding).into(), session];
        self.ctx.commit_facts(tx, records, facts).await?;
        let ctx = context(&self.ctx.db, &user.id, Some(&binding.id)).await?;
        Ok(Created::Created(Json(Envelope::new(RegisterResponse {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_at: issued.expires_at,
            refresh_token: issued.refresh_token,
            refresh_expires_at: issued.refresh_expires_at,
            user: SessionUser {
                id: user.id,
                email: user.email,
                status: user.status,
            },
            actor: ctx.actor,
            available_members: ctx.available_members,
            registration_mode: "token".into(),
            registration_requires_approval: false,
            bootstrap_super_admin: false,
            user_only: false,
        }))))
    }
}
