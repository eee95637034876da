//! magnet-runtime: what every magnetm3u8 service needs around its own logic — typed layered
//! configuration, telemetry (tracing + OpenTelemetry, trace context over gRPC and NATS), the
//! NATS connection and the one module that names every subject, bucket and stream, the admin
//! HTTP server (`/healthz`, `/readyz`, `/metrics`), gRPC health and error mapping, and shutdown.

pub mod admin;
pub mod backoff;
pub mod config;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod nats;
pub mod net;
pub mod shutdown;
pub mod subjects;
pub mod telemetry;
pub mod tls;
pub mod turn;

pub use config::Settings;
pub use error::{Error, Result};
