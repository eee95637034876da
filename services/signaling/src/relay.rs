//! `Signaling.Session`: one bidirectional stream per browser session. The offer goes to the
//! chosen node's streamer over NATS request/reply and the answer comes back; ICE travels both
//! ways; when either side leaves (stream end, bye, idle timeout) the streamer is told.

use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::{Stream, StreamExt};
use magnet_core::SessionId;
use magnet_proto::v1 as pb;
use magnet_proto::v1::signaling_server::Signaling;
use magnet_runtime::{subjects, telemetry};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::Metrics;

/// The `Signaling` service: each session stream gets a worker of its own, and offers go only
/// to nodes the registry bucket lists.
pub struct Relay {
    nats: async_nats::Client,
    nodes: kv::Store,
    answer_timeout: Duration,
    idle_timeout: Duration,
    metrics: Metrics,
}

impl Relay {
    /// `answer_timeout` bounds the wait for a streamer's answer; `idle_timeout` closes a stream
    /// that set up no session in that time.
    pub fn new(
        nats: async_nats::Client,
        nodes: kv::Store,
        answer_timeout: Duration,
        idle_timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            nats,
            nodes,
            answer_timeout,
            idle_timeout,
            metrics,
        }
    }
}

type Out = Pin<Box<dyn Stream<Item = Result<pb::ServerSignal, Status>> + Send>>;

/// One session's routing state.
struct Route {
    session: SessionId,
    node: String,
    /// ICE from the streamer for this session.
    ice: async_nats::Subscriber,
}

fn error(session: &str, message: impl Into<String>) -> pb::ServerSignal {
    pb::ServerSignal {
        session_id: session.into(),
        kind: Some(pb::server_signal::Kind::Error(pb::SignalError {
            message: message.into(),
        })),
    }
}

#[tonic::async_trait]
impl Signaling for Relay {
    type SessionStream = Out;

    async fn session(
        &self,
        req: Request<Streaming<pb::ClientSignal>>,
    ) -> Result<Response<Out>, Status> {
        let span = tracing::info_span!("signaling_session");
        telemetry::extract_grpc(&span, req.metadata());
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let worker = Worker {
            nats: self.nats.clone(),
            nodes: self.nodes.clone(),
            answer_timeout: self.answer_timeout,
            idle_timeout: self.idle_timeout,
            out: tx,
        };
        let metrics = self.metrics.clone();
        tokio::spawn(
            async move {
                metrics.sessions.inc();
                worker.run(inbound).await;
                metrics.sessions.dec();
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Worker {
    nats: async_nats::Client,
    nodes: kv::Store,
    answer_timeout: Duration,
    idle_timeout: Duration,
    out: mpsc::Sender<Result<pb::ServerSignal, Status>>,
}

impl Worker {
    async fn send(&self, msg: pb::ServerSignal) -> bool {
        self.out.send(Ok(msg)).await.is_ok()
    }

    async fn run(self, mut inbound: Streaming<pb::ClientSignal>) {
        let mut route: Option<Route> = None;
        loop {
            let idle = tokio::time::sleep(self.idle_timeout);
            tokio::select! {
                msg = inbound.next() => match msg {
                    Some(Ok(signal)) => {
                        if !self.on_client(signal, &mut route).await {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "client stream error");
                        break;
                    }
                    None => break,
                },
                Some(msg) = next_ice(&mut route) => {
                    let Ok(ice) = pb::SessionIce::decode(msg.payload) else { continue };
                    let Some(r) = route.as_ref() else { continue };
                    let out = pb::ServerSignal { session_id: r.session.to_string(), kind: ice.candidate.map(pb::server_signal::Kind::Ice) };
                    if !self.send(out).await {
                        break;
                    }
                }
                // Only a stream that never set up a session idles out: once answered, a
                // session lasts as long as the browser keeps its end open (a film plays for
                // hours with no signaling), and the streamer closes sessions idle on the
                // data channel itself.
                _ = idle, if route.is_none() => {
                    let session = route.as_ref().map(|r| r.session.to_string()).unwrap_or_default();
                    let _ = self.send(error(&session, "session idle for too long; closed")).await;
                    break;
                }
                _ = self.out.closed() => break,
            }
        }
        if let Some(r) = route {
            self.bye(&r).await;
        }
    }

    async fn bye(&self, r: &Route) {
        let bye = pb::SessionBye {
            session_id: r.session.to_string(),
        };
        let _ = self
            .nats
            .publish(
                subjects::signal_bye(&r.node, r.session.as_str()),
                bye.encode_to_vec().into(),
            )
            .await;
    }

    /// Handles one message from the browser; false ends the session.
    async fn on_client(&self, signal: pb::ClientSignal, route: &mut Option<Route>) -> bool {
        match signal.kind {
            Some(pb::client_signal::Kind::Offer(offer)) => {
                let session = match SessionId::parse(&offer.session_id) {
                    Ok(s) => s,
                    Err(e) => return self.send(error(&offer.session_id, e.to_string())).await,
                };
                if let Some(old) = route.take()
                    && old.node != offer.node_id
                {
                    self.bye(&old).await;
                }
                match self.offer(&session, &offer.node_id, offer.sdp).await {
                    Ok((sdp, ice)) => {
                        *route = Some(Route {
                            session: session.clone(),
                            node: offer.node_id,
                            ice,
                        });
                        let answer = pb::ServerSignal {
                            session_id: session.to_string(),
                            kind: Some(pb::server_signal::Kind::Answer(pb::SessionAnswer { sdp })),
                        };
                        self.send(answer).await
                    }
                    Err(message) => self.send(error(session.as_str(), message)).await,
                }
            }
            Some(pb::client_signal::Kind::Ice(candidate)) => {
                if let Some(r) = route.as_ref() {
                    let ice = pb::SessionIce {
                        session_id: r.session.to_string(),
                        candidate: Some(candidate),
                    };
                    let subject = subjects::signal_ice_to_streamer(&r.node, r.session.as_str());
                    let _ = self
                        .nats
                        .publish_with_headers(
                            subject,
                            telemetry::nats_headers(),
                            ice.encode_to_vec().into(),
                        )
                        .await;
                }
                true
            }
            Some(pb::client_signal::Kind::Bye(_)) => false,
            None => true,
        }
    }

    /// Sends the offer to the node's streamer; the answer SDP and the subscription that will
    /// carry the streamer's ICE, or a message for the user.
    async fn offer(
        &self,
        session: &SessionId,
        node: &str,
        sdp: String,
    ) -> Result<(String, async_nats::Subscriber), String> {
        magnet_core::NodeId::parse(node).map_err(|e| e.to_string())?;
        match self.nodes.get(node).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("node {node} is unknown or offline")),
            Err(e) => return Err(format!("node registry unavailable: {e}")),
        }
        // Subscribe before the offer goes out, so no early candidate is missed.
        let ice = self
            .nats
            .subscribe(subjects::signal_to_client(session.as_str()))
            .await
            .map_err(|e| format!("NATS: {e}"))?;
        let offer = pb::StreamerOffer {
            session_id: session.to_string(),
            sdp,
        };
        let request = self.nats.request_with_headers(
            subjects::signal_offer(node),
            telemetry::nats_headers(),
            offer.encode_to_vec().into(),
        );
        let reply = match tokio::time::timeout(self.answer_timeout, request).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(format!("node {node} has no streamer running"));
            }
            Ok(Err(e)) => return Err(format!("node {node} did not answer: {e}")),
            Err(_) => {
                return Err(format!(
                    "node {node} did not answer within {} s",
                    self.answer_timeout.as_secs()
                ));
            }
        };
        let answer = pb::StreamerAnswer::decode(reply.payload)
            .map_err(|e| format!("malformed answer from node {node}: {e}"))?;
        if !answer.error.is_empty() {
            return Err(answer.error);
        }
        Ok((answer.sdp, ice))
    }
}

async fn next_ice(route: &mut Option<Route>) -> Option<async_nats::Message> {
    match route {
        Some(r) => r.ice.next().await,
        None => std::future::pending().await,
    }
}
