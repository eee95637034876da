//! magnet-signaling: the WebRTC signaling relay. The gateway opens one gRPC
//! `Signaling.Session` stream per browser session; offers go to the chosen node's streamer
//! over NATS and answers and ICE come back. Holds only live session routes, so any number of
//! replicas can run and a restart loses nothing but sessions in negotiation.

pub mod relay;

use std::net::SocketAddr;
use std::time::Duration;

use magnet_proto::v1::signaling_server::SignalingServer;
use magnet_runtime::admin::Admin;
use magnet_runtime::{Settings, grpc, nats};
use prometheus_client::metrics::gauge::Gauge;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Signaling's metrics: `sessions` counts the browser streams open now
/// (`magnet_signaling_sessions`).
#[derive(Clone, Default)]
pub struct Metrics {
    pub sessions: Gauge,
}

/// Why signaling failed to start or run: NATS, binding its ports, or other I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] magnet_runtime::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Signaling's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A started signaling service: the addresses of its gRPC and admin servers, and the task that
/// ends once it has stopped.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    join: JoinHandle<Result<()>>,
}

impl Running {
    /// Waits until signaling has stopped: after shutdown, once its servers ended or the grace
    /// period passed.
    pub async fn wait(self) -> Result<()> {
        self.join
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

/// Starts the admin server, connects to NATS and serves `Signaling` on
/// `signaling.grpc_listen` until `shutdown` is cancelled; returns once it is ready.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running> {
    let admin = Admin::new();
    let metrics = Metrics::default();
    admin.register(|r| {
        r.register(
            "magnet_signaling_sessions",
            "Browser sessions being signalled",
            metrics.sessions.clone(),
        )
    });
    let (admin_addr, admin_task) = admin
        .serve(settings.signaling.admin_listen, shutdown.clone())
        .await?;
    let client = nats::connect(
        &settings.nats.url,
        "magnet-signaling",
        Duration::from_secs(30),
    )
    .await?;
    let js = async_nats::jetstream::new(client.clone());
    let nodes =
        nats::nodes_bucket(
            &js,
            Duration::from_secs(settings.nats.registry_ttl_secs),
            settings.nats.replicas,
        )
        .await?;
    let relay = relay::Relay::new(
        client.clone(),
        nodes,
        Duration::from_secs(settings.signaling.answer_timeout_secs),
        Duration::from_secs(settings.signaling.idle_timeout_secs),
        metrics,
    );
    let (grpc_addr, grpc_task) = grpc::serve(
        settings.signaling.grpc_listen,
        SignalingServer::new(relay)
            .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES),
        &settings.internal,
        shutdown.clone(),
    )
    .await?;
    admin.set_ready(true);
    tracing::info!(%grpc_addr, "signaling ready");
    let join = tokio::spawn(async move {
        shutdown.cancelled().await;
        admin.set_ready(false);
        let _ = tokio::time::timeout(magnet_runtime::shutdown::GRACE_PERIOD, async {
            let _ = grpc_task.await;
            let _ = admin_task.await;
        })
        .await;
        client.flush().await.ok();
        tracing::info!("signaling stopped");
        Ok(())
    });
    Ok(Running {
        grpc_addr,
        admin_addr,
        join,
    })
}
