//! gRPC plumbing shared by servers and clients: the error-code table (domain `ErrorCode` →
//! `tonic::Status`), the service credential (servers refuse calls without it, clients send
//! it with the trace context), message size limits, and serving a service with
//! `grpc.health.v1` on a bound listener until shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use magnet_core::{ErrorCode, Reason};
use subtle::ConstantTimeEq;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

use crate::config::InternalSettings;
use crate::{Result, telemetry};

/// Largest gRPC message a server decodes or a client accepts, set explicitly on both sides
/// (tonic's implicit 4 MiB decode limit once made a node's whole task list vanish). Every
/// answer we send is bounded well under it: lists carry summaries, file reads come in chunks.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The metadata key carrying the service credential.
const TOKEN_KEY: &str = "authorization";

/// Server side: refuses a call whose `authorization` is not `Bearer <internal.token>`
/// (compared in constant time). With no token configured the listener is on loopback
/// (config validation sees to it) and every call passes.
#[derive(Clone)]
pub struct RequireToken {
    expected: Option<Arc<Vec<u8>>>,
}

impl RequireToken {
    /// Expects `Bearer <internal.token>`, or lets every call through when no token is set.
    pub fn new(internal: &InternalSettings) -> Self {
        Self {
            expected: internal
                .token
                .as_ref()
                .map(|t| Arc::new(format!("Bearer {t}").into_bytes())),
        }
    }
}

impl RequireToken {
    /// Whether an `authorization` value (none: empty) is the credential; always true when no
    /// token is configured. The node's HTTP stream endpoint checks its callers with it too.
    pub fn accepts(&self, authorization: &[u8]) -> bool {
        self.expected
            .as_ref()
            .is_none_or(|expected| bool::from(authorization.ct_eq(expected.as_slice())))
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let given = req
            .metadata()
            .get(TOKEN_KEY)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if self.accepts(given) {
            Ok(req)
        } else {
            Err(tonic::Status::unauthenticated(
                "this service answers only magnetm3u8's own services (internal.token)",
            ))
        }
    }
}

/// Client side: every call carries the current trace context and the service credential.
#[derive(Clone, Default)]
pub struct Outgoing {
    token: Option<MetadataValue<Ascii>>,
}

impl Outgoing {
    /// Sends `Bearer <internal.token>` on every call, or no credential when no token is set.
    pub fn new(internal: &InternalSettings) -> Self {
        Self {
            // Validation admits printable ASCII only, so the value always parses.
            token: internal
                .token
                .as_ref()
                .and_then(|t| format!("Bearer {t}").parse().ok()),
        }
    }
}

impl Interceptor for Outgoing {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut req = telemetry::inject_grpc(req)?;
        if let Some(t) = &self.token {
            req.metadata_mut().insert(TOKEN_KEY, t.clone());
        }
        Ok(req)
    }
}

/// A channel to one of our services: trace context and credential on every call.
pub type Client = InterceptedService<tonic::transport::Channel, Outgoing>;

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

/// The metadata key of a gRPC error's [`Reason`] (its name, `magnet_invalid`).
pub const REASON_KEY: &str = "magnet-reason";

/// [`status`] for a precise reason, which travels in the error's metadata.
pub fn status_because(reason: Reason, message: impl Into<String>) -> tonic::Status {
    let mut s = status(reason.code(), message);
    s.metadata_mut()
        .insert(REASON_KEY, MetadataValue::from_static(reason.as_str()));
    s
}

/// The reason of a gRPC error: the one it carries, else its code's general one.
pub fn reason_of(status: &tonic::Status) -> Reason {
    status
        .metadata()
        .get(REASON_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(Reason::parse)
        .filter(|r| r.code() == code_of(status))
        .unwrap_or_else(|| code_of(status).reason())
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
/// Kubernetes gRPC probes, which carry no credential) until `shutdown`. Calls to `service`
/// need the credential of `internal` when one is set. Returns the bound address (port 0
/// resolved).
pub async fn serve<S>(
    addr: SocketAddr,
    service: S,
    internal: &InternalSettings,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>)>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (listener, local) = crate::net::bind(addr).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(S::NAME, tonic_health::ServingStatus::Serving)
        .await;
    let server = tonic::transport::Server::builder()
        .layer(crate::metrics::GrpcMetricsLayer)
        .add_service(health_service)
        .add_service(InterceptedService::new(
            service,
            RequireToken::new(internal),
        ))
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
