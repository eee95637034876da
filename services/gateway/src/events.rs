//! Live task updates for browsers: `GET /api/events`, server-sent events fed from the nodes'
//! progress messages on core NATS (`magnet.progress.>`). One NATS subscription per gateway,
//! fanned out to every browser through a broadcast channel; a browser that falls behind
//! skips to the newest events (each carries the task's whole live state, so nothing is lost
//! but intermediate values).
//!
//! Each event is `event: task` with data
//! `{id, worker_id, status, progress, speed, downloaded, size, peers, detail, playable,
//! transcode_progress}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use magnet_proto::v1 as pb;
use prost::Message;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::auth::User;
use crate::convert;
use crate::error::ApiResult;

/// Events kept for browsers that read slowly.
const BACKLOG: usize = 1024;

/// The fan-out of progress events (JSON text of each).
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<String>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Events {
    /// Reads the progress subjects until `shutdown`, publishing each event to subscribers.
    pub async fn feed(self, nats: async_nats::Client, shutdown: CancellationToken) {
        let mut sub = match nats
            .subscribe(magnet_runtime::subjects::PROGRESS_WILDCARD)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot subscribe to task progress; no live updates");
                return;
            }
        };
        loop {
            let msg = tokio::select! {
                m = sub.next() => match m { Some(m) => m, None => break },
                () = shutdown.cancelled() => break,
            };
            match pb::TaskProgress::decode(msg.payload) {
                Ok(p) => {
                    // No subscriber is fine: nobody is watching.
                    let _ = self.tx.send(to_json(&p));
                }
                Err(e) => {
                    tracing::debug!(subject = %msg.subject, error = %e, "bad progress message")
                }
            }
        }
    }

    /// A receiver of every event published from now on; each `GET /api/events` takes one.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }
}

fn to_json(p: &pb::TaskProgress) -> String {
    json!({
        "id": p.task_id,
        "worker_id": p.node_id,
        "status": convert::status(p.status()),
        "progress": convert::download_percent(p.status(), p.progress),
        "speed": p.speed,
        "downloaded": p.downloaded,
        "size": p.size,
        "peers": p.peers,
        "detail": p.detail,
        "playable": p.playable || p.status() == pb::TaskStatus::Ready,
        "transcode_progress": convert::percent(p.transcode_progress),
        "paused": p.paused,
        "uploaded": p.uploaded,
        "ratio": convert::ratio(p.uploaded, p.size),
        "seeding": convert::seeding(p.status(), &p.seeding_stopped),
        "seeding_stopped": p.seeding_stopped,
    })
    .to_string()
}

/// `GET /api/events`; counts against the caller's open streams while it lasts.
pub async fn stream(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let guard = s.streams.open(&user, peer)?;
    let events = BroadcastStream::new(s.events.subscribe()).filter_map(move |e| {
        let _open = &guard;
        async move {
            match e {
                Ok(data) => Some(Ok(Event::default().event("task").data(data))),
                // Skipped some: the next events carry the whole state again.
                Err(BroadcastStreamRecvError::Lagged(_)) => None,
            }
        }
    });
    // Ends on shutdown, so the server's graceful stop does not wait for browsers.
    let events = events.take_until(s.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
