//! Cross-site request forgery: a page on another site can make the browser send the user's
//! cookie with a form POST or a WebSocket handshake (CORS does not stop either). Every
//! WebSocket upgrade and every write (any method but GET, HEAD, OPTIONS) that carries an
//! `Origin` must come from the gateway's own origin or an allowed one (`gateway.cors_origins`).
//! Requests without `Origin` (API clients, curl) are not browsers' cross-site requests.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use magnet_core::Reason;

use crate::error::ApiError;

/// Origins allowed besides the gateway's own.
#[derive(Clone, Default)]
pub struct Allowed(pub Arc<Vec<String>>);

/// Middleware: a WebSocket upgrade or a write whose `Origin` is neither the gateway's own
/// nor allowed gets 403 `cross_origin`.
pub async fn check(State(allowed): State<Allowed>, req: Request, next: Next) -> Response {
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if (upgrade || write) && !acceptable(req.headers(), &allowed.0) {
        return ApiError::because(
            Reason::CrossOrigin,
            "cross-origin request refused: this page is not served by this gateway",
        )
        .into_response();
    }
    next.run(req).await
}

fn acceptable(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    // Same origin: the Origin's host[:port] is the host the request was sent to.
    let authority = url::Url::parse(origin)
        .ok()
        .map(|u| u[url::Position::BeforeHost..url::Position::AfterPort].to_owned())
        .unwrap_or_default();
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    !authority.is_empty() && authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().expect("host"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().expect("origin"));
        }
        h
    }

    #[test]
    fn same_origin_allowed_and_no_origin_passes() {
        let allowed = vec!["https://video.example.org".to_owned()];
        assert!(acceptable(
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            &allowed
        ));
        assert!(acceptable(&headers(None, "127.0.0.1:8080"), &allowed));
        assert!(acceptable(
            &headers(Some("https://video.example.org"), "gw:8080"),
            &allowed
        ));
        assert!(!acceptable(
            &headers(Some("http://evil.example"), "127.0.0.1:8080"),
            &allowed
        ));
        assert!(!acceptable(
            &headers(Some("null"), "127.0.0.1:8080"),
            &allowed
        ));
        assert!(!acceptable(
            &headers(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"),
            &allowed
        ));
    }
}
