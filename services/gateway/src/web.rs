//! The web UI: the files that `npm run build` puts in `web/dist/`, embedded in release
//! binaries (rust-embed; debug builds read the folder at run time). `/` is the index,
//! `/player?taskId=…` the player (the original's URLs), `/assets/*` the rest. Answers carry
//! an ETag and `Cache-Control: no-cache`, so browsers revalidate and get 304s.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist/"]
#[allow_missing = true]
struct Ui;

/// One embedded file, or 404.
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(f) = Ui::get(path) else {
        if Ui::iter().next().is_none() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "The web UI is not built into this gateway: run `cargo xtask web` (npm) and rebuild.",
            )
                .into_response();
        }
        return crate::error::ApiError::because(
            magnet_core::Reason::RouteNotFound,
            format!("no such file: {path}"),
        )
        .into_response();
    };
    let etag = format!(
        "\"{}\"",
        data_encoding::HEXLOWER.encode(&f.metadata.sha256_hash()[..16])
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mut resp = (
        [
            (header::CONTENT_TYPE, f.metadata.mimetype().to_owned()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        f.data,
    )
        .into_response();
    if path.ends_with(".html") {
        resp.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(CSP),
        );
    }
    resp
}

/// No inline script, nothing from elsewhere: an injected `<img onerror>` or `<script>` cannot
/// run even if some text escaped escaping. hls.js needs `blob:` for media and its worker.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /`: the UI's index page (login, submit, live tasks, nodes).
pub async fn index(headers: HeaderMap) -> Response {
    file("index.html", &headers)
}

/// `GET /player`: the player page (the original's `/player?taskId=<id>`).
pub async fn player(headers: HeaderMap) -> Response {
    file("player.html", &headers)
}

/// `GET /assets/*path`: one of the UI's built files under `web/dist/assets/`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    file(&format!("assets/{path}"), &headers)
}

/// `GET /favicon.svg`: the UI's icon.
pub async fn favicon(headers: HeaderMap) -> Response {
    file("favicon.svg", &headers)
}
