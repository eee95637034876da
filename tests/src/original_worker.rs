//! A stand-in for the original's Go worker node, speaking its side of `/ws/nodes` as
//! `original-as-built.md` describes it: a bare NodeInfo first, heartbeats, `tasks_response`,
//! `task_detail_response`, `task_status` after a submit, and a WebRTC answerer (webrtc-rs)
//! that serves an HLS folder with the original data-channel protocol only (`hijackReq` →
//! 16384-byte base64 slices as binary messages). Written from the reference, not from our
//! streamer, so that it checks our side against the contract.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCSessionDescription,
};

const SLICE: usize = 16384;

/// What a worker holds and how it behaves.
#[derive(Clone)]
pub struct Options {
    pub id: String,
    /// Heartbeat period (the original's is 30 s).
    pub heartbeat: Duration,
    /// Folder of HLS output: `<root>/<task_id>/index.m3u8`, … (served for
    /// `/video/<task_id>/<file>`).
    pub root: PathBuf,
    /// The tasks it reports, in the original's JSON.
    pub tasks: Vec<Value>,
}

/// One connection of the worker; dropping it closes the socket.
pub struct OriginalWorker {
    /// Magnets received in `task_submit`.
    pub submitted: Arc<Mutex<Vec<String>>>,
    /// Whether heartbeats are sent.
    pub heartbeats: Arc<AtomicBool>,
    /// Whether `get_tasks` goes unanswered (a worker too busy to answer).
    pub mute: Arc<AtomicBool>,
    /// `registration_confirmed` arrived.
    confirmed: tokio::sync::watch::Receiver<bool>,
    closed: tokio::sync::watch::Receiver<Option<String>>,
    out: mpsc::UnboundedSender<Message>,
    task: tokio::task::JoinHandle<()>,
}

/// What the handler of a peer connection reports.
enum PeerEvent {
    Candidate(String),
    Channel(Arc<dyn DataChannel>),
}

struct Handler(mpsc::UnboundedSender<PeerEvent>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.0.send(PeerEvent::Candidate(init.candidate));
        }
    }
    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.0.send(PeerEvent::Channel(channel));
    }
}

fn frame(kind: &str, payload: Value) -> Message {
    Message::Text(
        json!({ "type": kind, "payload": payload })
            .to_string()
            .into(),
    )
}

impl OriginalWorker {
    /// Dials `url` (`ws://…/ws/nodes?token=…`) and registers. An HTTP refusal of the upgrade
    /// is an error carrying its status.
    pub async fn connect(url: &str, opts: Options) -> anyhow::Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        let (mut sink, mut stream) = ws.split();
        let info = json!({
            "id": opts.id, "name": format!("Original {}", opts.id), "address": "127.0.0.1",
            "status": "online", "capabilities": ["torrent", "transcode", "webrtc"],
            "resources": {"max_downloads": 5, "max_transcodes": 2, "disk_space_gb": 500},
            "metadata": {"version": "1.0.0", "arch": "amd64"},
        });
        sink.send(Message::Text(info.to_string().into())).await?;
        let submitted: Arc<Mutex<Vec<String>>> = Arc::default();
        let heartbeats = Arc::new(AtomicBool::new(true));
        let mute = Arc::new(AtomicBool::new(false));
        let (confirmed_tx, confirmed) = tokio::sync::watch::channel(false);
        let (closed_tx, closed) = tokio::sync::watch::channel(None);
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (subs, beats, outbox) = (submitted.clone(), heartbeats.clone(), out.clone());
        let muted = mute.clone();
        let task = tokio::spawn(async move {
            let mut peers: HashMap<String, Arc<dyn PeerConnection>> = HashMap::new();
            let mut tick = tokio::time::interval(opts.heartbeat);
            let reason = loop {
                tokio::select! {
                    Some(m) = out_rx.recv() => {
                        if sink.send(m).await.is_err() {
                            break "send failed".to_owned();
                        }
                    }
                    _ = tick.tick() => {
                        if beats.load(Ordering::Relaxed) {
                            let hb = frame("heartbeat", json!({"timestamp": chrono::Utc::now().timestamp(), "node_id": opts.id}));
                            let _ = out.send(hb);
                        }
                    }
                    msg = stream.next() => match msg {
                        Some(Ok(Message::Text(text))) => {
                            let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                            if v["type"] == "get_tasks" && muted.load(Ordering::Relaxed) {
                                continue;
                            }
                            if let Err(e) = on_message(&v, &opts, &out, &subs, &confirmed_tx, &mut peers).await {
                                tracing::warn!(error = %e, "original worker stand-in: message failed");
                            }
                        }
                        Some(Ok(Message::Close(c))) => {
                            break c.map(|c| format!("{}: {}", c.code, c.reason)).unwrap_or_else(|| "closed".into());
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break e.to_string(),
                        None => break "ended".to_owned(),
                    }
                }
            };
            for pc in peers.values() {
                let _ = pc.close().await;
            }
            let _ = closed_tx.send(Some(reason));
        });
        Ok(Self {
            submitted,
            heartbeats,
            mute,
            confirmed,
            closed,
            out: outbox,
            task,
        })
    }

    /// Waits for `registration_confirmed`; an error when the socket closed first.
    pub async fn registered(&self) -> anyhow::Result<()> {
        let mut confirmed = self.confirmed.clone();
        let mut closed = self.closed.clone();
        // The reason is set before the connection's task ends (which also ends `confirmed`).
        let reason = || self.closed.borrow().clone().unwrap_or_default();
        tokio::select! {
            r = confirmed.wait_for(|c| *c) => match r {
                Ok(_) => Ok(()),
                Err(_) => bail!("closed before registration: {}", reason()),
            },
            _ = closed.wait_for(|c| c.is_some()) => bail!("closed before registration: {}", reason()),
            () = tokio::time::sleep(Duration::from_secs(10)) => bail!("no registration_confirmed in 10 s"),
        }
    }

    /// Waits until the gateway closes the socket; its close reason.
    pub async fn closed_by_gateway(&self, within: Duration) -> anyhow::Result<String> {
        let mut closed = self.closed.clone();
        let reason = tokio::time::timeout(within, closed.wait_for(|c| c.is_some()))
            .await
            .context("the socket stayed open")??
            .clone();
        Ok(reason.unwrap_or_default())
    }

    /// Sends a text message as is (floods, oversized messages).
    pub fn send_raw(&self, text: String) {
        let _ = self.out.send(Message::Text(text.into()));
    }

    pub fn close(self) {
        self.task.abort();
    }
}

impl Drop for OriginalWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn on_message(
    v: &Value,
    opts: &Options,
    out: &mpsc::UnboundedSender<Message>,
    submitted: &Mutex<Vec<String>>,
    confirmed: &tokio::sync::watch::Sender<bool>,
    peers: &mut HashMap<String, Arc<dyn PeerConnection>>,
) -> anyhow::Result<()> {
    let p = &v["payload"];
    let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
    match v["type"].as_str().unwrap_or_default() {
        "registration_confirmed" => {
            let _ = confirmed.send(true);
        }
        "get_tasks" => {
            let _ = out.send(frame(
                "tasks_response",
                json!({ "request_id": text("request_id"), "tasks": opts.tasks }),
            ));
        }
        "get_task_detail" => {
            let id = text("task_id");
            let task = opts.tasks.iter().find(|t| t["id"] == id.as_str()).map(|t| {
                let mut t = t.clone();
                let files: Vec<Value> = t["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| json!({"file_name": f, "file_size": 1, "file_path": f, "is_selected": true}))
                    .collect();
                t["files"] = Value::Array(files);
                t
            });
            let _ = out.send(frame(
                "task_detail_response",
                json!({ "task_id": id, "found": task.is_some(), "task": task }),
            ));
        }
        "task_submit" => {
            submitted.lock().await.push(text("magnet_url"));
            let id = format!("task_{}", chrono::Utc::now().timestamp_millis());
            let _ = out.send(frame(
                "task_status",
                json!({ "task_id": id, "status": "downloading", "progress": 0, "timestamp": chrono::Utc::now().timestamp() }),
            ));
        }
        "webrtc_offer" => {
            let session = text("session_id");
            if let Some(old) = peers.remove(&session) {
                let _ = old.close().await;
            }
            let pc = answer(&session, &text("sdp"), opts.root.clone(), out.clone()).await?;
            peers.insert(session, pc);
        }
        "ice_candidate" => {
            if let Some(pc) = peers.get(&text("session_id")) {
                let init = RTCIceCandidateInit {
                    candidate: text("candidate"),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                    ..Default::default()
                };
                let _ = pc.add_ice_candidate(init).await;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Answers a browser's offer and serves `filePathChannel` with the original protocol.
async fn answer(
    session: &str,
    sdp: &str,
    root: PathBuf,
    out: mpsc::UnboundedSender<Message>,
) -> anyhow::Result<Arc<dyn PeerConnection>> {
    let (tx, mut events) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(magnet_streamer::peer::setting_engine(4 * 1024 * 1024))
        .with_handler(Arc::new(Handler(tx)))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    pc.set_remote_description(RTCSessionDescription::offer(sdp.to_owned())?)
        .await?;
    let local = pc.create_answer(None).await?;
    pc.set_local_description(local).await?;
    let sdp = pc.local_description().await.context("no answer")?.sdp;
    let _ = out.send(frame(
        "webrtc_answer",
        json!({ "session_id": session, "sdp": sdp }),
    ));
    let session = session.to_owned();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                PeerEvent::Candidate(c) => {
                    let _ = out.send(frame(
                        "ice_candidate",
                        json!({ "session_id": session, "candidate": c }),
                    ));
                }
                // The original worker serves this label only.
                PeerEvent::Channel(dc) => {
                    if dc.label().await.is_ok_and(|l| l == "filePathChannel") {
                        tokio::spawn(serve(dc, root.clone()));
                    }
                }
            }
        }
    });
    Ok(pc)
}

async fn serve(dc: Arc<dyn DataChannel>, root: PathBuf) {
    while let Some(ev) = dc.poll().await {
        let DataChannelEvent::OnMessage(m) = ev else {
            if matches!(ev, DataChannelEvent::OnClose) {
                break;
            }
            continue;
        };
        let Ok(req) = serde_json::from_slice::<Value>(&m.data) else {
            continue;
        };
        if req["type"] != "hijackReq" {
            continue;
        }
        let id = req["id"].as_str().unwrap_or_default().to_owned();
        let url = req["ts"].as_str().unwrap_or_default();
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(url);
        let file = path
            .strip_prefix("/video/")
            .filter(|p| !p.split('/').any(|c| c == ".." || c.is_empty()))
            .map(|p| root.join(p));
        let bytes = match file.map(std::fs::read) {
            Some(Ok(b)) => b,
            _ => {
                let e = json!({"type": "hijackError", "id": id, "error": "file not found"});
                let _ = dc.send(BytesMut::from(e.to_string().as_bytes())).await;
                continue;
            }
        };
        let kind = if path.ends_with(".m3u8") || path.ends_with(".vtt") {
            "hijackRespText"
        } else {
            "hijackRespData"
        };
        let slices: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(SLICE).collect()
        };
        for (i, s) in slices.iter().enumerate() {
            let msg = json!({
                "type": kind, "id": id, "sliceNum": i, "totalSliceNum": slices.len(),
                "totalLength": bytes.len(), "payload": data_encoding::BASE64.encode(s),
            });
            if dc
                .send(BytesMut::from(msg.to_string().as_bytes()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
