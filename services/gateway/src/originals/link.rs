//! One original worker's WebSocket, from its registration to its close:
//!
//! - its record in the node registry, refreshed while the socket lives (status `offline` after
//!   `offline_after_secs` without a heartbeat, the socket dropped after `forget_after_secs`),
//!   always compare-and-set on the revision this connection wrote, so that a newer connection
//!   under the same id wins and this one's cleanup never deletes that registration (the
//!   original's gateway did);
//! - calls from any gateway replica (`OriginalCall` on `subjects::original_calls`), turned into
//!   `get_tasks`, `get_task_detail` and `task_submit`, matched with the worker's answers;
//! - a browser session's offer and ICE from signaling (as a streamer receives them), sent down
//!   as `webrtc_offer` and `ice_candidate`; the worker's `webrtc_answer` and `ice_candidate`
//!   back to the session.
//!
//! One writer task owns the socket's sending half (the original wrote from several goroutines
//! without a lock). Every wait on the worker is bounded by `answer_timeout_secs`; what the
//! worker may send is bounded in size (`max_message_kib`) and rate (`messages_per_second`).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::{SinkExt, StreamExt};
use governor::{Quota, RateLimiter};
use magnet_core::{NodeId, SessionId};
use magnet_proto::v1 as pb;
use magnet_runtime::subjects;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::Workers;
use super::wire::{self, Inbound, NodeInfo, OriginalTask, SUMMARY_FILES};

/// The worker must register within this long of connecting.
const REGISTER_WITHIN: Duration = Duration::from_secs(10);
/// Calls of one kind waiting on the worker at once.
const MAX_PENDING: usize = 64;
/// Files of a task answered to a `get` without a page size (as our nodes answer).
const FILES_PAGE: usize = 1000;
/// Frames queued for the worker.
const OUTBOX: usize = 64;

/// Calls waiting for the worker's answer.
#[derive(Default)]
struct Pending {
    lists: HashMap<String, oneshot::Sender<Vec<OriginalTask>>>,
    details: HashMap<String, Vec<oneshot::Sender<Option<Box<OriginalTask>>>>>,
    /// The next `task_status` answers the oldest submit (they take turns, see `submit`).
    submits: VecDeque<oneshot::Sender<String>>,
    answers: HashMap<String, oneshot::Sender<String>>,
}

/// What the call handlers of one connection share.
struct Shared {
    node: NodeId,
    outbox: mpsc::Sender<Message>,
    pending: std::sync::Mutex<Pending>,
    /// Submits take turns: the worker's `task_status` does not say which submit it answers.
    submitting: tokio::sync::Mutex<()>,
    timeout: Duration,
    nats: async_nats::Client,
    requests: AtomicU64,
}

type Reply = Result<pb::original_reply::Kind, String>;

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(&self, text: String) -> Result<(), String> {
        self.outbox
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| format!("original worker {}: connection closed", self.node))
    }

    fn silent(&self, what: &str) -> String {
        format!(
            "original worker {} did not {what} within {} s",
            self.node,
            self.timeout.as_secs()
        )
    }

    fn busy(&self) -> String {
        format!("original worker {}: too many calls waiting", self.node)
    }

    async fn list(&self) -> Reply {
        let now = chrono::Utc::now();
        // The original's `req_<ns>_<s>`, made unique per connection.
        let ns = now.timestamp_nanos_opt().unwrap_or_default();
        let request_id = format!(
            "req_{}_{}",
            ns.saturating_add_unsigned(self.requests.fetch_add(1, Ordering::Relaxed)),
            now.timestamp()
        );
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending();
            if p.lists.len() >= MAX_PENDING {
                return Err(self.busy());
            }
            p.lists.insert(request_id.clone(), tx);
        }
        self.send(wire::get_tasks(&request_id)).await?;
        let tasks = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(tasks)) => tasks,
            _ => {
                self.pending().lists.remove(&request_id);
                return Err(self.silent("list its tasks"));
            }
        };
        let tasks = tasks
            .into_iter()
            .filter_map(|t| t.into_task(self.node.as_str(), 0, SUMMARY_FILES))
            .collect();
        Ok(pb::original_reply::Kind::List(pb::ListResponse { tasks }))
    }

    async fn get(&self, req: pb::GetRequest) -> Reply {
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending();
            if p.details.len() >= MAX_PENDING {
                return Err(self.busy());
            }
            p.details.entry(req.task_id.clone()).or_default().push(tx);
        }
        self.send(wire::get_task_detail(&req.task_id)).await?;
        let task = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(task)) => task,
            _ => {
                let mut p = self.pending();
                if let Some(waiting) = p.details.get_mut(&req.task_id) {
                    waiting.retain(|w| !w.is_closed());
                    if waiting.is_empty() {
                        p.details.remove(&req.task_id);
                    }
                }
                return Err(self.silent("describe the task"));
            }
        };
        let limit = match req.files_limit {
            0 => FILES_PAGE,
            n => (n as usize).min(FILES_PAGE),
        };
        Ok(
            match task.and_then(|t| {
                t.into_task(self.node.as_str(), req.files_offset as usize, limit)
            }) {
                Some(t) => pb::original_reply::Kind::Task(t),
                None => pb::original_reply::Kind::NotFound(true),
            },
        )
    }

    /// `task_submit`; the worker's `task_status` that follows names the new task. Without
    /// one in time the submit still went out: the answer then has no task.
    async fn submit(&self, req: pb::SubmitRequest) -> Reply {
        let _turn = self.submitting.lock().await;
        let (tx, rx) = oneshot::channel();
        self.pending().submits.push_back(tx);
        self.send(wire::task_submit(&req.magnet_url)).await?;
        let task = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(task_id)) => Some(pb::Task {
                id: task_id,
                magnet_url: req.magnet_url,
                status: pb::TaskStatus::Downloading.into(),
                worker_id: self.node.to_string(),
                created_at: chrono::Utc::now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ..Default::default()
            }),
            _ => {
                self.pending().submits.clear();
                tracing::warn!(node = %self.node, "original worker sent no task_status after a submit");
                None
            }
        };
        Ok(pb::original_reply::Kind::Submitted(pb::SubmitResponse {
            task,
            existing: false,
        }))
    }

    /// A browser's offer, from signaling: the worker's answer SDP, or why not.
    async fn offer(&self, offer: pb::StreamerOffer) -> pb::StreamerAnswer {
        let refuse = |error: String| pb::StreamerAnswer {
            sdp: String::new(),
            error,
        };
        let session = match SessionId::parse(&offer.session_id) {
            Ok(s) => s,
            Err(e) => return refuse(e.to_string()),
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending();
            if p.answers.len() >= MAX_PENDING {
                return refuse(self.busy());
            }
            // A re-offer under the same session replaces the one waiting.
            p.answers.insert(session.to_string(), tx);
        }
        let sent = self
            .send(wire::webrtc_offer(
                self.node.as_str(),
                session.as_str(),
                &offer.sdp,
            ))
            .await;
        if let Err(e) = sent {
            return refuse(e);
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(sdp)) => pb::StreamerAnswer {
                sdp,
                error: String::new(),
            },
            _ => {
                self.pending().answers.remove(session.as_str());
                refuse(self.silent("answer the offer"))
            }
        }
    }

    /// Applies one message of the worker.
    async fn inbound(&self, msg: Inbound, last_heartbeat: &mut Instant) {
        match msg {
            Inbound::Heartbeat => *last_heartbeat = Instant::now(),
            Inbound::TaskStatus { task_id } => {
                if let Some(w) = self.pending().submits.pop_front() {
                    let _ = w.send(task_id);
                }
            }
            Inbound::Tasks { request_id, tasks } => {
                if let Some(w) = self.pending().lists.remove(&request_id) {
                    let _ = w.send(tasks);
                }
            }
            Inbound::TaskDetail { task_id, task } => {
                for w in self.pending().details.remove(&task_id).unwrap_or_default() {
                    let _ = w.send(task.clone());
                }
            }
            Inbound::Answer { session_id, sdp } => {
                if let Some(w) = self.pending().answers.remove(&session_id) {
                    let _ = w.send(sdp);
                }
            }
            Inbound::Ice {
                session_id,
                candidate,
            } => {
                let Ok(session) = SessionId::parse(&session_id) else {
                    return;
                };
                if candidate.is_empty() {
                    return;
                }
                let ice = pb::SessionIce {
                    session_id: session.to_string(),
                    candidate: Some(pb::IceCandidate {
                        candidate,
                        sdp_mid: "0".into(),
                        sdp_mline_index: 0,
                    }),
                };
                let subject = subjects::signal_to_client(session.as_str());
                if let Err(e) = self
                    .nats
                    .publish(subject, ice.encode_to_vec().into())
                    .await
                {
                    tracing::debug!(error = %e, "worker candidate not relayed");
                }
            }
            Inbound::Other(kind) => tracing::debug!(%kind, "original worker message ignored"),
        }
    }

    /// Answers one call from a gateway replica.
    async fn answer_call(self: Arc<Self>, msg: async_nats::Message) {
        let Some(reply_to) = msg.reply.clone() else {
            return;
        };
        let reply = match pb::OriginalCall::decode(msg.payload) {
            Ok(pb::OriginalCall {
                kind: Some(pb::original_call::Kind::List(_)),
            }) => self.list().await,
            Ok(pb::OriginalCall {
                kind: Some(pb::original_call::Kind::Get(g)),
            }) => self.get(g).await,
            Ok(pb::OriginalCall {
                kind: Some(pb::original_call::Kind::Submit(s)),
            }) => self.submit(s).await,
            Ok(_) => Err("empty call".into()),
            Err(e) => Err(format!("malformed call: {e}")),
        };
        let reply = pb::OriginalReply {
            kind: Some(reply.unwrap_or_else(pb::original_reply::Kind::Error)),
        };
        if let Err(e) = self
            .nats
            .publish(reply_to, reply.encode_to_vec().into())
            .await
        {
            tracing::debug!(error = %e, "call reply not sent");
        }
    }

    async fn answer_offer(self: Arc<Self>, msg: async_nats::Message) {
        let Some(reply_to) = msg.reply.clone() else {
            return;
        };
        let answer = match pb::StreamerOffer::decode(msg.payload) {
            Ok(offer) => self.offer(offer).await,
            Err(e) => pb::StreamerAnswer {
                sdp: String::new(),
                error: format!("malformed offer: {e}"),
            },
        };
        if let Err(e) = self
            .nats
            .publish(reply_to, answer.encode_to_vec().into())
            .await
        {
            tracing::debug!(error = %e, "answer not sent");
        }
    }

    /// The browser's ICE (or its end) for one session, from signaling.
    async fn session_signal(&self, msg: async_nats::Message) {
        if !msg.subject.ends_with(".ice") {
            return; // a bye: the original has no message for it
        }
        let Ok(ice) = pb::SessionIce::decode(msg.payload) else {
            return;
        };
        if let Some(c) = ice.candidate {
            let _ = self
                .send(wire::ice_candidate(&ice.session_id, &c.candidate))
                .await;
        }
    }
}

/// Why a connection ended.
enum End {
    /// Closed by the worker, the network, or our shutdown.
    Closed,
    /// A newer connection under the same id took the record over: leave it alone.
    Superseded,
    /// We close it, saying why.
    Refused(String),
}

/// Closes a socket that never registered, with a reason the worker's log shows.
async fn refuse(mut socket: WebSocket, code: u16, reason: String) {
    tracing::warn!(%reason, "original worker refused");
    let close = CloseFrame {
        code,
        reason: reason.chars().take(120).collect::<String>().into(),
    };
    let _ = socket.send(Message::Close(Some(close))).await;
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The whole life of one worker's socket.
pub(super) async fn run(workers: Workers, mut socket: WebSocket, peer: std::net::SocketAddr) {
    let first = tokio::time::timeout(REGISTER_WITHIN, socket.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else {
        return refuse(
            socket,
            close_code::POLICY,
            "expected the worker's NodeInfo first".into(),
        )
        .await;
    };
    let (node, info) = match NodeInfo::parse(&text) {
        Ok(x) => x,
        Err(e) => return refuse(socket, close_code::POLICY, e.to_string()).await,
    };
    if let Err(why) = workers.admit(&node).await {
        return refuse(socket, close_code::AGAIN, why).await;
    }
    let connection = format!("{:016x}", rand::random::<u64>());
    let record = info.record(&connection, now_ms());
    let revision = match workers
        .bucket
        .put(node.as_str(), record.encode_to_vec().into())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let why = format!("node registry unavailable: {e}");
            return refuse(socket, close_code::AGAIN, why).await;
        }
    };
    let span = tracing::info_span!("original_worker", node = %node, %connection);
    connected(workers, socket, node, record, revision, peer)
        .instrument(span)
        .await;
}

/// A registered worker's socket, until it closes.
async fn connected(
    workers: Workers,
    socket: WebSocket,
    node: NodeId,
    mut record: pb::NodeRecord,
    revision: u64,
    peer: std::net::SocketAddr,
) {
    tracing::info!(%peer, name = %record.name, "original worker registered");
    let (mut sink, stream) = socket.split();
    let (outbox, mut frames) = mpsc::channel::<Message>(OUTBOX);
    let writer = tokio::spawn(async move {
        while let Some(m) = frames.recv().await {
            let closing = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let shared = Arc::new(Shared {
        node: node.clone(),
        outbox,
        pending: std::sync::Mutex::default(),
        submitting: tokio::sync::Mutex::new(()),
        timeout: Duration::from_secs(workers.settings.answer_timeout_secs),
        nats: workers.nats.clone(),
        requests: AtomicU64::new(0),
    });
    let (revision, end) = serve(&workers, &shared, stream, &mut record, revision).await;
    let close = match &end {
        End::Refused(why) => {
            tracing::warn!(%why, "original worker dropped");
            Some(CloseFrame {
                code: close_code::POLICY,
                reason: why.chars().take(120).collect::<String>().into(),
            })
        }
        _ => None,
    };
    let _ = shared.outbox.send(Message::Close(close)).await;
    if matches!(end, End::Superseded) {
        tracing::info!("original worker reconnected; this older connection closed");
    } else {
        // Only while the record is still this connection's.
        if let Err(e) = workers
            .bucket
            .delete_expect_revision(node.as_str(), Some(revision))
            .await
        {
            tracing::debug!(error = %e, "record not deleted (a newer connection holds it)");
        }
        tracing::info!("original worker left");
    }
    drop(shared);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

/// The connection's loop; returns the record's last revision and why it ended.
async fn serve(
    workers: &Workers,
    shared: &Arc<Shared>,
    mut stream: futures::stream::SplitStream<WebSocket>,
    record: &mut pb::NodeRecord,
    mut revision: u64,
) -> (u64, End) {
    let node = shared.node.clone();
    let nats = &workers.nats;
    let subscribed = async {
        Ok::<_, async_nats::SubscribeError>((
            nats.subscribe(subjects::original_calls(node.as_str(), &record.connection))
                .await?,
            nats.subscribe(subjects::signal_offer(node.as_str())).await?,
            nats.subscribe(subjects::signal_sessions(node.as_str()))
                .await?,
        ))
    }
    .await;
    let (mut calls, mut offers, mut sessions) = match subscribed {
        Ok(s) => s,
        Err(e) => return (revision, End::Refused(format!("NATS: {e}"))),
    };
    let mut watch = match workers.bucket.watch(node.as_str()).await {
        Ok(w) => w,
        Err(e) => return (revision, End::Refused(format!("node registry: {e}"))),
    };
    if shared
        .send(wire::registration_confirmed(node.as_str()))
        .await
        .is_err()
    {
        return (revision, End::Closed);
    }
    let rate = workers.settings.messages_per_second;
    let per_second = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.saturating_mul(2)).unwrap_or(per_second);
    let limiter = RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst));
    let offline_after = Duration::from_secs(workers.settings.offline_after_secs);
    let forget_after = Duration::from_secs(workers.settings.forget_after_secs);
    let mut last_heartbeat = Instant::now();
    let mut refresh = tokio::time::interval(workers.refresh);
    refresh.reset();
    let mut handlers = JoinSet::new();
    let end = loop {
        tokio::select! {
            () = workers.shutdown.cancelled() => break End::Closed,
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if limiter.check().is_err() {
                        break End::Refused(format!(
                            "more than {} messages a second", workers.settings.messages_per_second
                        ));
                    }
                    match Inbound::parse(&text) {
                        Ok(m) => {
                            let was_offline = last_heartbeat.elapsed() > offline_after;
                            shared.inbound(m, &mut last_heartbeat).await;
                            if was_offline && last_heartbeat.elapsed() < offline_after {
                                refresh.reset_immediately();
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "unreadable message from the worker"),
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    if limiter.check().is_err() {
                        break End::Refused("message rate".into());
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break End::Closed,
                Some(Ok(_)) => {}
            },
            Some(msg) = calls.next() => {
                handlers.spawn(shared.clone().answer_call(msg));
            }
            Some(msg) = offers.next() => {
                handlers.spawn(shared.clone().answer_offer(msg));
            }
            Some(msg) = sessions.next() => shared.session_signal(msg).await,
            Some(Ok(entry)) = watch.next() => {
                if entry.operation == kv::Operation::Put
                    && pb::NodeRecord::decode(entry.value).is_ok_and(|r| r.connection != record.connection)
                {
                    break End::Superseded;
                }
            }
            _ = refresh.tick() => {
                let silent = last_heartbeat.elapsed();
                if silent > forget_after {
                    break End::Refused(format!("no heartbeat for {} s", silent.as_secs()));
                }
                record.status = if silent > offline_after { "offline" } else { "online" }.into();
                record.last_seen_ms = now_ms();
                match keep(workers, record, revision).await {
                    Kept::Yes(r) => revision = r,
                    Kept::Superseded => break End::Superseded,
                    Kept::Failed(e) => tracing::warn!(error = %e, "record not refreshed; next tick"),
                }
            }
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
        }
    };
    handlers.abort_all();
    (revision, end)
}

enum Kept {
    Yes(u64),
    Superseded,
    Failed(String),
}

/// Writes `record` over the revision this connection wrote last. When that fails because
/// the key moved: a newer connection holds it (superseded), or it expired or was deleted
/// (written again).
async fn keep(workers: &Workers, record: &pb::NodeRecord, revision: u64) -> Kept {
    let key = record.id.as_str();
    let bytes: bytes::Bytes = record.encode_to_vec().into();
    match workers.bucket.update(key, bytes.clone(), revision).await {
        Ok(r) => return Kept::Yes(r),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
        Err(e) => return Kept::Failed(e.to_string()),
    }
    match workers.bucket.entry(key).await {
        Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
            match pb::NodeRecord::decode(entry.value) {
                Ok(r) if r.connection != record.connection => Kept::Superseded,
                _ => match workers.bucket.update(key, bytes, entry.revision).await {
                    Ok(r) => Kept::Yes(r),
                    Err(e) => Kept::Failed(e.to_string()),
                },
            }
        }
        Ok(_) => match workers.bucket.create(key, bytes).await {
            Ok(r) => Kept::Yes(r),
            Err(e) => Kept::Failed(e.to_string()),
        },
        Err(e) => Kept::Failed(e.to_string()),
    }
}
