//! The authorization engine benchmark: one decision on the in-memory index (`Snapshot::resolve`
//! and `engine::evaluate`, without and with the trace) against a bare evaluator on the same data,
//! measured in the same run.
//!
//! `cargo bench -p plystra-system-authz --bench engine`. The data set and the queries come from a
//! fixed seed (see `BENCHMARKS.md`): one space, 10,000 members with a user and an active binding
//! each, about 2,000 groups in trees of depth ≤ 5, 100,000 invoices, 50 roles with 1–4
//! permissions, about 50,000 member-roles. Criterion reports the mean over the query mix; then a
//! plain loop times every decision on its own and prints p50/p99 for allow and deny, next to the
//! bare evaluator's, with the ratios. Before any figure is printed, every query's decision on the
//! real path must equal the bare evaluator's, so the figures are of real decisions.
//!
//! It also reports the heap bytes the index holds against the bare evaluator's maps, counted by a
//! global allocator that tracks live bytes.
//!
//! Without `--bench` (for example `cargo test --benches`) everything runs once on a few queries.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use plystra_contracts::facts::Fact;
use plystra_system_authz::engine::{evaluate, path_within};
use plystra_system_authz::index::{Request, Snapshot, snapshot_of};
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
            });
        }
        for m in 0..MEMBERS {
            out.push(Fact::User {
                id: format!("user_{m:05}"),
                status: s("active"),
            });
            out.push(Fact::Member {
                id: member_id(m),
                space_id: s(SPACE),
                status: s("active"),
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
            out.push(Fact::Resource {
                resource_type: s(TYPE),
                id: resource_id(r),
                external_id: format!("INV-{r}"),
                space_id: s(SPACE),
                group_id: Some(group_id(res.group)),
                owner_member_id: Some(member_id(res.owner)),
                status: s("active"),
            });
        }
        for action in ACTIONS {
            for scope in [GenScope::GroupTree, GenScope::Space, GenScope::OwnSelf] {
                out.push(Fact::Permission {
                    id: format!("perm_{action}_{}", scope.key()),
                    resource: s(TYPE),
                    action: s(action),
                    scope: s(scope.key()),
                    status: s("active"),
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

fn real_decision(snapshot: &Snapshot, q: &Query, trace: bool) -> bool {
    let resolved = snapshot.resolve(&q.request(), NOW).unwrap();
    let evaluation = evaluate(&resolved.facts, trace);
    let allow = evaluation.allow();
    black_box(evaluation);
    allow
}

/// The check as the HTTP response needs it without the trace: the decision and its sentence
/// for people (`reason`), which the engine formats only on request.
fn reason_decision(snapshot: &Snapshot, q: &Query) -> bool {
    let resolved = snapshot.resolve(&q.request(), NOW).unwrap();
    let evaluation = evaluate(&resolved.facts, false);
    black_box(evaluation.reason(&resolved.facts));
    evaluation.allow()
}

/// Only the index half of the real path: the request resolved into the engine's facts. Answers
/// the decision found earlier, so the row is split like the others.
fn resolve_only(snapshot: &Snapshot, q: &Query) -> bool {
    black_box(snapshot.resolve(&q.request(), NOW).unwrap());
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

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let timed = if full { 200_000 } else { 2_000 };

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(SEED);
    let data = DataSet::generate(&mut rng);
    let before_index = live_mib();
    let facts = data.facts();
    let fact_count = facts.len();
    // The facts are consumed and freed by the load: what is left is the snapshot.
    let snapshot = snapshot_of(facts);
    let index_mib = live_mib() - before_index;
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
    println!(
        "heap held: index snapshot {index_mib:.1} MiB, bare evaluator's maps {bare_mib:.1} MiB \
         ({:.1}x)",
        index_mib / bare_mib
    );

    // The sanity check: the real path and the bare evaluator agree on every query (every actor
    // is active and every target exists, so the bare semantics apply to all of them).
    let mut allows = 0usize;
    let mut codes: HashMap<String, usize> = HashMap::new();
    for q in &mut queries {
        let resolved = snapshot.resolve(&q.request(), NOW).unwrap();
        let evaluation = evaluate(&resolved.facts, false);
        let traced = evaluate(&resolved.facts, true);
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
        "{} queries: {allows} allow, {} deny {codes:?}; the real path and the bare evaluator agree on all of them\n",
        queries.len(),
        queries.len() - allows
    );

    criterion_part(&snapshot, &bare, &queries);

    // Warm up, then time every decision on its own.
    let warm = &queries[..queries.len().min(20_000)];
    time_each(warm, |q| bare_decision(&bare, q));
    time_each(warm, |q| real_decision(&snapshot, q, false));
    time_each(warm, |q| real_decision(&snapshot, q, true));
    time_each(warm, |q| reason_decision(&snapshot, q));
    let (bare_allow, bare_deny) = time_each(&queries, |q| bare_decision(&bare, q));
    let (check_allow, check_deny) = time_each(&queries, |q| real_decision(&snapshot, q, false));
    let (trace_allow, trace_deny) = time_each(&queries, |q| real_decision(&snapshot, q, true));
    let (reason_allow, reason_deny) = time_each(&queries, |q| reason_decision(&snapshot, q));
    let (resolve_allow, resolve_deny) = time_each(&queries, |q| resolve_only(&snapshot, q));
    let overhead = timer_overhead();

    println!(
        "\nper decision, {} decisions timed one by one (each includes ~{overhead} ns of timer reads)\n",
        queries.len()
    );
    println!("| case                        | decisions | p50 ns | p99 ns | ratio to bare p50 |");
    println!("|-----------------------------|----------:|-------:|-------:|------------------:|");
    let row = |name: &str, sorted: &[u64], base: &[u64]| {
        let p50 = percentile(sorted, 0.5);
        println!(
            "| {name:<27} | {:>9} | {p50:>6} | {:>6} | {:>16.1}x |",
            sorted.len(),
            percentile(sorted, 0.99),
            p50 as f64 / percentile(base, 0.5).max(1) as f64
        );
        p50
    };
    row("bare, allow", &bare_allow, &bare_allow);
    row("bare, deny", &bare_deny, &bare_deny);
    let check_p50 = [
        row("check (no trace), allow", &check_allow, &bare_allow),
        row("check (no trace), deny", &check_deny, &bare_deny),
    ];
    row("check + reason, allow", &reason_allow, &bare_allow);
    row("check + reason, deny", &reason_deny, &bare_deny);
    let trace_p50 = [
        row("explain (trace), allow", &trace_allow, &bare_allow),
        row("explain (trace), deny", &trace_deny, &bare_deny),
    ];
    row("of which resolve, allow", &resolve_allow, &bare_allow);
    row("of which resolve, deny", &resolve_deny, &bare_deny);
    let verdict = |p50s: [u64; 2], limit: u64| {
        if p50s.iter().all(|&p| p <= limit) {
            "met"
        } else {
            "NOT met"
        }
    };
    println!(
        "\ntargets: p50 ≤ 1,000 ns without trace: {}; p50 ≤ 10,000 ns with trace: {}",
        verdict(check_p50, 1_000),
        verdict(trace_p50, 10_000)
    );
}
