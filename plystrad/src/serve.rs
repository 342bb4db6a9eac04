//! Serving: boot the kernel, listen, drain on SIGTERM/SIGINT, stop capabilities in reverse order.

use std::future::Future;
use std::time::Duration;

use plystra_kernel::{BootError, CapabilitySource};
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use rand::RngCore;

use crate::cli::ServerSettings;

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The kernel refused to boot.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// The address could not be bound, or the server failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A fresh development bootstrap key: `ply_dev_` and 32 random bytes, hex.
pub fn generate_bootstrap_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("ply_dev_{hex}")
}

/// Boots and serves until `shutdown` resolves, then drains HTTP and stops the capabilities.
/// `on_bound` receives the bound address (useful with port 0).
pub async fn serve(
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send,
    on_bound: impl FnOnce(std::net::SocketAddr) + Send,
) -> Result<(), ServeError> {
    let booted = plystra_kernel::boot(settings.kernel.clone(), CapabilitySource::linked()).await?;
    let acceptor = TcpListener::bind(settings.address).into_acceptor().await?;
    let bound = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .unwrap_or(settings.address);
    tracing::info!(address = %bound, "listening");
    on_bound(bound);
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(booted.app, shutdown, Some(Duration::from_secs(30)))
        .await?;
    tracing::info!("HTTP drained; stopping capabilities");
    booted.runtime.stop().await;
    Ok(())
}

/// Serves until SIGTERM or SIGINT; prints the generated development key once.
pub async fn run_until_signal(settings: ServerSettings) -> Result<(), ServeError> {
    let key = settings.kernel.bootstrap_api_key.clone();
    let generated = settings.generated_bootstrap_key;
    serve(settings, shutdown_signal(), move |address| {
        if let (true, Some(key)) = (generated, key) {
            eprintln!(
                "\nPlystra is running in development mode on http://{address}\n\
                 No PLYSTRA_API_KEY was set, so this run generated a bootstrap key (shown once):\n\n    \
                 export PLYSTRA_API_KEY={key}\n    \
                 curl -H \"X-Plystra-API-Key: $PLYSTRA_API_KEY\" http://{address}/api/v1/capabilities\n\n\
                 Swagger UI: http://{address}/docs\n"
            );
        }
    })
    .await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown signal received");
}
