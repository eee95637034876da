//! `bench progressive` and `bench seek`: time to the first segment from a paste, and to a
//! segment far past what is downloaded, against the download-then-transcode path and
//! librqbit's raw stream (the floor), on the same seeded files, in one process over loopback.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::{Seeded, Seeder};
use magnet_tests::services::{Served, offline_node};
use magnet_tests::video::{Codec, generate_release, generate_sized};
use serde_json::Value;

/// Runs per case.
const RUNS: usize = 10;
/// The seeder's upload cap in the seek benchmark: 8 Mbit/s.
const SEEK_CAP: u32 = 1_000_000;
/// Piece length of the seek benchmark's torrents.
const SEEK_PIECE: u32 = 256 * 1024;

/// A node (downloader, transcoder, streamer) and a gateway in front of it.
struct Node {
    id: String,
    gateway: String,
    stream: std::net::SocketAddr,
    served: Served,
    _data: tempfile::TempDir,
}

impl Node {
    async fn start(nats: &NatsServer, id: &str, progressive: bool) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut settings = offline_node(data.path(), nats.url(), id);
        settings.transcoding.progressive = progressive;
        let served = Served::start(settings).await?;
        Ok(Self {
            id: id.to_owned(),
            gateway: served.base.clone(),
            stream: served.node.stream_addr,
            served,
            _data: data,
        })
    }

    async fn submit(&self, http: &reqwest::Client, magnet: &str) -> anyhow::Result<String> {
        let v: Value = http
            .post(format!("{}/api/tasks/submit", self.gateway))
            .json(&serde_json::json!({ "magnet_url": magnet, "worker_id": self.id }))
            .send()
            .await?
            .json()
            .await?;
        v["data"]["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("submit: {v}"))
    }

    async fn task(&self, http: &reqwest::Client, id: &str) -> anyhow::Result<Value> {
        let v: Value = http
            .get(format!("{}/api/tasks/{id}", self.gateway))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["data"].clone())
    }

    /// The first byte of `file` through the gateway relay, asking again after 503s.
    async fn first_byte(&self, http: &reqwest::Client, id: &str, file: &str) -> anyhow::Result<()> {
        let url = format!("{}/video/{id}/{file}", self.gateway);
        let until = Instant::now() + Duration::from_secs(300);
        while Instant::now() < until {
            let mut r = http.get(&url).send().await?;
            match r.status().as_u16() {
                200 => {
                    r.chunk().await?.context("empty body")?;
                    return Ok(());
                }
                404 | 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                other => anyhow::bail!("{url}: {other}"),
            }
        }
        anyhow::bail!("{url}: nothing in 300 s")
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.served.stop().await
    }
}

/// `n` copies of `base` that differ (a few trailing bytes), so each is its own torrent.
fn variants(base: &Path, dir: &Path, n: usize) -> anyhow::Result<Vec<PathBuf>> {
    let bytes = std::fs::read(base)?;
    let ext = base.extension().and_then(|e| e.to_str()).unwrap_or("bin");
    (0..n)
        .map(|i| {
            let path = dir.join(format!("v{i}.{ext}"));
            let mut b = bytes.clone();
            b.extend_from_slice(format!("run{i}").as_bytes());
            std::fs::write(&path, b)?;
            Ok(path)
        })
        .collect()
}

/// Seeds `files`, with librqbit's 2 MiB pieces unless `piece_length` is given.
async fn seed_all(
    seeder: &Seeder,
    files: &[PathBuf],
    piece_length: Option<u32>,
) -> anyhow::Result<Vec<Seeded>> {
    let mut out = Vec::new();
    for f in files {
        out.push(match piece_length {
            Some(len) => seeder.seed_pieces(f, len).await?,
            None => seeder.seed(f).await?,
        });
    }
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The p-th percentile (0..=100) of `xs`, in ms (NaN of none).
fn percentile(xs: &[Duration], p: usize) -> f64 {
    magnet_tests::load::percentile_ms(xs, p).unwrap_or(f64::NAN)
}

/// Submit → first MiB of the file from the downloader's stream endpoint.
async fn raw_first_mib(
    node: &Node,
    http: &reqwest::Client,
    magnet: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let id = node.submit(http, magnet).await?;
    let url = format!("http://{}/stream/{id}/0", node.stream);
    loop {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "raw stream: nothing"
        );
        let r = http
            .get(&url)
            .header("range", "bytes=0-1048575")
            .send()
            .await?;
        if r.status().as_u16() == 206 {
            let body = r.bytes().await?;
            anyhow::ensure!(body.len() == 1 << 20, "short body");
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Times from a submit: metadata in (the task lists its files), playable (the playlist is
/// written and the first segment made), and the first byte of `index0.ts` through the relay.
struct Stages {
    metadata: Duration,
    playable: Duration,
    first_segment: Duration,
}

/// Submit → first byte of `index0.ts`, noting when the task got its metadata and became
/// playable (the task polled every 10 ms; a download-then-transcode task is playable when
/// ready).
async fn first_segment(
    node: &Node,
    http: &reqwest::Client,
    magnet: &str,
) -> anyhow::Result<Stages> {
    let started = Instant::now();
    let id = node.submit(http, magnet).await?;
    let (mut metadata, mut playable) = (None, None);
    while playable.is_none() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "{id}: not playable in 300 s"
        );
        let t = node.task(http, &id).await?;
        if metadata.is_none() && t["size"].as_u64().is_some_and(|s| s > 0) {
            metadata = Some(started.elapsed());
        }
        if t["playable"] == true || t["status"] == "ready" {
            playable = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.first_byte(http, &id, "index0.ts").await?;
    let first_segment = started.elapsed();
    let playable = playable.unwrap_or(first_segment);
    Ok(Stages {
        metadata: metadata.unwrap_or(playable),
        playable,
        first_segment,
    })
}

pub async fn progressive() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    let seeder = Seeder::start().await?;
    let http = reqwest::Client::new();
    let ours = Node::start(&nats, "bench-prog", true).await?;
    let full = Node::start(&nats, "bench-full", false).await?;

    // A 2-minute 720p H.264/AAC MP4 with its index at the end (remux), and a 1-minute
    // MPEG-4 Part 2/AC3 Matroska file (transcode).
    let mp4 = src.path().join("movie.mp4");
    generate_sized(&mp4, 120, "1280x720", Codec::H264Aac)?;
    let mkv = src.path().join("movie.mkv");
    generate_sized(&mkv, 60, "1280x720", Codec::Mpeg4Ac3)?;
    let remux = seed_all(&seeder, &variants(&mp4, src.path(), 3 * RUNS)?, None).await?;
    let trans = seed_all(&seeder, &variants(&mkv, src.path(), RUNS)?, None).await?;

    let (mut first, mut whole, mut raw, mut transcode) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut metadata, mut playable) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let a = first_segment(&ours, &http, &remux[i].magnet).await?;
        let b = first_segment(&full, &http, &remux[RUNS + i].magnet).await?;
        let c = raw_first_mib(&full, &http, &remux[2 * RUNS + i].magnet).await?;
        let d = first_segment(&ours, &http, &trans[i].magnet).await?;
        eprintln!(
            "run {i}: progressive {:.0} ms (metadata {:.0}, playable {:.0}), download-then-transcode {:.0} ms, raw first MiB {:.0} ms, transcode path {:.0} ms (playable {:.0})",
            ms(a.first_segment),
            ms(a.metadata),
            ms(a.playable),
            ms(b.first_segment),
            ms(c),
            ms(d.first_segment),
            ms(d.playable),
        );
        metadata.push(a.metadata);
        playable.push(a.playable);
        first.push(a.first_segment);
        whole.push(b.first_segment);
        raw.push(c);
        transcode.push(d.first_segment);
    }
    ours.stop().await?;
    full.stop().await?;
    println!(
        "bench progressive: first_seg_p50_ms={:.0} first_seg_p95_ms={:.0} full_p50_ms={:.0} raw_first_mib_p50_ms={:.0} transcode_first_seg_p50_ms={:.0} speedup_p50={:.1} metadata_p50_ms={:.0} playable_p50_ms={:.0} n={RUNS}",
        percentile(&first, 50),
        percentile(&first, 95),
        percentile(&whole, 50),
        percentile(&raw, 50),
        percentile(&transcode, 50),
        percentile(&whole, 50) / percentile(&first, 50),
        percentile(&metadata, 50),
        percentile(&playable, 50),
    );
    Ok(())
}

/// The segment of `playlist` that starts at or before `at` seconds.
fn segment_at(playlist: &str, at: f64) -> Option<String> {
    let mut start = 0.0;
    let mut length = 0.0;
    let mut found = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            length = d.trim_end_matches(',').parse().unwrap_or(0.0);
        } else if !line.starts_with('#') && !line.is_empty() {
            if start <= at {
                found = Some(line.to_owned());
            }
            start += length;
        }
    }
    found
}

pub async fn seek() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let nats = NatsServer::start()?;
    let seeder = Seeder::with_upload_limit(Some(SEEK_CAP)).await?;
    let http = reqwest::Client::new();
    let ours = Node::start(&nats, "bench-seek", true).await?;
    // At a 720p release's bitrate (the seeder's 8 Mbit/s is about three times the stream's),
    // in 256 KiB pieces as tools cut a file of this size.
    let mp4 = src.path().join("movie.mp4");
    generate_release(&mp4, 120)?;
    // A few spare torrents: a run whose target is downloaded already does not count.
    let seeded = seed_all(
        &seeder,
        &variants(&mp4, src.path(), RUNS + 5)?,
        Some(SEEK_PIECE),
    )
    .await?;
    let size = std::fs::metadata(&mp4)?.len() as f64;

    let (mut seeks, mut ranges) = (Vec::new(), Vec::new());
    for (i, s) in seeded.iter().enumerate() {
        if seeks.len() == RUNS {
            break;
        }
        let id = ours.submit(&http, &s.magnet).await?;
        // Playable, then a target between 10 % and 95 % that is not downloaded yet.
        let started = Instant::now();
        loop {
            let t = ours.task(&http, &id).await?;
            if t["playable"] == true {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "never playable: {t}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let t = ours.task(&http, &id).await?;
        let done = t["downloaded"].as_f64().unwrap_or(0.0) / size;
        let frac = (0.10 + 0.85 * ((i * 7919) % 100) as f64 / 100.0)
            .max(done + 0.1)
            .min(0.95);
        let playlist = http
            .get(format!("{}/video/{id}/index.m3u8", ours.gateway))
            .send()
            .await?
            .text()
            .await?;
        let file = segment_at(&playlist, 120.0 * frac).context("no segment")?;
        let now = ours.task(&http, &id).await?;
        if now["downloaded"].as_f64().unwrap_or(0.0) / size >= frac {
            eprintln!(
                "run {i}: the target at {:.0} % is downloaded already; not counted: {now}",
                frac * 100.0
            );
            http.delete(format!("{}/api/tasks/{id}", ours.gateway))
                .send()
                .await?;
            continue;
        }
        let t0 = Instant::now();
        ours.first_byte(&http, &id, &file).await?;
        let seek = t0.elapsed();
        // The floor: 1 MiB at the same offset straight from the stream endpoint.
        let offset = (size * (frac + 0.02).min(0.97)) as u64;
        let t1 = Instant::now();
        let r = http
            .get(format!("http://{}/stream/{id}/0", ours.stream))
            .header(
                "range",
                format!("bytes={offset}-{}", offset + (1 << 20) - 1),
            )
            .send()
            .await?;
        r.bytes().await?;
        let range = t1.elapsed();
        eprintln!(
            "run {i}: seek to {:.0} % ({file}) with {:.0} % downloaded: {:.0} ms; raw range {:.0} ms",
            frac * 100.0,
            done * 100.0,
            ms(seek),
            ms(range)
        );
        seeks.push(seek);
        ranges.push(range);
        http.delete(format!("{}/api/tasks/{id}", ours.gateway))
            .send()
            .await?;
    }
    ours.stop().await?;
    println!(
        "bench seek: seek_p50_ms={:.0} seek_p95_ms={:.0} raw_range_p95_ms={:.0} seeder_cap_mbps=8 n={RUNS}",
        percentile(&seeks, 50),
        percentile(&seeks, 95),
        percentile(&ranges, 95),
    );
    Ok(())
}
