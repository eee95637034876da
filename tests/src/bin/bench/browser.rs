//! `bench browser`: what a viewer's browser gets from a node. Headless Chromium (Debian's)
//! fetches a 50 MB file from the node's streamer over P2P with the player's binary client,
//! with the original protocol as the original's player decodes it (JSON, base64, slices),
//! and through the gateway's relay with `fetch`: same run, loopback, release build. Then the
//! player buffers a 1080p video of a release's bitrate. The page side is `web/e2e/bench.mjs`.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::{Seeder, random_file};
use magnet_tests::services::{Served, offline_node};
use magnet_tests::video::generate_release_1080p;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Size of the file fetched in each mode.
const SIZE: usize = 50 * 1024 * 1024;
/// Rounds of each mode (best of).
const ROUNDS: usize = 3;
/// Length of the 1080p video the player buffers.
const VIDEO_SECONDS: u32 = 180;

pub async fn browser() -> anyhow::Result<()> {
    let video = super::bench_cache()?.join(format!("release-1080p-{VIDEO_SECONDS}s.mp4"));
    if !video.exists() {
        eprintln!("generating the 1080p video once ({})", video.display());
        let tmp = video.with_extension("tmp.mp4");
        generate_release_1080p(&tmp, VIDEO_SECONDS)?;
        std::fs::rename(&tmp, &video)?;
    }
    let stream_mbit =
        std::fs::metadata(&video)?.len() as f64 * 8.0 / f64::from(VIDEO_SECONDS) / 1e6;

    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), "bench");
    super::send_buffer_from_env(&mut settings);
    let node = Served::start(settings).await?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&video).await?;
    let http = reqwest::Client::new();
    let task = magnet_tests::submit_magnet(&http, &node.base, &seeded.magnet).await?;
    magnet_tests::task_reaches(&http, &node.base, &task, "ready", Duration::from_secs(300)).await?;

    // The 50 MB file sits in the task's HLS folder, where the streamer serves from.
    let big = data.path().join("m3u8").join(&task).join("big.ts");
    random_file(&big, SIZE, 7)?;
    let want = data_encoding::HEXLOWER.encode(&Sha256::digest(std::fs::read(&big)?));

    let out = data.path().join("browser.json");
    let status = Command::new("node")
        .arg(magnet_tests::stack::web_dir().join("e2e/bench.mjs"))
        .env("BASE_URL", &node.base)
        .env("WORKER", "bench")
        .env("FILE", format!("/video/{task}/big.ts"))
        .env("BYTES", SIZE.to_string())
        .env("TASK", &task)
        .env("ROUNDS", ROUNDS.to_string())
        .env("OUT", &out)
        .status()
        .context("cannot run node (`cargo xtask test` installs it)")?;
    let result: Value = std::fs::read(&out)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    node.stop().await?;
    anyhow::ensure!(
        status.success(),
        "the browser run failed ({status}): {result}"
    );
    anyhow::ensure!(
        result["pageErrors"].as_array().is_some_and(Vec::is_empty),
        "errors on the page: {}",
        result["pageErrors"]
    );

    let transfers = result["transfers"].as_array().context("no transfers")?;
    for t in transfers {
        let mode = t["mode"].as_str().unwrap_or("?");
        anyhow::ensure!(t["bytes"].as_u64() == Some(SIZE as u64), "{mode}: {t}");
        anyhow::ensure!(
            matches!(mode, "sink" | "chromium") || t["sha256"] == want.as_str(),
            "{mode}: bytes differ"
        );
    }
    let best = |mode: &str| -> anyhow::Result<&Value> {
        transfers
            .iter()
            .filter(|t| t["mode"] == mode)
            .min_by(|a, b| {
                a["ms"]
                    .as_f64()
                    .partial_cmp(&b["ms"].as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .with_context(|| format!("no {mode} transfer"))
    };
    let mbps = |t: &Value| SIZE as f64 / 1e3 / t["ms"].as_f64().unwrap_or(f64::INFINITY);
    let (binary, base64, relay, sink, chromium) = (
        best("binary")?,
        best("base64")?,
        best("relay")?,
        best("sink")?,
        best("chromium")?,
    );
    for t in [binary, base64, sink, chromium] {
        let messages = t["messages"].as_f64().unwrap_or(0.0).max(1.0);
        eprintln!(
            "{:<6} {:>6.1} MB/s: {} messages of {:.0} KiB, {:.0} % of the time in the page's handlers",
            t["mode"].as_str().unwrap_or("?"),
            mbps(t),
            messages,
            SIZE as f64 / messages / 1024.0,
            100.0 * t["handlerMs"].as_f64().unwrap_or(0.0) / t["ms"].as_f64().unwrap_or(1.0),
        );
    }
    let player = &result["player"];
    anyhow::ensure!(
        player["transport"] == "p2p",
        "the player did not play over P2P: {player}"
    );
    let buffered = player["bufferedPerSecond"]
        .as_f64()
        .context("no player figure")?;
    eprintln!(
        "player: {:.0} s of {stream_mbit:.1} Mbit/s 1080p buffered in {:.2} s",
        player["bufferedSeconds"].as_f64().unwrap_or(0.0),
        player["wallSeconds"].as_f64().unwrap_or(0.0)
    );
    let (a, b, c) = (mbps(binary), mbps(base64), mbps(relay));
    println!(
        "bench browser: binary_mbps={a:.1} base64_mbps={b:.1} relay_mbps={c:.1} binary_over_base64={:.2} sink_mbps={:.1} chromium_to_chromium_mbps={:.1} buffered_s_per_s={buffered:.1} stream_mbit={stream_mbit:.1}",
        a / b,
        mbps(sink),
        mbps(chromium),
    );
    Ok(())
}
