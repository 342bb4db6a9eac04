//! The export stream and `GET /api/v1/audit/export`'s handler on the selected backend: the stream
//! reads the chain a page at a time into the lines `plystractl audit export` writes and ends after
//! the last page; a database that fails mid-stream ends it with an error, never a clean end; and
//! the handler turns that error into an aborted body, while a failure before the first byte is
//! an ordinary error answer. (The route through the real router, its permission and its
//! parameters are tested end to end in `plystrad/tests/it/audit.rs`.)

use std::sync::Arc;

use futures_util::StreamExt;
use plystra_contracts::services::{AuditRecord, AuditRecorder};
use plystra_contracts::storage::Database;
use plystra_contracts::{RouteApi, ServiceRegistry};
use plystra_kernel::storage::testing::TestDatabase;
use plystra_system_audit::api::AuditApi;
use plystra_system_audit::export::{self, PAGE_SIZE};
use plystra_system_audit::redaction::RedactionPolicy;
use plystra_system_audit::service::{AuditService, AuditSettings, WriteMode};

/// Writes `n` records, concurrently so they share commits.
async fn write(db: &Database, n: usize) {
    let service = AuditService::start(
        db.clone(),
        AuditSettings {
            mode: WriteMode::Always,
            policy: RedactionPolicy::with_key(b"k".to_vec()),
        },
    );
    let mut tasks = Vec::new();
    for i in 0..n {
        let service: Arc<AuditService> = service.clone();
        tasks.push(tokio::spawn(async move {
            let record = AuditRecord {
                trace: serde_json::json!({"i": i, "amount": 12.5}),
                ..AuditRecord::new("req_export", "users.create", "users.create")
            };
            service.record(record).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    service.shutdown().await;
}

/// Every record from `from_seq` on as one export file, read in one page.
async fn whole_file(db: &Database, from_seq: i64) -> String {
    export::page(db, from_seq, 10_000)
        .await
        .unwrap()
        .iter()
        .map(export::file_line)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_reads_page_by_page_into_export_lines_and_ends_after_the_last() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    write(&t.db, 5).await;
    for (from_seq, page_size, chunk_lines) in [
        (1, 2, vec![2, 2, 1]),
        // A chain that fills its last page ends on the empty page after it.
        (2, 2, vec![2, 2]),
        (1, 5, vec![5]),
        (4, 1_000, vec![2]),
        (6, 2, vec![]),
    ] {
        let chunks: Vec<String> = export::chunks(t.db.clone(), from_seq, page_size)
            .map(|chunk| String::from_utf8(chunk.unwrap()).unwrap())
            .collect()
            .await;
        let lines: Vec<usize> = chunks.iter().map(|c| c.lines().count()).collect();
        assert_eq!(lines, chunk_lines, "from {from_seq}, {page_size} a page");
        let file = chunks.concat();
        assert_eq!(file, whole_file(&t.db, from_seq).await);
        if from_seq <= 5 {
            let check = export::check_lines(file.lines());
            assert_eq!(check.first_broken, None);
            assert_eq!(check.range, Some((from_seq, 5)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failing_mid_stream_ends_it_with_an_error() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    write(&t.db, 5).await;
    let mut chunks = Box::pin(export::chunks(t.db.clone(), 1, 2));
    let first = chunks.next().await.unwrap().unwrap();
    assert_eq!(String::from_utf8(first).unwrap().lines().count(), 2);
    t.db.close().await;
    assert!(
        matches!(chunks.next().await, Some(Err(_))),
        "the failed read is the stream's last item"
    );
    assert!(chunks.next().await.is_none());
}

/// The handler alone, behind poem-openapi, on `db`.
fn handler(db: &Database) -> poem::test::TestClient<impl poem::Endpoint> {
    let mut services = ServiceRegistry::new();
    services
        .provide::<Database>("kernel.database", Arc::new(db.clone()))
        .unwrap();
    let api = AuditApi::build(&services).unwrap();
    let service = poem_openapi::OpenApiService::new(api, "audit", "0");
    poem::test::TestClient::new(poem::IntoEndpoint::into_endpoint(service))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_streams_every_page_and_ends_a_body_cut_off_by_the_database_with_its_line() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    write(&t.db, PAGE_SIZE as usize + 1).await;
    let cli = handler(&t.db);

    // Whole: two pages, the file the export module writes.
    let resp = cli.get("/api/v1/audit/export").send().await;
    resp.assert_status_is_ok();
    resp.assert_content_type("application/x-ndjson");
    let body = resp.0.into_body().into_string().await.unwrap();
    assert_eq!(body, whole_file(&t.db, 1).await);
    assert_eq!(body.lines().count(), PAGE_SIZE as usize + 1);

    // Past the end: an empty body.
    let resp = cli
        .get(format!("/api/v1/audit/export?since_seq={}", PAGE_SIZE + 2))
        .send()
        .await;
    resp.assert_status_is_ok();
    resp.assert_text("").await;

    // Cut: the first page is sent, then the database goes away.
    let resp = cli.get("/api/v1/audit/export").send().await;
    resp.assert_status_is_ok();
    let mut body = Box::pin(resp.0.into_body().into_bytes_stream());
    let first = body.next().await.unwrap().unwrap();
    assert_eq!(
        first.iter().filter(|b| **b == b'\n').count(),
        PAGE_SIZE as usize
    );
    t.db.close().await;
    let last = body.next().await.unwrap().unwrap();
    assert_eq!(last, export::cut_off_line().as_bytes());
    let mut cut = String::from_utf8(first.to_vec()).unwrap();
    cut.push_str(std::str::from_utf8(&last).unwrap());
    let check = export::check_lines(cut.lines());
    assert_eq!(check.records, PAGE_SIZE);
    assert!(
        check
            .first_broken
            .is_some_and(|(line, _, _, why)| line == PAGE_SIZE as usize + 1
                && why.starts_with("the export was cut off")),
        "a cut-off file fails its check at the cut"
    );
    assert!(
        matches!(body.next().await, Some(Err(_))),
        "then the stream fails, for a transport that aborts"
    );

    // Before the first byte, a failure is an ordinary error answer.
    let resp = cli.get("/api/v1/audit/export").send().await;
    let status = resp.0.status();
    assert!(status.is_server_error(), "{status}");
    resp.assert_header_exist("x-plystra-error-code");
}
