//! magnet-downloader: a worker node's head. It downloads torrents with librqbit into
//! `data/downloads/<task_id>/`, owns the node's SQLite task store (the only writer), serves
//! the gRPC `TaskService`, keeps the node's record in the registry, publishes transcode jobs
//! and applies transcode events.
//!
//! [`start`] wires it all and returns the bound addresses; [`Running::wait`] runs until the
//! shutdown token fires, then drains.

pub mod api;
pub mod autoscale;
pub mod choice;
pub mod convert;
pub mod disk;
pub mod error;
pub mod jobs;
pub mod open_streams;
pub mod reach;
pub mod registry;
pub mod seeding;
pub mod store;
pub mod stream;
pub mod tasks;
pub mod torrent;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use magnet_proto::v1::task_service_server::TaskServiceServer;
use magnet_runtime::admin::Admin;
use magnet_runtime::{Settings, grpc, nats};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};

/// The downloader's metrics.
#[derive(Clone, Default)]
pub struct Metrics {
    pub submitted: Counter,
    pub completed: Counter,
    /// Bytes of completed downloads.
    pub downloaded_bytes: Counter,
    pub active: Gauge,
    /// Tasks of the node by status (refreshed with each heartbeat).
    pub tasks: Family<StatusLabel, Gauge>,
    /// Download speed of the node, bytes/s, and peers connected (each heartbeat).
    pub speed: Gauge,
    pub peers: Gauge,
    /// The node's transcode jobs queued or running (each heartbeat).
    pub jobs: Gauge,
    /// Bytes the tasks' payloads and HLS hold (each heartbeat), and the quota (0: none).
    pub disk_used: Gauge,
    pub disk_quota: Gauge,
    /// Bytes uploaded to peers by completed tasks (seeding).
    pub uploaded_bytes: Counter,
    /// The stream endpoint's open bodies and bytes sent.
    pub streams: stream::StreamMetrics,
}

/// The `status` label of the `magnet_tasks` gauge: a task status as `TaskStatus::as_str`
/// spells it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

impl Metrics {
    fn register(&self, admin: &Admin) {
        admin.register(|r| {
            r.register(
                "magnet_tasks_submitted",
                "Tasks submitted to this node",
                self.submitted.clone(),
            );
            r.register(
                "magnet_downloads_completed",
                "Downloads completed",
                self.completed.clone(),
            );
            r.register(
                "magnet_downloaded_bytes",
                "Bytes of completed downloads",
                self.downloaded_bytes.clone(),
            );
            r.register(
                "magnet_disk_used_bytes",
                "Bytes the node's task payloads and HLS hold",
                self.disk_used.clone(),
            );
            r.register(
                "magnet_disk_quota_bytes",
                "The node's disk quota for payloads and HLS (0: none)",
                self.disk_quota.clone(),
            );
            r.register(
                "magnet_uploaded_bytes",
                "Bytes uploaded to peers by completed tasks (seeding)",
                self.uploaded_bytes.clone(),
            );
            r.register(
                "magnet_tasks",
                "Tasks of this node by status",
                self.tasks.clone(),
            );
            r.register(
                "magnet_download_speed_bytes_per_second",
                "Download speed of this node",
                self.speed.clone(),
            );
            r.register(
                "magnet_peers",
                "Peers connected to this node's torrents",
                self.peers.clone(),
            );
            r.register(
                "magnet_transcode_jobs_queued",
                "This node's transcode jobs queued or running",
                self.jobs.clone(),
            );
            r.register(
                "magnet_file_streams_open",
                "Files of downloading torrents being read through the stream endpoint",
                self.streams.open.clone(),
            );
            r.register(
                "magnet_file_stream_bytes",
                "Bytes sent by the stream endpoint",
                self.streams.bytes.clone(),
            );
            r.register(
                "magnet_downloads_active",
                "Downloads in progress",
                self.active.clone(),
            );
        });
    }
}

/// A started downloader.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The stream endpoint (`GET /stream/<task>/<file>`).
    pub stream_addr: SocketAddr,
    /// Where BitTorrent peers reach this node, if it listens.
    pub torrent_addr: Option<SocketAddr>,
    pub tasks: Arc<tasks::Tasks>,
    join: JoinHandle<Result<()>>,
}

impl Running {
    /// Runs until shutdown and the drain finish.
    pub async fn wait(self) -> Result<()> {
        self.join
            .await
            .map_err(|_| Error::Internal("downloader task panicked"))?
    }
}

/// Starts every part of the downloader; returns once it is serving.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running> {
    let storage = &settings.storage;
    let downloads = storage.downloads();
    for dir in [
        downloads.clone(),
        storage.m3u8(),
        storage.state(),
        storage.database_dir(),
    ] {
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
    }
    let admin = Admin::new();
    let metrics = Metrics::default();
    metrics.register(&admin);
    let quota = settings.limits.disk_quota_mb.unwrap_or(0).saturating_mul(1024 * 1024);
    metrics.disk_quota.set(i64::try_from(quota).unwrap_or(i64::MAX));
    let (admin_addr, admin_task) = admin
        .serve(settings.downloader.admin_listen, shutdown.clone())
        .await?;

    let store = store::Store::open(&storage.database_file()).await?;
    let client = nats::connect(
        &settings.nats.url,
        "magnet-downloader",
        Duration::from_secs(30),
    )
    .await?;
    let js = async_nats::jetstream::new(client.clone());
    nats::jobs_stream(&js, settings.nats.replicas).await?;
    nats::events_stream(&js, settings.nats.replicas).await?;
    let bucket =
        nats::nodes_bucket(
            &js,
            Duration::from_secs(settings.nats.registry_ttl_secs),
            settings.nats.replicas,
        )
        .await?;

    // The session gets its own token: it must stop after the drivers, not with them.
    let session_token = CancellationToken::new();
    let engine = torrent::Engine::start(
        &settings.torrent,
        &downloads,
        &storage.state(),
        session_token.clone(),
    )
    .await?;
    let torrent_addr = engine.listen_addr();
    let stream_metrics = metrics.streams.clone();
    let uploaded_metric = metrics.uploaded_bytes.clone();
    // Bound before the tasks resume: a resumed download's progressive job names its address.
    let (stream_listener, stream_addr) =
        magnet_runtime::net::bind(settings.downloader.stream_listen).await?;
    let stream_base = settings
        .downloader
        .stream_advertise
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", settings.node.address, stream_addr.port()));
    let tasks = tasks::Tasks::new(
        settings.clone(),
        downloads,
        &storage.state(),
        store,
        engine,
        client.clone(),
        shutdown.clone(),
        metrics,
        stream_base,
    )
    .await?;
    tasks.resume().await?;
    tasks.refresh_disk().await?;

    let autoscaler = if settings.downloader.autoscale.enabled {
        let cfg = settings.downloader.autoscale.clone();
        let namespace = cfg
            .namespace
            .clone()
            .or_else(autoscale::own_namespace)
            .unwrap_or_else(|| "default".into());
        magnet_runtime::tls::install_crypto();
        let kube = kube::Client::try_default()
            .await
            .map_err(|e| Error::Autoscale(format!("no Kubernetes API: {e}")))?;
        let scaler = autoscale::Scaler::new(kube, &namespace, &cfg.deployment);
        Some(tokio::spawn(autoscale::run(
            scaler,
            js.clone(),
            settings.node.id.clone(),
            cfg,
            shutdown.clone(),
        )))
    } else {
        None
    };
    let seeding = tokio::spawn(seeding::run(
        tasks.clone(),
        seeding::Policy::from_settings(&settings.torrent),
        uploaded_metric,
        shutdown.clone(),
    ));
    let plays = tokio::spawn(disk::watch_plays(
        tasks.clone(),
        client.clone(),
        settings.node.id.clone(),
        shutdown.clone(),
    ));
    let events = tokio::spawn(jobs::apply_events(
        tasks.clone(),
        js,
        settings.node.id.clone(),
        shutdown.clone(),
    ));

    let (grpc_addr, grpc_task) = grpc::serve(
        settings.downloader.grpc_listen,
        TaskServiceServer::new(api::TaskApi::new(tasks.clone()))
            .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES),
        &settings.internal,
        shutdown.clone(),
    )
    .await?;

    let stream_task = stream::serve(
        stream_listener,
        tasks.clone(),
        &settings,
        stream_metrics,
        shutdown.clone(),
    )
    .await?;

    let endpoint = settings
        .downloader
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", settings.node.address, grpc_addr.port()));
    let endpoints = registry::Endpoints {
        downloader: endpoint.clone(),
    };
    // Registered before ready: whoever waits for "ready" finds the node in the registry.
    registry::put_record(&bucket, &tasks, &settings, &endpoints).await;
    let heartbeat = tokio::spawn(registry::heartbeat(
        bucket,
        tasks.clone(),
        settings.clone(),
        endpoints,
        Duration::from_secs(settings.nats.heartbeat_secs),
        shutdown.clone(),
    ));
    admin.set_ready(true);
    tracing::info!(node = %settings.node.id, %grpc_addr, %stream_addr, %endpoint, torrent = ?torrent_addr, "downloader ready");

    let drain_tasks = tasks.clone();
    let join = tokio::spawn(async move {
        shutdown.cancelled().await;
        admin.set_ready(false);
        tracing::info!("draining: stopping downloads");
        let drain = async {
            drain_tasks.stop().await;
            drain_tasks.engine().stop().await;
            session_token.cancel();
            let _ = heartbeat.await;
            let _ = events.await;
            let _ = seeding.await;
            let _ = plays.await;
            if let Some(a) = autoscaler {
                let _ = a.await;
            }
            let _ = grpc_task.await;
            let _ = stream_task.await;
            drain_tasks.store().close().await;
            let _ = admin_task.await;
        };
        if tokio::time::timeout(magnet_runtime::shutdown::GRACE_PERIOD, drain)
            .await
            .is_err()
        {
            tracing::warn!("drain exceeded the grace period; exiting anyway");
        }
        client.flush().await.ok();
        tracing::info!("downloader stopped");
        Ok(())
    });
    Ok(Running {
        grpc_addr,
        admin_addr,
        stream_addr,
        torrent_addr,
        tasks,
        join,
    })
}
