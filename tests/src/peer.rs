//! A Rust WebRTC client (webrtc-rs, the streamer's own crate) that behaves like a browser:
//! signals through the signaling service's gRPC stream (as the gateway relays a browser),
//! opens `filePathChannel`, and fetches files with the original protocol or the binary one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use magnet_proto::v1 as pb;
use magnet_proto::v1::signaling_client::SignalingClient;
use magnet_streamer::protocol::{Frame, SLICE};
use tokio::sync::{Mutex, mpsc};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCSessionDescription,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Text(String),
    Num(u32),
}

/// A message as received: whether it came as a string, and its bytes.
pub type Received = (bool, Bytes);

type Routes = Arc<Mutex<HashMap<Key, mpsc::UnboundedSender<Received>>>>;

pub struct Client {
    pc: Arc<dyn PeerConnection>,
    dc: Arc<dyn DataChannel>,
    routes: Routes,
    next: AtomicU32,
    closed: tokio::sync::watch::Receiver<bool>,
    _signal: tokio::task::JoinHandle<()>,
}

struct Handler {
    candidates: mpsc::UnboundedSender<String>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.candidates.send(init.candidate);
        }
    }
}

impl Client {
    /// Connects to `node`'s streamer through the signaling service's gRPC stream (as the
    /// gateway does for a browser). Fails with the signaling error message when refused.
    pub async fn connect(signaling: SocketAddr, node: &str, session: &str) -> anyhow::Result<Self> {
        let (out_tx, out_rx) = mpsc::channel::<pb::ClientSignal>(64);
        let mut grpc = SignalingClient::connect(format!("http://{signaling}")).await?;
        let inbound = grpc
            .session(tokio_stream::wrappers::ReceiverStream::new(out_rx))
            .await?
            .into_inner();
        let inbound = inbound.map(|r| r.map_err(anyhow::Error::from));
        Self::establish(node, session, out_tx, Box::pin(inbound)).await
    }

    /// Connects through the gateway's `/ws/clients` WebSocket, speaking the original web
    /// client's messages (`webrtc_offer`, `ice_candidate`; `webrtc_answer`, `ice_candidate`).
    pub async fn connect_ws(
        gateway: SocketAddr,
        node: &str,
        session: &str,
    ) -> anyhow::Result<Self> {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let url = format!("ws://{gateway}/ws/clients?client_id={session}");
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        let (mut sink, stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<pb::ClientSignal>(64);
        let sid = session.to_owned();
        tokio::spawn(async move {
            while let Some(signal) = out_rx.recv().await {
                let frame = match signal.kind {
                    Some(pb::client_signal::Kind::Offer(o)) => {
                        serde_json::json!({"type": "webrtc_offer", "payload": {
                        "sdp": o.sdp, "client_id": o.session_id, "session_id": o.session_id, "worker_id": o.node_id }})
                    }
                    Some(pb::client_signal::Kind::Ice(c)) => {
                        serde_json::json!({"type": "ice_candidate", "payload": {
                        "candidate": c.candidate, "session_id": sid, "is_client": true }})
                    }
                    _ => continue,
                };
                if sink
                    .send(Message::Text(frame.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let inbound = stream.filter_map(|m| async move {
            let text = match m {
                Ok(Message::Text(t)) => t,
                Ok(_) => return None,
                Err(e) => return Some(Err(anyhow::Error::from(e))),
            };
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            let p = &v["payload"];
            let session_id = p["session_id"].as_str().unwrap_or_default().to_owned();
            let kind = match v["type"].as_str()? {
                "webrtc_answer" => pb::server_signal::Kind::Answer(pb::SessionAnswer {
                    sdp: p["sdp"].as_str()?.to_owned(),
                }),
                "ice_candidate" => pb::server_signal::Kind::Ice(pb::IceCandidate {
                    candidate: p["candidate"].as_str()?.to_owned(),
                    sdp_mid: "0".into(),
                    sdp_mline_index: 0,
                }),
                "error" => pb::server_signal::Kind::Error(pb::SignalError {
                    message: p["message"].as_str()?.to_owned(),
                }),
                _ => return None,
            };
            Some(Ok(pb::ServerSignal {
                session_id,
                kind: Some(kind),
            }))
        });
        Self::establish(node, session, out_tx, Box::pin(inbound)).await
    }

    /// Connects through the gateway's HTTP signaling: `POST /api/webrtc/offer` (answer in the
    /// reply), `POST /api/webrtc/ice` per local candidate, and `POST /api/webrtc/answer` polled
    /// for the streamer's later candidates.
    pub async fn connect_http(
        gateway: SocketAddr,
        node: &str,
        session: &str,
    ) -> anyhow::Result<Self> {
        Self::connect_http_as(gateway, node, session, None).await
    }

    /// [`Client::connect_http`] as the user whose session `token` is (accounts on).
    pub async fn connect_http_as(
        gateway: SocketAddr,
        node: &str,
        session: &str,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let base = format!("http://{gateway}/api/webrtc");
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {t}").parse()?,
            );
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        let (out_tx, mut out_rx) = mpsc::channel::<pb::ClientSignal>(64);
        let (in_tx, in_rx) = mpsc::channel::<anyhow::Result<pb::ServerSignal>>(64);
        let sid = session.to_owned();
        tokio::spawn(async move {
            let post = |path: &str, body: serde_json::Value| {
                let req = http.post(format!("{base}/{path}")).json(&body);
                async move {
                    let r = req.send().await?;
                    let status = r.status();
                    let v: serde_json::Value = r.json().await?;
                    anyhow::ensure!(status.is_success(), "{status}: {v}");
                    anyhow::Ok(v)
                }
            };
            let signal = |kind| pb::ServerSignal {
                session_id: sid.clone(),
                kind: Some(kind),
            };
            let mut poll = tokio::time::interval(Duration::from_millis(200));
            let mut answered = false;
            loop {
                tokio::select! {
                    out = out_rx.recv() => match out.and_then(|o| o.kind) {
                        Some(pb::client_signal::Kind::Offer(o)) => {
                            let body = serde_json::json!({ "sdp": o.sdp, "session_id": o.session_id, "client_id": o.session_id, "worker_id": o.node_id });
                            let reply = match post("offer", body).await {
                                Ok(v) => Ok(signal(pb::server_signal::Kind::Answer(pb::SessionAnswer {
                                    sdp: v["data"]["sdp"].as_str().unwrap_or_default().to_owned(),
                                }))),
                                Err(e) => Err(e),
                            };
                            answered = reply.is_ok();
                            if in_tx.send(reply).await.is_err() { break; }
                        }
                        Some(pb::client_signal::Kind::Ice(c)) => {
                            let body = serde_json::json!({ "session_id": sid, "candidate": c.candidate, "is_client": true });
                            if let Err(e) = post("ice", body).await {
                                tracing::warn!(error = %e, "ice not accepted");
                            }
                        }
                        Some(_) => {}
                        None => break,
                    },
                    _ = poll.tick(), if answered => {
                        let Ok(v) = post("answer", serde_json::json!({ "session_id": sid })).await else { break };
                        for c in v["data"]["candidates"].as_array().into_iter().flatten() {
                            let ice = pb::IceCandidate { candidate: c.as_str().unwrap_or_default().to_owned(), sdp_mid: "0".into(), sdp_mline_index: 0 };
                            if in_tx.send(Ok(signal(pb::server_signal::Kind::Ice(ice)))).await.is_err() { return; }
                        }
                    }
                }
            }
        });
        let inbound = tokio_stream::wrappers::ReceiverStream::new(in_rx);
        Self::establish(node, session, out_tx, Box::pin(inbound)).await
    }

    /// Offers, waits for the answer (or a refusal), trickles ICE, waits for the channel.
    async fn establish(
        node: &str,
        session: &str,
        out_tx: mpsc::Sender<pb::ClientSignal>,
        mut inbound: Signals,
    ) -> anyhow::Result<Self> {
        let (cand_tx, mut cand_rx) = mpsc::unbounded_channel();
        let (pc, dc, sdp) = offering_peer(cand_tx).await?;
        let answer = offer(&out_tx, &mut inbound, node, session, sdp, &pc).await?;
        pc.set_remote_description(RTCSessionDescription::answer(answer)?)
            .await?;
        // Trickle ICE both ways for the rest of the session.
        let signal_pc = pc.clone();
        let signal = tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(c) = cand_rx.recv() => {
                        let ice = pb::IceCandidate { candidate: c, sdp_mid: "0".into(), sdp_mline_index: 0 };
                        if out_tx.send(pb::ClientSignal { kind: Some(pb::client_signal::Kind::Ice(ice)) }).await.is_err() {
                            break;
                        }
                    }
                    msg = inbound.next() => match msg {
                        Some(Ok(pb::ServerSignal { kind: Some(pb::server_signal::Kind::Ice(c)), .. })) => {
                            let init = RTCIceCandidateInit { candidate: c.candidate, sdp_mid: Some("0".into()), sdp_mline_index: Some(0), ..Default::default() };
                            let _ = signal_pc.add_ice_candidate(init).await;
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
        });

        // Wait for the channel to open, then route everything it receives.
        let opened = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match dc.poll().await {
                    Some(DataChannelEvent::OnOpen) => return Ok(()),
                    Some(DataChannelEvent::OnClose) | None => {
                        return Err(anyhow!("channel closed before opening"));
                    }
                    Some(_) => {}
                }
            }
        })
        .await
        .context("data channel did not open in 15 s")?;
        opened?;
        let routes: Routes = Arc::default();
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let (reader_dc, reader_routes) = (dc.clone(), routes.clone());
        tokio::spawn(async move {
            while let Some(ev) = reader_dc.poll().await {
                match ev {
                    DataChannelEvent::OnMessage(m) => {
                        let data = m.data.freeze();
                        let Some(key) = key_of(&data) else { continue };
                        if let Some(route) = reader_routes.lock().await.get(&key) {
                            let _ = route.send((m.is_string, data));
                        }
                    }
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
            let _ = closed_tx.send(true);
        });
        Ok(Self {
            pc,
            dc,
            routes,
            next: AtomicU32::new(1),
            closed,
            _signal: signal,
        })
    }

    /// Waits until the channel closes (e.g. the streamer closed an idle session).
    pub async fn closed(&self) {
        let mut c = self.closed.clone();
        let _ = c.wait_for(|v| *v).await;
    }

    async fn route(&self, key: Key) -> mpsc::UnboundedReceiver<Received> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.lock().await.insert(key, tx);
        rx
    }

    /// Sends raw text as a request (hostile tests); replies are routed by `id`.
    pub async fn hijack_raw(&self, id: &str, text: &str) -> anyhow::Result<Vec<u8>> {
        let mut rx = self.route(Key::Text(id.into())).await;
        self.dc.send_text(text).await?;
        collect_hijack(&mut rx).await
    }

    /// The original protocol: `hijackReq` for `url`; the file's bytes or the `hijackError`.
    pub async fn hijack(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        let id = format!("req_{}", self.next.fetch_add(1, Ordering::Relaxed));
        let req = serde_json::json!({ "type": "hijackReq", "ts": url, "id": id });
        self.hijack_raw(&id, &req.to_string()).await
    }

    /// The binary protocol: bytes and content type of `url` (a range if asked), or the
    /// ERROR frame's status and message.
    pub async fn get(
        &self,
        url: &str,
        offset: u64,
        length: Option<u64>,
    ) -> anyhow::Result<Result<(Vec<u8>, String), (u16, String)>> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut rx = self.route(Key::Num(id)).await;
        let mut req = serde_json::json!({ "type": "get", "id": id, "path": url, "offset": offset });
        if let Some(l) = length {
            req["length"] = l.into();
        }
        self.dc.send_text(&req.to_string()).await?;
        let mut data = Vec::new();
        let mut content_type = String::new();
        let mut expected = None;
        loop {
            let (_, msg) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .context("no frame in 30 s")?
                .context("closed")?;
            match Frame::decode(msg).context("undecodable frame")? {
                Frame::Start {
                    length,
                    content_type: ct,
                    ..
                } => {
                    expected = Some(length);
                    content_type = ct;
                }
                Frame::Data { data: d, .. } => data.extend_from_slice(&d),
                Frame::End { .. } => {
                    anyhow::ensure!(
                        expected == Some(data.len() as u64),
                        "got {} bytes, START said {expected:?}",
                        data.len()
                    );
                    return Ok(Ok((data, content_type)));
                }
                Frame::Error {
                    status, message, ..
                } => return Ok(Err((status, message))),
            }
        }
    }

    /// Sends a cancel for a binary request id.
    pub async fn send_binary(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.dc.send(BytesMut::from(bytes)).await?;
        Ok(())
    }

    /// Closes the peer connection and ends the signaling (the WebSocket or stream closes).
    pub async fn close(&self) {
        let _ = self.pc.close().await;
        self._signal.abort();
    }
}

/// The client's SCTP receive window (`MAGNET_TEST_RWND_KIB`, default 4 MiB, like Chromium's).
fn receive_window() -> u32 {
    std::env::var("MAGNET_TEST_RWND_KIB")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(4 * 1024 * 1024, |k| k * 1024)
}

fn key_of(data: &Bytes) -> Option<Key> {
    if data.first() == Some(&b'{') {
        let v: serde_json::Value = serde_json::from_slice(data).ok()?;
        return Some(Key::Text(match v.get("id")? {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
    }
    match Frame::decode(data.clone())? {
        Frame::Start { id, .. }
        | Frame::Data { id, .. }
        | Frame::End { id }
        | Frame::Error { id, .. } => Some(Key::Num(id)),
    }
}

/// Assembles the original protocol's slices as its web client does (slice i at i × 16384,
/// complete on the last), insisting on binary messages and in-order slices.
async fn collect_hijack(rx: &mut mpsc::UnboundedReceiver<Received>) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut next_slice = 0u64;
    loop {
        let (is_string, msg) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .context("no reply in 30 s")?
            .context("closed")?;
        anyhow::ensure!(
            !is_string,
            "the original client drops string messages; replies must be binary"
        );
        let v: serde_json::Value = serde_json::from_slice(&msg)?;
        match v["type"].as_str() {
            Some("hijackError") => {
                bail!("hijackError: {}", v["error"].as_str().unwrap_or_default())
            }
            Some("hijackRespText" | "hijackRespData") => {
                let slice = v["sliceNum"].as_u64().context("sliceNum")?;
                let total = v["totalSliceNum"].as_u64().context("totalSliceNum")?;
                let len = v["totalLength"].as_u64().context("totalLength")?;
                anyhow::ensure!(
                    slice == next_slice,
                    "slice {slice} arrived, expected {next_slice}"
                );
                next_slice += 1;
                let payload = data_encoding::BASE64
                    .decode(v["payload"].as_str().context("payload")?.as_bytes())?;
                anyhow::ensure!(
                    slice + 1 == total || payload.len() == SLICE,
                    "slice {slice} has {} bytes",
                    payload.len()
                );
                out.resize(len as usize, 0);
                let at = slice as usize * SLICE;
                out[at..at + payload.len()].copy_from_slice(&payload);
                if slice + 1 == total {
                    return Ok(out);
                }
            }
            other => bail!("unexpected message type {other:?}"),
        }
    }
}

/// A peer connection on loopback with the `filePathChannel` data channel and its offer SDP;
/// its local candidates go to `candidates`.
async fn offering_peer(
    candidates: mpsc::UnboundedSender<String>,
) -> anyhow::Result<(Arc<dyn PeerConnection>, Arc<dyn DataChannel>, String)> {
    let engine = magnet_streamer::peer::setting_engine(receive_window());
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(engine)
        .with_handler(Arc::new(Handler { candidates }))
        .with_runtime(magnet_streamer::runtime::buffered(
            magnet_streamer::runtime::SOCKET_BUFFER,
        ))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let dc = pc.create_data_channel("filePathChannel", None).await?;
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    let sdp = pc
        .local_description()
        .await
        .context("no local description")?
        .sdp;
    Ok((pc, dc, sdp))
}

/// What signaling sends back, whichever way it travels.
type Signals =
    std::pin::Pin<Box<dyn futures::Stream<Item = anyhow::Result<pb::ServerSignal>> + Send>>;

/// Sends the offer `sdp` for `session` to `node` and returns the answer SDP; a refusal is an
/// error (and closes `pc`).
async fn offer(
    out: &mpsc::Sender<pb::ClientSignal>,
    inbound: &mut Signals,
    node: &str,
    session: &str,
    sdp: String,
    pc: &Arc<dyn PeerConnection>,
) -> anyhow::Result<String> {
    out.send(pb::ClientSignal {
        kind: Some(pb::client_signal::Kind::Offer(pb::SessionOffer {
            node_id: node.into(),
            session_id: session.into(),
            sdp,
        })),
    })
    .await?;
    // The answer (or a refusal) comes first.
    let first = tokio::time::timeout(Duration::from_secs(15), inbound.next())
        .await
        .context("no answer in 15 s")?
        .context("signaling closed the stream")??;
    match first.kind {
        Some(pb::server_signal::Kind::Answer(a)) => Ok(a.sdp),
        Some(pb::server_signal::Kind::Error(e)) => {
            let _ = pc.close().await;
            bail!("{}", e.message)
        }
        other => bail!("unexpected first signal {other:?}"),
    }
}

/// An offer that never connects: the answer is read and nothing more is done (no answer
/// applied, no candidates sent), while the signaling stream stays open as long as this lives.
pub struct Unanswered {
    _signals: mpsc::Sender<pb::ClientSignal>,
    pc: Arc<dyn PeerConnection>,
}

impl Unanswered {
    /// Offers session `session` to `node` through signaling; `Err` carries a refusal.
    pub async fn offer(signaling: SocketAddr, node: &str, session: &str) -> anyhow::Result<Self> {
        let (out_tx, out_rx) = mpsc::channel::<pb::ClientSignal>(8);
        let mut grpc = SignalingClient::connect(format!("http://{signaling}")).await?;
        let inbound = grpc
            .session(tokio_stream::wrappers::ReceiverStream::new(out_rx))
            .await?
            .into_inner();
        let mut inbound: Signals = Box::pin(inbound.map(|r| r.map_err(anyhow::Error::from)));
        let (cand_tx, _cand_rx) = mpsc::unbounded_channel();
        let (pc, _dc, sdp) = offering_peer(cand_tx).await?;
        offer(&out_tx, &mut inbound, node, session, sdp, &pc).await?;
        // Keep reading (the streamer's candidates), so the stream stays healthy.
        tokio::spawn(async move { while let Some(Ok(_)) = inbound.next().await {} });
        Ok(Self {
            _signals: out_tx,
            pc,
        })
    }

    pub async fn close(self) {
        let _ = self.pc.close().await;
    }
}
