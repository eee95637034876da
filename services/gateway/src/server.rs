//! The gateway's HTTP server: the router on hyper's connection builder (HTTP/1 only),
//! with WebSocket upgrades, the client's address for handlers (`ConnectInfo`), and a
//! header-read timeout (`gateway.header_timeout_secs`): a client that sends its headers
//! slowly, or never finishes them, is cut off instead of holding a connection for ever
//! (axum's own `serve` has no such bound). On shutdown it stops accepting and lets the
//! connections in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Serves `app` on `listener` until `shutdown`, dropping connections that send no request
/// within `header_timeout`; then waits for the connections in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    // HTTP/1 only: hyper's HTTP/2 has no header timeout, and the auto builder would read an
    // HTTP/2 preface without one. Browsers reach the gateway over HTTP/1.1 (TLS, and with it
    // HTTP/2, ends at the ingress).
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        // hyper's header timeout starts with a request's first byte: a connection that sends
        // nothing, or only part of the bytes hyper-util reads to tell HTTP/1 from HTTP/2, is
        // dropped when no request has arrived in time.
        let first_request = Arc::new(Notify::new());
        let seen = first_request.clone();
        let service = app
            .clone()
            .map_request(move |mut req: http::Request<Incoming>| {
                seen.notify_one();
                req.extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                req
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                ended = &mut conn => {
                    if let Err(e) = ended {
                        tracing::debug!(%remote, error = %e, "connection ended");
                    }
                    return;
                }
                first = tokio::time::timeout(header_timeout, first_request.notified()) => {
                    if first.is_err() {
                        tracing::debug!(%remote, "no request in time; connection dropped");
                        return;
                    }
                }
            }
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended");
            }
        });
    }
    graceful.shutdown().await;
}
