//! `POST /api/webrtc/offer|answer|ice`: the original's HTTP signaling, for clients that do not
//! use the WebSocket. Each session is one signaling gRPC stream held by this gateway replica
//! (so `ice` and `answer` must reach the same replica; browsers use `/ws/clients`):
//!
//! - `offer {sdp, session_id?, client_id?, worker_id}` opens (or replaces) the session and
//!   waits for the streamer's answer: `{success, session_id, data: {session_id, sdp}}`. The
//!   answer already carries the streamer's host candidates.
//! - `ice {session_id, candidate, is_client}` forwards a browser candidate: `{success}`.
//! - `answer {session_id}` returns the answer again plus the streamer's candidates that
//!   trickled in since the last call: `{success, data: {session_id, sdp, candidates: [..]}}`.
//!   (In the original, workers posted their answers here; ours come from the streamer.)
//!
//! A session ends when its stream ends (the streamer or signaling closed it), or after
//! [`IDLE`] without a call (HTTP clients have no way to say goodbye; the bound is a film's
//! length, and at most [`MAX_SESSIONS`] are held). A session id in use cannot be offered again
//! (409): the old session's end would otherwise close the new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::{Extension, Json};
use magnet_core::{Reason, SessionId};
use magnet_proto::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::User;
use crate::error::{ApiError, ApiResult, JsonBody, json_body};

/// A session with no call for this long is closed.
pub const IDLE: Duration = Duration::from_secs(6 * 3600);
/// How long `offer` waits for the streamer's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(15);
/// Sessions one gateway replica holds for HTTP clients.
const MAX_SESSIONS: usize = 256;

struct Session {
    to_signaling: mpsc::Sender<pb::ClientSignal>,
    sdp: String,
    candidates: Arc<Mutex<Vec<String>>>,
    last_used: Instant,
    /// Set when the stream from signaling ends.
    ended: Arc<std::sync::atomic::AtomicBool>,
}

/// The HTTP clients' sessions of this replica.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Session>>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops ended and idle sessions (dropping a stream tells the streamer).
    fn reap(&self) {
        self.lock().retain(|_, s| {
            s.last_used.elapsed() < IDLE && !s.ended.load(std::sync::atomic::Ordering::Relaxed)
        });
    }
}

/// Longest session id a client may choose: what is left of [`SessionId`]'s 64 characters
/// after the owner's tag.
const MAX_CLIENT_SESSION_ID: usize = 64 - TAG_LEN - 1;
const TAG_LEN: usize = 12;

/// The session id as it travels past the gateway: the client's own id prefixed with a tag of
/// its user, so that sessions are scoped to the user who opened them (and the streamer can
/// limit sessions per user). Another user naming
/// the same id reaches a different session (none: 404), and can neither read its answer nor
/// add candidates to it nor replace it with a re-offer.
pub fn scoped(user: &User, raw: &str) -> ApiResult<String> {
    if raw.len() > MAX_CLIENT_SESSION_ID {
        return Err(ApiError::because(
            Reason::BodyInvalid,
            format!("session_id: at most {MAX_CLIENT_SESSION_ID} characters"),
        ));
    }
    let id = SessionId::parse(raw)
        .map_err(|e| ApiError::because(Reason::BodyInvalid, format!("session_id: {e}")))?;
    if user.is_local() {
        // No accounts: nobody to tell apart, and the streamer's per-user limit must not
        // count every viewer as one user.
        return Ok(id.to_string());
    }
    let digest = Sha256::digest(user.id.as_bytes());
    let tag = data_encoding::HEXLOWER.encode(&digest[..TAG_LEN / 2]);
    Ok(format!("{tag}_{id}"))
}

/// The client's own id back from a [`scoped`] one.
pub fn unscoped<'a>(user: &User, id: &'a str) -> &'a str {
    if user.is_local() {
        return id;
    }
    id.split_once('_')
        .filter(|(tag, _)| tag.len() == TAG_LEN)
        .map_or(id, |(_, rest)| rest)
}

/// The body of `POST /api/webrtc/offer`: the browser's SDP, its session id (or the
/// original's `client_id`), and the node to play from.
#[derive(Deserialize)]
pub struct Offer {
    sdp: String,
    #[serde(default)]
    session_id: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    worker_id: String,
}

/// `POST /api/webrtc/offer`: opens a session through signaling to the node's streamer and
/// waits for its answer SDP; 409 for a session id still in use.
pub async fn offer(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    b: JsonBody<Offer>,
) -> ApiResult<Json<Value>> {
    let o = json_body(b)?;
    if o.sdp.is_empty() {
        return Err(ApiError::because(Reason::BodyInvalid, "sdp is required"));
    }
    let raw = if o.session_id.is_empty() {
        &o.client_id
    } else {
        &o.session_id
    };
    let client_id = raw.clone();
    let id = scoped(&user, raw)?;
    s.webrtc.reap();
    {
        let sessions = s.webrtc.lock();
        if sessions.contains_key(&id) {
            return Err(ApiError::because(
                Reason::SessionInUse,
                "session id in use: offer under a new session id",
            ));
        }
        if sessions.len() >= MAX_SESSIONS {
            return Err(ApiError::because(
                Reason::SignalingUnavailable,
                "too many HTTP signaling sessions on this gateway; use /ws/clients",
            ));
        }
    }
    let (tx, rx) = mpsc::channel::<pb::ClientSignal>(32);
    let mut client = s.signaling()?;
    let mut inbound = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|e| {
            ApiError::because(
                Reason::SignalingUnavailable,
                format!("signaling unavailable: {}", e.message()),
            )
        })?
        .into_inner();
    let offer = pb::client_signal::Kind::Offer(pb::SessionOffer {
        node_id: o.worker_id,
        session_id: id.clone(),
        sdp: o.sdp,
    });
    tx.send(pb::ClientSignal { kind: Some(offer) })
        .await
        .map_err(|_| ApiError::because(Reason::SignalingUnavailable, "signaling stream closed"))?;
    let answer = tokio::time::timeout(ANSWER_WAIT, async {
        loop {
            match inbound.message().await {
                Ok(Some(pb::ServerSignal {
                    kind: Some(pb::server_signal::Kind::Answer(a)),
                    ..
                })) => {
                    return Ok(a.sdp);
                }
                Ok(Some(pb::ServerSignal {
                    kind: Some(pb::server_signal::Kind::Error(e)),
                    ..
                })) => {
                    return Err(ApiError::because(Reason::SignalingUnavailable, e.message));
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(ApiError::because(
                        Reason::SignalingUnavailable,
                        "signaling stream closed",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    })
    .await
    .map_err(|_| {
        ApiError::because(
            Reason::SignalingUnavailable,
            "the node's streamer did not answer in time",
        )
    })??;
    // The streamer's later candidates queue up for `answer`.
    let candidates = Arc::new(Mutex::new(Vec::new()));
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (queued, stream_ended) = (candidates.clone(), ended.clone());
    tokio::spawn(async move {
        while let Ok(Some(signal)) = inbound.message().await {
            if let Some(pb::server_signal::Kind::Ice(c)) = signal.kind {
                queued
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(c.candidate);
            }
        }
        stream_ended.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    s.webrtc.lock().insert(
        id.clone(),
        Session {
            to_signaling: tx,
            sdp: answer.clone(),
            candidates,
            last_used: Instant::now(),
            ended,
        },
    );
    Ok(Json(json!({
        "success": true,
        "session_id": client_id,
        "data": { "session_id": client_id, "sdp": answer },
    })))
}

/// The body of `POST /api/webrtc/ice`: a browser candidate for a session (`sdpMid` and
/// `sdpMLineIndex` default to `"0"` and 0).
#[derive(Deserialize)]
pub struct Ice {
    session_id: String,
    candidate: String,
    #[serde(default, rename = "sdpMid")]
    sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    sdp_mline_index: Option<u32>,
}

/// `POST /api/webrtc/ice`: forwards a browser candidate to the session's streamer; 404 for
/// a session this replica does not hold for the caller.
pub async fn ice(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    b: JsonBody<Ice>,
) -> ApiResult<Json<Value>> {
    let i = json_body(b)?;
    s.webrtc.reap();
    let id = scoped(&user, &i.session_id)?;
    let tx = {
        let mut sessions = s.webrtc.lock();
        let session = sessions.get_mut(&id).ok_or_else(unknown)?;
        session.last_used = Instant::now();
        session.to_signaling.clone()
    };
    let signal = pb::client_signal::Kind::Ice(pb::IceCandidate {
        candidate: i.candidate,
        sdp_mid: i.sdp_mid.unwrap_or_else(|| "0".into()),
        sdp_mline_index: i.sdp_mline_index.unwrap_or(0),
    });
    tx.send(pb::ClientSignal { kind: Some(signal) })
        .await
        .map_err(|_| ApiError::because(Reason::SessionUnknown, "session closed"))?;
    Ok(Json(json!({ "success": true })))
}

/// The body of `POST /api/webrtc/answer`: the session to read.
#[derive(Deserialize)]
pub struct Answer {
    session_id: String,
}

/// `POST /api/webrtc/answer`: the answer SDP again, and the streamer's candidates that
/// arrived since the last call.
pub async fn answer(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    b: JsonBody<Answer>,
) -> ApiResult<Json<Value>> {
    let a = json_body(b)?;
    s.webrtc.reap();
    let id = scoped(&user, &a.session_id)?;
    let mut sessions = s.webrtc.lock();
    let session = sessions.get_mut(&id).ok_or_else(unknown)?;
    session.last_used = Instant::now();
    let candidates: Vec<String> =
        std::mem::take(&mut *session.candidates.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Json(json!({
        "success": true,
        "data": { "session_id": a.session_id, "sdp": session.sdp, "candidates": candidates },
    })))
}

fn unknown() -> ApiError {
    ApiError::because(
        Reason::SessionUnknown,
        "unknown session on this gateway (or it has ended)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            username: id.into(),
            role: crate::auth::Role::User,
            is_banned: false,
            created_at: String::new(),
            password_hash: String::new(),
        }
    }

    #[test]
    fn sessions_are_scoped_to_their_user() {
        let id = "client-1700000000000-abcdefghi";
        let (a, b) = (scoped(&user("alice"), id), scoped(&user("bob"), id));
        let (a, b) = (a.expect("alice"), b.expect("bob"));
        assert_ne!(a, b);
        assert!(SessionId::parse(&a).is_ok(), "{a}");
        assert_eq!(unscoped(&user("alice"), &a), id);
        assert!(scoped(&user("alice"), &"x".repeat(52)).is_err());
        assert!(scoped(&user("alice"), "bad id").is_err());
    }
}
