//! The admin HTTP server every service runs beside its real work: `/healthz` (the process is
//! alive), `/readyz` (it can do its job: dependencies connected), `/metrics` (Prometheus text).
//! Probes are served outside the trace layer so they do not flood traces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::Result;

/// Shared between the admin server and the service: readiness and the metrics registry.
#[derive(Clone)]
pub struct Admin {
    ready: Arc<AtomicBool>,
    registry: Arc<std::sync::RwLock<Registry>>,
}

impl Default for Admin {
    fn default() -> Self {
        Self::new()
    }
}

impl Admin {
    /// Not ready yet, with the runtime's own metrics already registered; every service makes one
    /// at startup.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        crate::metrics::register(&mut registry);
        Self {
            ready: Arc::new(AtomicBool::new(false)),
            registry: Arc::new(std::sync::RwLock::new(registry)),
        }
    }

    /// What `/readyz` answers from now on; services set it once their dependencies are connected
    /// and clear it when their work stops.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200 rather than 503.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Registers metrics (names follow `magnet_<noun>_<unit>[_total]`).
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        match self.registry.write() {
            Ok(mut r) => f(&mut r),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        let registry = match self.registry.read() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }

    /// The `/healthz`, `/readyz` and `/metrics` routes, as [`Admin::serve`] serves them.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// Binds `addr` and serves until `shutdown`; returns the bound address (port 0 resolved)
    /// and the server task.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let (listener, local) = crate::net::bind(addr).await?;
        let app = self.router();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin server failed");
            }
        });
        tracing::info!(%local, "admin server listening (/healthz, /readyz, /metrics)");
        Ok((local, task))
    }
}

async fn readyz(State(admin): State<Admin>) -> impl IntoResponse {
    if admin.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(admin): State<Admin>) -> impl IntoResponse {
    match admin.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
