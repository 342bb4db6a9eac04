//! The authorization engine benchmark: one decision on the in-memory index (`Snapshot::resolve`
//! and `engine::evaluate`, without and with the trace) against a bare evaluator on the same data,
//! measured in the same run.
//!
//! `cargo bench -p plystra-authz-core --bench engine`. The data set and the queries come from a
//! fixed seed (see `BENCHMARKS.md`): one space, 10,000 members with a user and an active binding
//! each, about 2,000 groups in trees of depth ≤ 5, 100,000 invoices, 50 roles with 1–4
//! permissions, about 50,000 member-roles. Criterion reports the mean over the query mix; then a
//! plain loop times every decision on its own and prints p50/p99 for allow and deny, next to the
//! bare evaluator's, with the ratios. Before any figure is printed, every query's decision on the
//! real path must equal the bare evaluator's, so the figures are of real decisions.
//!
//! It also reports the heap bytes the index holds against the bare evaluator's maps, counted by a
//! global allocator that tracks live bytes, and the time to build it from the facts.
//!
//! Since issue 17 every figure is an A/B: the dense index (`index::Snapshot`) against the index
//! as it was before (`benches/engine/legacy_index.rs`, string keys in persistent hash maps), built
//! from the same facts in the same run, timed in alternating rounds. Both must resolve every
//! query to the same facts before anything is printed. It also times what the change feed's
//! follower does per change (clone the snapshot, apply, settle) for single member-role changes
//! and for moving a group subtree, and checks that both indexes still agree after the move.
//!
//! Without `--bench` (for example `cargo test --benches`) everything runs once on a few queries.
//! It then times the lookups (issue 19): the first page of 100 invoices a member may act on,
//! against checking every invoice in ID order, and the first page of 100 actors who may act on
//! one invoice, against checking every member, after checking that both find the same pages;
//! `ENGINE_LOOKUP_ONLY=1` stops after that.
//!
//! Issue 20: then the cost of a typical permission condition, the same checks on the same facts
//! with and without it; `ENGINE_CONDITIONS_ONLY=1` stops after that.
//!
//! `ENGINE_HEAP_BY_KIND=1` prints the dense index's heap for the data set's facts kind by kind
//! and stops; `ENGINE_PROFILE_RESOLVE=1` only resolves the queries, over and over, and
//! `ENGINE_PROFILE_CHANGES=1` only applies member-role changes, for `perf`;
//! `ENGINE_PROFILE_CHECK=1` only checks the queries (no trace), over and over;
//! `ENGINE_PROFILE_LOAD=1` only builds the dense index from the data set's facts, ten times.
//! `ENGINE_CHECK_ONLY=1` times only the bare evaluator and the check (no trace), in five
//! alternating rounds, after the same sanity checks: a quick A/B of the check path.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails has no figure to report: the panic is its report"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use plystra_authz_core::engine::{Facts, evaluate, path_within};
use plystra_authz_core::index::{Request, ResourceLookup, Snapshot, SubjectLookup, snapshot_of};
use plystra_authz_core::{Fact, ResourceFact};

#[path = "engine/legacy_index.rs"]
mod legacy;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

const SEED: u64 = 0x7_2026;
const SPACE: &str = "space_bench";
const TYPE: &str = "invoice";
const ACTIONS: [&str; 4] = ["read", "approve", "reject", "delete"];
const MEMBERS: usize = 10_000;
const ROOTS: usize = 20;
const GROUPS: usize = 2_000;
const MAX_DEPTH: usize = 5;
const RESOURCES: usize = 100_000;
const ROLES: usize = 50;
const MAX_ROLES_PER_MEMBER: usize = 10;
/// A fixed evaluation instant; no binding expires.
const NOW: i64 = 1_800_000_000;

/// The scopes the data set uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GenScope {
    GroupTree,
    Space,
    OwnSelf,
}

impl GenScope {
    fn key(self) -> &'static str {
        match self {
            Self::GroupTree => "group_tree",
            Self::Space => "space",
            Self::OwnSelf => "self",
        }
    }

    /// 70 % group_tree, 10 % space, 20 % self.
    fn draw(rng: &mut StdRng) -> Self {
        match rng.random_range(0..100) {
            0..70 => Self::GroupTree,
            70..80 => Self::Space,
            _ => Self::OwnSelf,
        }
    }
}

struct GenGroup {
    path: String,
    depth: usize,
}

struct GenResource {
    group: usize,
    owner: usize,
}

struct GenMemberRole {
    role: usize,
    anchor: usize,
}

/// The generated data set, before it becomes facts.
struct DataSet {
    groups: Vec<GenGroup>,
    resources: Vec<GenResource>,
    /// Per role: (action index, scope).
    roles: Vec<Vec<(usize, GenScope)>>,
    /// Per member: its member-roles.
    member_roles: Vec<Vec<GenMemberRole>>,
    /// Per group: the resources in its subtree (itself and below).
    subtree_resources: Vec<Vec<u32>>,
    /// Per member: the resources it owns.
    owned: Vec<Vec<u32>>,
}

fn member_id(m: usize) -> String {
    format!("member_{m:05}")
}

fn resource_id(r: usize) -> String {
    format!("invoice_{r:06}")
}

fn group_id(g: usize) -> String {
    format!("group_{g:04}")
}

impl DataSet {
    fn generate(rng: &mut StdRng) -> Self {
        // Trees: ROOTS roots, then each new group under a random group not yet at MAX_DEPTH.
        let mut groups: Vec<GenGroup> = (0..ROOTS)
            .map(|r| GenGroup {
                path: format!("t{r}"),
                depth: 1,
            })
            .collect();
        let mut parents_of: Vec<Option<usize>> = vec![None; ROOTS];
        let mut open: Vec<usize> = (0..ROOTS).collect();
        while groups.len() < GROUPS {
            let parent = *open.choose(rng).unwrap();
            let n = groups.len();
            let depth = groups[parent].depth + 1;
            groups.push(GenGroup {
                path: format!("{}.g{n}", groups[parent].path),
                depth,
            });
            parents_of.push(Some(parent));
            if depth < MAX_DEPTH {
                open.push(n);
            }
        }
        let resources: Vec<GenResource> = (0..RESOURCES)
            .map(|_| GenResource {
                group: rng.random_range(0..GROUPS),
                owner: rng.random_range(0..MEMBERS),
            })
            .collect();
        let roles: Vec<Vec<(usize, GenScope)>> = (0..ROLES)
            .map(|_| {
                let k = rng.random_range(1..=4);
                let mut actions: Vec<usize> = (0..ACTIONS.len()).collect();
                // k distinct actions, each with its own scope.
                for i in 0..k {
                    let j = rng.random_range(i..actions.len());
                    actions.swap(i, j);
                }
                actions[..k]
                    .iter()
                    .map(|&a| (a, GenScope::draw(rng)))
                    .collect()
            })
            .collect();
        let member_roles: Vec<Vec<GenMemberRole>> = (0..MEMBERS)
            .map(|_| {
                (0..rng.random_range(0..=MAX_ROLES_PER_MEMBER))
                    .map(|_| GenMemberRole {
                        role: rng.random_range(0..ROLES),
                        anchor: rng.random_range(0..GROUPS),
                    })
                    .collect()
            })
            .collect();
        let mut subtree_resources = vec![Vec::new(); GROUPS];
        let mut owned = vec![Vec::new(); MEMBERS];
        for (r, res) in resources.iter().enumerate() {
            let mut g = Some(res.group);
            while let Some(at) = g {
                subtree_resources[at].push(r as u32);
                g = parents_of[at];
            }
            owned[res.owner].push(r as u32);
        }
        Self {
            groups,
            resources,
            roles,
            member_roles,
            subtree_resources,
            owned,
        }
    }

    fn member_role_count(&self) -> usize {
        self.member_roles.iter().map(Vec::len).sum()
    }

    /// The data set as the facts identity, the registry and the grant store publish.
    fn facts(&self) -> Vec<Fact> {
        let s = |v: &str| v.to_owned();
        let mut out = vec![
            Fact::Space {
                id: s(SPACE),
                status: s("active"),
            },
            Fact::ResourceType {
                id: s("rt_invoice"),
                key: s(TYPE),
                status: s("active"),
            },
        ];
        for action in ACTIONS {
            out.push(Fact::ResourceAction {
                resource_type: s(TYPE),
                key: s(action),
                risk_level: None,
            });
        }
        for m in 0..MEMBERS {
            out.push(Fact::User {
                id: format!("user_{m:05}"),
                status: s("active"),
                username: Some(format!("user{m:05}@example.com")),
                metadata: None,
            });
            out.push(Fact::Member {
                id: member_id(m),
                space_id: s(SPACE),
                status: s("active"),
                metadata: None,
            });
            out.push(Fact::UserMember {
                id: format!("um_{m:05}"),
                user_id: format!("user_{m:05}"),
                member_id: member_id(m),
                status: s("active"),
                expires_at: None,
            });
        }
        for (g, group) in self.groups.iter().enumerate() {
            out.push(Fact::Group {
                id: group_id(g),
                space_id: s(SPACE),
                path: group.path.clone(),
                status: s("active"),
            });
        }
        for (r, res) in self.resources.iter().enumerate() {
            out.push(Fact::Resource(ResourceFact {
                resource_type: s(TYPE),
                id: resource_id(r),
                external_id: format!("INV-{r}"),
                space_id: s(SPACE),
                group_id: Some(group_id(res.group)),
                owner_member_id: Some(member_id(res.owner)),
                status: s("active"),
                metadata: None,
                visibility: None,
            }));
        }
        for action in ACTIONS {
            for scope in [GenScope::GroupTree, GenScope::Space, GenScope::OwnSelf] {
                out.push(Fact::Permission {
                    id: format!("perm_{action}_{}", scope.key()),
                    resource: s(TYPE),
                    action: s(action),
                    scope: s(scope.key()),
                    status: s("active"),
                    condition: None,
                });
            }
        }
        for (r, grants) in self.roles.iter().enumerate() {
            out.push(Fact::Role {
                id: format!("role_{r:02}"),
                space_id: s(SPACE),
                key: format!("bench_role_{r:02}"),
                status: s("active"),
            });
            for (j, (a, scope)) in grants.iter().enumerate() {
                out.push(Fact::RolePermission {
                    id: format!("rp_{r:02}_{j}"),
                    role_id: format!("role_{r:02}"),
                    permission_id: format!("perm_{}_{}", ACTIONS[*a], scope.key()),
                    deleted: false,
                });
            }
        }
        for (m, mrs) in self.member_roles.iter().enumerate() {
            for (j, mr) in mrs.iter().enumerate() {
                out.push(Fact::MemberRole {
                    id: format!("mr_{m:05}_{j:02}"),
                    space_id: s(SPACE),
                    member_id: member_id(m),
                    role_id: format!("role_{:02}", mr.role),
                    scope_anchor_group_id: Some(group_id(mr.anchor)),
                    status: s("active"),
                });
            }
        }
        out
    }
}

/// One pre-generated check.
struct Query {
    user_id: String,
    member_id: String,
    user_member_id: String,
    resource_id: String,
    action: &'static str,
    /// The decision, filled in by the sanity check.
    allowed: bool,
}

impl Query {
    fn new(member: usize, resource: usize, action: usize) -> Self {
        Self {
            user_id: format!("user_{member:05}"),
            member_id: member_id(member),
            user_member_id: format!("um_{member:05}"),
            resource_id: resource_id(resource),
            action: ACTIONS[action],
            allowed: false,
        }
    }

    fn request(&self) -> Request<'_> {
        Request {
            user_id: &self.user_id,
            member_id: &self.member_id,
            user_member_id: &self.user_member_id,
            space_id: SPACE,
            resource_type: TYPE,
            resource_id: &self.resource_id,
            action: self.action,
        }
    }
}

/// 60 % uniform, 25 % inside one of the member's anchor subtrees, 15 % the member's own.
fn queries(data: &DataSet, rng: &mut StdRng, n: usize) -> Vec<Query> {
    (0..n)
        .map(|_| {
            let action = rng.random_range(0..ACTIONS.len());
            let uniform = |rng: &mut StdRng| {
                Query::new(
                    rng.random_range(0..MEMBERS),
                    rng.random_range(0..RESOURCES),
                    action,
                )
            };
            match rng.random_range(0..100) {
                0..60 => uniform(rng),
                60..85 => {
                    let member = rng.random_range(0..MEMBERS);
                    let inside = data.member_roles[member]
                        .choose(rng)
                        .and_then(|mr| data.subtree_resources[mr.anchor].choose(rng));
                    match inside {
                        Some(&r) => Query::new(member, r as usize, action),
                        None => uniform(rng),
                    }
                }
                _ => {
                    let member = rng.random_range(0..MEMBERS);
                    match data.owned[member].choose(rng) {
                        Some(&r) => Query::new(member, r as usize, action),
                        None => uniform(rng),
                    }
                }
            }
        })
        .collect()
}

/// A grant as the bare evaluator sees it.
struct BareGrant {
    action: &'static str,
    scope: GenScope,
    anchor_path: String,
}

/// The baseline: an index lookup and the scope rules, with no actor state, no registry, no
/// precedence, no deny codes, no trace and no audit.
struct Bare {
    grants: HashMap<String, Vec<BareGrant>>,
    /// Resource → (group path, owner member).
    targets: HashMap<String, (String, String)>,
}

impl Bare {
    fn build(data: &DataSet) -> Self {
        let mut grants = HashMap::new();
        for (m, mrs) in data.member_roles.iter().enumerate() {
            let list: Vec<BareGrant> = mrs
                .iter()
                .flat_map(|mr| {
                    data.roles[mr.role].iter().map(|&(a, scope)| BareGrant {
                        action: ACTIONS[a],
                        scope,
                        anchor_path: data.groups[mr.anchor].path.clone(),
                    })
                })
                .collect();
            grants.insert(member_id(m), list);
        }
        let targets = data
            .resources
            .iter()
            .enumerate()
            .map(|(r, res)| {
                (
                    resource_id(r),
                    (data.groups[res.group].path.clone(), member_id(res.owner)),
                )
            })
            .collect();
        Self { grants, targets }
    }

    fn allow(&self, member: &str, resource: &str, action: &str) -> bool {
        let Some((path, owner)) = self.targets.get(resource) else {
            return false;
        };
        let Some(grants) = self.grants.get(member) else {
            return false;
        };
        grants.iter().any(|g| {
            g.action == action
                && match g.scope {
                    GenScope::Space => true,
                    GenScope::OwnSelf => owner == member,
                    GenScope::GroupTree => path_within(path, &g.anchor_path),
                }
        })
    }
}

fn bare_decision(bare: &Bare, q: &Query) -> bool {
    bare.allow(&q.member_id, &q.resource_id, q.action)
}

/// One timed way to decide a query.
type Decide<'a> = dyn Fn(&Query) -> bool + 'a;

/// An index the benchmark can decide on: the dense one and, for the A/B, the one before it.
trait Index {
    /// The request of `q` resolved into the engine's facts.
    fn facts<'a>(&'a self, q: &'a Query) -> Facts<'a>;
}

impl Index for Snapshot {
    fn facts<'a>(&'a self, q: &'a Query) -> Facts<'a> {
        self.resolve(&q.request(), NOW).unwrap().facts
    }
}

impl Index for legacy::Snapshot {
    fn facts<'a>(&'a self, q: &'a Query) -> Facts<'a> {
        self.resolve(&q.request(), NOW).unwrap().facts
    }
}

/// Facts as both indexes resolve them: the attributes conditions read (the target's status and
/// metadata, the username), which only the dense index holds, left out.
fn comparable(facts: Facts<'_>) -> Facts<'_> {
    Facts {
        attributes: Default::default(),
        ..facts
    }
}

/// The typical condition of issue 20's acceptance, put on every `approve` permission by
/// [`condition_part`].
const CONDITION: &str = "resource.properties.amount <= 10000 && resource.status != 'archived'";

/// A resource's amount in the conditional data set: 0 to 19,999, so that about half the
/// conditions hold.
fn amount_of(resource_id: &str) -> u64 {
    resource_id
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 20_000
}

/// Issue 20: what a typical condition adds to a check. The same facts, once as they are and once
/// with [`CONDITION`] on every `approve` permission and an amount in every resource's metadata;
/// the `approve` queries whose decision reaches a covering conditional grant, timed on both in
/// alternating rounds. Before timing, each conditional decision must equal the unconditional one
/// and the amount compared by hand.
fn condition_part(data: &DataSet, plain: &Snapshot, queries: &[Query], rounds: usize) {
    let mut facts = data.facts();
    for fact in &mut facts {
        match fact {
            Fact::Resource(ResourceFact { id, metadata, .. }) => {
                *metadata = Some(format!(r#"{{"amount": {}}}"#, amount_of(id)));
            }
            Fact::Permission {
                action, condition, ..
            } if action == "approve" => *condition = Some(CONDITION.to_owned()),
            _ => {}
        }
    }
    let before = live_mib();
    let conditional = snapshot_of(facts);
    let held = live_mib() - before;
    let reached: Vec<Query> = queries
        .iter()
        .filter(|q| q.action == "approve")
        .filter(|q| {
            let facts = conditional.facts(q);
            let evaluation = evaluate(&facts, true);
            let evaluated = evaluation
                .conditions
                .iter()
                .any(|(_, c)| c.verdict.is_some());
            let expected = real_decision(plain, q, false) && amount_of(&q.resource_id) <= 10_000;
            assert_eq!(
                evaluation.allow(),
                expected,
                "a conditional decision is not scope ∧ condition: refusing to report"
            );
            evaluated
        })
        .map(|q| Query {
            user_id: q.user_id.clone(),
            member_id: q.member_id.clone(),
            user_member_id: q.user_member_id.clone(),
            resource_id: q.resource_id.clone(),
            action: q.action,
            allowed: q.allowed,
        })
        .collect();
    let cases: [(&str, &Decide<'_>); 4] = [
        ("unconditional: check", &|q| real_decision(plain, q, false)),
        ("conditional: check", &|q| {
            real_decision(&conditional, q, false)
        }),
        ("unconditional: explain", &|q| real_decision(plain, q, true)),
        ("conditional: explain", &|q| {
            real_decision(&conditional, q, true)
        }),
    ];
    for (_, decide) in &cases {
        time_each(&reached, decide);
    }
    let timed = time_rounds(&reached, rounds, |case, q| cases[case].1(q), cases.len());
    println!(
        "\nconditions (issue 20): `{CONDITION}` on every approve permission, an amount in \
         every resource's metadata ({held:.1} MiB more held); {} approve checks that reach a \
         covering conditional grant, {rounds} alternating round(s)\n",
        reached.len()
    );
    println!("| case | outcome | decisions | p50 ns | p99 ns |");
    println!("|---|---|---:|---:|---:|");
    let mut p50 = HashMap::new();
    for ((name, _), (allow, deny)) in cases.iter().zip(&timed) {
        // The unconditional grant allows every one of them; the condition denies about half.
        let mut all: Vec<u64> = allow.iter().chain(deny).copied().collect();
        all.sort_unstable();
        for (outcome, sorted) in [("allow", allow), ("deny", deny), ("all", &all)] {
            if sorted.is_empty() {
                continue;
            }
            println!(
                "| {name} | {outcome} | {} | {} | {} |",
                sorted.len(),
                percentile(sorted, 0.5),
                percentile(sorted, 0.99)
            );
        }
        p50.insert(*name, percentile(&all, 0.5));
    }
    let added = p50["conditional: check"].saturating_sub(p50["unconditional: check"]);
    println!(
        "\ntarget (issue 20): a check whose candidate has a typical condition costs ≤ 2,000 ns \
         more at p50: {added} ns more: {}",
        if added <= 2_000 { "met" } else { "not met" }
    );
}

/// `ENGINE_CHECK_ONLY`: the bare evaluator and the check (no trace) alone, five alternating
/// rounds, p50 and the ratio to bare per round and pooled, with the load average.
fn check_only(snapshot: &Snapshot, bare: &Bare, queries: &[Query]) {
    let cases: [&Decide<'_>; 2] = [&|q| bare_decision(bare, q), &|q| {
        real_decision(snapshot, q, false)
    }];
    let warm = &queries[..queries.len().min(20_000)];
    for decide in cases {
        time_each(warm, decide);
    }
    let mut pooled: [(Vec<u64>, Vec<u64>); 2] = Default::default();
    println!(
        "| round | bare allow / deny p50 ns | check allow / deny p50 ns | ratio allow / deny |"
    );
    println!("|---:|---:|---:|---:|");
    for round in 1..=5 {
        let timed = time_rounds(queries, 1, |case, q| cases[case](q), cases.len());
        let p50 = |case: usize| {
            (
                percentile(&timed[case].0, 0.5),
                percentile(&timed[case].1, 0.5),
            )
        };
        let ((ba, bd), (ca, cd)) = (p50(0), p50(1));
        println!(
            "| {round} | {ba} / {bd} | {ca} / {cd} | {:.2}x / {:.2}x |",
            ca as f64 / ba.max(1) as f64,
            cd as f64 / bd.max(1) as f64
        );
        for (into, (allow, deny)) in pooled.iter_mut().zip(timed) {
            into.0.extend(allow);
            into.1.extend(deny);
        }
    }
    for (allow, deny) in &mut pooled {
        allow.sort_unstable();
        deny.sort_unstable();
    }
    let p50 = |v: &[u64]| percentile(v, 0.5);
    println!(
        "| all | {} / {} | {} / {} | {:.2}x / {:.2}x |",
        p50(&pooled[0].0),
        p50(&pooled[0].1),
        p50(&pooled[1].0),
        p50(&pooled[1].1),
        p50(&pooled[1].0) as f64 / p50(&pooled[0].0).max(1) as f64,
        p50(&pooled[1].1) as f64 / p50(&pooled[0].1).max(1) as f64
    );
    let load = load_average();
    println!("load average at end: {}", load.trim());
}

/// `/proc/loadavg` as it reads now (empty where there is none).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

fn real_decision(index: &impl Index, q: &Query, trace: bool) -> bool {
    let facts = index.facts(q);
    let evaluation = evaluate(&facts, trace);
    let allow = evaluation.allow();
    black_box(evaluation);
    allow
}

/// The check as the HTTP response needs it without the trace: the decision and its sentence
/// for people (`reason`), which the engine formats only on request.
fn reason_decision(index: &impl Index, q: &Query) -> bool {
    let facts = index.facts(q);
    let evaluation = evaluate(&facts, false);
    black_box(evaluation.reason(&facts));
    evaluation.allow()
}

/// Only the index half of the real path: the request resolved into the engine's facts. Answers
/// the decision found earlier, so the row is split like the others.
fn resolve_only(index: &impl Index, q: &Query) -> bool {
    black_box(index.facts(q));
    q.allowed
}

/// Times each decision on its own: (allow nanoseconds, deny nanoseconds).
fn time_each(queries: &[Query], mut decide: impl FnMut(&Query) -> bool) -> (Vec<u64>, Vec<u64>) {
    let mut allow = Vec::with_capacity(queries.len());
    let mut deny = Vec::with_capacity(queries.len());
    for q in queries {
        let started = Instant::now();
        let allowed = black_box(decide(black_box(q)));
        let ns = started.elapsed().as_nanos() as u64;
        if allowed {
            allow.push(ns);
        } else {
            deny.push(ns);
        }
    }
    allow.sort_unstable();
    deny.sort_unstable();
    (allow, deny)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The cost of the two `Instant` reads around each decision, which every row includes.
fn timer_overhead() -> u64 {
    let mut samples: Vec<u64> = (0..100_000)
        .map(|_| {
            let started = Instant::now();
            black_box(started.elapsed().as_nanos() as u64)
        })
        .collect();
    samples.sort_unstable();
    percentile(&samples, 0.5)
}

fn criterion_part(snapshot: &Snapshot, bare: &Bare, queries: &[Query]) {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = c.benchmark_group("authz_decision_over_query_mix");
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % queries.len();
        &queries[i]
    };
    group.bench_function("bare", |b| b.iter(|| bare_decision(bare, next())));
    group.bench_function("check (resolve + evaluate)", |b| {
        b.iter(|| real_decision(snapshot, next(), false))
    });
    group.bench_function("explain (resolve + evaluate with trace)", |b| {
        b.iter(|| real_decision(snapshot, next(), true))
    });
    group.finish();
    c.final_summary();
}

/// The system allocator, counting the bytes currently allocated (one relaxed atomic per call).
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// The workspace denies `unsafe`; a global allocator cannot be written without it. This one is
// confined to the benchmark binary and forwards every call to `System` unchanged.
// SAFETY: every call is forwarded to `System` unchanged; the counter only observes sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_mib() -> f64 {
    LIVE_BYTES.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

/// Times `rounds` alternating rounds of `decide` on every query; the samples of all rounds,
/// sorted: (allow nanoseconds, deny nanoseconds).
fn time_rounds(
    queries: &[Query],
    rounds: usize,
    mut decide: impl FnMut(usize, &Query) -> bool,
    cases: usize,
) -> Vec<(Vec<u64>, Vec<u64>)> {
    let mut out: Vec<(Vec<u64>, Vec<u64>)> = (0..cases).map(|_| (Vec::new(), Vec::new())).collect();
    for _ in 0..rounds {
        for (case, (allow, deny)) in out.iter_mut().enumerate() {
            let (a, d) = time_each(queries, |q| decide(case, q));
            allow.extend(a);
            deny.extend(d);
        }
    }
    for (allow, deny) in &mut out {
        allow.sort_unstable();
        deny.sort_unstable();
    }
    out
}

/// `n` member-role changes on random members (each flips one of the member's member-roles
/// between active and revoked, or gives a member without one a new one), as the follower
/// applies them: clone the snapshot, apply, settle. Nanoseconds per change, sorted.
fn time_member_role_changes<S: Clone>(
    data: &DataSet,
    start: &S,
    n: usize,
    apply: impl Fn(&mut S, Vec<Fact>),
) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(SEED ^ 0x5eed);
    let mut current = start.clone();
    let mut flipped: HashMap<(usize, usize), bool> = HashMap::new();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let m = rng.random_range(0..MEMBERS);
        let (j, role, anchor) = match data.member_roles[m].choose(&mut rng) {
            Some(mr) => (
                data.member_roles[m]
                    .iter()
                    .position(|x| std::ptr::eq(x, mr))
                    .unwrap_or(0),
                mr.role,
                mr.anchor,
            ),
            None => (0, rng.random_range(0..ROLES), rng.random_range(0..GROUPS)),
        };
        let revoked = flipped.entry((m, j)).or_insert(false);
        *revoked = !*revoked;
        let fact = Fact::MemberRole {
            id: format!("mr_{m:05}_{j:02}"),
            space_id: SPACE.to_owned(),
            member_id: member_id(m),
            role_id: format!("role_{role:02}"),
            scope_anchor_group_id: Some(group_id(anchor)),
            status: if *revoked { "revoked" } else { "active" }.to_owned(),
        };
        let started = Instant::now();
        let mut next = current.clone();
        apply(&mut next, vec![fact]);
        current = next;
        out.push(started.elapsed().as_nanos() as u64);
    }
    black_box(current);
    out.sort_unstable();
    out
}

/// The group facts of moving the subtree of `g` under another root: `g` and every group below
/// it get a new path.
fn group_move(data: &DataSet, g: usize) -> Vec<Fact> {
    let old = &data.groups[g].path;
    let last = old.rsplit('.').next().unwrap_or(old);
    let root = if old.starts_with("t0.") || old == "t0" {
        "t1"
    } else {
        "t0"
    };
    let new = format!("{root}.moved.{last}");
    data.groups
        .iter()
        .enumerate()
        .filter_map(|(i, group)| {
            let rest = group.path.strip_prefix(old.as_str())?;
            (rest.is_empty() || rest.starts_with('.')).then(|| Fact::Group {
                id: group_id(i),
                space_id: SPACE.to_owned(),
                path: format!("{new}{rest}"),
                status: "active".to_owned(),
            })
        })
        .collect()
}

/// Resource lookup (issue 19): the first page of 100 invoices a member may perform an action on,
/// through `Snapshot::lookup_resources`, against the baseline of checking every invoice in ID
/// order until 100 are allowed, for the same (member, action) pairs in the same run. Every
/// brute-forced page must equal the lookup's before anything is printed.
fn lookup_part(snapshot: &Snapshot, rng: &mut StdRng, lookups: usize, brute: usize) {
    const PAGE: usize = 100;
    // Zero-padded, so index order is ID order.
    let ids: Vec<String> = (0..RESOURCES).map(resource_id).collect();
    let asks: Vec<Query> = (0..lookups)
        .map(|_| {
            Query::new(
                rng.random_range(0..MEMBERS),
                0,
                rng.random_range(0..ACTIONS.len()),
            )
        })
        .collect();
    let lookup = |q: &Query| {
        snapshot
            .lookup_resources(
                &ResourceLookup {
                    request: q.request(),
                    after: None,
                    limit: PAGE,
                },
                NOW,
            )
            .unwrap()
            .ids
    };
    let brute_force = |q: &Query| {
        let mut found = Vec::new();
        for id in &ids {
            let request = Request {
                resource_id: id,
                ..q.request()
            };
            let facts = snapshot.resolve(&request, NOW).unwrap().facts;
            if evaluate(&facts, false).allow() {
                found.push(id.clone());
                if found.len() == PAGE {
                    break;
                }
            }
        }
        found
    };
    for q in &asks[..brute] {
        assert_eq!(
            lookup(q),
            brute_force(q),
            "the lookup and checking every invoice disagree for {} {}: refusing to report",
            q.member_id,
            q.action
        );
    }
    let time = |cases: &[Query], find: &dyn Fn(&Query) -> Vec<String>| {
        let mut found = 0;
        let mut samples: Vec<u64> = cases
            .iter()
            .map(|q| {
                let started = Instant::now();
                found += black_box(find(q)).len();
                started.elapsed().as_nanos() as u64
            })
            .collect();
        samples.sort_unstable();
        (samples, found as f64 / cases.len() as f64)
    };
    let (looked_up, per_lookup) = time(&asks, &lookup);
    let (brute_forced, per_brute) = time(&asks[..brute], &brute_force);
    let us = |ns: u64| ns as f64 / 1e3;
    println!(
        "resource lookup, first page of {PAGE} (issue 19): {lookups} lookups, {brute} of them also \
         brute-forced, and the pages agree\n"
    );
    println!("| way | asks | resources per page | p50 µs | p99 µs | ratio to brute force p50 |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, sorted, per) in [
        ("lookup_resources", &looked_up, per_lookup),
        ("check every invoice", &brute_forced, per_brute),
    ] {
        println!(
            "| {name} | {} | {per:.1} | {:.1} | {:.1} | {:.3}x |",
            sorted.len(),
            us(percentile(sorted, 0.5)),
            us(percentile(sorted, 0.99)),
            percentile(sorted, 0.5) as f64 / percentile(&brute_forced, 0.5).max(1) as f64
        );
    }
    let resources_met =
        percentile(&looked_up, 0.5) <= 1_000_000 && percentile(&looked_up, 0.99) <= 5_000_000;

    // Subject lookup: who may act on one invoice; the baseline checks every member's binding in
    // member-ID order until 100 are allowed.
    let targets: Vec<Query> = (0..lookups)
        .map(|_| {
            Query::new(
                0,
                rng.random_range(0..RESOURCES),
                rng.random_range(0..ACTIONS.len()),
            )
        })
        .collect();
    let subjects = |q: &Query| {
        snapshot
            .lookup_subjects(
                &SubjectLookup {
                    resource_type: TYPE,
                    resource_id: &q.resource_id,
                    action: q.action,
                    after: None,
                    limit: PAGE,
                },
                NOW,
            )
            .unwrap()
            .subjects
            .into_iter()
            .map(|s| s.user_member_id)
            .collect::<Vec<_>>()
    };
    let every_member = |q: &Query| {
        let mut found = Vec::new();
        for m in 0..MEMBERS {
            let actor = Query::new(m, 0, 0);
            let request = Request {
                user_id: &actor.user_id,
                member_id: &actor.member_id,
                user_member_id: &actor.user_member_id,
                resource_id: &q.resource_id,
                ..q.request()
            };
            let facts = snapshot.resolve(&request, NOW).unwrap().facts;
            if evaluate(&facts, false).allow() {
                found.push(actor.user_member_id.clone());
                if found.len() == PAGE {
                    break;
                }
            }
        }
        found
    };
    for q in &targets[..brute] {
        assert_eq!(
            subjects(q),
            every_member(q),
            "the subject lookup and checking every member disagree for {} {}: refusing to report",
            q.resource_id,
            q.action
        );
    }
    let (subjects_looked_up, per_subjects) = time(&targets, &subjects);
    let (members_checked, per_member) = time(&targets[..brute], &every_member);
    println!(
        "\nsubject lookup, first page of {PAGE}: {lookups} lookups, {brute} of them also \
         brute-forced, and the pages agree\n"
    );
    println!("| way | asks | subjects per page | p50 µs | p99 µs | ratio to brute force p50 |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, sorted, per) in [
        ("lookup_subjects", &subjects_looked_up, per_subjects),
        ("check every member", &members_checked, per_member),
    ] {
        println!(
            "| {name} | {} | {per:.1} | {:.1} | {:.1} | {:.3}x |",
            sorted.len(),
            us(percentile(sorted, 0.5)),
            us(percentile(sorted, 0.99)),
            percentile(sorted, 0.5) as f64 / percentile(&members_checked, 0.5).max(1) as f64
        );
    }
    let subjects_met = percentile(&subjects_looked_up, 0.5) <= 1_000_000
        && percentile(&subjects_looked_up, 0.99) <= 5_000_000;
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "\ntargets (issue 19), first page of {PAGE} at p50 ≤ 1 ms and p99 ≤ 5 ms: resource lookup {}; \
         subject lookup {}\n",
        verdict(resources_met),
        verdict(subjects_met)
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let timed = if full { 200_000 } else { 2_000 };
    let rounds = if full { 3 } else { 1 };

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(SEED);
    let data = DataSet::generate(&mut rng);
    let load = load_average();
    println!("load average at start: {}", load.trim());

    if std::env::var_os("ENGINE_HEAP_BY_KIND").is_some() {
        for kind in [
            "user",
            "member",
            "user_member",
            "group",
            "resource",
            "member_role",
            "*",
        ] {
            let before = live_mib();
            let facts: Vec<Fact> = data
                .facts()
                .into_iter()
                .filter(|f| {
                    kind == "*"
                        || f.kind() == kind
                        || matches!(f, Fact::Space { .. } | Fact::ResourceType { .. })
                })
                .collect();
            let snap = snapshot_of(facts);
            println!("{kind}: {:.1} MiB", live_mib() - before);
            drop(snap);
        }
        return;
    }
    if std::env::var_os("ENGINE_PROFILE_LOAD").is_some() {
        for _ in 0..10 {
            let facts = data.facts();
            let loading = Instant::now();
            let snapshot = snapshot_of(facts);
            println!("built in {:.0} ms", loading.elapsed().as_secs_f64() * 1e3);
            drop(black_box(snapshot));
        }
        return;
    }
    // Each index is built from its own copy of the facts, which the load consumes and frees:
    // what the allocator still counts afterwards is the snapshot.
    let before = live_mib();
    let facts = data.facts();
    let fact_count = facts.len();
    let loading = Instant::now();
    let snapshot = snapshot_of(facts);
    let dense_load = loading.elapsed();
    let dense_mib = live_mib() - before;
    let before = live_mib();
    let facts = data.facts();
    let loading = Instant::now();
    let old = legacy::snapshot_of(facts);
    let legacy_load = loading.elapsed();
    let legacy_mib = live_mib() - before;
    let before_bare = live_mib();
    let bare = Bare::build(&data);
    let bare_mib = live_mib() - before_bare;
    let mut queries = queries(&data, &mut rng, timed);
    let max_depth = data.groups.iter().map(|g| g.depth).max().unwrap_or(0);
    println!(
        "data set (seed {SEED:#x}): {MEMBERS} members, {} groups (depth ≤ {max_depth}), {} resources, \
         {ROLES} roles, {} role-permissions, {} member-roles; {fact_count} facts, built in {:.1} s",
        data.groups.len(),
        snapshot.resource_count(),
        data.roles.iter().map(Vec::len).sum::<usize>(),
        data.member_role_count(),
        started.elapsed().as_secs_f64(),
    );
    println!("\n| index | heap held | ratio to the bare maps | load from facts |");
    println!("|---|---:|---:|---:|");
    println!(
        "| dense (issue 17) | {dense_mib:.1} MiB | {:.1}x | {:.0} ms |",
        dense_mib / bare_mib,
        dense_load.as_secs_f64() * 1e3
    );
    println!(
        "| before issue 17 | {legacy_mib:.1} MiB | {:.1}x | {:.0} ms |",
        legacy_mib / bare_mib,
        legacy_load.as_secs_f64() * 1e3
    );
    println!("| bare evaluator's maps | {bare_mib:.1} MiB | 1.0x | |");

    // The sanity check: both indexes resolve every query to the same facts, and the real path
    // and the bare evaluator agree on every decision (every actor is active and every target
    // exists, so the bare semantics apply to all of them).
    let mut allows = 0usize;
    let mut codes: HashMap<String, usize> = HashMap::new();
    for q in &mut queries {
        let facts = snapshot.facts(q);
        assert_eq!(
            comparable(facts.clone()),
            comparable(old.facts(q)),
            "the dense index and the one before it resolved a query differently: refusing to report"
        );
        let evaluation = evaluate(&facts, false);
        let traced = evaluate(&facts, true);
        assert_eq!(
            evaluation.deny_code, traced.deny_code,
            "the trace changed the decision"
        );
        let bare_allow = bare_decision(&bare, q);
        q.allowed = bare_allow;
        assert_eq!(
            evaluation.allow(),
            bare_allow,
            "the real path and the bare evaluator disagree on {} {} {} ({:?}): refusing to report",
            q.member_id,
            q.resource_id,
            q.action,
            evaluation.deny_code
        );
        match evaluation.deny_code {
            None => allows += 1,
            Some(code) => *codes.entry(format!("{code:?}")).or_default() += 1,
        }
    }
    let mut codes: Vec<_> = codes.into_iter().collect();
    codes.sort();
    println!(
        "\n{} queries: {allows} allow, {} deny {codes:?}; both indexes resolve each to the same \
         facts and the real path agrees with the bare evaluator on all of them\n",
        queries.len(),
        queries.len() - allows
    );

    lookup_part(
        &snapshot,
        &mut rng,
        if full { 2_000 } else { 20 },
        if full { 200 } else { 5 },
    );
    if std::env::var_os("ENGINE_LOOKUP_ONLY").is_some() {
        return;
    }

    if std::env::var_os("ENGINE_PROFILE_CHANGES").is_some() {
        // For `perf record`: only member-role changes on the dense index.
        black_box(time_member_role_changes(
            &data,
            &snapshot,
            200_000,
            |s, f| s.apply_all(f),
        ));
        return;
    }
    if std::env::var_os("ENGINE_PROFILE_RESOLVE").is_some() {
        // For `perf record`: only the dense index's resolve, over and over.
        for _ in 0..30 {
            for q in &queries {
                resolve_only(&snapshot, q);
            }
        }
        return;
    }

    if std::env::var_os("ENGINE_CHECK_ONLY").is_some() {
        check_only(&snapshot, &bare, &queries);
        return;
    }

    if std::env::var_os("ENGINE_PROFILE_CHECK").is_some() {
        // For `perf record`: only the dense index's check (no trace), over and over.
        for _ in 0..30 {
            for q in &queries {
                black_box(real_decision(&snapshot, q, false));
            }
        }
        return;
    }

    criterion_part(&snapshot, &bare, &queries);

    // Warm up, then time every decision on its own, in alternating rounds.
    let cases: [(&str, &Decide<'_>); 9] = [
        ("bare", &|q| bare_decision(&bare, q)),
        ("dense: check (no trace)", &|q| {
            real_decision(&snapshot, q, false)
        }),
        ("dense: check + reason", &|q| reason_decision(&snapshot, q)),
        ("dense: explain (trace)", &|q| {
            real_decision(&snapshot, q, true)
        }),
        ("dense: of which resolve", &|q| resolve_only(&snapshot, q)),
        ("before: check (no trace)", &|q| {
            real_decision(&old, q, false)
        }),
        ("before: check + reason", &|q| reason_decision(&old, q)),
        ("before: explain (trace)", &|q| real_decision(&old, q, true)),
        ("before: of which resolve", &|q| resolve_only(&old, q)),
    ];
    let warm = &queries[..queries.len().min(20_000)];
    for (_, decide) in &cases {
        time_each(warm, decide);
    }
    let timed = time_rounds(&queries, rounds, |case, q| cases[case].1(q), cases.len());
    let overhead = timer_overhead();

    println!(
        "\nper decision, {} decisions timed one by one in {rounds} alternating round(s) (each \
         includes ~{overhead} ns of timer reads)\n",
        queries.len()
    );
    println!(
        "| case                        | outcome | decisions | p50 ns | p99 ns | ratio to bare p50 |"
    );
    println!(
        "|-----------------------------|---------|----------:|-------:|-------:|------------------:|"
    );
    let (bare_allow, bare_deny) = &timed[0];
    let mut p50s = HashMap::new();
    for ((name, _), (allow, deny)) in cases.iter().zip(&timed) {
        for (outcome, sorted, base) in [("allow", allow, bare_allow), ("deny", deny, bare_deny)] {
            let p50 = percentile(sorted, 0.5);
            println!(
                "| {name:<27} | {outcome:<7} | {:>9} | {p50:>6} | {:>6} | {:>16.1}x |",
                sorted.len(),
                percentile(sorted, 0.99),
                p50 as f64 / percentile(base, 0.5).max(1) as f64
            );
            p50s.insert((*name, outcome), p50);
        }
    }

    condition_part(&data, &snapshot, &queries, rounds);
    if std::env::var_os("ENGINE_CONDITIONS_ONLY").is_some() {
        return;
    }

    // Changes, as the follower applies them: clone, apply, settle.
    let changes = if full { 5_000 } else { 200 };
    let dense_changes = time_member_role_changes(&data, &snapshot, changes, |s, f| s.apply_all(f));
    let legacy_changes = time_member_role_changes(&data, &old, changes, |s, f| s.apply_all(f));
    let moved = (0..data.groups.len())
        .filter(|&g| data.groups[g].depth > 1)
        .max_by_key(|&g| data.subtree_resources[g].len())
        .unwrap_or(0);
    let move_facts = group_move(&data, moved);
    let time_move = |apply: &dyn Fn()| {
        let mut samples: Vec<u64> = (0..if full { 20 } else { 2 })
            .map(|_| {
                let started = Instant::now();
                apply();
                started.elapsed().as_nanos() as u64
            })
            .collect();
        samples.sort_unstable();
        samples
    };
    let dense_move = time_move(&|| {
        let mut next = snapshot.clone();
        next.apply_all(move_facts.clone());
        black_box(next);
    });
    let legacy_move = time_move(&|| {
        let mut next = old.clone();
        next.apply_all(move_facts.clone());
        black_box(next);
    });
    // After the move both still decide alike.
    let mut moved_dense = snapshot.clone();
    moved_dense.apply_all(move_facts.clone());
    let mut moved_old = old.clone();
    moved_old.apply_all(move_facts.clone());
    for q in queries.iter().take(20_000) {
        assert_eq!(
            comparable(moved_dense.facts(q)),
            comparable(moved_old.facts(q)),
            "after the group move the indexes disagree: refusing to report"
        );
    }
    println!(
        "\nchanges (clone the snapshot, apply, settle): {changes} member-role changes; moving group \
         {} ({} groups, {} resources below it) under another root\n",
        group_id(moved),
        move_facts.len(),
        data.subtree_resources[moved].len()
    );
    println!("| change | index | p50 µs | p99 µs |");
    println!("|---|---|---:|---:|");
    let us = |ns: u64| ns as f64 / 1e3;
    for (change, name, sorted) in [
        ("one member-role", "dense", &dense_changes),
        ("one member-role", "before", &legacy_changes),
        ("group move", "dense", &dense_move),
        ("group move", "before", &legacy_move),
    ] {
        println!(
            "| {change} | {name} | {:.1} | {:.1} |",
            us(percentile(sorted, 0.5)),
            us(percentile(sorted, 0.99))
        );
    }

    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let bare_p50 = |outcome| p50s[&("bare", outcome)];
    let check_ok = ["allow", "deny"].iter().all(|o| {
        let p = p50s[&("dense: check (no trace)", *o)];
        p <= 1_000 && p <= 2 * bare_p50(*o)
    });
    let explain_ok = ["allow", "deny"]
        .iter()
        .all(|o| p50s[&("dense: explain (trace)", *o)] <= 3_000);
    println!(
        "\ntargets (issue 17): check p50 ≤ 1,000 ns and ≤ 2× bare: {}; explain p50 ≤ 3,000 ns: {}; \
         heap ≤ 3× the bare maps: {}; one member-role change p99 ≤ 50 µs: {}; group move ≤ 10 ms: {}",
        verdict(check_ok),
        verdict(explain_ok),
        verdict(dense_mib <= 3.0 * bare_mib),
        verdict(percentile(&dense_changes, 0.99) <= 50_000),
        verdict(percentile(&dense_move, 0.99) <= 10_000_000),
    );
    let load = load_average();
    println!("load average at end: {}", load.trim());
}
