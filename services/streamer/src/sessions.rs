//! The node's WebRTC sessions: answering offers that arrive over NATS (request/reply), trickle
//! ICE both ways, limits (sessions per node and per user, reserved atomically; idle timeout;
//! sessions that never connect), and clean-up when either side leaves. A new offer under a
//! live session id replaces that session.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use magnet_core::SessionId;
use magnet_proto::v1 as pb;
use magnet_runtime::turn::TurnServers;
use magnet_runtime::{Settings, subjects, telemetry};
use prost::Message as _;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription};

use crate::channel::{self, Limits, now_ms};
use crate::files::Root;
use crate::peer::{self, Peer, PeerEvent};
use crate::slots::{Slot, Slots};
use crate::{Error, Metrics, Result};

struct Session {
    peer: Peer,
    stop: CancellationToken,
    activity: Arc<AtomicU64>,
    /// When the answer went out, and whether the peer connection ever connected: one that
    /// has not after `streamer.connect_timeout_secs` is closed, freeing its slot.
    created_ms: u64,
    connected: Arc<AtomicBool>,
    /// Its place in the node's limits, freed when the session leaves the table.
    _slot: Slot,
}

/// The node's WebRTC sessions: answers the offers signaling sends over NATS within the
/// node's slots, routes ICE and byes, and closes idle sessions.
pub struct Sessions {
    settings: Settings,
    root: Root,
    nats: async_nats::Client,
    live: Mutex<HashMap<SessionId, Session>>,
    slots: Slots,
    metrics: Metrics,
    /// The TURN servers the streamer's own side uses.
    turn: TurnServers,
}

impl Sessions {
    /// Slots come from `streamer.max_sessions` and `max_sessions_per_user`; nothing runs until
    /// [`Sessions::run`].
    pub fn new(
        settings: Settings,
        root: Root,
        nats: async_nats::Client,
        metrics: Metrics,
        turn: TurnServers,
    ) -> Arc<Self> {
        let slots = Slots::new(
            settings.streamer.max_sessions,
            settings.streamer.max_sessions_per_user,
        );
        Arc::new(Self {
            settings,
            root,
            nats,
            live: Mutex::new(HashMap::new()),
            slots,
            metrics,
            turn,
        })
    }

    /// Sessions in the table now: from their answer until they close, idle out or shutdown.
    pub async fn count(&self) -> usize {
        self.live.lock().await.len()
    }

    /// Answers offers and routes ICE/bye until shutdown; then closes every session.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<()> {
        let node = self.settings.node.id.clone();
        let mut offers = self
            .nats
            .subscribe(subjects::signal_offer(&node))
            .await
            .map_err(Error::nats)?;
        let mut signals = self
            .nats
            .subscribe(subjects::signal_sessions(&node))
            .await
            .map_err(Error::nats)?;
        let mut reaper = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                Some(msg) = offers.next() => {
                    let this = self.clone();
                    let stop = shutdown.clone();
                    tokio::spawn(async move { this.on_offer(msg, stop).await });
                }
                Some(msg) = signals.next() => self.on_signal(msg).await,
                _ = reaper.tick() => self.reap_idle().await,
                _ = shutdown.cancelled() => break,
            }
        }
        let all: Vec<Session> = self.live.lock().await.drain().map(|(_, s)| s).collect();
        for s in all {
            s.stop.cancel();
            let _ = s.peer.close().await;
        }
        Ok(())
    }

    async fn on_offer(self: Arc<Self>, msg: async_nats::Message, shutdown: CancellationToken) {
        let Some(reply) = msg.reply.clone() else {
            return;
        };
        let span = tracing::info_span!("offer");
        telemetry::extract_nats(&span, msg.headers.as_ref());
        let answer = match pb::StreamerOffer::decode(msg.payload.clone()) {
            Ok(offer) => match self.answer(offer, shutdown).await {
                Ok(sdp) => pb::StreamerAnswer {
                    sdp,
                    error: String::new(),
                },
                Err(e) => {
                    tracing::info!(parent: &span, error = %e, "offer refused");
                    pb::StreamerAnswer {
                        sdp: String::new(),
                        error: e.to_string(),
                    }
                }
            },
            Err(e) => pb::StreamerAnswer {
                sdp: String::new(),
                error: format!("malformed offer: {e}"),
            },
        };
        let _ = self
            .nats
            .publish(reply, answer.encode_to_vec().into())
            .await;
    }

    /// Creates the session's peer connection and returns the answer SDP.
    async fn answer(
        self: &Arc<Self>,
        offer: pb::StreamerOffer,
        shutdown: CancellationToken,
    ) -> Result<String> {
        let id = SessionId::parse(&offer.session_id).map_err(|e| Error::Refused(e.to_string()))?;
        // A re-offer replaces the session (its slot is freed with it); then a slot is
        // reserved before the negotiation, so concurrent offers cannot pass the limits.
        let old = self.live.lock().await.remove(&id);
        if let Some(old) = old {
            tracing::info!(session = %id, "re-offer replaces the session");
            old.stop.cancel();
            let peer = old.peer.clone();
            tokio::spawn(async move {
                let _ = peer.close().await;
            });
        }
        let slot = self.slots.take(&id).map_err(|why| {
            self.metrics.refused.inc();
            Error::Refused(why)
        })?;
        let turn = self
            .turn
            .for_user(&format!("streamer-{}", self.settings.node.id))
            .await;
        let (pc, mut events) = peer::build(&self.settings.streamer, turn.servers)
            .await
            .map_err(Error::webrtc)?;
        let description = RTCSessionDescription::offer(offer.sdp).map_err(Error::webrtc)?;
        let negotiated = async {
            pc.set_remote_description(description).await?;
            let answer = pc.create_answer(None).await?;
            pc.set_local_description(answer).await
        }
        .await;
        if let Err(e) = negotiated {
            let _ = pc.close().await;
            return Err(Error::webrtc(e));
        }
        // Wait briefly for host candidates so the answer carries them; later ones trickle.
        let mut early = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                Some(ev) = events.recv() => match ev {
                    PeerEvent::GatheringDone => break,
                    other => early.push(other),
                },
                _ = &mut deadline => break,
            }
        }
        let sdp = match pc.local_description().await {
            Some(d) => d.sdp,
            None => {
                let _ = pc.close().await;
                return Err(Error::Refused("no local description".into()));
            }
        };
        let public = self.settings.streamer.public_ip.clone();
        let bound = self.settings.streamer.udp_host.clone();
        let sdp = peer::advertise(&sdp, &bound, public.as_deref());

        let stop = shutdown.child_token();
        let activity = Arc::new(AtomicU64::new(now_ms()));
        let connected = Arc::new(AtomicBool::new(false));
        let raced = self.live.lock().await.insert(
            id.clone(),
            Session {
                peer: pc.clone(),
                stop: stop.clone(),
                activity: activity.clone(),
                created_ms: now_ms(),
                connected: connected.clone(),
                _slot: slot,
            },
        );
        // Another offer under the same id negotiated at the same time: the later one wins,
        // and the one it replaced is closed (its slot is freed with it), never left running
        // outside the table.
        if let Some(old) = raced {
            old.stop.cancel();
            let peer = old.peer.clone();
            tokio::spawn(async move {
                let _ = peer.close().await;
            });
        }
        self.metrics.sessions.inc();
        let this = self.clone();
        tokio::spawn(async move {
            this.drive(id, pc, events, early, stop, activity, connected)
                .await;
        });
        Ok(sdp)
    }

    /// Runs one session: trickles candidates, serves its channel, ends it on failure or close.
    async fn drive(
        self: Arc<Self>,
        id: SessionId,
        pc: Peer,
        mut events: tokio::sync::mpsc::UnboundedReceiver<PeerEvent>,
        early: Vec<PeerEvent>,
        stop: CancellationToken,
        activity: Arc<AtomicU64>,
        connected: Arc<AtomicBool>,
    ) {
        let mut pending: std::collections::VecDeque<PeerEvent> = early.into();
        loop {
            let ev = match pending.pop_front() {
                Some(ev) => ev,
                None => tokio::select! {
                    Some(ev) = events.recv() => ev,
                    _ = stop.cancelled() => break,
                    else => break,
                },
            };
            match ev {
                PeerEvent::Candidate(c) => {
                    let c = peer::advertise(
                        &c,
                        &self.settings.streamer.udp_host,
                        self.settings.streamer.public_ip.as_deref(),
                    );
                    let msg = pb::SessionIce {
                        session_id: id.to_string(),
                        candidate: Some(pb::IceCandidate {
                            candidate: c,
                            sdp_mid: "0".into(),
                            sdp_mline_index: 0,
                        }),
                    };
                    let _ = self
                        .nats
                        .publish(
                            subjects::signal_to_client(id.as_str()),
                            msg.encode_to_vec().into(),
                        )
                        .await;
                }
                PeerEvent::Channel(dc) => {
                    let max_message = match pc.sctp().await {
                        Some(sctp) => sctp
                            .max_message_size()
                            .await
                            .map(|m| m as usize)
                            .unwrap_or(64 * 1024),
                        None => 64 * 1024,
                    };
                    let chunk = crate::protocol::chunk_for(max_message);
                    tracing::debug!(session = %id, max_message, chunk, "data channel open");
                    let limits = Limits {
                        max_in_flight: self.settings.streamer.max_requests_in_flight,
                        chunk,
                        sent: self.metrics.datachannel_bytes.clone(),
                    };
                    let (root, activity, stop) =
                        (self.root.clone(), activity.clone(), stop.clone());
                    tokio::spawn(channel::serve(dc, root, limits, activity, stop));
                }
                PeerEvent::State(
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed,
                ) => break,
                PeerEvent::State(s) => {
                    if s == RTCPeerConnectionState::Connected {
                        connected.store(true, Ordering::Relaxed);
                    }
                    tracing::debug!(session = %id, state = ?s, "peer state")
                }
                PeerEvent::GatheringDone => {}
            }
        }
        stop.cancel();
        let _ = pc.close().await;
        let mut live = self.live.lock().await;
        if live.get(&id).is_some_and(|s| Arc::ptr_eq(&s.peer, &pc)) {
            live.remove(&id);
        }
        self.metrics.sessions.dec();
        tracing::info!(session = %id, "session ended");
    }

    /// ICE from the browser, or its bye.
    async fn on_signal(&self, msg: async_nats::Message) {
        let subject = msg.subject.as_str();
        let Some(session) = subject
            .rsplit('.')
            .nth(1)
            .and_then(|s| SessionId::parse(s).ok())
        else {
            return;
        };
        if subject.ends_with(".bye") {
            if let Some(s) = self.live.lock().await.remove(&session) {
                s.stop.cancel();
                let _ = s.peer.close().await;
            }
            return;
        }
        let Ok(ice) = pb::SessionIce::decode(msg.payload.clone()) else {
            return;
        };
        let Some(c) = ice.candidate else { return };
        let peer = self.live.lock().await.get(&session).map(|s| s.peer.clone());
        if let Some(pc) = peer {
            let init = RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: Some(if c.sdp_mid.is_empty() {
                    "0".into()
                } else {
                    c.sdp_mid
                }),
                sdp_mline_index: Some(c.sdp_mline_index as u16),
                ..Default::default()
            };
            if let Err(e) = pc.add_ice_candidate(init).await {
                tracing::debug!(session = %session, error = %e, "remote candidate not added");
            }
        }
    }

    async fn reap_idle(&self) {
        let limit = self
            .settings
            .streamer
            .idle_timeout_secs
            .saturating_mul(1000);
        let connect_limit = self
            .settings
            .streamer
            .connect_timeout_secs
            .saturating_mul(1000);
        let now = now_ms();
        let idle: Vec<(SessionId, Session)> = {
            let mut live = self.live.lock().await;
            let ids: Vec<SessionId> = live
                .iter()
                .filter(|(_, s)| {
                    let idle = now.saturating_sub(s.activity.load(Ordering::Relaxed)) > limit;
                    let never_connected = !s.connected.load(Ordering::Relaxed)
                        && now.saturating_sub(s.created_ms) > connect_limit;
                    idle || never_connected
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| live.remove(&id).map(|s| (id, s)))
                .collect()
        };
        for (id, s) in idle {
            tracing::info!(session = %id, "closing idle session");
            s.stop.cancel();
            let _ = s.peer.close().await;
        }
    }
}
