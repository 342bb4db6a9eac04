//! Authentication and access control of protected routes, by one mechanism: the credential (the
//! bootstrap key `PLYSTRA_API_KEY`, compared in constant time; a managed API key `ply_ak_…` when a
//! capability provides an `ApiKeyVerifier`; or a session access token when one provides a
//! `SessionVerifier`), then the operation's declared `Access`. When an `AdminAuthorizer` is
//! provided it decides every management call, the bootstrap key's included (its permissions and
//! the handoff), against the operation's permission and its target (the path parameters).
//! Without an authorizer only the bootstrap key manages, and every other credential fails closed
//! with 403. Self-service operations need a user session.

use std::sync::Arc;

use plystra_contracts::Access;
use plystra_contracts::feed::{FactsFeed, FeedError};
use plystra_contracts::services::{
    AdminAuthorizer, AdminTarget, ApiKeyVerifier, Credential, SessionVerifier,
};
use plystra_contracts::{ApiError, ErrorCode};
use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Request};
use subtle::ConstantTimeEq;

/// The API key header.
pub const API_KEY_HEADER: &str = "X-Plystra-API-Key";

/// The prefix of session access tokens.
pub const ACCESS_TOKEN_PREFIX: &str = "ply_at_";

/// The prefix of managed API keys.
pub const API_KEY_PREFIX: &str = "ply_ak_";

/// Authenticates requests.
pub struct Authenticator {
    bootstrap_key: Option<String>,
    sessions: Option<Arc<dyn SessionVerifier>>,
    api_keys: Option<Arc<dyn ApiKeyVerifier>>,
    admin: Option<Arc<dyn AdminAuthorizer>>,
    feed: Option<Arc<dyn FactsFeed>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "bootstrap_key",
                &self.bootstrap_key.as_ref().map(|_| "[set]"),
            )
            .field("sessions", &self.sessions.is_some())
            .field("api_keys", &self.api_keys.is_some())
            .field("admin", &self.admin.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Accepts `bootstrap_key` (nothing when `None`) and the sessions `sessions` verifies.
    pub fn new(bootstrap_key: Option<String>, sessions: Option<Arc<dyn SessionVerifier>>) -> Self {
        Self {
            bootstrap_key: bootstrap_key.filter(|k| !k.is_empty()),
            sessions,
            api_keys: None,
            admin: None,
            feed: None,
        }
    }

    /// Honours `X-Plystra-At-Least-Revision` with `feed`: a request carrying it waits (bounded)
    /// until this process has applied that change-feed revision, before its credential and its
    /// permissions are judged (credentials follow the feed) and the handler runs. Also answers
    /// 503 `FACTS_NOT_CURRENT` when a verifier cannot decide because the facts are not current.
    pub fn with_feed(mut self, feed: Option<Arc<dyn FactsFeed>>) -> Self {
        self.feed = feed;
        self
    }

    /// Waits until the revision the request asks for (`X-Plystra-At-Least-Revision`) is
    /// applied; 400 for a malformed value, 409 `REVISION_NOT_ISSUED` for a revision past the
    /// database's newest (or any but 0 without a database), 503 `REVISION_NOT_REACHED` past the
    /// consistency wait (`PLYSTRA_CONSISTENCY_WAIT_MS`). A revision already applied costs
    /// nothing; one ahead costs a read of the feed's head and holds the request at most the
    /// consistency wait.
    pub async fn await_revision(&self, req: &Request) -> Result<(), ApiError> {
        let Some(revision) = plystra_contracts::feed::at_least_revision(req)? else {
            return Ok(());
        };
        match &self.feed {
            Some(feed) => feed.wait_for(revision).await.map(drop).map_err(Into::into),
            None if revision == 0 => Ok(()),
            // Without a database nothing was ever committed, so no write returned this revision.
            None => Err(FeedError::RevisionNotIssued {
                wanted: revision,
                head: 0,
            }
            .into()),
        }
    }

    /// The answer when a verifier or the authorizer could not decide: 503
    /// `FACTS_NOT_CURRENT` when this process cannot confirm its facts (credentials included)
    /// are current, else 503 `DATABASE_UNAVAILABLE` naming `what`.
    pub fn undecided(&self, what: &str, cause: impl std::fmt::Display) -> ApiError {
        if let Some(feed) = &self.feed
            && let Err(stale) = feed.current()
        {
            return ApiError::new(ErrorCode::FactsNotCurrent, format!("{what}: {stale}"));
        }
        ApiError::new(ErrorCode::DatabaseUnavailable, format!("{what}: {cause}"))
    }

    /// Also accepts the managed API keys `api_keys` verifies.
    pub fn with_api_keys(mut self, api_keys: Option<Arc<dyn ApiKeyVerifier>>) -> Self {
        self.api_keys = api_keys;
        self
    }

    /// Asks `admin` whether the bootstrap key is still accepted (the handoff).
    pub fn with_admin(mut self, admin: Option<Arc<dyn AdminAuthorizer>>) -> Self {
        self.admin = admin;
        self
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
                Err(e) => Err(self.undecided("cannot verify the session", e)),
            };
        }
        if presented.starts_with(API_KEY_PREFIX) {
            let Some(api_keys) = &self.api_keys else {
                return Err(invalid());
            };
            return match api_keys.verify(&presented).await {
                Ok(Some(credential)) => Ok(credential),
                Ok(None) => Err(invalid()),
                Err(e) => Err(self.undecided("cannot verify the API key", e)),
            };
        }
        match &self.bootstrap_key {
            Some(key) if bool::from(key.as_bytes().ct_eq(presented.as_bytes())) => {
                if let Some(admin) = &self.admin {
                    match admin
                        .accepts_bootstrap_key(plystra_contracts::services::RequestId::of(req))
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            return Err(ApiError::new(
                                ErrorCode::AuthenticationRequired,
                                "the bootstrap key was retired when a managed super admin took over: use a session or a managed API key",
                            ));
                        }
                        Err(e) => {
                            return Err(self.undecided("cannot check the bootstrap handoff", e));
                        }
                    }
                }
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
    /// The declared template (`/api/v1/spaces/{space_id}`) and the routing table's path
    /// (`/api/v1/spaces/:param0`), segment by segment.
    route: Vec<(String, String)>,
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
            route: Vec::new(),
        }
    }

    /// The operation's declared path template (`/api/v1/spaces/{space_id}`; empty when none is
    /// declared) and its routing-table path (`/api/v1/spaces/:param0`, where poem-openapi numbers
    /// the parameters). Each request's parameters are read by position and handed to the
    /// authorizer, named as the template names them.
    pub fn for_route(mut self, template: &str, table_path: &str) -> Self {
        let table: Vec<&str> = table_path.split('/').collect();
        let declared: Vec<&str> = template.split('/').collect();
        let declared = if declared.len() == table.len() {
            declared
        } else {
            table.clone()
        };
        self.route = declared
            .iter()
            .zip(table)
            .map(|(d, t)| ((*d).to_owned(), t.to_owned()))
            .collect();
        self
    }

    /// The target of `req`: the route template and the values of its path parameters.
    pub fn target(&self, req: &Request) -> AdminTarget {
        let mut target = AdminTarget::default();
        let mut segments = Vec::with_capacity(self.route.len());
        for (declared, table) in &self.route {
            let name = declared
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .or_else(|| declared.strip_prefix(':'));
            match (name, table.strip_prefix(':')) {
                (Some(name), Some(param)) => {
                    if let Some(value) = req.raw_path_param(param) {
                        target.params.insert(name.to_owned(), value.to_owned());
                    }
                    segments.push(format!("{{{name}}}"));
                }
                _ => segments.push(declared.clone()),
            }
        }
        target.route = segments.join("/");
        target
    }

    /// Whether `credential` may call the operation; `Err` is the answer when not.
    pub async fn admit(&self, credential: &Credential) -> Result<(), ApiError> {
        self.admit_target(credential, &AdminTarget::default()).await
    }

    /// Whether `credential` may call the operation on `target`; `Err` is the answer when not.
    pub async fn admit_target(
        &self,
        credential: &Credential,
        target: &AdminTarget,
    ) -> Result<(), ApiError> {
        match (self.access, credential) {
            (Access::SelfService, Credential::Session { .. }) => Ok(()),
            (Access::SelfService, _) => Err(ApiError::new(
                ErrorCode::AuthenticationRequired,
                "this operation acts on a user session: send Authorization: Bearer ply_at_…",
            )),
            // Without an authorizer there is no managed admin: the bootstrap key manages alone.
            (Access::Admin { .. }, Credential::BootstrapKey) if self.admin.is_none() => Ok(()),
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
                match admin.authorize_target(other, wanted, target).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(denied()),
                    Err(e) => Err(self
                        .authenticator
                        .undecided("cannot check admin permissions", e)),
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
                // Credentials follow the feed too (keys, grants, sessions): a request that names
                // a revision waits for it (bounded) before its credential is judged, so a key
                // or a session created through another process is known here.
                protect.authenticator.await_revision(&req).await?;
                let credential = protect.authenticator.authenticate(&req).await?;
                let target = protect.target(&req);
                protect.admit_target(&credential, &target).await?;
                req.extensions_mut().insert(credential);
                Ok(req)
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use poem::test::TestClient;
    use poem::{EndpointExt as _, Route};

    use super::*;

    #[tokio::test]
    async fn the_target_names_path_parameters_by_the_declared_template() {
        let protect = Protect::new(
            Arc::new(Authenticator::new(None, None)),
            Access::Admin { permission: None },
            None,
        )
        .for_route(
            "/api/v1/spaces/{space_id}/groups/{group_id}",
            "/api/v1/spaces/:param0/groups/:param1",
        );
        let ep = Route::new().at(
            "/api/v1/spaces/:param0/groups/:param1",
            poem::endpoint::make_sync(move |req| {
                let target = protect.target(&req);
                format!("{} {:?}", target.route, target.params)
            }),
        );
        let cli = TestClient::new(ep.boxed());
        let resp = cli
            .get("/api/v1/spaces/space_a/groups/group_b")
            .send()
            .await;
        resp.assert_text(
            r#"/api/v1/spaces/{space_id}/groups/{group_id} {"group_id": "group_b", "space_id": "space_a"}"#,
        )
        .await;
    }

    #[tokio::test]
    async fn without_an_authorizer_only_the_bootstrap_key_manages() {
        let protect = Protect::new(
            Arc::new(Authenticator::new(Some("k".into()), None)),
            Access::Admin {
                permission: Some("users:read"),
            },
            None,
        );
        assert!(protect.admit(&Credential::BootstrapKey).await.is_ok());
        let err = protect
            .admit(&Credential::ApiKey { id: "ak_1".into() })
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::AdminPermissionRequired);
    }
}
