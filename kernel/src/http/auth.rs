//! Authentication and access control of protected routes, by one mechanism: the credential (the
//! bootstrap key `PLYSTRA_API_KEY`, compared in constant time, or a session access token when a
//! capability provides a `SessionVerifier`), then the operation's declared `Access`. Management
//! operations accept the bootstrap key, or another credential only when the `AdminAuthorizer`
//! grants the permission; without an authorizer they fail closed with 403. Self-service
//! operations need a user session.

use std::sync::Arc;

use plystra_contracts::Access;
use plystra_contracts::services::{AdminAuthorizer, Credential, SessionVerifier};
use plystra_contracts::{ApiError, ErrorCode};
use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Request};
use subtle::ConstantTimeEq;

/// The API key header.
pub const API_KEY_HEADER: &str = "X-Plystra-API-Key";

/// The prefix of session access tokens.
pub const ACCESS_TOKEN_PREFIX: &str = "ply_at_";

/// Authenticates requests.
pub struct Authenticator {
    bootstrap_key: Option<String>,
    sessions: Option<Arc<dyn SessionVerifier>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "bootstrap_key",
                &self.bootstrap_key.as_ref().map(|_| "[set]"),
            )
            .field("sessions", &self.sessions.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Accepts `bootstrap_key` (nothing when `None`) and the sessions `sessions` verifies.
    pub fn new(bootstrap_key: Option<String>, sessions: Option<Arc<dyn SessionVerifier>>) -> Self {
        Self {
            bootstrap_key: bootstrap_key.filter(|k| !k.is_empty()),
            sessions,
        }
    }

    /// The credential the request presents, or 401. A verifier that cannot answer is a 503,
    /// never an allow.
    pub async fn authenticate(&self, req: &Request) -> Result<Credential, ApiError> {
        let presented = presented_key(req).ok_or_else(|| {
            ApiError::new(
                ErrorCode::AuthenticationRequired,
                "this operation needs a credential: send an API key in X-Plystra-API-Key or a token as Authorization: Bearer …",
            )
        })?;
        let invalid = || {
            ApiError::new(
                ErrorCode::AuthenticationRequired,
                "the credential is not valid",
            )
        };
        if presented.starts_with(ACCESS_TOKEN_PREFIX) {
            let Some(sessions) = &self.sessions else {
                return Err(invalid());
            };
            return match sessions.verify(&presented).await {
                Ok(Some(credential)) => Ok(credential),
                Ok(None) => Err(invalid()),
                Err(e) => Err(ApiError::new(
                    ErrorCode::DatabaseUnavailable,
                    format!("cannot verify the session: {e}"),
                )),
            };
        }
        match &self.bootstrap_key {
            Some(key) if bool::from(key.as_bytes().ct_eq(presented.as_bytes())) => {
                Ok(Credential::BootstrapKey)
            }
            _ => Err(invalid()),
        }
    }
}

fn presented_key(req: &Request) -> Option<String> {
    if let Some(key) = req.header(API_KEY_HEADER) {
        return Some(key.trim().to_owned());
    }
    let auth = req.header("Authorization")?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Puts authentication and the operation's access rule in front of one endpoint.
#[derive(Clone)]
pub struct Protect {
    authenticator: Arc<Authenticator>,
    access: Access,
    admin: Option<Arc<dyn AdminAuthorizer>>,
}

impl std::fmt::Debug for Protect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protect")
            .field("access", &self.access)
            .field("admin", &self.admin.is_some())
            .finish()
    }
}

impl Protect {
    /// Protection by `authenticator`, for an operation with `access`, with the admin authorizer
    /// when one is provided.
    pub fn new(
        authenticator: Arc<Authenticator>,
        access: Access,
        admin: Option<Arc<dyn AdminAuthorizer>>,
    ) -> Self {
        Self {
            authenticator,
            access,
            admin,
        }
    }

    /// Whether `credential` may call the operation; `Err` is the answer when not.
    pub async fn admit(&self, credential: &Credential) -> Result<(), ApiError> {
        match (self.access, credential) {
            (Access::SelfService, Credential::Session { .. }) => Ok(()),
            (Access::SelfService, _) => Err(ApiError::new(
                ErrorCode::AuthenticationRequired,
                "this operation acts on a user session: send Authorization: Bearer ply_at_…",
            )),
            (Access::Admin { .. }, Credential::BootstrapKey) => Ok(()),
            (Access::Admin { permission }, other) => {
                let wanted = permission.unwrap_or("*");
                let denied = || {
                    ApiError::new(
                        ErrorCode::AdminPermissionRequired,
                        format!("this operation needs the admin permission {wanted}"),
                    )
                    .with_detail("permission", wanted)
                };
                let Some(admin) = &self.admin else {
                    return Err(denied());
                };
                match admin.authorize(other, wanted).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(denied()),
                    Err(e) => Err(ApiError::new(
                        ErrorCode::DatabaseUnavailable,
                        format!("cannot check admin permissions: {e}"),
                    )),
                }
            }
        }
    }

    /// The endpoint, answering 401/403 unless the request's credential may call it. The
    /// credential goes into the request's extensions for the handler.
    pub fn wrap(&self, ep: BoxEndpoint<'static>) -> BoxEndpoint<'static> {
        let protect = self.clone();
        ep.before(move |mut req: Request| {
            let protect = protect.clone();
            async move {
                let credential = protect.authenticator.authenticate(&req).await?;
                protect.admit(&credential).await?;
                req.extensions_mut().insert(credential);
                Ok(req)
            }
        })
        .boxed()
    }
}
