//! `sim` (a): a node's 200 queued transcode jobs (a 2 s clip each, remuxed: small, so the
//! queue and not the CPU is what is measured) drained by 1, 2 and 4 transcoder replicas —
//! what `kubectl scale` gives — each a `magnet-transcoder` process on one NATS; then by the
//! autoscaler itself (`magnet_downloader::autoscale::run`, reading the real queue) against a
//! stand-in of the scale subresource whose "kubelet" starts and stops replicas.

use std::path::Path;
use std::time::{Duration, Instant};

use magnet_runtime::Settings;
use magnet_runtime::config::AutoscaleSettings;
use magnet_tests::nats::NatsServer;
use magnet_tests::queue::{JobQueue, finals};
use magnet_tests::services::{Process, offline_node, transcoder_of};
use magnet_tests::video::{Codec, generate_sized};
use tokio_util::sync::CancellationToken;

use magnet_tests::kube_api;

/// Jobs queued (`SIM_JOBS` for a quick check of the sim itself).
fn jobs() -> usize {
    std::env::var("SIM_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}
const NODE: &str = "sim";
/// Longest a drain may take.
const LIMIT: Duration = Duration::from_secs(900);

/// What the drains measured.
pub struct Drains {
    /// Seconds to drain the queue with 1, 2 and 4 replicas.
    pub fixed: Vec<(u32, f64)>,
    /// With the autoscaler (1 to 4 replicas).
    pub auto_s: f64,
    /// When the autoscaler asked for more replicas, and for how many: (seconds, replicas).
    pub auto_steps: Vec<(f64, u32)>,
}

pub async fn drains() -> anyhow::Result<Drains> {
    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("clip.mp4");
    generate_sized(&clip, 2, "160x120", Codec::H264Aac)?;
    let mut fixed = Vec::new();
    for replicas in [1u32, 2, 4] {
        let (secs, _) = run(
            &clip,
            &dir.path().join(format!("r{replicas}")),
            Scaling::Fixed(replicas),
        )
        .await?;
        eprintln!(
            "sim: {} jobs drained by {replicas} replicas in {secs:.1} s",
            jobs()
        );
        fixed.push((replicas, secs));
    }
    let (auto_s, auto_steps) = run(&clip, &dir.path().join("auto"), Scaling::Auto).await?;
    eprintln!(
        "sim: {} jobs drained with the autoscaler in {auto_s:.1} s; replicas asked for (s, n): {auto_steps:?}",
        jobs()
    );
    Ok(Drains {
        fixed,
        auto_s,
        auto_steps,
    })
}

#[derive(Clone, Copy)]
enum Scaling {
    Fixed(u32),
    Auto,
}

/// Queues the jobs, then starts the replicas and waits until every job is final; the seconds
/// that took, and the replica counts asked for on the way.
async fn run(clip: &Path, dir: &Path, scaling: Scaling) -> anyhow::Result<(f64, Vec<(f64, u32)>)> {
    std::fs::create_dir_all(dir)?;
    let nats = NatsServer::start()?;
    let queue = JobQueue::new(&nats, NODE).await?;
    let m3u8 = dir.join("m3u8");
    for i in 1..=jobs() {
        queue
            .submit(&format!("task_{i}"), &[(clip, "clip.mp4")], &m3u8)
            .await?;
    }
    let settings = offline_node(dir, nats.url(), NODE);
    let stop = CancellationToken::new();
    let (api, replicas) = kube_api::serve(1, stop.clone()).await?;
    let started = Instant::now();
    if let Scaling::Auto = scaling {
        magnet_runtime::tls::install_crypto();
        let cfg = AutoscaleSettings {
            enabled: true,
            deployment: "sim-transcoder".into(),
            namespace: Some("sim".into()),
            min: 1,
            max: 4,
            jobs_per_replica: 1,
            cooldown_secs: 10,
            interval_secs: 1,
        };
        let scaler = magnet_downloader::autoscale::Scaler::new(
            kube_api::client(api, "sim")?,
            "sim",
            &cfg.deployment,
        );
        let js = async_nats::jetstream::new(nats.client().await?);
        tokio::spawn(magnet_downloader::autoscale::run(
            scaler,
            js,
            NODE.into(),
            cfg,
            stop.clone(),
        ));
    }
    let asked = replicas.clone();
    let wanted = move || match scaling {
        Scaling::Fixed(n) => n,
        Scaling::Auto => asked.get(),
    };
    let kubelet = tokio::spawn(kubelet(settings, dir.to_owned(), wanted, stop.clone()));
    let events = queue.collect(LIMIT, |e| finals(e) >= jobs()).await;
    let secs = started.elapsed().as_secs_f64();
    if let Scaling::Auto = scaling {
        // And back down once the queue is empty and the cooldown is over.
        let back = Instant::now() + Duration::from_secs(30);
        while replicas.get() > 1 && Instant::now() < back {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.cancel();
    kubelet.await??;
    let steps = replicas
        .patches()
        .iter()
        .map(|(t, n)| (t.duration_since(started).as_secs_f64(), *n))
        .collect();
    let events = events?;
    let failed = events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                Some(magnet_proto::v1::transcode_event::Kind::Failed(_))
            )
        })
        .count();
    anyhow::ensure!(failed == 0, "{failed} jobs failed");
    Ok((secs, steps))
}

/// Keeps `wanted()` transcoder processes running (one started or stopped at a time, as pods
/// are) until `stop`.
async fn kubelet(
    settings: Settings,
    dir: std::path::PathBuf,
    wanted: impl Fn() -> u32,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut pods: Vec<Process> = Vec::new();
    let mut made = 0;
    while !stop.is_cancelled() {
        let want = wanted();
        if (pods.len() as u32) < want {
            made += 1;
            let (s, d) = (
                transcoder_of(&settings, &format!("sim-t{made}")),
                dir.clone(),
            );
            pods.push(
                tokio::task::spawn_blocking(move || Process::spawn_transcoder(&s, &d)).await??,
            );
            continue;
        }
        if (pods.len() as u32) > want
            && let Some(mut pod) = pods.pop()
        {
            // SIGTERM: the replica hands its job back and leaves.
            tokio::task::spawn_blocking(move || pod.terminate()).await??;
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    for mut pod in pods {
        tokio::task::spawn_blocking(move || pod.terminate()).await??;
    }
    Ok(())
}
