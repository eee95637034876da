//! magnet-transcoder: a transcoder replica of a worker node. It takes jobs from the node's
//! JetStream work queue, probes the input with ffprobe, remuxes H.264 (or transcodes anything
//! else) into HLS in the original's layout (`m3u8/<task_id>/index.m3u8`, `index0.ts`, …),
//! converts subtitles to WebVTT, and reports progress and the result. Stateless: any number
//! of replicas share a node's queue.

pub mod error;
pub mod event;
pub mod ffmpeg;
pub mod heads;
pub mod index;
pub mod job;
pub mod master;
pub mod output;
pub mod plan;
pub mod probe;
pub mod progressive;
pub mod segments;
pub mod untrusted;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use magnet_runtime::admin::Admin;
use magnet_runtime::{Settings, nats};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};

/// The replica's metrics: jobs done, failed for good and running, and each job's speed
/// (names in `register`).
#[derive(Clone)]
pub struct Metrics {
    pub done: Counter,
    pub failed: Counter,
    pub running: Gauge,
    /// Seconds of video made per second of work, per job (× realtime).
    pub speed: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            done: Counter::default(),
            failed: Counter::default(),
            running: Gauge::default(),
            // 0.25× … 1024× realtime (remuxing runs far above realtime).
            speed: Histogram::new(exponential_buckets(0.25, 2.0, 13)),
        }
    }
}

impl Metrics {
    fn register(&self, admin: &Admin) {
        admin.register(|r| {
            r.register(
                "magnet_transcodes_done",
                "Transcode jobs finished",
                self.done.clone(),
            );
            r.register(
                "magnet_transcodes_failed",
                "Transcode jobs failed for good",
                self.failed.clone(),
            );
            r.register(
                "magnet_transcode_speed_ratio",
                "Seconds of video made per second of work, per finished job (x realtime)",
                self.speed.clone(),
            );
            r.register(
                "magnet_transcodes_running",
                "Transcode jobs running",
                self.running.clone(),
            );
        });
    }
}

/// A started replica: its admin server's address, its replica name, and the task that ends once
/// it has stopped.
pub struct Running {
    pub admin_addr: SocketAddr,
    pub replica: String,
    join: JoinHandle<Result<()>>,
}

impl Running {
    /// Waits until the replica has stopped: after shutdown, once its running jobs ended
    /// (stopped and handed back to the queue).
    pub async fn wait(self) -> Result<()> {
        self.join
            .await
            .map_err(|_| Error::BadJob("transcoder task panicked".into()))?
    }
}

/// Default replica name: host name (the pod name in Kubernetes) and process id.
fn replica_id(settings: &Settings) -> String {
    settings.transcoder.replica_id.clone().unwrap_or_else(|| {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "transcoder".into());
        format!("{host}-{}", std::process::id())
    })
}

/// Starts the replica; returns once it is pulling jobs.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running> {
    let admin = Admin::new();
    let metrics = Metrics::default();
    metrics.register(&admin);
    let (admin_addr, admin_task) = admin
        .serve(settings.transcoder.admin_listen, shutdown.clone())
        .await?;
    for program in [&settings.transcoder.ffmpeg, &settings.transcoder.ffprobe] {
        let ok = tokio::process::Command::new(program)
            .arg("-version")
            .output()
            .await
            .map(|o| o.status.success());
        if !matches!(ok, Ok(true)) {
            return Err(Error::Spawn {
                program: program.clone(),
                source: std::io::Error::other("not found or not working"),
            });
        }
    }
    let client = nats::connect(
        &settings.nats.url,
        "magnet-transcoder",
        Duration::from_secs(30),
    )
    .await?;
    let js = async_nats::jetstream::new(client.clone());
    nats::events_stream(&js, settings.nats.replicas).await?;
    let replica = replica_id(&settings);
    let worker = Arc::new(worker::Worker {
        settings: settings.clone(),
        replica: replica.clone(),
        client: client.clone(),
        js,
        metrics,
    });
    let consumer = worker.consumer().await?;
    admin.set_ready(true);
    tracing::info!(node = %settings.node.id, %replica, max_transcodes = settings.limits.max_transcodes, "transcoder ready");
    let join = tokio::spawn(async move {
        let result = worker.run(consumer, shutdown.clone()).await;
        admin.set_ready(false);
        let _ = admin_task.await;
        client.flush().await.ok();
        tracing::info!("transcoder stopped");
        result
    });
    Ok(Running {
        admin_addr,
        replica,
        join,
    })
}
