//! The gateway's HTTP metrics: `magnet_http_requests_total` and
//! `magnet_http_request_duration_seconds`, by method, route (the matched pattern, so that ids
//! do not explode the label set) and status class.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use magnet_runtime::admin::Admin;
use magnet_runtime::metrics::latency_histogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// A request's labels: its method, matched route pattern and status class (`2xx`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labels {
    method: String,
    route: String,
    status: String,
}

type Durations = Family<Labels, Histogram, fn() -> Histogram>;

/// The request counter and duration histogram that [`record`] updates.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<Labels, Counter>,
    durations: Durations,
}

impl HttpMetrics {
    /// New metrics, registered so that the admin server's `/metrics` shows them.
    pub fn registered(admin: &Admin) -> Self {
        let m = Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        };
        admin.register(|r| {
            r.register(
                "magnet_http_requests",
                "HTTP requests answered",
                m.requests.clone(),
            );
            r.register(
                "magnet_http_request_duration_seconds",
                "Time to the response head (streams such as events and video continue after it)",
                m.durations.clone(),
            );
        });
        m
    }
}

/// Middleware: counts and times every request.
pub async fn record(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    // Only the standard methods as labels: the server accepts any token as a method, and each
    // label value is a series kept forever.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let resp = next.run(req).await;
    let labels = Labels {
        method,
        route,
        status: format!("{}xx", resp.status().as_u16() / 100),
    };
    m.requests.get_or_create(&labels).inc();
    m.durations
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}
