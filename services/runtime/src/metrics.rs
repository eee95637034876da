//! Metrics every service has, registered by [`crate::admin::Admin::new`]:
//! `magnet_nats_reconnects_total` and `magnet_grpc_request_duration_seconds{method}` (gRPC
//! servers, time to the response head).

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Reconnections of this process's NATS clients.
pub static NATS_RECONNECTS: LazyLock<Counter> = LazyLock::new(Counter::default);

/// The labels of [`GRPC_DURATIONS`]: one series per gRPC method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// `/package.Service/Method`.
    pub method: String,
}

type Durations = Family<GrpcLabels, Histogram, fn() -> Histogram>;

/// The buckets of every request-duration histogram: 0.5 ms … ~16 s.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// `magnet_grpc_request_duration_seconds`: seconds from a gRPC request to its response head,
/// by method; [`GrpcMetrics`] records into it.
pub static GRPC_DURATIONS: LazyLock<Durations> =
    LazyLock::new(|| Family::new_with_constructor(latency_histogram as fn() -> Histogram));

pub(crate) fn register(r: &mut Registry) {
    r.register(
        "magnet_nats_reconnects",
        "Reconnections to NATS",
        NATS_RECONNECTS.clone(),
    );
    r.register(
        "magnet_grpc_request_duration_seconds",
        "gRPC requests served: time to the response head",
        GRPC_DURATIONS.clone(),
    );
}

/// A tower layer for gRPC servers that times each request into [`GRPC_DURATIONS`].
#[derive(Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around a gRPC server; methods other than ours and
/// health's share the `unknown` label, so series stay bounded.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Our services' and health's methods by name; anything else (unknown paths are
        // answered "unimplemented") as one series, so label values stay bounded.
        let path = req.uri().path();
        let known = path.starts_with("/magnet.v1.") || path.starts_with("/grpc.health.v1.");
        let method = if known && path.len() <= 80 {
            path.to_owned()
        } else {
            "unknown".to_owned()
        };
        let start = Instant::now();
        let call = self.inner.call(req);
        Box::pin(async move {
            let resp = call.await;
            GRPC_DURATIONS
                .get_or_create(&GrpcLabels { method })
                .observe(start.elapsed().as_secs_f64());
            resp
        })
    }
}
