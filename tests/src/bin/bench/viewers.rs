//! `bench viewers`: how many viewers one release streamer keeps ahead of realtime.
//!
//! The streamer runs as its own process (release build), so that its CPU and memory are
//! read from `/proc` apart from the viewers'. Each viewer is a webrtc-rs peer speaking the
//! binary protocol, or (one in five) a reader of the gRPC FileService as the gateway's relay
//! is, fetching 2 s segments of a 5 Mbit/s stream at playback pace with three segments of
//! buffer; a viewer stays ahead of realtime when every segment arrives before its playback
//! time. Rounds of growing N run until one falls behind; the baseline is the idle streamer
//! measured in the same run.

use std::time::{Duration, Instant};

use magnet_proto::v1 as pb;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::random_file;
use magnet_tests::services::{Process, offline_node};

/// 5 Mbit/s for 2 s.
const SEGMENT_BYTES: usize = 1_250_000;
const SEGMENT_SECS: f64 = 2.0;
const SEGMENTS: usize = 12;
/// Segments fetched ahead of playback (a player's buffer); playback starts after the first.
const AHEAD: usize = 3;
const ROUNDS: &[usize] = &[10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 300];

/// What the streamer process uses now: CPU seconds so far and resident memory.
fn usage(pid: i32) -> anyhow::Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // /proc counts CPU time in USER_HZ, 100 a second on Linux whatever the kernel's own HZ.
    let hz = 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok((ticks / hz, rss_kb))
}

/// A viewer: a webrtc-rs peer on the binary protocol, or a reader of the relay's FileService.
enum Viewer {
    Peer(magnet_tests::peer::Client),
    Relay(std::net::SocketAddr),
}

impl Viewer {
    /// Segment `k`'s length as received.
    async fn fetch(&self, k: usize) -> anyhow::Result<usize> {
        match self {
            Self::Peer(client) => {
                let (bytes, _) = client
                    .get(&format!("/video/task_1/index{k}.ts"), 0, None)
                    .await?
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                Ok(bytes.len())
            }
            Self::Relay(addr) => {
                use magnet_proto::v1::file_service_client::FileServiceClient;
                let mut relay = FileServiceClient::connect(format!("http://{addr}"))
                    .await?
                    .max_decoding_message_size(8 << 20);
                let mut s = relay
                    .read(pb::ReadRequest {
                        task_id: "task_1".into(),
                        file: format!("index{k}.ts"),
                        offset: 0,
                        length: 0,
                    })
                    .await?
                    .into_inner();
                let mut n = 0;
                while let Some(c) = s.message().await? {
                    n += c.data.len();
                }
                Ok(n)
            }
        }
    }

    /// Plays the stream at its pace; the worst lateness of a segment (0: always ahead).
    async fn watch(self) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut worst = Duration::ZERO;
        for k in 0..SEGMENTS {
            // Playback of segment k starts once the first is in, k segments later.
            let plays_at = Duration::from_secs_f64(SEGMENT_SECS * (k as f64 + 1.0));
            // Fetch at most AHEAD segments before they play.
            let may_start =
                plays_at.saturating_sub(Duration::from_secs_f64(SEGMENT_SECS * AHEAD as f64));
            if let Some(wait) = may_start.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
            let got = self.fetch(k).await?;
            anyhow::ensure!(got == SEGMENT_BYTES, "segment {k}: {got} bytes");
            worst = worst.max(start.elapsed().saturating_sub(plays_at));
        }
        if let Self::Peer(client) = self {
            client.close().await;
        }
        Ok(worst)
    }
}

pub async fn viewers() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let task = data.path().join("m3u8/task_1");
    std::fs::create_dir_all(&task)?;
    for k in 0..SEGMENTS {
        random_file(&task.join(format!("index{k}.ts")), SEGMENT_BYTES, k as u64)?;
    }
    let mut settings = offline_node(data.path(), nats.url(), "bench");
    settings.streamer.max_sessions = 1000;
    settings.streamer.max_sessions_per_user = 1000;
    magnet_tests::nats::register_node(&nats, "bench").await?;
    let streamer = Process::spawn("magnet-streamer", "streamer ready", &settings, data.path())?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let signaling = magnet_signaling::start(settings, shutdown.clone()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, idle_kb) = usage(streamer.pid())?;

    // `BENCH_VIEWERS=5,10` runs only those rounds (a quick check of the bench itself).
    let rounds: Vec<usize> = std::env::var("BENCH_VIEWERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| ROUNDS.to_vec());
    let mut best: Option<(usize, f64, u64)> = None;
    for &n in &rounds {
        let relays = n / 5;
        let mut peers = Vec::new();
        for i in 0..n - relays {
            let id = format!("client-{n}-{i}");
            peers.push(
                magnet_tests::peer::Client::connect(signaling.grpc_addr, "bench", &id).await?,
            );
        }
        let (cpu0, _) = usage(streamer.pid())?;
        let t0 = Instant::now();
        let mut all = tokio::task::JoinSet::new();
        for p in peers {
            all.spawn(Viewer::Peer(p).watch());
        }
        for _ in 0..relays {
            all.spawn(Viewer::Relay(streamer.grpc_addr).watch());
        }
        // RSS at its highest: while every viewer is at it.
        tokio::time::sleep(Duration::from_secs_f64(
            SEGMENT_SECS * SEGMENTS as f64 / 2.0,
        ))
        .await;
        let (_, rss_kb) = usage(streamer.pid())?;
        let mut worst = Duration::ZERO;
        let mut failed = 0;
        while let Some(r) = all.join_next().await {
            match r? {
                Ok(w) => worst = worst.max(w),
                Err(e) => {
                    failed += 1;
                    eprintln!("viewer failed: {e:#}");
                }
            }
        }
        let (cpu1, _) = usage(streamer.pid())?;
        let cpu_pct = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        eprintln!(
            "{n} viewers ({relays} over the relay): worst lateness {:.2} s, {failed} failed, streamer {cpu_pct:.0} % CPU, {} MB RSS",
            worst.as_secs_f64(),
            rss_kb / 1024
        );
        if failed > 0 || worst > Duration::ZERO {
            break;
        }
        best = Some((n, cpu_pct, rss_kb));
    }
    shutdown.cancel();
    let (n, cpu, rss_kb) = best.unwrap_or((0, 0.0, idle_kb));
    let per_viewer = if n == 0 {
        0
    } else {
        rss_kb.saturating_sub(idle_kb) / n as u64
    };
    println!(
        "bench viewers: max_realtime_viewers={n} cpu_pct_at_n={cpu:.0} rss_mb_at_n={} rss_kb_per_viewer={per_viewer} idle_rss_mb={}",
        rss_kb / 1024,
        idle_kb / 1024
    );
    Ok(())
}
