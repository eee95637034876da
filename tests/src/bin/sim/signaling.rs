//! `sim` (c): 100 browser sessions at once through signaling to one node's streamer — each a
//! webrtc-rs peer that offers through the signaling service's gRPC stream (as the gateway
//! relays a browser), waits for its data channel and fetches a segment — all held open until
//! every one is done. The streamer is its own process; signaling runs in this one.

use std::time::{Duration, Instant};

use magnet_tests::load::percentile_ms;
use magnet_tests::nats::{NatsServer, register_node};
use magnet_tests::peer::Client;
use magnet_tests::seeder::random_file;
use magnet_tests::services::{Process, offline_node};

const NODE: &str = "sim";
const SEGMENT: usize = 256 * 1024;

/// What the sessions measured.
pub struct Sessions {
    pub asked: usize,
    /// Sessions that got their data channel and their segment.
    pub ok: usize,
    /// Offer to segment received, milliseconds: median and 99th percentile.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn sessions(n: usize) -> anyhow::Result<Sessions> {
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let task = data.path().join("m3u8/task_1");
    std::fs::create_dir_all(&task)?;
    random_file(&task.join("index0.ts"), SEGMENT, 1)?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.streamer.max_sessions = 10_000;
    settings.streamer.max_sessions_per_user = 10_000;
    register_node(&nats, NODE).await?;
    let streamer = {
        let (s, d) = (settings.clone(), data.path().to_owned());
        tokio::task::spawn_blocking(move || {
            Process::spawn("magnet-streamer", "streamer ready", &s, &d)
        })
        .await??
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let signaling = magnet_signaling::start(settings, shutdown.clone()).await?;
    let addr = signaling.grpc_addr;

    // Every session starts at once, reports when it has its segment (or failed), and is
    // kept open until every one has reported.
    let all_done = tokio_util::sync::CancellationToken::new();
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let mut sessions = tokio::task::JoinSet::new();
    for i in 0..n {
        let (done, report) = (all_done.clone(), report.clone());
        sessions.spawn(async move {
            let started = Instant::now();
            let session = async {
                let client = Client::connect(addr, NODE, &format!("sim-{i}")).await?;
                let got = client
                    .get("/video/task_1/index0.ts", 0, None)
                    .await?
                    .map_err(|(s, m)| anyhow::anyhow!("{s} {m}"))?;
                anyhow::ensure!(got.0.len() == SEGMENT, "{} bytes", got.0.len());
                anyhow::Ok(client)
            };
            let client = match tokio::time::timeout(Duration::from_secs(60), session).await {
                Ok(Ok(c)) => {
                    let _ = report.send(Some(started.elapsed()));
                    Some(c)
                }
                Ok(Err(e)) => {
                    eprintln!("sim: session {i}: {e:#}");
                    let _ = report.send(None);
                    None
                }
                Err(_) => {
                    eprintln!("sim: session {i}: not done in 60 s");
                    let _ = report.send(None);
                    None
                }
            };
            done.cancelled().await;
            if let Some(c) = client {
                c.close().await;
            }
        });
    }
    drop(report);
    let mut times = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        match reports.recv().await {
            Some(Some(took)) => times.push(took),
            Some(None) | None => failed += 1,
        }
    }
    all_done.cancel();
    while sessions.join_next().await.is_some() {}
    shutdown.cancel();
    drop(streamer);
    eprintln!(
        "sim: {n} sessions at once: {} ok, {failed} failed",
        times.len()
    );
    Ok(Sessions {
        asked: n,
        ok: times.len(),
        p50_ms: percentile_ms(&times, 50).unwrap_or(0.0),
        p99_ms: percentile_ms(&times, 99).unwrap_or(0.0),
    })
}
