//! A real `plystrad::serve` (the CLI's settings, a real listener, graceful shutdown) on an
//! ephemeral loopback port and a fresh test database.

use std::net::SocketAddr;

use clap::Parser as _;
use plystra_kernel::storage::testing::TestDatabase;

use super::app::KEY;

/// A real `plystrad::serve` on an ephemeral port, on a fresh database.
pub struct RunningServer {
    _database: TestDatabase,
    /// Where it listens.
    pub address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), plystrad::ServeError>>,
}

impl RunningServer {
    /// `None` only when the test is skipped (see `TestDatabase::new`).
    pub async fn start() -> Option<Self> {
        let database = TestDatabase::new().await?;
        let cli = plystrad::Cli::try_parse_from([
            "plystrad",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--database-url",
            &database.url,
        ])
        .unwrap();
        let mut settings = cli.settings().unwrap();
        settings.kernel.bootstrap_api_key = Some(KEY.to_owned());
        settings
            .kernel
            .settings
            .insert("PLYSTRA_API_KEY_PERMISSIONS".into(), "*".into());
        let (address_tx, address_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(plystrad::serve(
            settings,
            async move {
                let _ = stop_rx.await;
            },
            move |address| {
                let _ = address_tx.send(address);
            },
        ));
        let address = address_rx.await.expect("the server binds");
        Some(Self {
            _database: database,
            address,
            stop,
            task,
        })
    }

    /// Stops it and asserts that `serve` returned cleanly.
    pub async fn shut_down(self) {
        self.stop.send(()).unwrap();
        self.task
            .await
            .unwrap()
            .expect("serve returns cleanly after shutdown");
    }
}
