//! The one error type every HTTP handler returns, its codes, and their mapping to HTTP statuses.
//!
//! [`ErrorCode::status`] is the only place where an error code becomes an HTTP status. Every
//! error leaves the server in the upstream envelope `{error: {code, message, details,
//! request_id}, request_id}` with an `X-Plystra-Error-Code` header.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object};

use crate::envelope::current_request_id;

/// Structured error details: a JSON object.
pub type Details = std::collections::BTreeMap<String, serde_json::Value>;

/// The response header that carries the error code.
pub const ERROR_CODE_HEADER: &str = "X-Plystra-Error-Code";

/// Every error code the API can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request is malformed or a field is invalid; `details` names the fields.
    ValidationFailed,
    /// No credential, or one that is not valid.
    AuthenticationRequired,
    /// A valid credential without the permission the operation needs.
    AdminPermissionRequired,
    /// Inline authorization context was sent with a session instead of an API key.
    InlineContextRequiresApiKey,
    /// An authorization check denied the action a plugin was asked to perform; `details`
    /// carries the deny code, the trace ID and the audit record's ID.
    AuthorizationDenied,
    /// No route matches the path.
    NotFound,
    /// The feature is switched off by configuration.
    FeatureDisabled,
    /// No user has this ID.
    UserNotFound,
    /// No space has this ID.
    SpaceNotFound,
    /// No group has this ID.
    GroupNotFound,
    /// No member has this ID.
    MemberNotFound,
    /// No user-member binding has this ID.
    UserMemberNotFound,
    /// No resource type has this ID.
    ResourceTypeNotFound,
    /// No resource action has this ID.
    ResourceActionNotFound,
    /// No resource mapping has this ID.
    ResourceMappingNotFound,
    /// No resource has this ID.
    ResourceNotFound,
    /// No role has this ID.
    RoleNotFound,
    /// No permission has this ID.
    PermissionNotFound,
    /// No role-permission has this ID.
    RolePermissionNotFound,
    /// No member-role has this ID.
    MemberRoleNotFound,
    /// No admin grant has this ID.
    AdminGrantNotFound,
    /// No API key has this ID.
    ApiKeyNotFound,
    /// No audit record has this ID.
    AuditLogNotFound,
    /// The email and password do not match an active user.
    InvalidCredentials,
    /// Too many failed logins for this email and address; try again later.
    LoginLocked,
    /// Too many attempts from this client address; `Retry-After` says when to try again.
    RateLimited,
    /// The server is at its bound for expensive work (password hashing); `Retry-After` says
    /// when to try again.
    ServerBusy,
    /// The route exists, but not for this method.
    MethodNotAllowed,
    /// The request conflicts with the current state (a duplicate, a state transition).
    Conflict,
    /// Revoking this grant would leave no active super admin.
    LastSuperAdmin,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The request body is not in a media type the operation accepts.
    UnsupportedMediaType,
    /// An unexpected failure; the message carries no internals.
    InternalError,
    /// The runtime is not ready: a required capability, the database or the schema is not.
    NotReady,
    /// The database cannot be reached.
    DatabaseUnavailable,
    /// The audit store cannot commit; audited operations fail closed.
    AuditUnavailable,
    /// The database answers but refuses writes: `details.reason` is `full` (disk, quota or page
    /// limit) or `read_only`. Retry once the operator has freed space or restored write access;
    /// the server recovers without a restart.
    StorageUnwritable,
    /// This process cannot confirm it is following the change feed within the staleness bound,
    /// so it does not decide on facts of unknown age.
    FactsNotCurrent,
    /// The revision the request asked for (a consistency token) was not reached within the
    /// consistency wait.
    RevisionNotReached,
    /// The revision the request asked for is past the newest one the database has committed:
    /// no write of this deployment returned it (a token from another deployment, a database
    /// restored from an older backup, or a made-up number). A well-formed value the server's
    /// state refuses, so 409, like every such refusal; waiting would not help.
    RevisionNotIssued,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: &'static [ErrorCode] = &[
        Self::ValidationFailed,
        Self::AuthenticationRequired,
        Self::AdminPermissionRequired,
        Self::InlineContextRequiresApiKey,
        Self::AuthorizationDenied,
        Self::NotFound,
        Self::FeatureDisabled,
        Self::UserNotFound,
        Self::SpaceNotFound,
        Self::GroupNotFound,
        Self::MemberNotFound,
        Self::UserMemberNotFound,
        Self::ResourceTypeNotFound,
        Self::ResourceActionNotFound,
        Self::ResourceMappingNotFound,
        Self::ResourceNotFound,
        Self::RoleNotFound,
        Self::PermissionNotFound,
        Self::RolePermissionNotFound,
        Self::MemberRoleNotFound,
        Self::AdminGrantNotFound,
        Self::ApiKeyNotFound,
        Self::AuditLogNotFound,
        Self::InvalidCredentials,
        Self::LoginLocked,
        Self::RateLimited,
        Self::ServerBusy,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::LastSuperAdmin,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::InternalError,
        Self::NotReady,
        Self::DatabaseUnavailable,
        Self::AuditUnavailable,
        Self::StorageUnwritable,
        Self::FactsNotCurrent,
        Self::RevisionNotReached,
        Self::RevisionNotIssued,
    ];

    /// The HTTP status of this code. This is the only mapping from codes to statuses.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::ValidationFailed => StatusCode::BAD_REQUEST,
            Self::AuthenticationRequired => StatusCode::UNAUTHORIZED,
            Self::AdminPermissionRequired
            | Self::InlineContextRequiresApiKey
            | Self::AuthorizationDenied => StatusCode::FORBIDDEN,
            Self::NotFound | Self::FeatureDisabled => StatusCode::NOT_FOUND,
            Self::UserNotFound => StatusCode::NOT_FOUND,
            Self::SpaceNotFound => StatusCode::NOT_FOUND,
            Self::GroupNotFound => StatusCode::NOT_FOUND,
            Self::MemberNotFound => StatusCode::NOT_FOUND,
            Self::UserMemberNotFound => StatusCode::NOT_FOUND,
            Self::ResourceTypeNotFound => StatusCode::NOT_FOUND,
            Self::ResourceActionNotFound => StatusCode::NOT_FOUND,
            Self::ResourceMappingNotFound => StatusCode::NOT_FOUND,
            Self::ResourceNotFound => StatusCode::NOT_FOUND,
            Self::RoleNotFound => StatusCode::NOT_FOUND,
            Self::PermissionNotFound => StatusCode::NOT_FOUND,
            Self::RolePermissionNotFound => StatusCode::NOT_FOUND,
            Self::MemberRoleNotFound => StatusCode::NOT_FOUND,
            Self::AdminGrantNotFound => StatusCode::NOT_FOUND,
            Self::ApiKeyNotFound => StatusCode::NOT_FOUND,
            Self::AuditLogNotFound => StatusCode::NOT_FOUND,
            Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::LoginLocked | Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::ServerBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::LastSuperAdmin | Self::RevisionNotIssued => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotReady
            | Self::DatabaseUnavailable
            | Self::AuditUnavailable
            | Self::StorageUnwritable
            | Self::FactsNotCurrent
            | Self::RevisionNotReached => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        // `Enum::to_json` would allocate a JSON value; names are fixed, so spell them out once.
        match self {
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::AuthenticationRequired => "AUTHENTICATION_REQUIRED",
            Self::AdminPermissionRequired => "ADMIN_PERMISSION_REQUIRED",
            Self::InlineContextRequiresApiKey => "INLINE_CONTEXT_REQUIRES_API_KEY",
            Self::AuthorizationDenied => "AUTHORIZATION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::FeatureDisabled => "FEATURE_DISABLED",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::SpaceNotFound => "SPACE_NOT_FOUND",
            Self::GroupNotFound => "GROUP_NOT_FOUND",
            Self::MemberNotFound => "MEMBER_NOT_FOUND",
            Self::UserMemberNotFound => "USER_MEMBER_NOT_FOUND",
            Self::ResourceTypeNotFound => "RESOURCE_TYPE_NOT_FOUND",
            Self::ResourceActionNotFound => "RESOURCE_ACTION_NOT_FOUND",
            Self::ResourceMappingNotFound => "RESOURCE_MAPPING_NOT_FOUND",
            Self::ResourceNotFound => "RESOURCE_NOT_FOUND",
            Self::RoleNotFound => "ROLE_NOT_FOUND",
            Self::PermissionNotFound => "PERMISSION_NOT_FOUND",
            Self::RolePermissionNotFound => "ROLE_PERMISSION_NOT_FOUND",
            Self::MemberRoleNotFound => "MEMBER_ROLE_NOT_FOUND",
            Self::AdminGrantNotFound => "ADMIN_GRANT_NOT_FOUND",
            Self::ApiKeyNotFound => "API_KEY_NOT_FOUND",
            Self::AuditLogNotFound => "AUDIT_LOG_NOT_FOUND",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::LoginLocked => "LOGIN_LOCKED",
            Self::RateLimited => "RATE_LIMITED",
            Self::ServerBusy => "SERVER_BUSY",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict => "CONFLICT",
            Self::LastSuperAdmin => "LAST_SUPER_ADMIN",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::InternalError => "INTERNAL_ERROR",
            Self::NotReady => "NOT_READY",
            Self::DatabaseUnavailable => "DATABASE_UNAVAILABLE",
            Self::AuditUnavailable => "AUDIT_UNAVAILABLE",
            Self::StorageUnwritable => "STORAGE_UNWRITABLE",
            Self::FactsNotCurrent => "FACTS_NOT_CURRENT",
            Self::RevisionNotReached => "REVISION_NOT_REACHED",
            Self::RevisionNotIssued => "REVISION_NOT_ISSUED",
        }
    }
}

/// The body of an error.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Error")]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation. Never contains SQL, stack traces or secrets.
    pub message: String,
    /// Structured detail, for example `{"fields": {"limit": "must be between 1 and 200"}}`.
    pub details: Details,
    /// The request this error answers.
    pub request_id: String,
}

/// The error envelope.
#[derive(Debug, Clone, Object)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
    /// The request this error answers (same as `error.request_id`).
    pub request_id: String,
}

/// An error on its way to the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// The code, which fixes the status.
    pub code: ErrorCode,
    /// A message for people.
    pub message: String,
    /// Structured details.
    pub details: Details,
}

impl ApiError {
    /// An error with a code and a message and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Details::new(),
        }
    }

    /// Adds one detail entry.
    pub fn with_detail(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// A `VALIDATION_FAILED` error naming one bad field.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        let mut fields = serde_json::Map::new();
        fields.insert(field.to_owned(), serde_json::Value::String(problem.clone()));
        Self::new(ErrorCode::ValidationFailed, format!("{field}: {problem}"))
            .with_detail("fields", serde_json::Value::Object(fields))
    }

    /// A 404 with an entity's code, naming the ID: `no user has ID user_x`.
    pub fn not_found(code: ErrorCode, entity: &str, id: &str) -> Self {
        Self::new(code, format!("no {entity} has ID {id}")).with_detail("id", id)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The envelope, stamped with the current request's ID.
    pub fn envelope(&self) -> ErrorEnvelope {
        let request_id = current_request_id();
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
                request_id: request_id.clone(),
            },
            request_id,
        }
    }

    /// Maps an error that poem or poem-openapi produced (routing, parsing, limits) onto our codes.
    /// Its text is kept only for client errors, where it describes the client's own input.
    pub fn from_poem(err: &poem::Error) -> Self {
        let status = err.status();
        let code = match status {
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::UNAUTHORIZED => ErrorCode::AuthenticationRequired,
            StatusCode::FORBIDDEN => ErrorCode::AdminPermissionRequired,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::NotReady,
            s if s.is_client_error() => ErrorCode::ValidationFailed,
            _ => ErrorCode::InternalError,
        };
        match code {
            ErrorCode::NotFound => Self::new(code, "no route matches this path"),
            ErrorCode::MethodNotAllowed => Self::new(code, "this path does not accept this method"),
            ErrorCode::PayloadTooLarge => Self::new(code, "the request body is too large"),
            ErrorCode::InternalError => Self::new(code, "internal error"),
            ErrorCode::ValidationFailed | ErrorCode::UnsupportedMediaType => {
                // A parameter the router refused (a bad type or a bound the document declares)
                // is named in `details.fields`, as the handlers' own checks name theirs.
                let field = err
                    .downcast_ref::<poem_openapi::error::ParseParamError>()
                    .map(|e| (e.name, e.reason.clone()))
                    .or_else(|| {
                        err.downcast_ref::<poem_openapi::error::ParsePathError>()
                            .map(|e| (e.name, e.reason.clone()))
                    });
                if let Some((name, reason)) = field {
                    return Self::invalid_field(name, reason);
                }
                let reason = err.to_string();
                Self::new(code, format!("invalid request: {reason}")).with_detail("reason", reason)
            }
            _ => Self::new(code, err.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.envelope().to_json().unwrap_or(serde_json::Value::Null);
        let mut response = Response::builder()
            .status(self.status())
            .header(ERROR_CODE_HEADER, self.code.as_str());
        // An error that says when to come back (`details.retry_after_seconds`) says it in
        // `Retry-After` too, where HTTP clients look.
        if let Some(seconds) = self
            .details
            .get(RETRY_AFTER_DETAIL)
            .and_then(|v| v.as_u64())
        {
            response = response.header(poem::http::header::RETRY_AFTER, seconds.to_string());
        }
        response
            .content_type("application/json; charset=utf-8")
            .body(body.to_string())
    }
}

/// The detail that, on an error, also becomes the `Retry-After` header (whole seconds).
pub const RETRY_AFTER_DETAIL: &str = "retry_after_seconds";

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

/// The statuses every operation documents for its errors.
const DOCUMENTED_ERRORS: &[(u16, &str)] = &[
    (
        400,
        "The request is malformed or a field is invalid (`VALIDATION_FAILED`).",
    ),
    (401, "No valid credential (`AUTHENTICATION_REQUIRED`)."),
    (
        403,
        "The credential lacks the permission (`ADMIN_PERMISSION_REQUIRED`).",
    ),
    (404, "The entity or route does not exist."),
    (409, "The request conflicts with the current state."),
    (413, "The request body is too large (`PAYLOAD_TOO_LARGE`)."),
    (
        500,
        "An unexpected failure (`INTERNAL_ERROR`); no internals are exposed.",
    ),
    (503, "The runtime, database or audit store is unavailable."),
];

impl ApiResponse for ApiError {
    const BAD_REQUEST_HANDLER: bool = true;

    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED_ERRORS
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ErrorEnvelope::schema_ref(),
                    }],
                    headers: vec![MetaHeader {
                        name: ERROR_CODE_HEADER.to_owned(),
                        description: Some("The error code, as in the body.".to_owned()),
                        required: true,
                        deprecated: false,
                        schema: String::schema_ref(),
                    }],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorEnvelope::register(registry);
    }

    fn from_parse_request_error(err: poem::Error) -> Self {
        Self::from_poem(&err)
    }
}

/// An [`ApiError`] written as its message alone (`text/plain`), for the operations that declare
/// [`ErrorBody::Text`](crate::ErrorBody::Text): the same code, status and `X-Plystra-Error-Code`
/// (and `Retry-After`), without the envelope.
#[derive(Debug, Clone)]
pub struct TextError(pub ApiError);

impl From<ApiError> for TextError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

/// The content type of a [`TextError`].
pub const TEXT_ERROR_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl ApiError {
    /// The error as a [`TextError`] response: its message as the body.
    pub fn into_text_response(self) -> Response {
        let text = self.text();
        let mut response = self.into_response();
        response.headers_mut().insert(
            poem::http::header::CONTENT_TYPE,
            poem::http::HeaderValue::from_static(TEXT_ERROR_CONTENT_TYPE),
        );
        response.set_body(text);
        response
    }

    /// The message, with each named field's problem when `details.fields` names them.
    pub fn text(&self) -> String {
        message_text(&self.message, self.details.get("fields"))
    }
}

/// The message of an enveloped error (`{error: {message, details}}`), written as
/// [`ApiError::text`] writes it; `None` when `envelope` is not one.
pub fn envelope_text(envelope: &serde_json::Value) -> Option<String> {
    let error = envelope.get("error")?;
    let message = error.get("message")?.as_str()?;
    Some(message_text(
        message,
        error.get("details").and_then(|d| d.get("fields")),
    ))
}

fn message_text(message: &str, fields: Option<&serde_json::Value>) -> String {
    let Some(fields) = fields.and_then(|f| f.as_object()).filter(|f| !f.is_empty()) else {
        return message.to_owned();
    };
    let problems: Vec<String> = fields
        .iter()
        .map(|(field, problem)| match problem.as_str() {
            Some(problem) => format!("{field} {problem}"),
            None => format!("{field} {problem}"),
        })
        .collect();
    format!("invalid fields: {}", problems.join("; "))
}

impl IntoResponse for TextError {
    fn into_response(self) -> Response {
        self.0.into_text_response()
    }
}

impl From<TextError> for poem::Error {
    fn from(err: TextError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

impl ApiResponse for TextError {
    const BAD_REQUEST_HANDLER: bool = true;

    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED_ERRORS
                .iter()
                .filter(|(status, _)| *status != 409)
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: TEXT_ERROR_CONTENT_TYPE,
                        schema: String::schema_ref(),
                    }],
                    headers: vec![MetaHeader {
                        name: ERROR_CODE_HEADER.to_owned(),
                        description: Some("The error code (the body is its message).".to_owned()),
                        required: true,
                        deprecated: false,
                        schema: String::schema_ref(),
                    }],
                })
                .collect(),
        }
    }

    fn register(_registry: &mut Registry) {}

    fn from_parse_request_error(err: poem::Error) -> Self {
        Self(ApiError::from_poem(&err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_error_is_the_message_with_each_named_fields_problem() {
        let err = ApiError::invalid_field("subject.id", "is required");
        assert_eq!(err.text(), "invalid fields: subject.id is required");
        let plain = ApiError::new(ErrorCode::AuthenticationRequired, "send a key");
        assert_eq!(plain.text(), "send a key");
        // The pipeline reads the same text back out of an envelope.
        let envelope =
            serde_json::json!({"error": {"message": err.message, "details": err.details}});
        assert_eq!(
            envelope_text(&envelope).as_deref(),
            Some(err.text().as_str())
        );
        assert_eq!(envelope_text(&serde_json::json!({"data": 1})), None);
        let response = err.into_text_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[poem::http::header::CONTENT_TYPE],
            TEXT_ERROR_CONTENT_TYPE
        );
        assert_eq!(response.headers()[ERROR_CODE_HEADER], "VALIDATION_FAILED");
    }

    #[test]
    fn every_code_has_a_distinct_wire_name_matching_the_schema() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert_eq!(
                code.to_json().unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
        let schema = ErrorCode::schema_ref();
        let mut registry = Registry::new();
        ErrorCode::register(&mut registry);
        let documented = &registry.schemas[&schema.unwrap_reference().to_owned()].enum_items;
        assert_eq!(
            documented.len(),
            ErrorCode::ALL.len(),
            "ErrorCode::ALL misses a variant"
        );
    }

    #[test]
    fn server_errors_never_carry_the_inner_text() {
        let err =
            poem::Error::from_string("SELECT secret FROM t", StatusCode::INTERNAL_SERVER_ERROR);
        let api = ApiError::from_poem(&err);
        assert_eq!(api.code, ErrorCode::InternalError);
        assert!(!api.message.contains("SELECT"));
        assert!(api.details.is_empty());
    }
}
