//! The receiver's HTTP server: hyper's HTTP/1.1 connection loop with the protections a public
//! endpoint needs, which `axum::serve` does not offer.
//!
//! - At most `max_connections` connections at once; beyond that, new ones wait in the kernel's
//!   accept backlog until a slot frees up (they are not refused).
//! - A client must send a request's headers within `request_timeout` (hyper closes the connection
//!   otherwise, idle keep-alive connections included); the body is bounded by the router's
//!   `TimeoutLayer` (408).
//! - Shutdown: stop accepting, let in-flight requests finish, close idle connections.

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for in-flight requests before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    request_timeout: Duration,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(true);

    loop {
        let slot = tokio::select! {
            () = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish; closing their connections");
    }
    Ok(())
}
