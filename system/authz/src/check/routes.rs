//! The routes: `authz/check`, `authz/explain` and `authz/check/batch`, and their responses.

use std::sync::Arc;

use plystra_contracts::body::JsonBody;
use plystra_contracts::{ApiError, Envelope, ErrorCode};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};

use super::answer::{BatchCheckItem, BatchCheckResult, CheckResult, ExplainTrace};
use super::decide::{Caller, Decider};
use super::parse::{Parsed, at_least_revision, parse};
use super::request::{AuthzRequestBody, BatchCheckRequest};

#[derive(Tags)]
enum CheckTag {
    /// Authorization decisions.
    Authorization,
}

/// A check's answer.
#[derive(ApiResponse)]
pub enum CheckResponse {
    /// The decision (a deny is a 200 too).
    #[oai(status = 200)]
    Decided(
        Json<Envelope<CheckResult>>,
        #[oai(header = "X-Plystra-Trace-ID")] String,
        #[oai(header = "X-Plystra-Audit-Log-ID")] Option<String>,
        #[oai(header = "X-Plystra-Authz-Revision")] u64,
    ),
}

/// An explain's answer.
#[derive(ApiResponse)]
pub enum ExplainResponse {
    /// The decision with its full trace.
    #[oai(status = 200)]
    Explained(
        Json<Envelope<ExplainTrace>>,
        #[oai(header = "X-Plystra-Trace-ID")] String,
        #[oai(header = "X-Plystra-Audit-Log-ID")] Option<String>,
        #[oai(header = "X-Plystra-Authz-Revision")] u64,
    ),
}

/// The check and explain routes.
pub struct CheckApi {
    /// The decision path.
    pub decider: Arc<Decider>,
}

#[OpenApi(tag = "CheckTag::Authorization")]
impl CheckApi {
    /// Decides whether the actor may perform the action on the resource. A deny is a 200 with
    /// `decision: deny` and a deny code (see `listDenyCodes`); the decision's audit record is durable
    /// before the answer leaves.
    #[oai(
        path = "/api/v1/authz/check",
        method = "post",
        operation_id = "checkAuthorization"
    )]
    async fn check(
        &self,
        req: &poem::Request,
        body: JsonBody<AuthzRequestBody>,
    ) -> Result<CheckResponse, ApiError> {
        let result = self.decider.decide(&Caller::of(req), body.0.0).await?;
        let trace_id = result.trace_id.clone();
        let audit_log_id = result.audit_log_id.clone();
        let revision = result.revision;
        Ok(CheckResponse::Decided(
            Json(Envelope::new(result)),
            trace_id,
            audit_log_id,
            revision,
        ))
    }

    /// Decides exactly as `check` does and returns the full trace: the actor, target and registry
    /// as values, every candidate grant with its scope verdict, the request and the audit record.
    #[oai(
        path = "/api/v1/authz/explain",
        method = "post",
        operation_id = "explainAuthorization"
    )]
    async fn explain(
        &self,
        req: &poem::Request,
        body: JsonBody<AuthzRequestBody>,
    ) -> Result<ExplainResponse, ApiError> {
        let trace = self.decider.explain(&Caller::of(req), body.0.0).await?;
        let trace_id = trace.trace_id.clone();
        let audit_log_id = trace.audit.audit_log_id.clone();
        let revision = trace.revision;
        Ok(ExplainResponse::Explained(
            Json(Envelope::new(trace)),
            trace_id,
            audit_log_id,
            revision,
        ))
    }

    /// Decides up to `PLYSTRA_AUTHZ_MAX_BATCH` checks (100 by default) in one call. Each item is decided and audited on its own, as if
    /// sent alone, and answered in request order: a deny is a decision, and an item that cannot
    /// be decided (an unknown ID, a missing field) carries its error instead, without failing the
    /// others.
    #[oai(
        path = "/api/v1/authz/check/batch",
        method = "post",
        operation_id = "checkAuthorizationBatch"
    )]
    async fn check_batch(
        &self,
        req: &poem::Request,
        body: JsonBody<BatchCheckRequest>,
    ) -> Result<Json<Envelope<BatchCheckResult>>, ApiError> {
        let checks = body.0.checks;
        self.decider.service.limits.batch("checks", checks.len())?;
        let caller = Caller::of(req);
        let parsed = parse_batch(checks, &caller)?;
        // Decided concurrently so their audit records share group commits; joined in order.
        let (caller, decider) = (&caller, &self.decider);
        let outcomes = futures_util::future::join_all(parsed.into_iter().map(|check| async move {
            let (parsed, at_least) = check?;
            decider
                .decide_parsed::<CheckResult>(caller, parsed, at_least)
                .await
        }))
        .await;
        Ok(Json(Envelope::new(tally(outcomes))))
    }
}

/// A batch's check, parsed, with its consistency token; or why it cannot be decided.
type ParsedCheck = Result<(Parsed, Option<u64>), ApiError>;

/// A batch's checks, each parsed once. One that is not well-formed fails the batch, as the
/// schema says, with every malformed field named `checks[i].field`; one that is well-formed but
/// cannot be decided (an unknown ID, inline grants from a session) carries its own error.
fn parse_batch(
    checks: Vec<AuthzRequestBody>,
    caller: &Caller,
) -> Result<Vec<ParsedCheck>, ApiError> {
    let parsed: Vec<ParsedCheck> = checks
        .into_iter()
        .map(|check| {
            let at_least = at_least_revision(&check.0);
            parse(check.0, caller.credential.as_ref()).map(|p| (p, at_least))
        })
        .collect();
    let mut malformed = serde_json::Map::new();
    for (i, check) in parsed.iter().enumerate() {
        if let Err(e) = check
            && e.code == ErrorCode::ValidationFailed
            && let Some(fields) = e.details.get("fields").and_then(|f| f.as_object())
        {
            for (field, problem) in fields {
                malformed.insert(format!("checks[{i}].{field}"), problem.clone());
            }
        }
    }
    if !malformed.is_empty() {
        let names: Vec<&str> = malformed.keys().map(String::as_str).collect();
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("invalid fields: {}", names.join(", ")),
        )
        .with_detail("fields", serde_json::Value::Object(malformed)));
    }
    Ok(parsed)
}

/// The batch's answer: each outcome as its item, in request order, and the counts.
fn tally(outcomes: Vec<Result<CheckResult, ApiError>>) -> BatchCheckResult {
    let (mut allowed, mut denied, mut failed) = (0, 0, 0);
    let results = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| match outcome {
            Ok(result) => {
                if result.allow {
                    allowed += 1;
                } else {
                    denied += 1;
                }
                BatchCheckItem {
                    index: i as u32,
                    status: 200,
                    result: Some(result),
                    error: None,
                }
            }
            Err(e) => {
                failed += 1;
                BatchCheckItem {
                    index: i as u32,
                    status: e.status().as_u16(),
                    result: None,
                    error: Some(e.envelope().error),
                }
            }
        })
        .collect();
    BatchCheckResult {
        results,
        allowed,
        denied,
        failed,
    }
}
