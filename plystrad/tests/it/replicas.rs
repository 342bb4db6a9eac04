//! Several real `plystrad` processes on one database (PostgreSQL, or one SQLite file), as
//! replicas behind a load balancer run: every process decides on the same facts. A revoke
//! committed through one is honoured by the others at once with its revision as a consistency
//! token, and within the staleness bound without one; a process that cannot follow the feed
//! answers 503 instead of deciding on facts of unknown age; `plystractl` writing from outside
//! takes effect without a restart.
//!
//! The servers are the built `plystrad` binary; the fixture is seeded through the built
//! `plystractl demo seed` (the two binaries sit side by side in the target directory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::processes::{API_KEY_SECRET, KEY, Server, alice_approves_001, ctl, seed};
use plystra_kernel::storage::testing::TestDatabase;
use serde_json::{Value, json};

/// A small deterministic generator for the interleavings (its seed is printed).
struct Interleaving(u64);

impl Interleaving {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_through_one_process_is_denied_by_the_other_with_its_token_every_time() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let servers = [
        Server::start(&t.url, &[]).await,
        Server::start(&t.url, &[]).await,
    ];
    seed(&servers[0]);
    let seed_value = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("interleaving seed: {seed_value}");
    let mut order = Interleaving(seed_value);
    let mut member_role = "mr_finance_reviewer_approver".to_owned();
    for round in 0..100 {
        let writer = order.pick(2);
        let reader = 1 - writer;
        // Sometimes the reader is busy deciding while the write commits.
        let busy = order.pick(2) == 0;
        let background = busy.then(|| {
            let base = servers[reader].base();
            let http = servers[reader].http.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    let _ = http
                        .post(format!("{base}/api/v1/authz/check"))
                        .header("X-Plystra-API-Key", KEY)
                        .json(&alice_approves_001())
                        .send()
                        .await;
                }
            })
        });
        let revoked = servers[writer].revoke_approver(&member_role).await;
        assert_eq!(
            servers[reader]
                .decide(&alice_approves_001(), Some(revoked))
                .await,
            "NO_MATCHING_PERMISSION",
            "round {round} (seed {seed_value}): the revoke at revision {revoked} through process {writer} was not honoured by process {reader}"
        );
        let (granted, revision) = servers[order.pick(2)].grant_approver().await;
        member_role = granted;
        assert_eq!(
            servers[order.pick(2)]
                .decide(&alice_approves_001(), Some(revision))
                .await,
            Value::Null,
            "round {round} (seed {seed_value}): the grant at revision {revision} was not seen"
        );
        if let Some(task) = background {
            task.await.unwrap();
        }
    }

    // Without a token, the other process denies within the staleness bound (in practice within
    // a poll interval, or at once on PostgreSQL's notification).
    let revoked_at = Instant::now();
    servers[0].revoke_approver(&member_role).await;
    loop {
        if servers[1].decide(&alice_approves_001(), None).await == "NO_MATCHING_PERMISSION" {
            break;
        }
        assert!(
            revoked_at.elapsed() < plystra_contracts::feed::DEFAULT_STALENESS_BOUND,
            "process 1 still allowed {:?} after the revoke",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "without a token, the revoke was honoured after {:?}",
        revoked_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_change_through_one_process_is_agreed_by_the_others() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let count = if t.db.dialect() == plystra_contracts::storage::Dialect::Postgres {
        3
    } else {
        2
    };
    let mut servers = Vec::new();
    for _ in 0..count {
        servers.push(Server::start(&t.url, &[]).await);
    }
    seed(&servers[0]);
    let a = &servers[0];
    // Grants through A: the approver role anchored at legal.emea too, and a space-wide reject
    // permission for it. Every other process agrees as soon as it has A's revision.
    a.write(
        "POST",
        "/api/v1/spaces/space_acme/member-roles",
        json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver", "scope_anchor_group_id": "group_legal_emea"}),
    )
    .await;
    a.write(
        "POST",
        "/api/v1/permissions",
        json!({"id": "perm_invoice_reject_space", "resource": "invoice", "action": "reject", "scope": "space"}),
    )
    .await;
    let revision = a
        .write(
            "POST",
            "/api/v1/role-permissions",
            json!({"role_id": "role_finance_approver", "permission_id": "perm_invoice_reject_space"}),
        )
        .await;
    let mut before = a.table(Some(revision)).await;
    assert_eq!(
        before,
        [
            Value::Null,
            Value::Null,
            Value::Null,
            json!("USER_MEMBER_REVOKED"),
            json!("USER_MEMBER_EXPIRED"),
            Value::Null
        ],
        "the grants through A allow on A"
    );
    for other in &servers[1..] {
        assert_eq!(other.table(Some(revision)).await, before);
    }
    // A process started now reads all of it from the database at start (the bulk reads:
    // an active, a revoked and an expiring binding among them) and decides alike.
    let late = Server::start(&t.url, &[]).await;
    assert_eq!(
        late.table(Some(revision)).await,
        before,
        "a process that loaded the facts at start disagrees"
    );
    drop(late);
    // Each change, and whether it changes a decision of the table. Group paths never change in
    // this contract, so the move is a resource's move to another group. Archiving a resource
    // changes no decision (the index does not judge a resource's status); the others agree all
    // the same.
    let changes: [(&str, &str, Value, bool); 7] = [
        (
            "POST",
            "/api/v1/permissions/perm_invoice_reject_space/disable",
            json!({}),
            true,
        ),
        (
            "PATCH",
            "/api/v1/spaces/space_acme/resources/invoice_001",
            json!({"group_id": "group_legal"}),
            true,
        ),
        (
            "POST",
            "/api/v1/spaces/space_acme/resources/invoice_002/archive",
            json!({}),
            false,
        ),
        (
            "POST",
            "/api/v1/spaces/space_acme/roles/role_finance_approver/disable",
            json!({}),
            true,
        ),
        ("POST", "/api/v1/spaces/space_acme/disable", json!({}), true),
        (
            "POST",
            "/api/v1/spaces/space_acme/members/member_finance_reviewer/disable",
            json!({}),
            true,
        ),
        ("POST", "/api/v1/users/user_alice/disable", json!({}), true),
    ];
    for (method, path, body, changes_a_decision) in changes {
        let revision = a.write(method, path, body).await;
        let after = a.table(Some(revision)).await;
        if changes_a_decision {
            assert_ne!(after, before, "{method} {path} changed no decision on A");
        }
        for (n, other) in servers.iter().enumerate().skip(1) {
            assert_eq!(
                other.table(Some(revision)).await,
                after,
                "process {n} disagrees with A after {method} {path}"
            );
        }
        before = after;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_process_is_refused_by_the_other() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let a = Server::start(&t.url, &[]).await;
    let b = Server::start(&t.url, &[]).await;
    let (status, revision_header, json) = a
        .send(
            "POST",
            "/api/v1/api-keys",
            Some(json!({"name": "replica reader", "level": "instance", "permission_keys": ["capabilities:read"]})),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{json}");
    let created_revision = revision_header;
    let id = json["data"]["id"].as_str().unwrap().to_owned();
    let plaintext = json["data"]["api_key"].as_str().unwrap().to_owned();
    let with_key = [("X-Plystra-API-Key", plaintext.clone())];
    // B learns of the new key through the feed: at once with the creation's revision.
    let created = created_revision.expect("a key's creation answers its revision");
    let (status, _, json) = b
        .send(
            "GET",
            "/api/v1/capabilities",
            None,
            &[
                ("X-Plystra-API-Key", plaintext.clone()),
                ("X-Plystra-At-Least-Revision", created.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let (status, revoked, json) = a
        .send(
            "POST",
            &format!("/api/v1/api-keys/{id}/revoke"),
            Some(json!({"reason": "rotated"})),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let revoked = revoked.expect("a revoke answers its revision");
    let revoked_at = Instant::now();
    // With the revoke's revision, B refuses the key on the very next request.
    let (status, _, json) = b
        .send(
            "GET",
            "/api/v1/capabilities",
            None,
            &[
                ("X-Plystra-API-Key", plaintext),
                ("X-Plystra-At-Least-Revision", revoked.to_string()),
            ],
        )
        .await;
    assert_eq!(
        status, 401,
        "a revoked key is refused by every process: {json}"
    );
    // And A, through which it was revoked, refuses it at once without a token; B does within
    // the staleness bound (in practice one notification, or one poll interval on SQLite).
    let (status, _, _) = a.send("GET", "/api/v1/capabilities", None, &with_key).await;
    assert_eq!(status, 401);
    let (status, _, _) = b.send("GET", "/api/v1/capabilities", None, &with_key).await;
    assert_eq!(status, 401);
    assert!(revoked_at.elapsed() < plystra_contracts::feed::DEFAULT_STALENESS_BOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_grant_revoked_through_one_process_is_refused_by_the_other() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let a = Server::start(&t.url, &[]).await;
    let b = Server::start(&t.url, &[]).await;
    let password = "correct horse battery staple";
    for (id, email) in [
        ("user_root", "root@example.com"),
        ("user_bob", "bob@example.com"),
    ] {
        let (status, _, json) = a
            .send(
                "POST",
                "/api/v1/users",
                Some(json!({"id": id, "email": email, "password": password})),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{json}");
    }
    let (code, text) = ctl(
        &[
            "--database-url",
            &t.url,
            "admin",
            "bootstrap-super-admin",
            "--user-id",
            "user_root",
        ],
        &[("PLYSTRA_API_KEY_SECRET", API_KEY_SECRET)],
    );
    assert_eq!(code, 0, "{text}");
    let head = plystra_contracts::feed::head(&t.db).await.unwrap();
    // A session presented in X-Plystra-API-Key is judged as a session (the prefix decides).
    let login = |server: &Server, email: &'static str| {
        let http = server.http.clone();
        let url = format!("{}/api/v1/auth/login", server.base());
        async move {
            let resp = http
                .post(url)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let json: Value = resp.json().await.unwrap();
            json["data"]["access_token"].as_str().unwrap().to_owned()
        }
    };
    let root = login(&a, "root@example.com").await;
    let (status, granted, json) = a
        .send(
            "POST",
            "/api/v1/admin/grants",
            Some(json!({"user_id": "user_bob", "level": "instance_admin", "permission_key": "users:read"})),
            &[
                ("X-Plystra-API-Key", root.clone()),
                ("X-Plystra-At-Least-Revision", head.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 201, "{json}");
    let grant = json["data"]["id"].as_str().unwrap().to_owned();
    let bob = login(&b, "bob@example.com").await;
    let granted = granted.expect("a grant answers its revision");
    let (status, _, json) = b
        .send(
            "GET",
            "/api/v1/users",
            None,
            &[
                ("X-Plystra-API-Key", bob.clone()),
                ("X-Plystra-At-Least-Revision", granted.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "the grant made through A holds on B: {json}");
    let (status, revoked, json) = a
        .send(
            "POST",
            &format!("/api/v1/admin/grants/{grant}/revoke"),
            Some(json!({"revoked_reason": "left the team"})),
            &[("X-Plystra-API-Key", root)],
        )
        .await;
    assert_eq!(status, 200, "{json}");
    let revoked_at = Instant::now();
    // Without a token, B refuses within the staleness bound (one notification, or one poll
    // interval on SQLite)...
    loop {
        let (status, _, json) = b
            .send(
                "GET",
                "/api/v1/users",
                None,
                &[("X-Plystra-API-Key", bob.clone())],
            )
            .await;
        if status == 403 {
            assert_eq!(json["error"]["code"], "ADMIN_PERMISSION_REQUIRED", "{json}");
            break;
        }
        assert_eq!(status, 200, "{json}");
        assert!(
            revoked_at.elapsed() < plystra_contracts::feed::DEFAULT_STALENESS_BOUND,
            "B still honoured the revoked grant {:?} after the revoke",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "the grant's revoke was honoured by B after {:?}",
        revoked_at.elapsed()
    );
    // ...and at once with the revoke's revision.
    let (status, _, json) = b
        .send(
            "GET",
            "/api/v1/users",
            None,
            &[
                ("X-Plystra-API-Key", bob),
                ("X-Plystra-At-Least-Revision", revoked.unwrap().to_string()),
            ],
        )
        .await;
    assert_eq!(status, 403, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_in_a_burst_of_writes_catches_up_and_agrees() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let mut a = Server::start(&t.url, &[]).await;
    let b = Server::start(&t.url, &[]).await;
    seed(&a);
    // A burst of grants and revokes through both processes; A is killed in the middle of it.
    let answered = Arc::new(AtomicUsize::new(0));
    let burst = {
        let answered = answered.clone();
        let (base_a, base_b, http) = (a.base(), b.base(), b.http.clone());
        tokio::spawn(async move {
            let mut last = 0u64;
            for n in 0..60 {
                let base = if n % 2 == 0 { &base_a } else { &base_b };
                let resp = http
                    .post(format!("{base}/api/v1/spaces/space_acme/member-roles"))
                    .header("X-Plystra-API-Key", KEY)
                    .json(&json!({"member_id": "member_finance_reviewer", "role_id": "role_finance_approver", "scope_anchor_group_id": if n % 3 == 0 { "group_legal" } else { "group_finance" }}))
                    .send()
                    .await;
                answered.fetch_add(1, Ordering::Relaxed);
                if let Ok(resp) = resp
                    && let Some(r) = resp
                        .headers()
                        .get("x-plystra-authz-revision")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                {
                    last = last.max(r);
                }
            }
            last
        })
    };
    // In the middle: once a few of its 60 writes have been answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::Relaxed) < 10 {
        assert!(Instant::now() < deadline, "the burst was not answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill();
    let last = burst.await.unwrap();
    assert!(last > 0, "the burst committed through B at least");
    a.restart().await;
    let head = plystra_contracts::feed::head(&t.db).await.unwrap();
    // The legal anchors of the burst now allow invoice_002 (in legal.emea) too.
    let table = b.table(Some(head)).await;
    assert_eq!(table[1], Value::Null, "{table:?}");
    assert_eq!(a.table(Some(head)).await, b.table(Some(head)).await);
}

/// A loopback TCP proxy to PostgreSQL that a test can cut: an outage as the server sees it,
/// without stopping the database other tests use.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn to(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (flag, list) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Self {
            port,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_fail_closed_past_the_staleness_bound_and_recover_on_their_own() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    if t.db.dialect() != plystra_contracts::storage::Dialect::Postgres {
        // The outage is a cut connection to PostgreSQL; SQLite is a local file.
        return;
    }
    // postgres://user@host:port/db → through the proxy.
    let (scheme_user, rest) = t.url.split_once('@').unwrap();
    let (host_port, db_path) = rest.split_once('/').unwrap();
    let proxy = Proxy::to(host_port.to_owned()).await;
    let url = format!("{scheme_user}@127.0.0.1:{}/{db_path}", proxy.port);
    let server = Server::start(
        &url,
        &[
            ("PLYSTRA_FEED_STALENESS_MS", "1000"),
            ("PLYSTRA_DATABASE_ACQUIRE_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    seed(&server);
    assert_eq!(
        server.decide(&alice_approves_001(), None).await,
        Value::Null
    );

    proxy.cut();
    let cut_at = Instant::now();
    let mut refused = None;
    while cut_at.elapsed() < Duration::from_secs(30) {
        // Timed when sent: the server decides after that, so a check sent past the bound is
        // decided past it (one sent just before may be answered just after, and allowed).
        let sent = cut_at.elapsed();
        let (status, _, json) = server.check(&alice_approves_001()).await;
        // Which 503 depends on which read fails first (the credential's, the feed's, the audit
        // record's); none may be an allow past the bound.
        assert!(
            status == 503 || sent < Duration::from_millis(1000),
            "past the bound a check must answer 503, got {status} {json}"
        );
        if status == 503 && sent > Duration::from_millis(1000) {
            refused = Some(sent);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("checks answer 503 during the outage");
    eprintln!("refused after {refused:?}");
    // AuthZEN decides on the same facts: past the bound, a 503 too, never a decision.
    let (status, _, _) = server
        .send(
            "POST",
            "/access/v1/evaluation",
            Some(json!({
                "subject": {"type": "user_member", "id": "um_alice_finance_reviewer"},
                "action": {"name": "approve"},
                "resource": {"type": "invoice", "id": "invoice_001"},
            })),
            &[],
        )
        .await;
    assert_eq!(status, 503, "an AuthZEN evaluation past the bound");
    let (status, _, ready) = server.send("GET", "/api/v1/ready", None, &[]).await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready
            .to_string()
            .contains("cannot confirm its facts are current"),
        "/ready says why: {ready}"
    );

    proxy.restore();
    let restored_at = Instant::now();
    loop {
        let (status, _, json) = server.check(&alice_approves_001()).await;
        if status == 200 {
            assert_eq!(json["data"]["decision"], "allow");
            break;
        }
        assert!(
            restored_at.elapsed() < Duration::from_secs(30),
            "checks did not recover: {status} {json}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("recovered after {:?}", restored_at.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plystractl_bootstrap_super_admin_hands_off_a_running_production_server() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    // Production refuses development credentials in the URL; trust authentication ignores the
    // password this adds.
    let url = t
        .url
        .replace("://postgres@", "://postgres:replica-test-password@");
    let production = [
        ("PLYSTRA_ENV", "production"),
        ("PLYSTRA_CORS_ALLOWED_ORIGINS", "https://admin.example.com"),
        ("PLYSTRA_PUBLIC_URL", "https://plystra.example.com"),
    ];
    let a = Server::start(&url, &production).await;
    let b = Server::start(&url, &production).await;
    let (status, _, json) = a
        .send(
            "POST",
            "/api/v1/users",
            Some(json!({"id": "user_root", "email": "root@example.com", "password": "correct horse battery staple"})),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{json}");
    for server in [&a, &b] {
        let (status, _, _) = server.send("GET", "/api/v1/capabilities", None, &[]).await;
        assert_eq!(status, 200, "the bootstrap key works before the handoff");
    }
    let (code, text) = ctl(
        &[
            "--database-url",
            &url,
            "admin",
            "bootstrap-super-admin",
            "--user-id",
            "user_root",
        ],
        &[
            ("PLYSTRA_ENV", "production"),
            ("PLYSTRA_API_KEY_SECRET", API_KEY_SECRET),
        ],
    );
    assert_eq!(code, 0, "{text}");
    // plystractl's grant reaches the servers through the feed: each refuses the key within the
    // staleness bound (one notification, or one poll interval on SQLite), without a restart.
    let handed_off = Instant::now();
    for server in [&a, &b] {
        loop {
            let (status, _, json) = server.send("GET", "/api/v1/capabilities", None, &[]).await;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200, "{json}");
            assert!(
                handed_off.elapsed() < plystra_contracts::feed::DEFAULT_STALENESS_BOUND,
                "the bootstrap key is still accepted {:?} after the handoff",
                handed_off.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!(
        "the handoff was honoured by both after {:?}",
        handed_off.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_it_cannot_read_makes_a_process_refuse_checks_until_it_can() {
    use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Query};
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let server = Server::start(&t.url, &[("PLYSTRA_FEED_STALENESS_MS", "1000")]).await;
    seed(&server);
    assert_eq!(
        server.decide(&alice_approves_001(), None).await,
        Value::Null
    );
    // A change this version cannot read (a newer version's fact, a damaged row), committed
    // elsewhere: the process cannot apply it, so it must stop deciding once the bound passes.
    let mut tx = t.db.begin().await.unwrap();
    let revision = plystra_contracts::feed::append(&mut tx, &[]).await.unwrap();
    let mut damage = Query::update();
    damage
        .table(Alias::new(plystra_contracts::feed::CHANGES))
        .value(Alias::new("facts"), r#"[{"kind":"from_the_future"}]"#)
        .and_where(Expr::col(Alias::new("revision")).eq(revision as i64));
    tx.execute(&damage).await.unwrap();
    tx.commit().await.unwrap();
    let damaged_at = Instant::now();
    loop {
        let (status, _, json) = server.check(&alice_approves_001()).await;
        if status == 503 {
            assert_eq!(json["error"]["code"], "FACTS_NOT_CURRENT", "{json}");
            let message = json["error"]["message"].as_str().unwrap();
            assert!(message.contains("unreadable facts"), "{json}");
            // The refusal comes from the staleness bound, not from the unreadable row itself:
            // the process kept deciding on the facts it had proven until the bound ran out.
            // (It is timed by the process's own last confirmed read, which can precede the
            // damage by a poll or a slow heartbeat on a loaded machine, so the test's clock is
            // not the measure; refusing early is the safe direction anyway.)
            let age_ms: u64 = message
                .split("last confirmed ")
                .nth(1)
                .and_then(|rest| rest.split(" ms ago").next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no confirmed age in {message}"));
            // Past the bound in nanoseconds; the message truncates to whole milliseconds.
            assert!(age_ms >= 1000, "refused before the bound: {message}");
            assert!(message.contains("past the bound of 1000 ms"), "{message}");
            break;
        }
        assert_eq!(status, 200, "{json}");
        assert!(
            damaged_at.elapsed() < Duration::from_secs(10),
            "checks went on past the staleness bound"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, ready) = server.send("GET", "/api/v1/ready", None, &[]).await;
    assert_eq!(status, 503, "{ready}");
    // Repaired: the process follows again on its own.
    let mut repair = Query::update();
    repair
        .table(Alias::new(plystra_contracts::feed::CHANGES))
        .value(Alias::new("facts"), "[]")
        .and_where(Expr::col(Alias::new("revision")).eq(revision as i64));
    t.db.execute(&repair).await.unwrap();
    let repaired_at = Instant::now();
    while server.check(&alice_approves_001()).await.0 != 200 {
        assert!(
            repaired_at.elapsed() < Duration::from_secs(10),
            "checks did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restored_behind_the_process_is_reloaded() {
    use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Query};
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let server = Server::start(&t.url, &[]).await;
    seed(&server);
    assert_eq!(
        server.decide(&alice_approves_001(), None).await,
        Value::Null
    );
    // A restore from an older backup, as the process sees it: the feed starts again below the
    // revision it applied, and a fact differs from what it holds.
    let mut tx = t.db.begin().await.unwrap();
    let mut head = Query::update();
    head.table(Alias::new(plystra_contracts::feed::HEAD))
        .value(Alias::new("revision"), 0)
        .and_where(Expr::col(Alias::new("id")).eq(1));
    tx.execute(&head).await.unwrap();
    let mut changes = Query::delete();
    changes.from_table(Alias::new(plystra_contracts::feed::CHANGES));
    tx.execute(&changes).await.unwrap();
    let mut alice = Query::update();
    alice
        .table(Alias::new("sys_identity_users"))
        .value(Alias::new("status"), "disabled")
        .and_where(Expr::col(Alias::new("id")).eq("user_alice"));
    tx.execute(&alice).await.unwrap();
    tx.commit().await.unwrap();
    let restored_at = Instant::now();
    while server.decide(&alice_approves_001(), None).await != "ACTOR_USER_INACTIVE" {
        assert!(
            restored_at.elapsed() < plystra_contracts::feed::DEFAULT_STALENESS_BOUND,
            "the process kept deciding on facts the restored database no longer holds"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A lookup's cursor from one process is taken by another of the same deployment (same
/// `PLYSTRA_SESSION_SECRET`) and refused, naming `cursor`, by one with another secret.
#[tokio::test]
async fn a_lookup_cursor_from_one_process_resumes_on_another_of_the_deployment() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let a = Server::start(&t.url, &[]).await;
    let b = Server::start(&t.url, &[]).await;
    let other = Server::start(
        &t.url,
        &[(
            "PLYSTRA_SESSION_SECRET",
            "another-deployment-secret-0123456789abcdef",
        )],
    )
    .await;
    seed(&a);
    let revision = a
        .write(
            "POST",
            "/api/v1/resources",
            json!({"id": "invoice_010", "resource_type": "invoice", "space_id": "space_acme", "group_id": "group_finance_apac"}),
        )
        .await;
    let query = json!({
        "actor": {"user_id": "user_alice", "member_id": "member_finance_reviewer",
                  "user_member_id": "um_alice_finance_reviewer", "space_id": "space_acme"},
        "resource_type": "invoice",
        "action": "approve",
        "limit": 1,
    });
    let (status, _, first) = a
        .send(
            "POST",
            "/api/v1/authz/lookup/resources",
            Some(query.clone()),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"][0]["id"], "invoice_001");
    let mut next = query;
    next["cursor"] = first["pagination"]["cursor"].clone();
    let at_least = [("X-Plystra-At-Least-Revision", revision.to_string())];
    let (status, _, second) = b
        .send(
            "POST",
            "/api/v1/authz/lookup/resources",
            Some(next.clone()),
            &at_least,
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["data"], json!([{"id": "invoice_010"}]));
    assert_eq!(second["pagination"]["has_more"], false);
    let (status, _, refused) = other
        .send(
            "POST",
            "/api/v1/authz/lookup/resources",
            Some(next),
            &at_least,
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["details"]["fields"]["cursor"].is_string(),
        "{refused}"
    );
}

#[tokio::test]
async fn a_username_changed_through_one_process_names_the_user_in_the_others_evaluations() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let a = Server::start(&t.url, &[]).await;
    let b = Server::start(&t.url, &[]).await;
    seed(&a);
    let revision = a
        .write(
            "PATCH",
            "/api/v1/users/user_bob",
            json!({"username": "robert"}),
        )
        .await;
    let at_least = [("X-Plystra-At-Least-Revision", revision.to_string())];
    let evaluate = |id: &str| {
        json!({
            "subject": {"type": "user", "id": id},
            "action": {"name": "approve"},
            "resource": {"type": "invoice", "id": "invoice_001"},
        })
    };
    let (status, _, renamed) = b
        .send(
            "POST",
            "/access/v1/evaluation",
            Some(evaluate("robert")),
            &at_least,
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["decision"], true, "{renamed}");
    let (status, _, old) = b
        .send(
            "POST",
            "/access/v1/evaluation",
            Some(evaluate("bob@example.com")),
            &at_least,
        )
        .await;
    assert_eq!(status, 200, "{old}");
    assert_eq!(old["decision"], false, "{old}");
    assert_eq!(old["context"]["error"]["status"], 404, "{old}");
    // A subject search on the other process names him by his new username.
    let (status, _, found) = b
        .send(
            "POST",
            "/access/v1/search/subject",
            Some(json!({
                "subject": {"type": "user"},
                "action": {"name": "approve"},
                "resource": {"type": "invoice", "id": "invoice_001"},
            })),
            &at_least,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    let ids: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice@example.com", "robert"], "{found}");
}

#[tokio::test]
async fn a_condition_and_the_metadata_it_reads_written_through_one_process_decide_on_another() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let a = Server::start(&t.url, &[]).await;
    let b = Server::start(&t.url, &[]).await;
    seed(&a);
    let permission = "/api/v1/permissions/perm_invoice_approve_group_tree";
    // A condition the invoice cannot meet yet: it has no stored amount.
    let revision = a
        .write(
            "PATCH",
            permission,
            json!({"condition": "resource.properties.amount <= 10000"}),
        )
        .await;
    assert_eq!(
        b.decide(&alice_approves_001(), Some(revision)).await,
        "CONDITION_NOT_MET"
    );
    // The amount, written through the first process, reaches the second one's condition.
    let revision = a
        .write(
            "PATCH",
            "/api/v1/spaces/space_acme/resources/invoice_001",
            json!({"metadata": {"amount": 9000}}),
        )
        .await;
    assert_eq!(
        b.decide(&alice_approves_001(), Some(revision)).await,
        Value::Null
    );
    // A process started now reads the amount with every resource in its first load (a bulk
    // read, not the feed) and decides alike.
    let c = Server::start(&t.url, &[]).await;
    assert_eq!(
        c.decide(&alice_approves_001(), Some(revision)).await,
        Value::Null
    );
    assert_eq!(c.table(Some(revision)).await, b.table(Some(revision)).await);
    drop(c);
    let revision = a
        .write(
            "PATCH",
            "/api/v1/spaces/space_acme/resources/invoice_001",
            json!({"metadata": {"amount": 20000}}),
        )
        .await;
    assert_eq!(
        b.decide(&alice_approves_001(), Some(revision)).await,
        "CONDITION_NOT_MET"
    );
    // Removed, the grant covers the invoice again there.
    let revision = a
        .write("PATCH", permission, json!({"condition": null}))
        .await;
    assert_eq!(
        b.decide(&alice_approves_001(), Some(revision)).await,
        Value::Null
    );
}
