//! magnet-streamer: one per worker node. Serves the files of the node's `m3u8/` folder to
//! browsers over WebRTC data channels — the original's base64 protocol, byte-compatible, and
//! a binary fast path — and to the gateway's HTTP relay over gRPC `FileService`. Read-only on
//! the volume; offers and ICE arrive over NATS from the signaling service.

pub mod channel;
pub mod error;
pub mod files;
pub mod peer;
pub mod plays;
pub mod protocol;
pub mod relay;
pub mod runtime;
pub mod serve;
pub mod sessions;
pub mod slots;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use magnet_proto::v1::file_service_server::FileServiceServer;
use magnet_runtime::admin::Admin;
use magnet_runtime::{Settings, grpc, nats};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};

/// The streamer's metrics, shared by its sessions and the relay: open sessions, offers refused
/// at the limit, data-channel bytes and relay bytes (names in `register`).
#[derive(Clone, Default)]
pub struct Metrics {
    pub sessions: Gauge,
    pub refused: Counter,
    pub datachannel_bytes: Counter,
    pub relay_bytes: Counter,
}

impl Metrics {
    fn register(&self, admin: &Admin) {
        admin.register(|r| {
            r.register(
                "magnet_streamer_sessions",
                "WebRTC sessions open",
                self.sessions.clone(),
            );
            r.register(
                "magnet_streamer_sessions_refused",
                "Offers refused at the session limit",
                self.refused.clone(),
            );
            r.register(
                "magnet_datachannel_bytes",
                "Bytes sent to browsers on data channels (both protocols, framing included)",
                self.datachannel_bytes.clone(),
            );
            r.register(
                "magnet_relay_bytes",
                "File bytes read for the gateway's relay (FileService)",
                self.relay_bytes.clone(),
            );
        });
    }
}

/// A started streamer: the addresses of its gRPC and admin servers, its session table, and the
/// task that ends once it has stopped.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub sessions: Arc<sessions::Sessions>,
    join: JoinHandle<Result<()>>,
}

impl Running {
    /// Waits until the streamer has stopped: after shutdown, once its sessions, servers and
    /// admin ended or the grace period passed.
    pub async fn wait(self) -> Result<()> {
        self.join
            .await
            .map_err(|_| Error::Refused("streamer task panicked".into()))?
    }
}

/// Starts the streamer; returns once it answers offers and serves FileService.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running> {
    let admin = Admin::new();
    let metrics = Metrics::default();
    metrics.register(&admin);
    let (admin_addr, admin_task) = admin
        .serve(settings.streamer.admin_listen, shutdown.clone())
        .await?;
    let m3u8 = settings.storage.m3u8();
    let root =
        files::Root::new(&m3u8, settings.streamer.max_file_mb).map_err(|source| Error::Io {
            path: m3u8.clone(),
            source,
        })?;
    let client = nats::connect(
        &settings.nats.url,
        "magnet-streamer",
        Duration::from_secs(30),
    )
    .await?;
    let root = root
        .with_maker(files::Maker {
            client: client.clone(),
            node: settings.node.id.clone(),
            wait: Duration::from_millis(u64::from(settings.transcoding.segment_wait_ms)),
        })
        .with_plays(plays::Plays::new(client.clone(), settings.node.id.clone()));

    let turn = magnet_runtime::turn::TurnServers::new(&settings.turn)?;
    let sessions = sessions::Sessions::new(
        settings.clone(),
        root.clone(),
        client.clone(),
        metrics.clone(),
        turn,
    );
    let signalling = tokio::spawn(sessions.clone().run(shutdown.clone()));

    let (grpc_addr, grpc_task) = grpc::serve(
        settings.streamer.grpc_listen,
        FileServiceServer::new(relay::Relay::new(root, metrics.relay_bytes.clone()))
            .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES),
        &settings.internal,
        shutdown.clone(),
    )
    .await?;
    admin.set_ready(true);
    tracing::info!(node = %settings.node.id, %grpc_addr, "streamer ready");

    let join = tokio::spawn(async move {
        shutdown.cancelled().await;
        admin.set_ready(false);
        let drain = async {
            let _ = signalling.await;
            let _ = grpc_task.await;
            let _ = admin_task.await;
        };
        let _ = tokio::time::timeout(magnet_runtime::shutdown::GRACE_PERIOD, drain).await;
        client.flush().await.ok();
        tracing::info!("streamer stopped");
        Ok(())
    });
    Ok(Running {
        grpc_addr,
        admin_addr,
        sessions,
        join,
    })
}
