//! Serving one `filePathChannel`: a reader that parses requests and starts one task per
//! request (up to the session's limit), and one writer that sends their messages in turn
//! (several requests interleave chunk by chunk) with the channel's bounded send buffer as
//! back-pressure.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use crate::files::Root;
use crate::protocol::{self, Request, RequestError};
use crate::serve;

/// Limits and shared state of one session's channel.
pub struct Limits {
    pub max_in_flight: usize,
    /// Payload bytes per binary DATA frame (from the negotiated maximum message size).
    pub chunk: usize,
    /// Counts the bytes sent on the channel (all sessions share it).
    pub sent: prometheus_client::metrics::counter::Counter,
}

/// Serves the channel until it closes or `stop` fires. `activity` gets the time (ms since
/// the Unix epoch) of each request, for the idle timeout.
pub async fn serve(
    channel: Arc<dyn DataChannel>,
    root: Root,
    limits: Limits,
    activity: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(32);
    let writer_channel = channel.clone();
    let writer_stop = stop.clone();
    let sent = limits.sent.clone();
    let writer = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                m = rx.recv() => m,
                _ = writer_stop.cancelled() => None,
            };
            let Some(message) = message else { break };
            if let Err(e) = writer_channel.send(BytesMut::from(&message[..])).await {
                tracing::debug!(error = %e, "data channel send failed; closing");
                writer_stop.cancel();
                break;
            }
            sent.inc_by(message.len() as u64);
        }
    });

    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut cancels: HashMap<u32, CancellationToken> = HashMap::new();
    loop {
        let event = tokio::select! {
            e = channel.poll() => e,
            _ = stop.cancelled() => break,
        };
        let message = match event {
            Some(DataChannelEvent::OnMessage(m)) => m.data.freeze(),
            Some(DataChannelEvent::OnClose) | None => break,
            Some(_) => continue,
        };
        activity.store(now_ms(), Ordering::Relaxed);
        cancels.retain(|_, c| !c.is_cancelled());
        let request = match Request::parse(&message) {
            Ok(r) => r,
            Err(e) => {
                refuse(&tx, &message, &e).await;
                continue;
            }
        };
        if let Request::Cancel { id } = request {
            if let Some(c) = cancels.remove(&id) {
                c.cancel();
            }
            continue;
        }
        if in_flight.load(Ordering::Relaxed) >= limits.max_in_flight {
            let msg = format!(
                "too many requests in flight (limit {})",
                limits.max_in_flight
            );
            let reply = match &request {
                Request::Hijack { id, .. } => protocol::hijack_error(id, &msg),
                Request::Get { id, .. } => protocol::error_frame(*id, 429, &msg),
                Request::Cancel { .. } => continue,
            };
            let _ = tx.send(reply).await;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (root, out, counter, chunk) =
            (root.clone(), tx.clone(), in_flight.clone(), limits.chunk);
        let done = stop.child_token();
        if let Request::Get { id, .. } = &request {
            cancels.insert(*id, done.clone());
        }
        tokio::spawn(async move {
            match request {
                Request::Hijack { id, url } => {
                    serve::hijack(&root, &id, &url, &out).await;
                }
                Request::Get {
                    id,
                    url,
                    offset,
                    length,
                } => {
                    let started = std::time::Instant::now();
                    serve::get(&root, chunk, id, &url, offset, length, &out, &done).await;
                    tracing::debug!(%url, ms = started.elapsed().as_millis() as u64, "request answered");
                }
                Request::Cancel { .. } => {}
            }
            counter.fetch_sub(1, Ordering::Relaxed);
            done.cancel();
        });
    }
    stop.cancel();
    drop(tx);
    let _ = writer.await;
}

/// Answers a request that could not be parsed, in the protocol it seems to speak.
async fn refuse(tx: &mpsc::Sender<Bytes>, message: &[u8], error: &RequestError) {
    let value: Option<serde_json::Value> = serde_json::from_slice(message).ok();
    let is_get = value
        .as_ref()
        .and_then(|v| v.get("type"))
        .and_then(|t| t.as_str())
        == Some("get");
    let status = if matches!(error, RequestError::TooLarge(_)) {
        413
    } else {
        400
    };
    let reply = if is_get {
        let id = value
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(|i| i.as_u64())
            .unwrap_or(0) as u32;
        protocol::error_frame(id, status, &error.to_string())
    } else {
        protocol::hijack_error(
            &Request::id_of_malformed(message).unwrap_or_default(),
            &error.to_string(),
        )
    };
    tracing::debug!(%error, "request refused");
    let _ = tx.send(reply).await;
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it): the sessions'
/// activity and creation times, which the idle sweep compares.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
