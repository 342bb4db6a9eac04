"""Seeds a migrated, empty Plystra database with the shape of the authorization engine
benchmark's data set (system/authz/core/benches/engine.rs), for timing a start: one space, 10,000
members (each a user and an active binding), 2,000 groups in 20 trees of depth <= 5, 100,000
invoices, 50 roles with 1-4 permissions, 0-10 member-roles per member, from a fixed seed.
It writes the tables directly (SQLite through Python's sqlite3, PostgreSQL through psql's
\copy), so seeding takes seconds rather than the hours the API would.

    seed.py sqlite PATH        seed.py postgres DBNAME   (psql as postgres on 127.0.0.1)
"""
import csv, os, random, subprocess, sys, sqlite3

random.seed(0x72026)
TS = "2026-12-05T00:00:00Z"
SPACE = "space_bench"
ACTIONS = ["read", "approve", "reject", "delete"]
SCOPES = ["group_tree"] * 7 + ["space"] + ["self"] * 2
M, G, R, ROLES = 10_000, 2_000, 100_000, 50

rows = {}
rows["sys_identity_spaces"] = (["id","name","slug","type","status","created_at","updated_at"],
    [[SPACE, "Bench", "bench", "organization", "active", TS, TS]])
rows["sys_identity_users"] = (["id","username","status","created_at","updated_at"],
    [[f"user_{m:05}", f"user{m:05}", "active", TS, TS] for m in range(M)])
rows["sys_identity_members"] = (["id","space_id","member_type","display_name","status","created_at","updated_at"],
    [[f"member_{m:05}", SPACE, "user", f"Member {m}", "active", TS, TS] for m in range(M)])
rows["sys_identity_user_members"] = (["id","space_id","user_id","member_id","relation_type","is_primary","status","created_at","updated_at"],
    [[f"um_{m:05}", SPACE, f"user_{m:05}", f"member_{m:05}", "member", "1", "active", TS, TS] for m in range(M)])
groups = []  # (id, parent, path, depth)
for r in range(20):
    groups.append((f"group_{r:04}", None, f"t{r}", 1))
open_ = list(range(20))
while len(groups) < G:
    p = random.choice(open_)
    n = len(groups)
    depth = groups[p][3] + 1
    groups.append((f"group_{n:04}", groups[p][0], f"{groups[p][2]}.g{n}", depth))
    if depth < 5:
        open_.append(n)
rows["sys_identity_groups"] = (["id","space_id","parent_id","name","path","depth","sort_order","status","created_at","updated_at"],
    [[g[0], SPACE, g[1], g[0], g[2], str(g[3]), "0", "active", TS, TS] for g in groups])
rows["sys_resource_resource_types"] = (["id","key","display_name","source","status","created_at","updated_at"],
    [["rtype_invoice", "invoice", "Invoice", "api", "active", TS, TS]])
rows["sys_resource_resource_actions"] = (["id","resource_type_id","key","display_name","risk_level","audit_default","created_at","updated_at"],
    [[f"ract_{a}", "rtype_invoice", a, a, "low", "1", TS, TS] for a in ACTIONS])
rows["sys_resource_resources"] = (["id","space_id","resource_type_id","external_id","group_id","owner_member_id","visibility","status","created_at","updated_at"],
    [[f"res_{r:06}", SPACE, "rtype_invoice", f"INV-{r}", f"group_{random.randrange(G):04}", f"member_{random.randrange(M):05}", "space", "active", TS, TS] for r in range(R)])
perms = [[f"perm_{a}_{s}", "invoice", a, s, "active", TS, TS] for a in ACTIONS for s in ["group_tree", "space", "self"]]
rows["sys_authz_permissions"] = (["id","resource","action","scope","status","created_at","updated_at"], perms)
roles, rps = [], []
for r in range(ROLES):
    roles.append([f"role_{r:02}", SPACE, f"bench_role_{r:02}", f"Role {r}", "active", TS, TS])
    for j, a in enumerate(random.sample(ACTIONS, random.randint(1, 4))):
        rps.append([f"rp_{r:02}_{j}", SPACE, f"role_{r:02}", f"perm_{a}_{random.choice(SCOPES)}", TS, TS])
rows["sys_authz_roles"] = (["id","space_id","key","name","status","created_at","updated_at"], roles)
rows["sys_authz_role_permissions"] = (["id","space_id","role_id","permission_id","created_at","updated_at"], rps)
mrs = []
for m in range(M):
    for j in range(random.randint(0, 10)):
        mrs.append([f"mr_{m:05}_{j:02}", SPACE, f"member_{m:05}", f"role_{random.randrange(ROLES):02}", f"group_{random.randrange(G):04}", "active", TS, TS])
rows["sys_authz_member_roles"] = (["id","space_id","member_id","role_id","scope_anchor_group_id","status","created_at","updated_at"], mrs)
# role_permissions unique (role, permission): drop duplicates
seen = set(); rps[:] = [x for x in rps if not ((x[2], x[3]) in seen or seen.add((x[2], x[3])))]

order = ["sys_identity_spaces","sys_identity_users","sys_identity_members","sys_identity_user_members","sys_identity_groups",
         "sys_resource_resource_types","sys_resource_resource_actions","sys_resource_resources",
         "sys_authz_permissions","sys_authz_roles","sys_authz_role_permissions","sys_authz_member_roles"]
kind, target = sys.argv[1], sys.argv[2]
if kind == "sqlite":
    db = sqlite3.connect(target)
    for t in order:
        cols, data = rows[t]
        data = [[None if v is None else (int(v) if c in ("is_primary","audit_default","depth","sort_order") else v) for c, v in zip(cols, r)] for r in data]
        db.executemany(f"INSERT INTO {t} ({','.join(cols)}) VALUES ({','.join('?'*len(cols))})", data)
    db.commit()
else:
    for t in order:
        cols, data = rows[t]
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"plystra_seed_{t}.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            for r in data:
                w.writerow(["" if v is None else ({"1": "true"}.get(v, v) if c in ("is_primary","audit_default") else v) for c, v in zip(cols, r)])
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h", "127.0.0.1", target, "-c",
                        f"\\copy {t} ({','.join(cols)}) FROM '{path}' WITH (FORMAT csv, NULL '')"], check=True)
print("seeded", {t: len(rows[t][1]) for t in order})
