//! gRPC plumbing shared by the servers: the error-code table (domain `ErrorCode` →
//! `tonic::Status`), and serving a service with `grpc.health.v1` on a bound listener until
//! shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;

use magnet_core::ErrorCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// Maps a domain error code to its gRPC code; the message goes to the caller as is.
pub fn status(code: ErrorCode, message: impl Into<String>) -> tonic::Status {
    let code = match code {
        ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
        ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::Conflict => tonic::Code::FailedPrecondition,
        ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
        ErrorCode::Unavailable => tonic::Code::Unavailable,
        ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
        ErrorCode::Internal => tonic::Code::Internal,
    };
    tonic::Status::new(code, message)
}

/// The inverse, for clients (the gateway) that turn gRPC errors back into domain codes.
pub fn code_of(status: &tonic::Status) -> ErrorCode {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorCode::InvalidArgument,
        tonic::Code::NotFound => ErrorCode::NotFound,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists | tonic::Code::Aborted => {
            ErrorCode::Conflict
        }
        tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ErrorCode::Unavailable,
        tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
        tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
        _ => ErrorCode::Internal,
    }
}

/// Binds `addr` and serves `service` beside `grpc.health.v1` (reporting it serving, for
/// Kubernetes gRPC probes) until `shutdown`. Returns the bound address (port 0 resolved).
pub async fn serve<S>(
    addr: SocketAddr,
    service: S,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>)>
where
    S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>
        + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    let bind_error = |source| Error::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(S::NAME, tonic_health::ServingStatus::Serving)
        .await;
    let server = tonic::transport::Server::builder()
        .layer(crate::metrics::GrpcMetricsLayer)
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a small answer can wait for the peer's delayed ACK: about
            // 40 ms per call on an idle connection (measured through `GET /api/tasks`).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        );
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::ResourceExhausted,
            ErrorCode::Unavailable,
            ErrorCode::Unauthenticated,
            ErrorCode::PermissionDenied,
            ErrorCode::Internal,
        ] {
            assert_eq!(code_of(&status(code, "x")), code);
        }
    }
}
