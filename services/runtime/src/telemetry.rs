//! Telemetry from one `init()`: tracing to stderr (human or JSON), an env filter
//! (`RUST_LOG`, default `info`), and OpenTelemetry spans over OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, with `service.name` from the caller's crate name.
//!
//! W3C trace context (`traceparent`) travels in NATS headers ([`inject_nats`],
//! [`extract_nats`]) and gRPC metadata ([`inject_grpc`], [`extract_grpc`]), so one trace spans
//! every service that touches a task.

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::{Error, Result};

/// Keeps the exporter alive; flushes spans when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // The batch exporter's shutdown blocks; keep it off the async workers.
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}

/// Sets up logging and tracing for a service. Call once, inside the tokio runtime.
/// `MAGNET_LOG_FORMAT=json` switches the log lines to JSON.
/// The resource carries `service.name`, `service.version` and `magnet.node_id` (`node`).
pub fn init(service: &'static str, node: &str) -> Result<Telemetry> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,librqbit=warn,sqlx=warn"));
    let json = std::env::var("MAGNET_LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .boxed()
    };

    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty());
    let (otel, provider) = match endpoint {
        Some(_) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|e| Error::Telemetry(format!("OTLP exporter: {e}")))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder()
                        .with_service_name(service)
                        .with_attributes([
                            opentelemetry::KeyValue::new(
                                "service.version",
                                env!("CARGO_PKG_VERSION"),
                            ),
                            opentelemetry::KeyValue::new("magnet.node_id", node.to_owned()),
                        ])
                        .build(),
                )
                .build();
            global::set_tracer_provider(provider.clone());
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| Error::Telemetry(e.to_string()))?;
    Ok(Telemetry { provider })
}

struct NatsInjector<'a>(&'a mut async_nats::HeaderMap);
impl Injector for NatsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct NatsExtractor<'a>(&'a async_nats::HeaderMap);
impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// NATS headers carrying the current span's trace context.
pub fn nats_headers() -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    inject_nats(&mut headers);
    headers
}

/// Writes the current span's context into NATS headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut NatsInjector(headers)));
}

/// Makes `span` a child of the trace context in NATS headers (call before entering it).
pub fn extract_nats(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    if let Some(headers) = headers {
        let parent = global::get_text_map_propagator(|p| p.extract(&NatsExtractor(headers)));
        let _ = span.set_parent(parent);
    }
}

struct GrpcInjector<'a>(&'a mut tonic::metadata::MetadataMap);
impl Injector for GrpcInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct GrpcExtractor<'a>(&'a tonic::metadata::MetadataMap);
impl Extractor for GrpcExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => k.as_str(),
                tonic::metadata::KeyRef::Binary(k) => k.as_str(),
            })
            .collect()
    }
}

/// The type of [`inject_grpc`], for clients' type parameters.
pub type GrpcInjectFn = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// A channel whose requests carry the current span's context.
pub type TracedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, GrpcInjectFn>;

/// A tonic client interceptor that sends the current span's context: use with
/// `XClient::with_interceptor(channel, telemetry::inject_grpc)`.
pub fn inject_grpc(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let cx = tracing::Span::current().context();
    global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut GrpcInjector(req.metadata_mut()))
    });
    Ok(req)
}

/// Makes `span` a child of the trace context in a gRPC request's metadata.
pub fn extract_grpc(span: &tracing::Span, metadata: &tonic::metadata::MetadataMap) {
    let parent = global::get_text_map_propagator(|p| p.extract(&GrpcExtractor(metadata)));
    let _ = span.set_parent(parent);
}
