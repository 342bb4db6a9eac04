//! The decision engine: upstream's semantics as a pure function of facts already in memory.
//!
//! Precedence: actor state (user, member, space, binding revoked, binding expired), then the
//! registry (unknown type or action), then cross-space, then "no candidate grant", then the union
//! of the candidates' scopes; when none covers the target, the first candidate's scope code.
//! The trace is built only when asked for; `explain` and `check` run the same code.
//!
//! The facts borrow their strings (from the index snapshot, or from a Context Mode request), and
//! the decision is a structured [`Outcome`]: the sentence for people
//! ([`Evaluation::reason`]) is formatted only when someone asks for it, so an untraced decision
//! allocates nothing but its candidate list.

use std::borrow::Cow;
use std::cell::OnceCell;

use serde_json::{Map, Value};

use crate::DenyCode;
use crate::Scope;
use crate::condition::{self, Condition, ConditionInputs};

/// A string the facts either borrow or own.
pub type Text<'a> = Cow<'a, str>;

/// A group as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts<'a> {
    /// Its ID, when known (inline context may name a group by path only).
    pub id: Option<Text<'a>>,
    /// Its dotted path.
    pub path: Text<'a>,
    /// Its space, when known.
    pub space_id: Option<Text<'a>>,
}

/// The actor's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorFacts<'a> {
    /// The user.
    pub user_id: Text<'a>,
    /// `active` or not.
    pub user_active: bool,
    /// The member acted as.
    pub member_id: Text<'a>,
    /// `active` or not.
    pub member_active: bool,
    /// The member's space.
    pub member_space_id: Text<'a>,
    /// The binding between user and member.
    pub user_member_id: Text<'a>,
    /// The binding is revoked.
    pub binding_revoked: bool,
    /// The binding's expiry, in Unix seconds.
    pub binding_expires_at: Option<i64>,
    /// The space the request names.
    pub space_id: Text<'a>,
    /// The space is active.
    pub space_active: bool,
}

/// The target's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFacts<'a> {
    /// The resource type.
    pub resource_type: Text<'a>,
    /// The resource ID.
    pub resource_id: Text<'a>,
    /// The resource's space.
    pub space_id: Text<'a>,
    /// The resource's group, if it has one.
    pub group: Option<GroupFacts<'a>>,
    /// The owning member, if any.
    pub owner_member_id: Option<Text<'a>>,
}

/// One grant that applies to (type, action): a role's permission held through a member-role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The role's key.
    pub role_key: Text<'a>,
    /// The role's ID.
    pub role_id: Text<'a>,
    /// The role's space.
    pub role_space_id: Text<'a>,
    /// The permission's ID.
    pub permission_id: Text<'a>,
    /// The permission's scope.
    pub scope: Scope,
    /// The member-role's ID.
    pub member_role_id: Text<'a>,
    /// The member-role's space.
    pub member_role_space_id: Text<'a>,
    /// Whether the grant names an anchor at all.
    pub anchor_named: bool,
    /// The anchor group, when named and found.
    pub anchor: Option<GroupFacts<'a>>,
    /// The permission's condition, when it has one: the grant covers the target only when its
    /// scope does and the condition holds.
    pub condition: Option<&'a Condition>,
}

/// The attributes a request brings for conditions to read: AuthZEN's `properties` of the
/// subject, the resource and the action, and the request's `context`. Each overlays what the
/// index holds (a request's `resource` property wins over the stored metadata of that name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    /// The subject's properties.
    pub subject: Map<String, Value>,
    /// The resource's properties.
    pub resource: Map<String, Value>,
    /// The action's properties.
    pub action: Map<String, Value>,
    /// The request's context.
    pub context: Map<String, Value>,
}

impl RequestAttributes {
    /// Whether the request brings nothing.
    pub fn is_empty(&self) -> bool {
        self.subject.is_empty()
            && self.resource.is_empty()
            && self.action.is_empty()
            && self.context.is_empty()
    }
}

/// What conditions read beyond the engine's facts: what the index holds of the target and the
/// actor, and what the request brings. Read only when a candidate whose scope covers the target
/// has a condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// What the index holds, looked up only when a candidate has a condition (`None` reads as
    /// nothing stored). Boxed, so that the facts of a decision without conditions carry one
    /// pointer for it.
    pub stored: Option<Box<StoredAttributes<'a>>>,
    /// What the request brings.
    pub request: Option<&'a RequestAttributes>,
}

impl<'a> Attributes<'a> {
    /// What the index holds (nothing when it was not looked up).
    pub fn stored(&self) -> &StoredAttributes<'a> {
        static NOTHING: StoredAttributes<'static> = StoredAttributes {
            resource_status: None,
            resource_visibility: None,
            action_risk_level: None,
            resource_metadata: None,
            username: None,
            subject_metadata: [None, None],
        };
        self.stored.as_deref().unwrap_or(&NOTHING)
    }

    /// What the index holds, to change.
    pub fn stored_mut(&mut self) -> &mut StoredAttributes<'a> {
        self.stored.get_or_insert_default()
    }
}

/// What the index holds of the target and the actor for conditions to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredAttributes<'a> {
    /// The target's status, when the index knows the target.
    pub resource_status: Option<Text<'a>>,
    /// The target's visibility, when the index knows it.
    pub resource_visibility: Option<Text<'a>>,
    /// The action's risk level, when the index knows it.
    pub action_risk_level: Option<Text<'a>>,
    /// The target's stored metadata (a JSON object as text), when it has any.
    pub resource_metadata: Option<Text<'a>>,
    /// The acting user's username, when the index knows it.
    pub username: Option<Text<'a>>,
    /// The acting user's and member's stored metadata (JSON object text), when they have any.
    pub subject_metadata: [Option<Text<'a>>; 2],
}

/// Where a value a condition read came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSource {
    /// The index: the target's or the actor's stored state.
    Storage,
    /// The request's properties or context.
    Request,
    /// The server (`now`).
    Server,
}

impl InputSource {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Storage => "storage",
            Self::Request => "request",
            Self::Server => "server",
        }
    }
}

/// One value a condition read, for the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRead {
    /// The path read (`resource.properties.amount`).
    pub path: String,
    /// Its value, `None` when absent.
    pub value: Option<Value>,
    /// Where it came from.
    pub source: InputSource,
}

/// How one candidate's condition judged the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionCheck {
    /// The condition's source.
    pub source: String,
    /// Its verdict; `None` when it was not evaluated (the scope does not cover the target, or
    /// an earlier grant allowed).
    pub verdict: Option<condition::Evaluation>,
    /// The values it read (only when evaluated).
    pub inputs: Vec<InputRead>,
}

/// Everything one decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// Who acts.
    pub actor: ActorFacts<'a>,
    /// On what.
    pub target: TargetFacts<'a>,
    /// The action.
    pub action: Text<'a>,
    /// The type is registered.
    pub resource_type_known: bool,
    /// The action is registered for the type.
    pub action_known: bool,
    /// Grants for (type, action), in a stable order.
    pub candidates: Vec<Candidate<'a>>,
    /// The evaluation instant, in Unix seconds.
    pub now: i64,
    /// What conditions read beyond the facts.
    pub attributes: Attributes<'a>,
}

/// The fields of each input (`subject`, `resource`, `action`, `context`) that conditions read:
/// the inputs are built with those alone.
#[derive(Debug, Clone, Default)]
pub struct Reading<'p> {
    /// Per input: `None` when not read, `Some(None)` when read whole, `Some(Some(fields))` when
    /// only those top-level fields are read.
    roots: [Option<Option<Vec<&'p str>>>; 4],
}

impl<'p> Reading<'p> {
    /// Everything.
    pub fn everything() -> Self {
        Self {
            roots: [Some(None), Some(None), Some(None), Some(None)],
        }
    }

    /// Adds what the path `path` (`resource.properties.amount`) reads.
    pub fn add(&mut self, path: &'p str) {
        let mut parts = path.splitn(3, '.');
        let root = match parts.next() {
            Some("subject") => 0,
            Some("resource") => 1,
            Some("action") => 2,
            Some("context") => 3,
            _ => return,
        };
        let slot = &mut self.roots[root];
        match (parts.next(), slot) {
            (_, Some(None)) => {}
            (None, slot) => *slot = Some(None),
            (Some(field), Some(Some(fields))) => {
                if !fields.contains(&field) {
                    fields.push(field);
                }
            }
            (Some(field), slot) => *slot = Some(Some(vec![field])),
        }
    }

    fn reads_root(&self, root: usize) -> bool {
        self.roots[root].is_some()
    }

    fn reads(&self, root: usize, field: &str) -> bool {
        match &self.roots[root] {
            Some(None) => true,
            Some(Some(fields)) => fields.contains(&field),
            None => false,
        }
    }
}

impl Facts<'_> {
    /// The inputs of conditions on these facts: the actor, the target (its stored metadata
    /// overlaid by the request's properties), the action, the request's context and `now`.
    pub fn condition_inputs(&self) -> ConditionInputs {
        self.condition_inputs_reading(&Reading::everything())
    }

    /// [`Facts::condition_inputs`], holding only what `reading` names: the rest is left out, as
    /// no condition that reads only those looks at it.
    pub fn condition_inputs_reading(&self, reading: &Reading<'_>) -> ConditionInputs {
        let request = self.attributes.request;
        let stored = self.attributes.stored();
        let text = |t: &str| Value::String(t.to_owned());
        let mut subject = Map::new();
        if reading.reads_root(0) {
            let mut put = |field: &str, value: Option<&str>| {
                if let Some(value) = value.filter(|_| reading.reads(0, field)) {
                    subject.insert(field.to_owned(), text(value));
                }
            };
            put("user_id", Some(&self.actor.user_id));
            put("member_id", Some(&self.actor.member_id));
            put("user_member_id", Some(&self.actor.user_member_id));
            put("space_id", Some(&self.actor.space_id));
            put("username", stored.username.as_deref());
            if reading.reads(0, "properties") {
                // The user's metadata, the member's over it, the request's over both.
                let mut properties = Map::new();
                for stored in stored.subject_metadata.iter().flatten() {
                    if let Ok(map) = serde_json::from_str::<Map<String, Value>>(stored) {
                        properties.extend(map);
                    }
                }
                if let Some(r) = request {
                    properties.extend(r.subject.clone());
                }
                subject.insert("properties".into(), Value::Object(properties));
            }
        }
        let mut resource = Map::new();
        if reading.reads_root(1) {
            let target = &self.target;
            let group = target.group.as_ref();
            let mut put = |field: &str, value: Option<&str>| {
                if let Some(value) = value.filter(|_| reading.reads(1, field)) {
                    resource.insert(field.to_owned(), text(value));
                }
            };
            put("type", Some(&target.resource_type));
            put("id", Some(&target.resource_id));
            put("space_id", Some(&target.space_id));
            put("status", stored.resource_status.as_deref());
            put("visibility", stored.resource_visibility.as_deref());
            put("group_id", group.and_then(|g| g.id.as_deref()));
            put("group_path", group.map(|g| &*g.path));
            put("owner_member_id", target.owner_member_id.as_deref());
            if reading.reads(1, "properties") {
                let mut properties = stored
                    .resource_metadata
                    .as_deref()
                    .and_then(|m| serde_json::from_str::<Map<String, Value>>(m).ok())
                    .unwrap_or_default();
                if let Some(r) = request {
                    properties.extend(r.resource.clone());
                }
                resource.insert("properties".into(), Value::Object(properties));
            }
        }
        let mut action = Map::new();
        if reading.reads_root(2) {
            if reading.reads(2, "name") {
                action.insert("name".into(), text(&self.action));
            }
            if let Some(risk) = stored
                .action_risk_level
                .as_deref()
                .filter(|_| reading.reads(2, "risk_level"))
            {
                action.insert("risk_level".into(), text(risk));
            }
            if reading.reads(2, "properties") {
                action.insert(
                    "properties".into(),
                    Value::Object(request.map(|r| r.action.clone()).unwrap_or_default()),
                );
            }
        }
        let context = match request {
            Some(r) if reading.reads_root(3) => r.context.clone(),
            _ => Map::new(),
        };
        ConditionInputs {
            subject: Value::Object(subject),
            resource: Value::Object(resource),
            action: Value::Object(action),
            context: Value::Object(context),
            now: self.now,
        }
    }

    /// What the conditions of these facts' candidates read, together.
    fn reading(&self) -> Reading<'_> {
        let mut reading = Reading::default();
        for condition in self.candidates.iter().filter_map(|c| c.condition) {
            for path in condition.paths() {
                reading.add(path);
            }
        }
        reading
    }

    /// Where the value at `path` of [`Facts::condition_inputs`] came from.
    pub fn input_source(&self, path: &str) -> InputSource {
        let mut parts = path.split('.');
        let root = parts.next().unwrap_or_default();
        let request = self.attributes.request;
        let mut from_request = |map: Option<&Map<String, Value>>| match (parts.next(), parts.next())
        {
            (Some("properties"), Some(key)) => map.is_some_and(|m| m.contains_key(key)),
            (Some("properties"), None) => map.is_some_and(|m| !m.is_empty()),
            _ => false,
        };
        let requested = match root {
            "now" => return InputSource::Server,
            "context" => return InputSource::Request,
            "subject" => from_request(request.map(|r| &r.subject)),
            "resource" => from_request(request.map(|r| &r.resource)),
            "action" => from_request(request.map(|r| &r.action)),
            _ => false,
        };
        if requested {
            InputSource::Request
        } else {
            InputSource::Storage
        }
    }
}

/// How one candidate's scope judged the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeCheck {
    /// The scope covers the target.
    pub covered: bool,
    /// The rule applied, for example `group_tree: finance.apac within finance`.
    pub rule: String,
    /// Why it is or is not covered.
    pub reason: String,
    /// The code when not covered.
    pub deny_code: Option<DenyCode>,
}

/// Which fact lies in another space than the request (the first found, in precedence order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSpace {
    /// The actor member.
    Member,
    /// The target.
    Target,
    /// The target's group.
    TargetGroup,
    /// Candidate `i`'s role.
    Role(usize),
    /// Candidate `i`'s member-role.
    MemberRole(usize),
    /// Candidate `i`'s anchor group.
    Anchor(usize),
}

/// What decided, as data: the reason sentence is derived from it on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The user is not active.
    UserInactive,
    /// The member is not active.
    MemberInactive,
    /// The request's space is not active.
    SpaceInactive,
    /// The binding is revoked.
    BindingRevoked,
    /// The binding has expired.
    BindingExpired,
    /// The resource type is not registered.
    UnknownType,
    /// The action is not registered for the type.
    UnknownAction,
    /// A fact lies in another space.
    CrossSpace(CrossSpace),
    /// No grant of the member covers (type, action).
    NoCandidate,
    /// Candidate `i` (the first whose scope covers the target) allows.
    Allowed(usize),
    /// No candidate's scope covers the target; the first candidate's check names the deny.
    OutOfScope,
    /// Candidate `i` (the first whose scope covers the target) has a condition that was not
    /// met, and no candidate allows.
    ConditionNotMet(usize),
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The deny code, or `None` for allow.
    pub deny_code: Option<DenyCode>,
    /// What decided; [`Evaluation::reason`] turns it into a sentence.
    pub outcome: Outcome,
    /// Each candidate's scope check (only with the trace on; empty otherwise).
    pub checks: Vec<(usize, ScopeCheck)>,
    /// Each conditional candidate's condition check, when the decision got as far as the
    /// candidates (only with the trace on; empty otherwise).
    pub conditions: Vec<(usize, ConditionCheck)>,
}

impl Evaluation {
    /// Allowed.
    pub fn allow(&self) -> bool {
        self.deny_code.is_none()
    }

    /// A sentence for people. `facts` must be the facts this evaluation decided on.
    pub fn reason(&self, facts: &Facts<'_>) -> String {
        let actor = &facts.actor;
        let target = &facts.target;
        match self.outcome {
            Outcome::UserInactive => format!("user {} is not active", actor.user_id),
            Outcome::MemberInactive => format!("member {} is not active", actor.member_id),
            Outcome::SpaceInactive => format!("space {} is not active", actor.space_id),
            Outcome::BindingRevoked => format!("binding {} is revoked", actor.user_member_id),
            Outcome::BindingExpired => format!("binding {} has expired", actor.user_member_id),
            Outcome::UnknownType => {
                format!("resource type {} is not registered", target.resource_type)
            }
            Outcome::UnknownAction => format!(
                "action {} is not registered for {}",
                facts.action, target.resource_type
            ),
            Outcome::CrossSpace(which) => {
                let (what, other): (String, &str) = match which {
                    CrossSpace::Member => ("member".into(), &actor.member_space_id),
                    CrossSpace::Target => ("target".into(), &target.space_id),
                    CrossSpace::TargetGroup => (
                        "target group".into(),
                        group_space(target.group.as_ref()).unwrap_or_default(),
                    ),
                    CrossSpace::Role(i) => {
                        let c = &facts.candidates[i];
                        (format!("role {}", c.role_key), &c.role_space_id)
                    }
                    CrossSpace::MemberRole(i) => {
                        let c = &facts.candidates[i];
                        (
                            format!("member-role {}", c.member_role_id),
                            &c.member_role_space_id,
                        )
                    }
                    CrossSpace::Anchor(i) => {
                        let c = &facts.candidates[i];
                        (
                            format!("anchor of role {}", c.role_key),
                            group_space(c.anchor.as_ref()).unwrap_or_default(),
                        )
                    }
                };
                format!(
                    "{what} is in space {other}, the request is in {}",
                    actor.space_id
                )
            }
            Outcome::NoCandidate => format!(
                "no grant of member {} covers {}:{}",
                actor.member_id, target.resource_type, facts.action
            ),
            Outcome::Allowed(i) => {
                let candidate = &facts.candidates[i];
                let check = scope_check(facts, candidate);
                format!("allowed by role {} ({})", candidate.role_key, check.rule)
            }
            Outcome::OutOfScope => match facts.candidates.first() {
                Some(first) => scope_check(facts, first).reason,
                None => "no scope covers the target".to_owned(),
            },
            Outcome::ConditionNotMet(i) => {
                let candidate = &facts.candidates[i];
                let source = candidate.condition.map_or("", Condition::source);
                format!(
                    "role {} covers the target, but the condition of permission {} was not met: {source}",
                    candidate.role_key, candidate.permission_id
                )
            }
        }
    }
}

fn group_space<'g>(group: Option<&'g GroupFacts<'_>>) -> Option<&'g str> {
    group.and_then(|g| g.space_id.as_deref())
}

/// Whether two strings are equal, without reading them when they are the same text (the index
/// shares one text per ID, so the spaces and paths a decision compares usually are).
fn same(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// Whether a target path lies in an anchor's subtree: equal, or below it at a `.` boundary.
pub fn path_within(target: &str, anchor: &str) -> bool {
    same(target, anchor)
        || (target.len() > anchor.len()
            && target.starts_with(anchor)
            && target.as_bytes()[anchor.len()] == b'.')
}

impl ActorFacts<'_> {
    /// The actor stage at `now` (Unix seconds): the first of the actor's states that denies, in
    /// precedence order (user, member, space, binding revoked, binding expired); `None` when a
    /// decision goes on to the registry.
    pub fn refusal(&self, now: i64) -> Option<Outcome> {
        if !self.user_active {
            return Some(Outcome::UserInactive);
        }
        if !self.member_active {
            return Some(Outcome::MemberInactive);
        }
        if !self.space_active {
            return Some(Outcome::SpaceInactive);
        }
        if self.binding_revoked {
            return Some(Outcome::BindingRevoked);
        }
        if self.binding_expires_at.is_some_and(|at| at <= now) {
            return Some(Outcome::BindingExpired);
        }
        None
    }
}

/// Decides: the outcome, without formatting anything. The verdict of each condition evaluated
/// goes into `verdicts` when the trace wants it.
fn decide(
    facts: &Facts<'_>,
    verdicts: Option<&mut Vec<(usize, condition::Evaluation)>>,
) -> Outcome {
    if let Some(refusal) = facts.actor.refusal(facts.now) {
        return refusal;
    }
    if !facts.resource_type_known {
        return Outcome::UnknownType;
    }
    if !facts.action_known {
        return Outcome::UnknownAction;
    }
    if let Some(which) = cross_space(facts) {
        return Outcome::CrossSpace(which);
    }
    if facts.candidates.is_empty() {
        return Outcome::NoCandidate;
    }
    for (i, candidate) in facts.candidates.iter().enumerate() {
        if covers(facts, candidate).is_err() {
            continue;
        }
        if candidate.condition.is_none() {
            return Outcome::Allowed(i);
        }
        return decide_conditions(facts, i, verdicts);
    }
    Outcome::OutOfScope
}

/// Decides from candidate `first` on, the first whose scope covers the target, which has a
/// condition. Apart from the loop above, so that a decision on unconditional grants carries
/// none of the conditions' state.
#[inline(never)]
fn decide_conditions(
    facts: &Facts<'_>,
    first: usize,
    mut verdicts: Option<&mut Vec<(usize, condition::Evaluation)>>,
) -> Outcome {
    // The inputs are built once, and only when a covering candidate has a condition.
    let inputs = OnceCell::new();
    let mut unmet = None;
    for (i, candidate) in facts.candidates.iter().enumerate().skip(first) {
        if covers(facts, candidate).is_err() {
            continue;
        }
        let Some(condition) = candidate.condition else {
            return Outcome::Allowed(i);
        };
        let verdict = condition
            .evaluate(inputs.get_or_init(|| facts.condition_inputs_reading(&facts.reading())));
        if let Some(verdicts) = verdicts.as_deref_mut() {
            verdicts.push((i, verdict.clone()));
        }
        if verdict == condition::Evaluation::Met {
            return Outcome::Allowed(i);
        }
        unmet.get_or_insert(i);
    }
    match unmet {
        Some(i) => Outcome::ConditionNotMet(i),
        None => Outcome::OutOfScope,
    }
}

fn deny_code(facts: &Facts<'_>, outcome: Outcome) -> Option<DenyCode> {
    Some(match outcome {
        Outcome::UserInactive => DenyCode::ActorUserInactive,
        Outcome::MemberInactive => DenyCode::ActorMemberInactive,
        Outcome::SpaceInactive => DenyCode::SpaceInactive,
        Outcome::BindingRevoked => DenyCode::UserMemberRevoked,
        Outcome::BindingExpired => DenyCode::UserMemberExpired,
        Outcome::UnknownType => DenyCode::InvalidResourceType,
        Outcome::UnknownAction => DenyCode::InvalidResourceAction,
        Outcome::CrossSpace(_) => DenyCode::CrossSpaceViolation,
        Outcome::NoCandidate => DenyCode::NoMatchingPermission,
        Outcome::Allowed(_) => return None,
        Outcome::ConditionNotMet(_) => DenyCode::ConditionNotMet,
        Outcome::OutOfScope => facts
            .candidates
            .first()
            .and_then(|c| covers(facts, c).err())
            .unwrap_or(DenyCode::ScopeOutOfBounds),
    })
}

/// Decides. With `trace`, every candidate's scope check is recorded (when the decision got as
/// far as the candidates).
pub fn evaluate(facts: &Facts<'_>, trace: bool) -> Evaluation {
    let mut verdicts = Vec::new();
    let outcome = decide(facts, trace.then_some(&mut verdicts));
    let reached = matches!(
        outcome,
        Outcome::Allowed(_) | Outcome::OutOfScope | Outcome::ConditionNotMet(_)
    );
    let (checks, conditions) = if trace && reached {
        (
            facts
                .candidates
                .iter()
                .enumerate()
                .map(|(i, c)| (i, scope_check(facts, c)))
                .collect(),
            condition_checks(facts, verdicts),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Evaluation {
        deny_code: deny_code(facts, outcome),
        outcome,
        checks,
        conditions,
    }
}

/// Each conditional candidate's check, from the verdicts the decision reached: with the values
/// each evaluated condition read, and where they came from.
fn condition_checks(
    facts: &Facts<'_>,
    mut verdicts: Vec<(usize, condition::Evaluation)>,
) -> Vec<(usize, ConditionCheck)> {
    let mut inputs = None;
    facts
        .candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let condition = c.condition?;
            let verdict = verdicts
                .iter()
                .position(|(at, _)| *at == i)
                .map(|at| verdicts.swap_remove(at).1);
            let read = match verdict {
                Some(_) => {
                    let inputs = inputs.get_or_insert_with(|| facts.condition_inputs());
                    condition
                        .read(inputs)
                        .into_iter()
                        .map(|(path, value)| InputRead {
                            source: facts.input_source(&path),
                            path,
                            value,
                        })
                        .collect()
                }
                None => Vec::new(),
            };
            Some((
                i,
                ConditionCheck {
                    source: condition.source().to_owned(),
                    verdict,
                    inputs: read,
                },
            ))
        })
        .collect()
}

fn cross_space(facts: &Facts<'_>) -> Option<CrossSpace> {
    let space: &str = &facts.actor.space_id;
    if !same(&facts.actor.member_space_id, space) {
        return Some(CrossSpace::Member);
    }
    if !same(&facts.target.space_id, space) {
        return Some(CrossSpace::Target);
    }
    if group_space(facts.target.group.as_ref()).is_some_and(|s| !same(s, space)) {
        return Some(CrossSpace::TargetGroup);
    }
    for (i, c) in facts.candidates.iter().enumerate() {
        if !same(&c.role_space_id, space) {
            return Some(CrossSpace::Role(i));
        }
        if !same(&c.member_role_space_id, space) {
            return Some(CrossSpace::MemberRole(i));
        }
        if group_space(c.anchor.as_ref()).is_some_and(|s| !same(s, space)) {
            return Some(CrossSpace::Anchor(i));
        }
    }
    None
}

/// Whether one candidate's scope covers the target, or the code why not. [`scope_check`] says
/// the same in words.
fn covers(facts: &Facts<'_>, candidate: &Candidate<'_>) -> Result<(), DenyCode> {
    match candidate.scope {
        Scope::Global => Err(DenyCode::GlobalScopeDisabled),
        Scope::Space => Ok(()),
        Scope::OwnSelf => match &facts.target.owner_member_id {
            Some(owner) if *owner == facts.actor.member_id => Ok(()),
            _ => Err(DenyCode::ScopeOutOfBounds),
        },
        Scope::Group | Scope::GroupTree => {
            let Some(anchor) = candidate.anchor.as_ref().filter(|_| candidate.anchor_named) else {
                return Err(DenyCode::ScopeAnchorMissing);
            };
            let Some(group) = facts.target.group.as_ref() else {
                return Err(DenyCode::TargetGroupMissing);
            };
            if group_covered(candidate.scope == Scope::GroupTree, group, anchor) {
                Ok(())
            } else {
                Err(DenyCode::ScopeOutOfBounds)
            }
        }
    }
}

fn group_covered(tree: bool, group: &GroupFacts<'_>, anchor: &GroupFacts<'_>) -> bool {
    if tree {
        path_within(&group.path, &anchor.path)
    } else {
        match (&group.id, &anchor.id) {
            (Some(g), Some(a)) => same(g, a),
            _ => same(&group.path, &anchor.path),
        }
    }
}

fn scope_check(facts: &Facts<'_>, candidate: &Candidate<'_>) -> ScopeCheck {
    let verdict = covers(facts, candidate);
    let check = |rule: String, reason: String| ScopeCheck {
        covered: verdict.is_ok(),
        rule,
        reason,
        deny_code: verdict.err(),
    };
    match candidate.scope {
        Scope::Global => check("global".into(), "the global scope is disabled".into()),
        Scope::Space => check(
            "space".into(),
            format!("target is in space {}", facts.target.space_id),
        ),
        Scope::OwnSelf => check(
            "self".into(),
            match &facts.target.owner_member_id {
                Some(_) if verdict.is_ok() => "the actor member owns the target".into(),
                Some(owner) => format!("the target is owned by {owner}"),
                None => "the target has no owner".into(),
            },
        ),
        Scope::Group | Scope::GroupTree => {
            let name = if candidate.scope == Scope::GroupTree {
                "group_tree"
            } else {
                "group"
            };
            match (
                candidate.anchor.as_ref().filter(|_| candidate.anchor_named),
                facts.target.group.as_ref(),
            ) {
                (None, _) => check(name.into(), "the grant has no scope anchor group".into()),
                (Some(_), None) => check(name.into(), "the target has no group".into()),
                (Some(anchor), Some(group)) => check(
                    format!("{name}: {} within {}", group.path, anchor.path),
                    if verdict.is_ok() {
                        format!("group {} is covered by anchor {}", group.path, anchor.path)
                    } else {
                        format!("group {} is outside anchor {}", group.path, anchor.path)
                    },
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(path: &str) -> GroupFacts<'static> {
        GroupFacts {
            id: Some(format!("group_{}", path.replace('.', "_")).into()),
            path: path.to_owned().into(),
            space_id: Some("space_acme".into()),
        }
    }

    fn facts() -> Facts<'static> {
        Facts {
            actor: ActorFacts {
                user_id: "user_alice".into(),
                user_active: true,
                member_id: "member_finance_reviewer".into(),
                member_active: true,
                member_space_id: "space_acme".into(),
                user_member_id: "um_alice_finance_reviewer".into(),
                binding_revoked: false,
                binding_expires_at: None,
                space_id: "space_acme".into(),
                space_active: true,
            },
            target: TargetFacts {
                resource_type: "invoice".into(),
                resource_id: "invoice_001".into(),
                space_id: "space_acme".into(),
                group: Some(group("finance.apac")),
                owner_member_id: Some("member_invoice_creator".into()),
            },
            action: "approve".into(),
            resource_type_known: true,
            action_known: true,
            candidates: vec![candidate(Scope::GroupTree, Some("finance"))],
            now: 1_000,
            attributes: Attributes::default(),
        }
    }

    fn candidate(scope: Scope, anchor: Option<&str>) -> Candidate<'static> {
        Candidate {
            role_key: "finance_approver".into(),
            role_id: "role_finance_approver".into(),
            role_space_id: "space_acme".into(),
            permission_id: "perm_invoice_approve".into(),
            scope,
            member_role_id: "mr_1".into(),
            member_role_space_id: "space_acme".into(),
            anchor_named: anchor.is_some(),
            anchor: anchor.map(group),
            condition: None,
        }
    }

    /// The engine as it was before the reason became lazy: every decision formatted its
    /// sentence eagerly. The tests hold the new engine to its codes, reasons and traces.
    mod reference {
        use crate::DenyCode;
        use crate::Scope;
        use crate::engine::{Candidate, Facts, ScopeCheck, path_within};

        #[derive(Debug)]
        pub(super) struct Evaluation {
            pub(super) deny_code: Option<DenyCode>,
            pub(super) reason: String,
            pub(super) checks: Vec<(usize, ScopeCheck)>,
        }

        impl Evaluation {
            fn deny(code: DenyCode, reason: impl Into<String>) -> Self {
                Self {
                    deny_code: Some(code),
                    reason: reason.into(),
                    checks: Vec::new(),
                }
            }
        }

        pub(super) fn evaluate(facts: &Facts<'_>, trace: bool) -> Evaluation {
            let actor = &facts.actor;
            if !actor.user_active {
                return Evaluation::deny(
                    DenyCode::ActorUserInactive,
                    format!("user {} is not active", actor.user_id),
                );
            }
            if !actor.member_active {
                return Evaluation::deny(
                    DenyCode::ActorMemberInactive,
                    format!("member {} is not active", actor.member_id),
                );
            }
            if !actor.space_active {
                return Evaluation::deny(
                    DenyCode::SpaceInactive,
                    format!("space {} is not active", actor.space_id),
                );
            }
            if actor.binding_revoked {
                return Evaluation::deny(
                    DenyCode::UserMemberRevoked,
                    format!("binding {} is revoked", actor.user_member_id),
                );
            }
            if actor.binding_expires_at.is_some_and(|at| at <= facts.now) {
                return Evaluation::deny(
                    DenyCode::UserMemberExpired,
                    format!("binding {} has expired", actor.user_member_id),
                );
            }
            let target = &facts.target;
            if !facts.resource_type_known {
                return Evaluation::deny(
                    DenyCode::InvalidResourceType,
                    format!("resource type {} is not registered", target.resource_type),
                );
            }
            if !facts.action_known {
                return Evaluation::deny(
                    DenyCode::InvalidResourceAction,
                    format!(
                        "action {} is not registered for {}",
                        facts.action, target.resource_type
                    ),
                );
            }
            if let Some(reason) = cross_space(facts) {
                return Evaluation::deny(DenyCode::CrossSpaceViolation, reason);
            }
            if facts.candidates.is_empty() {
                return Evaluation::deny(
                    DenyCode::NoMatchingPermission,
                    format!(
                        "no grant of member {} covers {}:{}",
                        actor.member_id, target.resource_type, facts.action
                    ),
                );
            }
            let mut checks = Vec::new();
            let mut first_code = None;
            for (i, candidate) in facts.candidates.iter().enumerate() {
                let check = scope_check(facts, candidate);
                if check.covered {
                    let reason = format!("allowed by role {} ({})", candidate.role_key, check.rule);
                    if trace {
                        checks.push((i, check));
                        // Keep tracing the rest so explain shows every candidate.
                        for (j, rest) in facts.candidates.iter().enumerate().skip(i + 1) {
                            checks.push((j, scope_check(facts, rest)));
                        }
                    }
                    return Evaluation {
                        deny_code: None,
                        reason,
                        checks,
                    };
                }
                if first_code.is_none() {
                    first_code = Some((
                        check.deny_code.unwrap_or(DenyCode::ScopeOutOfBounds),
                        check.reason.clone(),
                    ));
                }
                if trace {
                    checks.push((i, check));
                }
            }
            let (code, reason) = first_code.unwrap_or((
                DenyCode::ScopeOutOfBounds,
                "no scope covers the target".to_owned(),
            ));
            Evaluation {
                deny_code: Some(code),
                reason,
                checks,
            }
        }

        fn cross_space(facts: &Facts<'_>) -> Option<String> {
            let space: &str = &facts.actor.space_id;
            let differs = |what: &str, other: &str| {
                (other != space)
                    .then(|| format!("{what} is in space {other}, the request is in {space}"))
            };
            if let Some(r) = differs("member", &facts.actor.member_space_id) {
                return Some(r);
            }
            if let Some(r) = differs("target", &facts.target.space_id) {
                return Some(r);
            }
            if let Some(r) = facts
                .target
                .group
                .as_ref()
                .and_then(|g| g.space_id.as_deref())
                .and_then(|s| differs("target group", s))
            {
                return Some(r);
            }
            for c in &facts.candidates {
                let anchor_space = c.anchor.as_ref().and_then(|a| a.space_id.as_deref());
                let found = differs(&format!("role {}", c.role_key), &c.role_space_id)
                    .or_else(|| {
                        differs(
                            &format!("member-role {}", c.member_role_id),
                            &c.member_role_space_id,
                        )
                    })
                    .or_else(|| {
                        anchor_space
                            .and_then(|s| differs(&format!("anchor of role {}", c.role_key), s))
                    });
                if found.is_some() {
                    return found;
                }
            }
            None
        }

        fn scope_check(facts: &Facts<'_>, candidate: &Candidate<'_>) -> ScopeCheck {
            let not = |rule: String, reason: String, code: DenyCode| ScopeCheck {
                covered: false,
                rule,
                reason,
                deny_code: Some(code),
            };
            let yes = |rule: String, reason: String| ScopeCheck {
                covered: true,
                rule,
                reason,
                deny_code: None,
            };
            let target_group = facts.target.group.as_ref();
            match candidate.scope {
                Scope::Global => not(
                    "global".into(),
                    "the global scope is disabled".into(),
                    DenyCode::GlobalScopeDisabled,
                ),
                Scope::Space => yes(
                    "space".into(),
                    format!("target is in space {}", facts.target.space_id),
                ),
                Scope::OwnSelf => match &facts.target.owner_member_id {
                    Some(owner) if *owner == facts.actor.member_id => {
                        yes("self".into(), "the actor member owns the target".into())
                    }
                    Some(owner) => not(
                        "self".into(),
                        format!("the target is owned by {owner}"),
                        DenyCode::ScopeOutOfBounds,
                    ),
                    None => not(
                        "self".into(),
                        "the target has no owner".into(),
                        DenyCode::ScopeOutOfBounds,
                    ),
                },
                Scope::Group | Scope::GroupTree => {
                    let tree = candidate.scope == Scope::GroupTree;
                    let name = if tree { "group_tree" } else { "group" };
                    let Some(anchor) = candidate.anchor.as_ref().filter(|_| candidate.anchor_named)
                    else {
                        return not(
                            name.into(),
                            "the grant has no scope anchor group".into(),
                            DenyCode::ScopeAnchorMissing,
                        );
                    };
                    let Some(group) = target_group else {
                        return not(
                            name.into(),
                            "the target has no group".into(),
                            DenyCode::TargetGroupMissing,
                        );
                    };
                    let rule = format!("{name}: {} within {}", group.path, anchor.path);
                    let covered = if tree {
                        path_within(&group.path, &anchor.path)
                    } else {
                        match (&group.id, &anchor.id) {
                            (Some(g), Some(a)) => g == a,
                            _ => group.path == anchor.path,
                        }
                    };
                    if covered {
                        yes(
                            rule,
                            format!("group {} is covered by anchor {}", group.path, anchor.path),
                        )
                    } else {
                        not(
                            rule,
                            format!("group {} is outside anchor {}", group.path, anchor.path),
                            DenyCode::ScopeOutOfBounds,
                        )
                    }
                }
            }
        }
    }

    /// The new engine against the reference: same code, same sentence, same trace.
    fn same_as_reference(f: &Facts<'_>) {
        for trace in [false, true] {
            let new = evaluate(f, trace);
            let old = reference::evaluate(f, trace);
            assert_eq!(new.deny_code, old.deny_code, "deny code (trace {trace})");
            assert_eq!(new.reason(f), old.reason, "reason (trace {trace})");
            assert_eq!(new.checks, old.checks, "checks (trace {trace})");
        }
    }

    type Edit = Box<dyn Fn(&mut Facts<'static>)>;

    fn code(f: &Facts<'_>) -> Option<DenyCode> {
        same_as_reference(f);
        let e = evaluate(f, false);
        assert_eq!(
            e.deny_code,
            evaluate(f, true).deny_code,
            "check and explain agree"
        );
        e.deny_code
    }

    /// A request's attributes with the invoice's amount.
    fn amount(value: i64) -> RequestAttributes {
        RequestAttributes {
            resource: serde_json::json!({"amount": value})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..RequestAttributes::default()
        }
    }

    #[test]
    fn a_condition_narrows_a_covering_grant_and_is_traced() {
        let limit = Condition::compile("resource.properties.amount <= 10000").unwrap();
        let stored_status = Condition::compile("resource.status != 'archived'").unwrap();
        // The reference engine knows no conditions: check and explain are held to each other.
        let decided = |f: &Facts<'_>| {
            let code = evaluate(f, false).deny_code;
            assert_eq!(code, evaluate(f, true).deny_code, "check and explain agree");
            code
        };
        let small = amount(9_000);
        let large = amount(12_000);
        let mut f = facts();
        f.candidates[0].condition = Some(&limit);
        f.attributes.request = Some(&small);
        assert_eq!(decided(&f), None);
        let traced = evaluate(&f, true);
        assert_eq!(
            traced.reason(&f),
            "allowed by role finance_approver (group_tree: finance.apac within finance)"
        );
        let (at, check) = &traced.conditions[0];
        assert_eq!(*at, 0);
        assert_eq!(check.verdict, Some(condition::Evaluation::Met));
        assert_eq!(
            check.inputs,
            [InputRead {
                path: "resource.properties.amount".into(),
                value: Some(9_000.into()),
                source: InputSource::Request,
            }]
        );
        f.attributes.request = Some(&large);
        assert_eq!(decided(&f), Some(DenyCode::ConditionNotMet));
        let denied = evaluate(&f, true);
        assert!(
            denied
                .reason(&f)
                .contains("resource.properties.amount <= 10000"),
            "{}",
            denied.reason(&f)
        );
        assert_eq!(
            denied.conditions[0].1.verdict,
            Some(condition::Evaluation::NotMet)
        );
        // A missing attribute is not met, and says why.
        f.attributes.request = None;
        let failed = evaluate(&f, true);
        assert_eq!(failed.deny_code, Some(DenyCode::ConditionNotMet));
        assert!(matches!(
            failed.conditions[0].1.verdict,
            Some(condition::Evaluation::Failed(_))
        ));
        assert_eq!(failed.conditions[0].1.inputs[0].value, None);
        // The stored status and metadata are read from storage; the request's properties win.
        f.attributes.stored_mut().resource_status = Some("archived".into());
        f.attributes.stored_mut().resource_metadata = Some(r#"{"amount": 500}"#.into());
        assert_eq!(decided(&f), None);
        f.attributes.request = Some(&large);
        assert_eq!(decided(&f), Some(DenyCode::ConditionNotMet));
        f.attributes.request = None;
        let mut second = candidate(Scope::Space, None);
        second.condition = Some(&stored_status);
        f.candidates.push(second);
        assert_eq!(
            decided(&f),
            None,
            "the first grant allows on the stored amount"
        );
        f.attributes.stored_mut().resource_metadata = Some(r#"{"amount": 50000}"#.into());
        let both = evaluate(&f, true);
        assert_eq!(both.deny_code, Some(DenyCode::ConditionNotMet));
        assert_eq!(both.conditions.len(), 2);
        assert_eq!(
            both.conditions[1].1.inputs,
            [InputRead {
                path: "resource.status".into(),
                value: Some("archived".into()),
                source: InputSource::Storage,
            }]
        );
        // An unconditional grant after an unmet condition allows; a condition whose scope does
        // not cover the target is not evaluated and the scope names the deny.
        f.candidates.push(candidate(Scope::Space, None));
        assert_eq!(decided(&f), None);
        let mut out_of_scope = facts();
        out_of_scope.candidates[0].condition = Some(&limit);
        out_of_scope.target.group = Some(group("sales"));
        let scoped = evaluate(&out_of_scope, true);
        assert_eq!(scoped.deny_code, Some(DenyCode::ScopeOutOfBounds));
        assert_eq!(scoped.conditions[0].1.verdict, None);
        assert!(scoped.conditions[0].1.inputs.is_empty());
    }

    #[test]
    fn the_subjects_properties_are_the_users_then_the_members_then_the_requests() {
        let mut f = facts();
        f.attributes.stored_mut().subject_metadata = [
            Some(r#"{"region": "emea", "clearance": "high"}"#.into()),
            Some(r#"{"region": "apac", "team": "ap"}"#.into()),
        ];
        let inputs = f.condition_inputs();
        assert_eq!(
            inputs.subject["properties"],
            serde_json::json!({"region": "apac", "clearance": "high", "team": "ap"})
        );
        let request = RequestAttributes {
            subject: serde_json::json!({"team": "ar"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..RequestAttributes::default()
        };
        f.attributes.request = Some(&request);
        assert_eq!(f.condition_inputs().subject["properties"]["team"], "ar");
        assert_eq!(
            f.input_source("subject.properties.team"),
            InputSource::Request
        );
        assert_eq!(
            f.input_source("subject.properties.region"),
            InputSource::Storage
        );
        assert_eq!(f.input_source("context.ip"), InputSource::Request);
        assert_eq!(f.input_source("now"), InputSource::Server);
    }

    #[test]
    fn finance_reviewer_table_at_engine_level() {
        let f = facts();
        assert_eq!(code(&f), None);
        let mut legal = facts();
        legal.target.group = Some(group("legal.emea"));
        assert_eq!(code(&legal), Some(DenyCode::ScopeOutOfBounds));
        let mut revoked = facts();
        revoked.actor.binding_revoked = true;
        assert_eq!(code(&revoked), Some(DenyCode::UserMemberRevoked));
        let mut expired = facts();
        expired.actor.binding_expires_at = Some(999);
        assert_eq!(code(&expired), Some(DenyCode::UserMemberExpired));
        let mut reject = facts();
        reject.candidates.clear();
        assert_eq!(code(&reject), Some(DenyCode::NoMatchingPermission));
        let mut unknown_type = facts();
        unknown_type.resource_type_known = false;
        assert_eq!(code(&unknown_type), Some(DenyCode::InvalidResourceType));
        let mut unknown_action = facts();
        unknown_action.action_known = false;
        assert_eq!(code(&unknown_action), Some(DenyCode::InvalidResourceAction));
        let mut global = facts();
        global.candidates = vec![candidate(Scope::Global, None)];
        assert_eq!(code(&global), Some(DenyCode::GlobalScopeDisabled));
    }

    #[test]
    fn actor_state_precedes_the_registry_and_is_ordered() {
        let mut f = facts();
        f.resource_type_known = false;
        f.actor.binding_revoked = true;
        f.actor.binding_expires_at = Some(0);
        assert_eq!(code(&f), Some(DenyCode::UserMemberRevoked));
        f.actor.space_active = false;
        assert_eq!(code(&f), Some(DenyCode::SpaceInactive));
        f.actor.member_active = false;
        assert_eq!(code(&f), Some(DenyCode::ActorMemberInactive));
        f.actor.user_active = false;
        assert_eq!(code(&f), Some(DenyCode::ActorUserInactive));
    }

    #[test]
    fn each_cross_space_mutation_denies() {
        let mutations: Vec<Edit> = vec![
            Box::new(|f| f.actor.member_space_id = "space_other".into()),
            Box::new(|f| f.target.space_id = "space_other".into()),
            Box::new(|f| f.target.group.as_mut().unwrap().space_id = Some("space_other".into())),
            Box::new(|f| f.candidates[0].role_space_id = "space_other".into()),
            Box::new(|f| f.candidates[0].member_role_space_id = "space_other".into()),
            Box::new(|f| {
                f.candidates[0].anchor.as_mut().unwrap().space_id = Some("space_other".into())
            }),
            Box::new(|f| f.actor.space_id = "space_other".into()),
        ];
        for (i, mutate) in mutations.iter().enumerate() {
            let mut f = facts();
            mutate(&mut f);
            assert_eq!(
                code(&f),
                Some(DenyCode::CrossSpaceViolation),
                "mutation {i}"
            );
        }
    }

    #[test]
    fn scope_matrix() {
        use DenyCode::*;
        let own = |f: &mut Facts<'static>| {
            f.target.owner_member_id = Some("member_finance_reviewer".into())
        };
        let cases: Vec<(Scope, Option<&str>, Edit, Option<DenyCode>)> = vec![
            (Scope::OwnSelf, None, Box::new(own), None),
            (
                Scope::OwnSelf,
                None,
                Box::new(|_| {}),
                Some(ScopeOutOfBounds),
            ),
            (
                Scope::OwnSelf,
                None,
                Box::new(|f| f.target.owner_member_id = None),
                Some(ScopeOutOfBounds),
            ),
            (Scope::Group, Some("finance.apac"), Box::new(|_| {}), None),
            (
                Scope::Group,
                Some("finance"),
                Box::new(|_| {}),
                Some(ScopeOutOfBounds),
            ),
            (
                Scope::Group,
                None,
                Box::new(|_| {}),
                Some(ScopeAnchorMissing),
            ),
            (
                Scope::Group,
                Some("finance.apac"),
                Box::new(|f| f.target.group = None),
                Some(TargetGroupMissing),
            ),
            (Scope::GroupTree, Some("finance"), Box::new(|_| {}), None),
            (
                Scope::GroupTree,
                Some("finance.apac"),
                Box::new(|_| {}),
                None,
            ),
            (
                Scope::GroupTree,
                Some("finance.emea"),
                Box::new(|_| {}),
                Some(ScopeOutOfBounds),
            ),
            (
                Scope::GroupTree,
                None,
                Box::new(|_| {}),
                Some(ScopeAnchorMissing),
            ),
            (
                Scope::GroupTree,
                Some("finance"),
                Box::new(|f| f.target.group = None),
                Some(TargetGroupMissing),
            ),
            (Scope::Space, None, Box::new(|_| {}), None),
            (
                Scope::Global,
                None,
                Box::new(|_| {}),
                Some(GlobalScopeDisabled),
            ),
        ];
        for (i, (scope, anchor, edit, expected)) in cases.iter().enumerate() {
            let mut f = facts();
            f.candidates = vec![candidate(*scope, *anchor)];
            edit(&mut f);
            assert_eq!(
                code(&f),
                *expected,
                "case {i}: {scope:?} anchored at {anchor:?}"
            );
        }
    }

    #[test]
    fn scopes_are_a_union_and_the_first_candidate_names_the_deny() {
        let mut f = facts();
        f.candidates = vec![
            candidate(Scope::Global, None),
            candidate(Scope::GroupTree, Some("finance")),
        ];
        assert_eq!(code(&f), None, "any covering candidate allows");
        f.candidates = vec![
            candidate(Scope::Group, None),
            candidate(Scope::Global, None),
        ];
        assert_eq!(code(&f), Some(DenyCode::ScopeAnchorMissing));
        let traced = evaluate(&f, true);
        assert_eq!(traced.checks.len(), 2);
    }

    #[test]
    fn group_tree_is_strict_about_boundaries() {
        assert!(path_within("finance", "finance"));
        assert!(path_within("finance.apac", "finance"));
        assert!(path_within("finance.apac.sg", "finance"));
        assert!(!path_within("finance-old", "finance"));
        assert!(!path_within("financeops", "finance"));
        assert!(!path_within("legal", "finance"));
        assert!(!path_within("fin", "finance"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn reference(target: &str, anchor: &str) -> bool {
            let t: Vec<&str> = target.split('.').collect();
            let a: Vec<&str> = anchor.split('.').collect();
            t.len() >= a.len() && t[..a.len()] == a[..]
        }

        fn path() -> impl Strategy<Value = String> {
            proptest::collection::vec("[a-c][a-c_]{0,2}", 1..4).prop_map(|s| s.join("."))
        }

        proptest! {
            #[test]
            fn group_tree_matches_the_segment_reference(target in path(), anchor in path()) {
                prop_assert_eq!(path_within(&target, &anchor), reference(&target, &anchor));
            }

            /// With conditions, a decision is "some candidate's scope covers the target and
            /// its condition holds", each half computed independently: the scope by the
            /// reference engine on that candidate alone, the condition by comparing numbers.
            #[test]
            fn a_conditional_decision_is_scope_and_condition(
                grants in proptest::collection::vec((0u8..5, proptest::option::of(-50i64..50), any::<bool>()), 1..5),
                value in -60i64..60, stored in any::<bool>(), target_path in path(), anchor_path in path(),
                owned in any::<bool>(), grouped in any::<bool>(),
            ) {
                let conditions: Vec<Option<Condition>> = grants.iter().map(|(_, limit, _)| {
                    limit.map(|l| Condition::compile(&format!("resource.properties.amount <= {l}")).unwrap())
                }).collect();
                let attributes = super::amount(value);
                let mut f = super::facts();
                f.target.group = grouped.then(|| super::group(&target_path));
                if owned { f.target.owner_member_id = Some(f.actor.member_id.clone()); }
                let metadata = format!(r#"{{"amount": {value}}}"#);
                if stored {
                    f.attributes.stored_mut().resource_metadata = Some(metadata.as_str().into());
                } else {
                    f.attributes.request = Some(&attributes);
                }
                f.candidates = grants.iter().zip(&conditions).map(|((s, _, anchored), condition)| {
                    let scope = [Scope::OwnSelf, Scope::Group, Scope::GroupTree, Scope::Space, Scope::Global][*s as usize];
                    let mut c = super::candidate(scope, anchored.then_some(anchor_path.as_str()));
                    c.condition = condition.as_ref();
                    c
                }).collect();
                let scope_covers = |c: &Candidate<'_>| {
                    let mut alone = f.clone();
                    alone.candidates = vec![Candidate { condition: None, ..c.clone() }];
                    super::reference::evaluate(&alone, false).deny_code.is_none()
                };
                let holds = |(_, limit, _): &(u8, Option<i64>, bool)| limit.is_none_or(|l| value <= l);
                let allowed = f.candidates.iter().zip(&grants).any(|(c, g)| scope_covers(c) && holds(g));
                let unmet = f.candidates.iter().zip(&grants).any(|(c, g)| scope_covers(c) && g.1.is_some());
                let mut unconditional = f.clone();
                for c in &mut unconditional.candidates { c.condition = None; }
                let expected = if allowed {
                    None
                } else if unmet {
                    Some(DenyCode::ConditionNotMet)
                } else {
                    super::reference::evaluate(&unconditional, false).deny_code
                };
                prop_assert_eq!(evaluate(&f, false).deny_code, expected);
                prop_assert_eq!(evaluate(&f, true).deny_code, expected);
            }

            #[test]
            fn explain_always_decides_like_check(
                user in any::<bool>(), member in any::<bool>(), space in any::<bool>(), revoked in any::<bool>(),
                expires in proptest::option::of(0i64..2000), known in any::<bool>(), action in any::<bool>(),
                other_space in any::<bool>(), scopes in proptest::collection::vec(0u8..5, 0..4), anchored in any::<bool>(), cross in 0u8..8,
                target_path in path(), anchor_path in path(), owned in any::<bool>(), grouped in any::<bool>(),
            ) {
                let mut f = super::facts();
                f.actor.user_active = user;
                f.actor.member_active = member;
                f.actor.space_active = space;
                f.actor.binding_revoked = revoked;
                f.actor.binding_expires_at = expires;
                f.resource_type_known = known;
                f.action_known = action;
                if other_space { f.target.space_id = "space_other".into(); }
                f.target.group = grouped.then(|| super::group(&target_path));
                if owned { f.target.owner_member_id = Some(f.actor.member_id.clone()); }
                f.candidates = scopes.iter().map(|s| {
                    let scope = [Scope::OwnSelf, Scope::Group, Scope::GroupTree, Scope::Space, Scope::Global][*s as usize];
                    super::candidate(scope, anchored.then_some(anchor_path.as_str()))
                }).collect();
                prop_assert_eq!(evaluate(&f, false).deny_code, evaluate(&f, true).deny_code);
                let other = || std::borrow::Cow::Borrowed("space_other");
                let last = f.candidates.len().checked_sub(1);
                match (cross, last) {
                    (1, _) => f.actor.member_space_id = other(),
                    (2, _) => if let Some(g) = f.target.group.as_mut() { g.space_id = Some(other()) },
                    (3, Some(l)) => f.candidates[l].role_space_id = other(),
                    (4, Some(l)) => f.candidates[l].member_role_space_id = other(),
                    (5, Some(l)) => if let Some(a) = f.candidates[l].anchor.as_mut() { a.space_id = Some(other()) },
                    _ => {}
                }
                super::same_as_reference(&f);
            }
        }
    }
}
