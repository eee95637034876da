//! `GET /ws/clients?client_id=…`: the original's WebSocket signaling, relayed through one
//! signaling gRPC stream per browser connection. Frames are `{"type", "payload"}`:
//! browser → gateway `webrtc_offer {sdp, client_id, session_id, worker_id}` and
//! `ice_candidate {candidate, session_id, is_client}`; gateway → browser `webrtc_answer
//! {session_id, sdp}`, `ice_candidate {session_id, candidate}` and, ours, `error {session_id?,
//! message}` (the original client ignores unknown types).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use magnet_proto::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::auth::User;
use crate::error::{QueryParams, query};
use crate::{AppState, webrtc};

/// Largest WebSocket message accepted (an SDP is a few KiB).
const MAX_MESSAGE: usize = 64 * 1024;

/// The query of `GET /ws/clients`: the original client's `client_id`, only named in logs.
#[derive(Deserialize)]
pub struct Params {
    #[serde(default)]
    client_id: String,
}

/// `GET /ws/clients`: a browser's signaling WebSocket, relayed through a signaling stream;
/// it counts against the user's open streams while it lasts.
pub async fn clients(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    p: QueryParams<Params>,
    ws: WebSocketUpgrade,
) -> Response {
    let p = match query(p) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // Counts against the caller's open streams until the socket closes.
    let open = match s.streams.open(&user, peer) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let span = tracing::info_span!("ws_client", client = %p.client_id);
    ws.max_message_size(MAX_MESSAGE).on_upgrade(move |socket| {
        async move {
            relay(s, user, socket).await;
            drop(open);
        }
        .instrument(span)
    })
}

fn frame(kind: &str, payload: Value) -> Message {
    Message::Text(
        json!({ "type": kind, "payload": payload })
            .to_string()
            .into(),
    )
}

/// What a browser frame asks for, or why it cannot be read. Session ids are scoped to
/// `user` ([`webrtc::scoped`]).
fn parse(user: &User, text: &str) -> Result<pb::client_signal::Kind, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("malformed message: {e}"))?;
    let p = &v["payload"];
    let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
    match v["type"].as_str() {
        Some("webrtc_offer") => {
            if s("sdp").is_empty() || s("session_id").is_empty() {
                return Err("webrtc_offer needs payload.sdp and payload.session_id".into());
            }
            let session_id = webrtc::scoped(user, &s("session_id")).map_err(|e| e.message)?;
            Ok(pb::client_signal::Kind::Offer(pb::SessionOffer {
                node_id: s("worker_id"),
                session_id,
                sdp: s("sdp"),
            }))
        }
        Some("ice_candidate") if s("candidate").is_empty() => {
            Err("ice_candidate needs payload.candidate".into())
        }
        Some("ice_candidate") => Ok(pb::client_signal::Kind::Ice(pb::IceCandidate {
            candidate: s("candidate"),
            sdp_mid: p["sdpMid"].as_str().unwrap_or("0").to_owned(),
            sdp_mline_index: p["sdpMLineIndex"].as_u64().unwrap_or(0) as u32,
        })),
        Some(other) => Err(format!("unknown message type {other:?}")),
        None => Err("message has no type".into()),
    }
}

async fn relay(s: AppState, user: User, socket: WebSocket) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (to_signaling, rx) = mpsc::channel::<pb::ClientSignal>(64);
    let mut client = match s.signaling() {
        Ok(c) => c,
        Err(e) => {
            let _ = ws_tx
                .send(frame("error", json!({ "message": e.message })))
                .await;
            return;
        }
    };
    let mut inbound = match client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => {
            let _ = ws_tx
                .send(frame(
                    "error",
                    json!({ "message": format!("signaling unavailable: {}", e.message()) }),
                ))
                .await;
            return;
        }
    };
    loop {
        tokio::select! {
            () = s.shutdown.cancelled() => break,
            msg = ws_rx.next() => match msg {
                Some(Ok(Message::Text(text))) => match parse(&user, &text) {
                    Ok(kind) => {
                        if to_signaling.send(pb::ClientSignal { kind: Some(kind) }).await.is_err() {
                            break;
                        }
                    }
                    Err(message) => {
                        if ws_tx.send(frame("error", json!({ "message": message }))).await.is_err() {
                            break;
                        }
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            signal = inbound.message() => {
                let out = match signal {
                    Ok(Some(pb::ServerSignal { session_id, kind: Some(kind) })) => {
                        let session_id = webrtc::unscoped(&user, &session_id);
                        match kind {
                        pb::server_signal::Kind::Answer(a) => frame("webrtc_answer", json!({ "session_id": session_id, "sdp": a.sdp })),
                        pb::server_signal::Kind::Ice(c) => frame("ice_candidate", json!({ "session_id": session_id, "candidate": c.candidate })),
                        pb::server_signal::Kind::Error(e) => frame("error", json!({ "session_id": session_id, "message": e.message })),
                        }
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                };
                if ws_tx.send(out).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_signaling
        .send(pb::ClientSignal {
            kind: Some(pb::client_signal::Kind::Bye(pb::Bye {})),
        })
        .await;
}
