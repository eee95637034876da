//! Telemetry from one `init()`: tracing to stderr (human, or JSON with the trace id), an env filter
//! (`RUST_LOG`, default `info`), and OpenTelemetry spans over OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, with `service.name` from the caller's crate name.
//!
//! W3C trace context (`traceparent`) travels in NATS headers ([`inject_nats`],
//! [`extract_nats`]) and gRPC metadata ([`inject_grpc`], [`extract_grpc`]), so one trace spans
//! every service that touches a task.

use std::sync::{Arc, OnceLock};

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{TraceContextExt, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
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
    let with_trace_id = WithTraceId::new(tracing_subscriber::fmt::format().json());
    let dispatch_slot = with_trace_id.slot();
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .event_format(with_trace_id)
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
    attach_dispatch(&dispatch_slot);
    Ok(Telemetry { provider })
}

/// A JSON event format that starts each line with the current trace's id (`"trace_id"`), so
/// that logs and traces can be joined; lines outside any trace are left as they are.
///
/// The OpenTelemetry context of a span is reached through the dispatcher, which cannot be
/// asked for while it formats an event; [`attach_dispatch`] hands it over once installed.
pub struct WithTraceId<F> {
    inner: F,
    dispatch: Arc<OnceLock<tracing::dispatcher::WeakDispatch>>,
}

impl<F> WithTraceId<F> {
    /// Wraps the JSON format `inner`; no trace ids are added until [`attach_dispatch`] fills
    /// its [`WithTraceId::slot`].
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            dispatch: Arc::default(),
        }
    }

    /// Where [`attach_dispatch`] will put the dispatcher.
    pub fn slot(&self) -> Arc<OnceLock<tracing::dispatcher::WeakDispatch>> {
        self.dispatch.clone()
    }
}

/// Gives a [`WithTraceId`] (through its [`WithTraceId::slot`]) the dispatcher in use; call
/// once the subscriber is installed.
pub fn attach_dispatch(slot: &OnceLock<tracing::dispatcher::WeakDispatch>) {
    tracing::dispatcher::get_default(|d| {
        let _ = slot.set(d.downgrade());
    });
}

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let trace_id = ctx
            .lookup_current()
            .zip(self.dispatch.get().and_then(|w| w.upgrade()))
            .and_then(|(span, dispatch)| {
                tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)
            })
            .map_or(TraceId::INVALID, |cx| cx.span().span_context().trace_id());
        match line.strip_prefix('{') {
            Some(rest) if trace_id != TraceId::INVALID => {
                write!(writer, "{{\"trace_id\":\"{trace_id}\",{rest}")
            }
            _ => writer.write_str(&line),
        }
    }
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

/// A tonic client interceptor that sends the current span's context (`grpc::Outgoing` calls
/// it for every call to our services).
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_trace_id() {
        let provider = SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let out = buffer.clone();
        let format = WithTraceId::new(tracing_subscriber::fmt::format().json());
        let slot = format.slot();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .event_format(format)
                    .with_writer(move || out.clone()),
            );
        let want = tracing::subscriber::with_default(subscriber, || {
            attach_dispatch(&slot);
            tracing::info!("outside any span");
            let span = tracing::info_span!("work");
            let _in = span.enter();
            tracing::info!(task = "task_1", "inside");
            span.context().span().span_context().trace_id().to_string()
        });
        let text = String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_default())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].get("trace_id").is_none(), "{text}");
        assert_eq!(lines[1]["trace_id"], want.as_str(), "{text}");
        assert_eq!(want.len(), 32);
        assert_eq!(lines[1]["fields"]["task"], "task_1");
    }
}
