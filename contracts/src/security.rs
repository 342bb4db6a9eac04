//! How an operation declares, in the document, that it accepts fewer credentials than the
//! default (an API key or a session): a parameter of type [`SessionOnly`].
//!
//! The kernel gives every protected operation the default requirement (`ApiKeyAuth` or
//! `BearerAuth`) unless the operation declared its own; an operation that takes a `SessionOnly`
//! declares `SessionAuth` alone, so clients and fuzzers read from the document that a key is
//! refused there. The handler still enforces it (with its own error code); this type only says so.

use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

/// The name of the session-only security scheme in the document.
pub const SESSION_AUTH: &str = "SessionAuth";

/// A handler parameter that documents the operation as accepting user sessions only.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOnly;

impl<'a> ApiExtractor<'a> for SessionOnly {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SESSION_AUTH,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "A user session's access token (`ply_at_…`) as `Authorization: Bearer …`. \
                     API keys and the bootstrap key are refused here.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("opaque Plystra session token"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SESSION_AUTH]
    }

    async fn from_request(
        _request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(Self)
    }
}
