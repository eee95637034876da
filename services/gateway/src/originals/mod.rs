//! The original's worker nodes (its Go `worker`) in our cluster. Such a worker dials
//! `/ws/nodes` exactly as it dials the original's gateway and becomes a node of ours:
//!
//! - it is in the NATS node registry (`NodeKind::Original`), so every gateway replica and
//!   signaling see it; its socket lives on one replica ([`link`]), and requests for it reach
//!   that replica through NATS from any replica ([`calls`]);
//! - browsers play from it over P2P: signaling sends the offer to the node as to a streamer,
//!   and the replica holding the socket answers for it;
//! - it authenticates, which the original never did: `?token=` in the URL it is given
//!   (`--gateway=ws://host/ws/nodes?token=<token>`: the original worker dials that URL as
//!   given), or `Authorization: Bearer`, or a network of `allow_tokenless_from`.

pub mod calls;
mod link;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use magnet_core::{NodeId, Reason};
use magnet_proto::v1 as pb;
use magnet_runtime::config::OriginalWorkerSettings;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::error::{ApiError, QueryParams, query};
use crate::registry::Registry;

/// What the original workers' sockets and calls share.
#[derive(Clone)]
pub struct Workers {
    settings: Arc<OriginalWorkerSettings>,
    nats: async_nats::Client,
    bucket: kv::Store,
    registry: Registry,
    /// How often a record is written again (`nats.heartbeat_secs`, as our nodes do).
    refresh: Duration,
    shutdown: CancellationToken,
}

impl Workers {
    /// What this replica's `/ws/nodes` sockets and calls to original workers share, with the
    /// `gateway.original_workers` settings.
    pub fn new(
        settings: OriginalWorkerSettings,
        nats: async_nats::Client,
        bucket: kv::Store,
        registry: Registry,
        refresh: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            settings: Arc::new(settings),
            nats,
            bucket,
            registry,
            refresh,
            shutdown,
        }
    }

    /// Whether `node` may register: its id is not one of our nodes', and the cluster holds
    /// fewer than `max_workers` original workers (a reconnect under its own id counts once).
    async fn admit(&self, node: &NodeId) -> Result<(), String> {
        if let Some(ours) = self.registry.get(node.as_str()).await
            && ours.kind() == pb::NodeKind::Native
        {
            return Err(format!(
                "node id {node} belongs to a node of this cluster; start the worker with another --id"
            ));
        }
        let joined = self
            .registry
            .online()
            .await
            .iter()
            .filter(|n| n.kind() == pb::NodeKind::Original && n.id != node.as_str())
            .count();
        let max = self.settings.max_workers as usize;
        if joined >= max {
            return Err(format!(
                "this cluster already has {joined} original workers, the most it takes \
                 (gateway.original_workers.max_workers); try again later"
            ));
        }
        Ok(())
    }

    /// Whether a worker connecting from `peer` with `presented` may join; 401/403 otherwise.
    fn authenticate(&self, peer: SocketAddr, presented: Option<&str>) -> Result<(), ApiError> {
        if !self.settings.enabled() {
            return Err(ApiError::because(
                Reason::OriginalWorkersClosed,
                "original workers may not join this gateway: set gateway.original_workers.token \
                 (or allow_tokenless_from)",
            ));
        }
        match (presented, self.settings.token.as_deref()) {
            (Some(p), Some(t)) if bool::from(p.as_bytes().ct_eq(t.as_bytes())) => Ok(()),
            (Some(_), _) => Err(ApiError::because(
                Reason::WorkerTokenWrong,
                "wrong worker token",
            )),
            (None, _)
                if self
                    .settings
                    .allow_tokenless_from
                    .iter()
                    .any(|net| net.contains(&peer.ip())) =>
            {
                Ok(())
            }
            (None, _) => Err(ApiError::because(
                Reason::WorkerTokenRequired,
                "a worker token is required: start the worker with \
                 --gateway=ws://<gateway>/ws/nodes?token=<token>",
            )),
        }
    }
}

/// The query of `GET /ws/nodes`: the worker's `token` (a bearer token may stand in for it).
#[derive(Deserialize)]
pub struct Params {
    #[serde(default)]
    token: Option<String>,
}

/// `GET /ws/nodes`: an original worker joins.
pub async fn join(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: QueryParams<Params>,
    ws: WebSocketUpgrade,
) -> Response {
    let params = match query(params) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let presented = params.token.as_deref().or(bearer).filter(|t| !t.is_empty());
    let workers = s.originals.clone();
    if let Err(e) = workers.authenticate(peer, presented) {
        tracing::warn!(%peer, error = %e.message, "original worker refused");
        return e.into_response();
    }
    let max = workers.settings.max_message_kib.saturating_mul(1024);
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| link::run(workers, socket, peer))
}
