//! Crash safety: kill -9 a real server while audited writes are in flight. After the crash, every
//! write the client saw acknowledged has its audit record, and the chain verifies.
//!
//! The server is this test binary re-executed (`crash_server_child`), so the test plugin that
//! writes through the audit contract is linked into the process that gets killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::migrations::MigrationSet;
use plystra_kernel::storage::testing::{SYSTEM_NAMESPACES, TestDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::app::{KEY, boot_with, config};
use crate::support::audit_writer;

const CHILD_DATABASE: &str = "PLYSTRA_CRASH_CHILD_DATABASE_URL";
const CHILD_PORT_FILE: &str = "PLYSTRA_CRASH_CHILD_PORT_FILE";

/// The server half. Does nothing unless the parent test started this binary to be the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_server_child() {
    let (Ok(url), Ok(port_file)) = (
        std::env::var(CHILD_DATABASE),
        std::env::var(CHILD_PORT_FILE),
    ) else {
        return;
    };
    let booted = boot_with(
        config(DatabaseConfig::new(url), &[]),
        &[&audit_writer::PLUGIN],
    )
    .await;
    use poem::listener::{Acceptor, Listener};
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    std::fs::write(&port_file, port.to_string()).unwrap();
    poem::Server::new_with_acceptor(acceptor)
        .run(booted.app)
        .await
        .unwrap();
}

/// One audited write; `Some(id)` when the server acknowledged it.
async fn write(port: u16, n: usize) -> Option<String> {
    let body = serde_json::json!({"event_type": "users.create", "action": "users.create", "trace": {"n": n}}).to_string();
    let request = format!(
        "POST /test/audit HTTP/1.1\r\nHost: t\r\nX-Plystra-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    if !response.starts_with("HTTP/1.1 200") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(response.split("\r\n\r\n").nth(1)?).ok()?;
    json["data"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_audited_writes_loses_nothing_acknowledged() {
    if std::env::var(CHILD_DATABASE).is_ok() {
        return;
    }
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    MigrationSet::embedded(t.db.dialect())
        .apply_pending(&t.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "audit_crash::crash_server_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DATABASE, &t.url)
        .env(CHILD_PORT_FILE, &port_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut port = None;
    for _ in 0..200 {
        if let Some(p) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
        {
            port = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = port.expect("the server child started");

    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (stop, counted) = (stop.clone(), counted.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = w * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if let Some(id) = write(port, n).await {
                    acknowledged.push(id);
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
            acknowledged
        }));
    }
    // The kill lands while the writers are busy: once a good number of writes were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counted.load(Ordering::Relaxed) <= 20 {
        assert!(
            Instant::now() < deadline,
            "the writes were not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL: no drain, no graceful anything.
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(
        acknowledged.len() > 10,
        "writes were in flight ({} acknowledged)",
        acknowledged.len()
    );

    // "After restart": a restarted server opens a new pool, so the check does too.
    let db = t.reopen().await;
    let verification = plystra_system_audit::store::verify(&db).await.unwrap();
    assert_eq!(
        verification.first_broken, None,
        "the chain verifies after the crash"
    );
    for id in &acknowledged {
        let found = plystra_system_audit::store::get(&db, id).await.unwrap();
        assert!(found.is_some(), "acknowledged record {id} was lost");
    }
    assert!(verification.records >= acknowledged.len() as u64);
}
