//! The handler's HTTP edge: an accept loop on hyper (HTTP/1.1, as the Functions host speaks)
//! with a deadline for request headers and a cap on open connections. Beyond the cap a new
//! connection gets one clear `503 too_many_connections` and is closed, instead of the process
//! running out of file descriptors while slow or half-open clients hold sockets.
//!
//! axum's own `serve` has neither knob, hence this small loop (hyper does the protocol).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Limits of the edge (settings `BURST_MAX_CONNECTIONS`, `BURST_HEADER_TIMEOUT_MS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 84\r\n\r\n{\"error\":\"too_many_connections\",\"detail\":\"too many open connections; retry shortly\"}";

/// Serves `router` until `shutdown` resolves, then waits (bounded) for open requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut open = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: say so and give the system a moment, never spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while open.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            open.spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        open.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    // Let requests in progress finish (a step and its save), but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while open.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}
