//! The node's files while they download: `GET|HEAD /stream/<task_id>/<file index>` serves a
//! file of a task's torrent over HTTP with `Range`, backed by librqbit's `FileStream`. A read
//! of a piece not yet downloaded waits for it, and the range being read gets priority, so
//! ffmpeg (the transcoders, progressive playback) can read a torrent still downloading and
//! seek anywhere in it. Only a file the task wants opens (the chosen video and its subtitles,
//! when the torrent holds several videos): whatever a stream reads, the torrent fetches, so
//! choosing another video also ends the open bodies of the files it no longer wants.
//!
//! For the node's own services only: calls need `Bearer <internal.token>` (without a token
//! configured, the listener must be on loopback). Bounded: at most
//! `downloader.max_open_streams` bodies at once (each holds one of librqbit's blocking
//! permits, `torrent.blocking_threads`), 503 with `Retry-After` beyond; a body whose next
//! chunk has not come from the torrent for `downloader.stream_idle_secs` is ended (ffmpeg
//! reconnects). A client that stops reading is not timed out here (its socket's back
//! pressure stops the polling); its place comes back when the connection closes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use magnet_core::TaskId;
use magnet_runtime::grpc::RequireToken;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;

use crate::tasks::Tasks;
use crate::{Error, Result};

/// Bytes read from the torrent per body chunk.
const CHUNK: usize = 256 * 1024;

/// What the endpoint counts.
#[derive(Clone, Default)]
pub struct StreamMetrics {
    pub open: Gauge,
    pub bytes: Counter,
}

#[derive(Clone)]
struct Streams {
    tasks: Arc<Tasks>,
    /// The service credential callers must present.
    token: RequireToken,
    open: Arc<Semaphore>,
    idle: Duration,
    metrics: StreamMetrics,
}

/// Binds `addr` and serves until `shutdown`; returns the bound address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tasks: Arc<Tasks>,
    settings: &magnet_runtime::Settings,
    metrics: StreamMetrics,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>> {
    let state = Streams {
        tasks,
        token: RequireToken::new(&settings.internal),
        open: Arc::new(Semaphore::new(settings.downloader.max_open_streams)),
        idle: Duration::from_secs(settings.downloader.stream_idle_secs),
        metrics,
    };
    let app = Router::new()
        .route("/stream/{task_id}/{file}", get(stream))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "stream server failed");
        }
    });
    Ok(task)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    tracing::debug!(%status, message, "stream refused");
    (status, message.to_owned()).into_response()
}

/// `GET|HEAD /stream/<task_id>/<file index>` (axum answers HEAD through the GET route and
/// drops the body).
async fn stream(
    State(s): State<Streams>,
    Path((task_id, file)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if !s.token.accepts(given) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this endpoint answers only the node's own services (internal.token)",
        );
    }
    let (Ok(id), Ok(index)) = (TaskId::parse(&task_id), file.parse::<usize>()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "expected /stream/<task_id>/<file index>",
        );
    };
    let Ok(permit) = s.open.clone().try_acquire_owned() else {
        let mut r = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open streams on this node; try again",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let (mut reader, ended) = match s.tasks.open_file(&id, index).await {
        Ok(r) => r,
        Err(Error::TaskNotFound(_)) => return refuse(StatusCode::NOT_FOUND, "no such task"),
        Err(Error::Unsupported(why)) => return refuse(StatusCode::NOT_FOUND, why),
        Err(e) => {
            // Not back yet after a restart, still checking its files, …: try again.
            let mut r = refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
    };
    let total = reader.len();
    let value = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match magnet_core::range::single(value, total) {
        Ok(r) => r,
        Err(magnet_core::range::Unsatisfiable) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{total}"))],
                "range not satisfiable",
            )
                .into_response();
        }
    };
    let (start, length) = range.unwrap_or((0, total));
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, length);
    response = match range {
        Some(_) => response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!(
                "bytes {start}-{}/{total}",
                start.saturating_add(length).saturating_sub(1)
            ),
        ),
        None => response.status(StatusCode::OK),
    };
    if method == Method::HEAD || length == 0 {
        return response
            .body(Body::empty())
            .unwrap_or_else(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()));
    }
    if let Err(e) = reader.seek(std::io::SeekFrom::Start(start)).await {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    let metrics = s.metrics.clone();
    metrics.open.inc();
    tracing::debug!(task = %id, file = index, start, length, "stream opened");
    let open = OpenBody {
        metrics: metrics.clone(),
        _permit: permit,
    };
    let body = ReaderStream::with_capacity(reader.take(length), CHUNK)
        .timeout(s.idle)
        .map(move |chunk| {
            let _still_open = &open;
            match chunk {
                Ok(Ok(bytes)) => {
                    metrics.bytes.inc_by(bytes.len() as u64);
                    Ok(bytes)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no progress; ended (reconnect to go on)",
                )),
            }
        });
    // A deleted task's torrent sends no more pieces, and a file no longer wanted must not be
    // fetched for a reader left open: its bodies end now, short, and a reader that reconnects
    // hears 404.
    let body = futures::StreamExt::take_until(body, ended.cancelled_owned());
    response
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}

/// Lives as long as a body: frees its place (the permit) and counts it out when dropped.
struct OpenBody {
    metrics: StreamMetrics,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for OpenBody {
    fn drop(&mut self) {
        tracing::debug!("stream closed");
        self.metrics.open.dec();
    }
}
