//! Authentication of protected routes. Until admin.control_plane takes over, the only credential
//! is the bootstrap key (`PLYSTRA_API_KEY`), compared in constant time.

use std::sync::Arc;

use plystra_contracts::services::Credential;
use plystra_contracts::{ApiError, ErrorCode};
use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Request};
use subtle::ConstantTimeEq;

/// The API key header.
pub const API_KEY_HEADER: &str = "X-Plystra-API-Key";

/// Authenticates requests.
#[derive(Debug)]
pub struct Authenticator {
    bootstrap_key: Option<String>,
}

impl Authenticator {
    /// An authenticator that accepts `bootstrap_key`, or nothing when it is `None`.
    pub fn new(bootstrap_key: Option<String>) -> Self {
        Self {
            bootstrap_key: bootstrap_key.filter(|k| !k.is_empty()),
        }
    }

    /// The credential the request presents, or 401.
    pub fn authenticate(&self, req: &Request) -> Result<Credential, ApiError> {
        let presented = presented_key(req).ok_or_else(|| {
            ApiError::new(
                ErrorCode::AuthenticationRequired,
                "this operation needs a credential: send an API key in X-Plystra-API-Key or a token as Authorization: Bearer …",
            )
        })?;
        match &self.bootstrap_key {
            Some(key) if bool::from(key.as_bytes().ct_eq(presented.as_bytes())) => {
                Ok(Credential::BootstrapKey)
            }
            _ => Err(ApiError::new(
                ErrorCode::AuthenticationRequired,
                "the credential is not valid",
            )),
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

/// Puts authentication in front of one endpoint.
#[derive(Debug, Clone)]
pub struct Protect {
    authenticator: Arc<Authenticator>,
}

impl Protect {
    /// Protection with this authenticator.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }

    /// The endpoint, answering 401 unless the request authenticates.
    pub fn wrap(&self, ep: BoxEndpoint<'static>) -> BoxEndpoint<'static> {
        let authenticator = self.authenticator.clone();
        ep.before(move |mut req: Request| {
            let authenticator = authenticator.clone();
            async move {
                let credential = authenticator.authenticate(&req)?;
                req.extensions_mut().insert(credential);
                Ok(req)
            }
        })
        .boxed()
    }
}
