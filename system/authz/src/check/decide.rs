//! Deciding: a parsed request traced on the current snapshot, its one audit record made durable
//! before the answer, and the answer (the full trace or the short result) to the routes and to
//! the `Authorizer` service.

use std::sync::Arc;

use plystra_contracts::metrics::{Counter, Metrics};
use plystra_contracts::services::{
    ActorRef, AuditRecorder, CheckError, CheckOutcome, CheckRequest, Credential,
};
use plystra_contracts::{ApiError, Decision, DenyCode, ErrorCode, ServiceRegistry};
use poem_openapi::types::ToJSON;

use super::answer::{AuditRef, CheckResult, ExplainTrace};
use super::parse::{Managed, Parsed, at_least_revision, managed_request, parse};
use super::request::AuthzRequest;
use super::trace::{Traced, trace_of};

/// Decides and audits: the one path behind the HTTP routes and the `Authorizer` service.
pub struct Decider {
    /// The capability's service: the index and what loads it.
    pub service: Arc<crate::AuthorizationService>,
    /// audit.explainable.
    pub audit: Arc<dyn AuditRecorder>,
    /// Where each decision is counted.
    pub decisions: Decisions,
}

/// The authorization-decision counter's name, as exported.
pub const DECISIONS_METRIC: &str = "plystra_authz_decisions_total";

/// Counts decisions in the runtime's metrics (`kernel.metrics`): check, explain, batch items and
/// AuthZEN evaluations, by `decision` and `deny_code` (empty for an allow).
#[derive(Debug, Clone)]
pub struct Decisions(Option<Counter<2>>);

impl Decisions {
    /// The counter in the registry `services` offer; without one, decisions are not counted.
    pub fn in_registry(services: &ServiceRegistry) -> Self {
        Self(services.require::<Metrics>().ok().map(|metrics| {
            metrics.counter(
                DECISIONS_METRIC,
                "Authorization decisions (check, explain, batch items and AuthZEN evaluations), by decision and deny code.",
                ["decision", "deny_code"],
            )
        }))
    }

    /// Counts one decision.
    fn record(&self, decision: Decision, deny_code: Option<DenyCode>) {
        if let Some(counter) = &self.0 {
            let decision = match decision {
                Decision::Allow => "allow",
                Decision::Deny => "deny",
            };
            counter.inc([
                decision.into(),
                deny_code.map_or("", DenyCode::as_str).into(),
            ]);
        }
    }
}

/// Who asks, as the decision's trace and audit record show it. Taken from the HTTP request by
/// the routes; a plugin calling `Authorizer` passes its own end user's address.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The credential the kernel authenticated, if any.
    pub credential: Option<Credential>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The request the decision answers, for its trace and audit record.
    pub request_id: String,
}

impl Caller {
    /// The caller of an HTTP request.
    pub fn of(req: &poem::Request) -> Self {
        Self {
            credential: Credential::of(req).cloned(),
            request_id: plystra_contracts::services::RequestId::of(req).to_owned(),
            ip: req
                .remote_addr()
                .as_socket_addr()
                .map(|a| a.ip().to_string()),
            user_agent: req.header("User-Agent").map(str::to_owned),
        }
    }
}

/// What a decision answers: the full trace (explain) or the short result (check, batch and the
/// `Authorizer`). Each takes the typed trace once and hands back the audit record's JSON of it.
pub(super) trait Answer: Sized {
    /// True when the answer carries no trace, so an allow the audit log skips needs none.
    const SHORT: bool;
    /// The answer and the record's trace JSON, both from `trace`.
    fn split(trace: ExplainTrace) -> (Self, serde_json::Value);
    /// The answer to an allow with no trace and no record (only for short answers).
    fn unrecorded_allow(reason: String, revision: u64) -> Option<Self>;
    /// Where the audit record went.
    fn audited(&mut self, audit: AuditRef);
    /// Shows what it holds of the request's attributes as the audit log keeps them.
    fn redact(&mut self, _audit: &dyn AuditRecorder) {}
}

impl Answer for ExplainTrace {
    const SHORT: bool = false;

    fn unrecorded_allow(_: String, _: u64) -> Option<Self> {
        None
    }

    fn split(trace: ExplainTrace) -> (Self, serde_json::Value) {
        // The trace is returned, so its JSON is written from it by reference: poem's `ToJSON`,
        // as the answer itself will be (cheaper than a clone to move from). The record keeps
        // it without the `audit` block, which only the answer can fill in.
        let mut json = ToJSON::to_json(&trace).unwrap_or(serde_json::Value::Null);
        if let Some(fields) = json.as_object_mut() {
            fields.remove("audit");
        }
        (trace, json)
    }

    fn audited(&mut self, audit: AuditRef) {
        self.audit = audit;
    }

    /// The values conditions read, as the audit record keeps them (the record's copy is
    /// redacted by the audit log itself).
    fn redact(&mut self, audit: &dyn AuditRecorder) {
        for candidate in &mut self.matched_candidates {
            let Some(condition) = candidate.condition.as_mut() else {
                continue;
            };
            if condition.input_values.is_empty() {
                continue;
            }
            let values = std::mem::take(&mut condition.input_values);
            let redacted = audit.redact(serde_json::json!({ "input_values": values }));
            condition.input_values = match redacted {
                serde_json::Value::Object(mut kept) => match kept.remove("input_values") {
                    Some(serde_json::Value::Object(values)) => values.into_iter().collect(),
                    _ => Default::default(),
                },
                _ => Default::default(),
            };
        }
    }
}

impl Answer for CheckResult {
    const SHORT: bool = true;

    fn unrecorded_allow(reason: String, revision: u64) -> Option<Self> {
        Some(CheckResult {
            allow: true,
            decision: Decision::Allow,
            deny_code: None,
            reason,
            trace_id: plystra_contracts::ids::generate("trace_"),
            audit_log_id: None,
            audit: AuditRef {
                recorded: false,
                audit_log_id: None,
            },
            revision,
        })
    }

    fn split(trace: ExplainTrace) -> (Self, serde_json::Value) {
        let result = CheckResult {
            allow: trace.decision == Decision::Allow,
            decision: trace.decision,
            deny_code: trace.deny_code,
            reason: trace.reason.clone(),
            trace_id: trace.trace_id.clone(),
            audit_log_id: None,
            audit: AuditRef::unrecorded(),
            revision: trace.revision,
        };
        // The trace is not returned: its strings move into the record's JSON.
        (result, trace.into_record_json())
    }

    fn audited(&mut self, audit: AuditRef) {
        self.audit_log_id.clone_from(&audit.audit_log_id);
        self.audit = audit;
    }
}

impl Decider {
    /// Decides an `authz/explain` body, audits once, and returns the full trace.
    pub async fn explain(
        &self,
        caller: &Caller,
        body: AuthzRequest,
    ) -> Result<ExplainTrace, ApiError> {
        let at_least = at_least_revision(&body);
        let parsed = parse(body, caller.credential.as_ref())?;
        self.decide_parsed(caller, parsed, at_least).await
    }

    /// Decides an `authz/check` body, audits once, and returns the result (the trace only in the
    /// audit record).
    pub async fn decide(
        &self,
        caller: &Caller,
        body: AuthzRequest,
    ) -> Result<CheckResult, ApiError> {
        let at_least = at_least_revision(&body);
        let parsed = parse(body, caller.credential.as_ref())?;
        self.decide_parsed(caller, parsed, at_least).await
    }

    /// Decides a managed-mode request named by IDs (an AuthZEN evaluation, once its subject and
    /// resource are mapped), with the attributes it brings for conditions, audits once, and
    /// returns the result, as `authz/check` would.
    pub async fn decide_managed(
        &self,
        caller: &Caller,
        actor: ActorRef,
        (resource_type, resource_id, action): (String, String, String),
        attributes: crate::engine::RequestAttributes,
    ) -> Result<CheckResult, ApiError> {
        let parsed = Parsed::Managed(Managed {
            actor,
            resource_type,
            resource_id,
            action,
            attributes,
        });
        self.decide_parsed(caller, parsed, None).await
    }

    /// Decides a validated request on a snapshot at least as new as `at_least`, makes its one
    /// audit record durable, and answers with the trace or the result.
    pub(super) async fn decide_parsed<A: Answer>(
        &self,
        caller: &Caller,
        parsed: Parsed,
        at_least: Option<u64>,
    ) -> Result<A, ApiError> {
        let snapshot = self.service.snapshot(at_least).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let untraced_allow = A::SHORT && self.audit.skips_allowed_decisions();
        let trace = match trace_of(&snapshot, caller, &parsed, now, untraced_allow)? {
            Traced::Full(trace) => trace,
            Traced::Allowed { reason, revision } => {
                let answer = A::unrecorded_allow(reason, revision).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InternalError,
                        "an untraced allow was produced for a traced answer",
                    )
                })?;
                self.decisions.record(Decision::Allow, None);
                return Ok(answer);
            }
        };
        let (decision, deny_code) = (trace.decision, trace.deny_code);
        let mut record = trace.audit_record();
        let (mut answer, trace_json) = A::split(trace);
        record.trace = trace_json;
        let audit_log_id = self
            .audit
            .record(record)
            .await
            .map_err(|e| ApiError::new(ErrorCode::AuditUnavailable, e.to_string()))?;
        answer.audited(AuditRef {
            recorded: audit_log_id.is_some(),
            audit_log_id,
        });
        answer.redact(&*self.audit);
        self.decisions.record(decision, deny_code);
        Ok(answer)
    }
}

#[async_trait::async_trait]
impl plystra_contracts::services::Authorizer for Decider {
    async fn check(&self, request: CheckRequest) -> Result<CheckOutcome, CheckError> {
        let (parsed, caller) = managed_request(request)?;
        let result = self
            .decide_parsed::<CheckResult>(&caller, parsed, None)
            .await?;
        Ok(CheckOutcome {
            decision: result.decision,
            deny_code: result.deny_code,
            reason: result.reason,
            trace_id: result.trace_id,
            audit_log_id: result.audit_log_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use plystra_contracts::Envelope;

    use super::*;
    use crate::check::fixtures::{finance_snapshot, inline, managed, traced};
    use crate::check::request::AuthzResource;

    #[test]
    fn the_record_keeps_the_trace_the_explain_answer_returns() {
        let snapshot = finance_snapshot();
        let caller = Caller {
            credential: None,
            ip: Some("192.0.2.1".into()),
            user_agent: None,
            request_id: "req_1".into(),
        };
        let key = Credential::ApiKey { id: "ak_1".into() };
        // Context Mode: the target's group named by path only (its ID is null in the trace).
        let mut inline_in_apac = inline();
        inline_in_apac.resource = Some(AuthzResource {
            resource_type: None,
            id: None,
            external_id: None,
            space_id: None,
            group_id: None,
            group_path: Some("finance.apac".into()),
            owner_member_id: None,
            properties: None,
        });
        let cases = [
            (managed("invoice_001"), "allow", None),
            (managed("invoice_002"), "deny", Some("SCOPE_OUT_OF_BOUNDS")),
            (parse(inline_in_apac, Some(&key)).unwrap(), "allow", None),
        ];
        for (parsed, decision, deny_code) in cases {
            let trace = traced(trace_of(&snapshot, &caller, &parsed, 1_800_000_000, false));
            // Where the log skips allows, a check's allow builds no trace and says the same.
            match trace_of(&snapshot, &caller, &parsed, 1_800_000_000, true).unwrap() {
                Traced::Allowed { reason, revision } => {
                    assert_eq!(decision, "allow");
                    assert_eq!(
                        (reason.as_str(), revision),
                        (trace.reason.as_str(), trace.revision)
                    );
                }
                Traced::Full(denied) => {
                    assert_eq!(decision, "deny");
                    assert_eq!(denied.reason, trace.reason);
                }
            }
            let columns = trace.audit_record();
            assert_eq!(columns.request_id, "req_1");
            assert_eq!(trace.request.request_id, "req_1");
            // What check, batch and the `Authorizer` store (moved out of the typed trace), and
            // what explain stores (poem's `ToJSON` of the same trace).
            let (result, checked) = <CheckResult as Answer>::split(trace.clone());
            let (mut explained, record) = <ExplainTrace as Answer>::split(trace);
            assert_eq!(checked, record);
            // What explain answers once the record is durable: the same trace, which says where
            // the record went. The record keeps no `audit` block: when its trace is made it is
            // not written yet, and once stored it is itself where the decision went.
            explained.audited(AuditRef {
                recorded: true,
                audit_log_id: Some("audit_1".into()),
            });
            let answer = Envelope::new(explained).to_json().unwrap()["data"].clone();
            assert_eq!(record.get("audit"), None, "{record}");
            assert_eq!(
                answer["audit"],
                serde_json::json!({"recorded": true, "audit_log_id": "audit_1"})
            );
            let mut record = record;
            record["audit"] = answer["audit"].clone();
            assert_eq!(
                serde_json::to_string(&record).unwrap(),
                serde_json::to_string(&answer).unwrap()
            );
            // Pinned values, so the comparison is of real traces: absent fields are present as
            // null, enums are their names.
            assert_eq!(answer["decision"], decision, "{answer}");
            assert_eq!(answer["deny_code"], serde_json::json!(deny_code));
            assert_eq!(answer["trace_version"], "1.1");
            assert_eq!(answer["request"]["ip"], "192.0.2.1");
            for (object, field) in [
                (&answer["request"], "user_agent"),
                (&answer["target"], "owner_member_id"),
                (&answer["actor"], "user_member_expires_at"),
            ] {
                assert_eq!(object.get(field), Some(&serde_json::Value::Null), "{field}");
            }
            let candidate = &answer["matched_candidates"][0];
            assert_eq!(candidate["role"], "finance_approver");
            assert_eq!(candidate["scope"], "group_tree");
            assert_eq!(candidate["scope_anchor"]["path"], "finance");
            assert_eq!(candidate["scope_check"]["covered"], deny_code.is_none());
            assert_eq!(candidate["scope_check"]["deny_code"], answer["deny_code"]);
            // The answer of check and the record's columns say the same.
            assert_eq!(result.reason, answer["reason"]);
            assert_eq!(result.trace_id, answer["trace_id"]);
            assert_eq!(result.allow, deny_code.is_none());
            assert_eq!(columns.decision.as_deref(), Some(decision));
            assert_eq!(columns.deny_code.as_deref(), deny_code);
            assert_eq!(columns.action, "approve");
            assert_eq!(columns.event_type, "authz.decision");
            assert_eq!(
                columns.resource_id,
                answer["target"]["resource_id"].as_str().map(str::to_owned)
            );
            assert_eq!(columns.ip_address.as_deref(), Some("192.0.2.1"));
        }
    }

    /// A recorder whose redaction keeps only `resource.properties.amount` of what conditions
    /// read, as an allowlist would.
    struct AllowAmount;

    #[async_trait::async_trait]
    impl AuditRecorder for AllowAmount {
        async fn record(
            &self,
            _: plystra_contracts::services::AuditRecord,
        ) -> Result<Option<String>, plystra_contracts::services::AuditUnavailable> {
            Ok(None)
        }

        async fn record_in(
            &self,
            _: &mut plystra_contracts::storage::Transaction,
            _: plystra_contracts::services::AuditRecord,
        ) -> Result<String, plystra_contracts::services::AuditUnavailable> {
            Ok(String::new())
        }

        fn redact(&self, mut value: serde_json::Value) -> serde_json::Value {
            if let Some(values) = value["input_values"].as_object_mut() {
                for (path, v) in values.iter_mut() {
                    if path != "resource.properties.amount" {
                        *v = "[redacted]".into();
                    }
                }
            }
            value
        }
    }

    #[test]
    fn a_conditions_trace_is_recorded_as_explain_answers_it_and_redacted_in_the_answer() {
        let snapshot = finance_snapshot();
        let key = Credential::ApiKey { id: "ak_1".into() };
        let mut body = inline();
        if let Some(grants) = body.grants.as_mut() {
            grants[0].condition =
                Some("resource.properties.amount <= 10000 && context.channel == 'web'".into());
        }
        body.resource = Some(AuthzResource {
            resource_type: None,
            id: None,
            external_id: None,
            space_id: None,
            group_id: None,
            group_path: Some("finance.apac".into()),
            owner_member_id: None,
            properties: Some([("amount".to_owned(), 20_000.into())].into()),
        });
        body.context = Some([("channel".to_owned(), "web".into())].into());
        let parsed = parse(body, Some(&key)).unwrap();
        let trace = traced(trace_of(
            &snapshot,
            &Caller::default(),
            &parsed,
            1_800_000_000,
            false,
        ));
        assert_eq!(trace.deny_code, Some(DenyCode::ConditionNotMet));
        let (_, checked) = <CheckResult as Answer>::split(trace.clone());
        let (mut explained, record) = <ExplainTrace as Answer>::split(trace);
        assert_eq!(checked, record);
        let condition = &record["matched_candidates"][0]["condition"];
        assert_eq!(condition["result"], "not_met");
        assert_eq!(
            condition["inputs"],
            serde_json::json!([
                {"path": "resource.properties.amount", "source": "request", "present": true},
                {"path": "context.channel", "source": "request", "present": true},
            ])
        );
        assert_eq!(condition["input_values"]["context.channel"], "web");
        explained.redact(&AllowAmount);
        let answered = explained.matched_candidates[0].condition.as_ref().unwrap();
        assert_eq!(answered.input_values["resource.properties.amount"], 20_000);
        assert_eq!(answered.input_values["context.channel"], "[redacted]");
        // A condition refused at parse time names its grant, line and column.
        let mut refused = inline();
        if let Some(grants) = refused.grants.as_mut() {
            grants[0].condition = Some("resource.amount >".into());
        }
        let Err(err) = parse(refused, Some(&key)) else {
            panic!("a refused inline condition must be a 400");
        };
        assert!(
            err.details["fields"]["grants[0].condition"].is_string(),
            "{err:?}"
        );
        assert_eq!(err.details["line"], 1);
    }
}
