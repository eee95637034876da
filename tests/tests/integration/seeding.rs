//! Seeding after the download (issue 15, "Controlling"): the node's ratio limit stops seeding
//! at the ratio, measured at a leeching peer that can get the file from the node only; the
//! node's upload cap holds; "stop and keep" stops seeding at once and keeps the files; both
//! stay stopped across a restart of the downloader.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use librqbit::ManagedTorrent;
use magnet_runtime::Settings;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::{Seeded, Seeder, random_file};
use magnet_tests::services::{InProcess, offline_node};
use magnet_tests::{eventually, init_logging, json_of, submit_magnet, task_of, task_reaches};

use super::controls::Stage;

const NODE: &str = "node-s";
const SIZE: usize = 6 * 1024 * 1024;
const UPLOAD_KIBPS: u32 = 512;

/// A node that peers can reach on loopback, uploading at most [`UPLOAD_KIBPS`].
fn seeding_node(data: &std::path::Path, nats: &str) -> Settings {
    let mut s = offline_node(data, nats, NODE);
    s.torrent.listen_port = Some(0);
    s.torrent.listen_host = "127.0.0.1".into();
    s.torrent.upload_limit_kibps = Some(UPLOAD_KIBPS);
    s
}

fn torrent_addr(node: &InProcess) -> anyhow::Result<SocketAddr> {
    node.running
        .as_ref()
        .and_then(|r| r.torrent_addr)
        .ok_or_else(|| anyhow::anyhow!("the node does not listen for peers"))
}

/// A seeded random "movie" of [`SIZE`] bytes in 256 KiB pieces.
async fn seeded(seeder: &Seeder, dir: &std::path::Path) -> anyhow::Result<Seeded> {
    let movie = dir.join("movie.mkv");
    random_file(&movie, SIZE, 15)?;
    seeder.seed_pieces(&movie, 256 * 1024).await
}

/// Submits the magnet and waits for the download to complete; the original seeder then stops
/// serving, so that the node is the only source left.
async fn completed_task(
    http: &reqwest::Client,
    base: &str,
    seeder: &Seeder,
    seeded: &Seeded,
) -> anyhow::Result<String> {
    let id = submit_magnet(http, base, &seeded.magnet).await?;
    task_reaches(http, base, &id, "completed", Duration::from_secs(60)).await?;
    seeder.set_paused(seeded, true).await?;
    Ok(id)
}

/// Waits until the leecher's verified bytes have not moved for `quiet`; returns them and when
/// they last moved.
async fn until_still(
    leech: &Arc<ManagedTorrent>,
    quiet: Duration,
    limit: Duration,
) -> anyhow::Result<(u64, Instant)> {
    let started = Instant::now();
    let mut last = (leech.stats().progress_bytes, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = leech.stats().progress_bytes;
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= quiet && now > 0 {
            return Ok(last);
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "the leecher never stood still: {now} bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seeding_stops_at_the_ratio_measured_at_a_leecher_and_stays_stopped() -> anyhow::Result<()>
{
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let seeder = Seeder::start().await?;
    let seeded = seeded(&seeder, src.path()).await?;
    let data = tempfile::tempdir()?;
    let mut settings = seeding_node(data.path(), nats.url());
    settings.torrent.seed_ratio = 0.5;
    let (node, gateway) = Stage::start(settings.clone()).await?;
    let (base, http) = (gateway.base.clone(), reqwest::Client::new());
    let id = completed_task(&http, &base, &seeder, &seeded).await?;
    let seeding = task_of(&http, &base, &id).await?;
    assert_eq!(seeding["seeding"], true, "{seeding}");

    // A leecher whose only source is the node.
    let leecher = Seeder::start().await?;
    let started = Instant::now();
    let leech = leecher
        .leech(seeded.torrent.clone(), torrent_addr(&node)?)
        .await?;
    let (got, last_moved) =
        until_still(&leech, Duration::from_secs(5), Duration::from_secs(60)).await?;
    let fraction = got as f64 / SIZE as f64;
    assert!(
        (0.4..0.85).contains(&fraction),
        "the leecher got {fraction:.2} of the file from a node whose ratio limit is 0.5"
    );
    // The node's upload cap: the leecher never got it faster (an upper bound holds under load).
    let rate = got as f64 / last_moved.duration_since(started).as_secs_f64();
    let cap = f64::from(UPLOAD_KIBPS) * 1024.0;
    assert!(rate < cap * 1.5, "{rate:.0} B/s through a cap of {cap} B/s");

    let stopped = eventually(
        Duration::from_secs(10),
        "seeding stopped in the API",
        || async {
            task_of(&http, &base, &id)
                .await
                .ok()
                .filter(|t| t["seeding"] == false)
        },
    )
    .await?;
    assert!(
        stopped["seeding_stopped"]
            .as_str()
            .is_some_and(|r| r.contains("ratio 0.50")),
        "{stopped}"
    );
    let uploaded = stopped["uploaded"].as_u64().unwrap_or(0);
    assert!(uploaded as f64 >= 0.5 * SIZE as f64, "{stopped}");
    assert!(
        stopped["ratio"].as_f64().is_some_and(|r| r >= 0.5),
        "{stopped}"
    );
    assert_eq!(
        stopped["status"], "completed",
        "the task itself is unchanged: {stopped}"
    );

    // A restart: the uploaded bytes are kept and the torrent does not seed again.
    node.stop().await?;
    let node = InProcess::start(settings).await?;
    let again = eventually(Duration::from_secs(20), "task listed again", || async {
        task_of(&http, &base, &id)
            .await
            .ok()
            .filter(|t| t["status"] == "completed")
    })
    .await?;
    assert_eq!(again["uploaded"].as_u64(), Some(uploaded), "{again}");
    assert_eq!(again["seeding"], false, "{again}");
    let fresh = Seeder::start().await?;
    let second = fresh
        .leech(seeded.torrent.clone(), torrent_addr(&node)?)
        .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        second.stats().progress_bytes,
        0,
        "a node that stopped seeding served a peer after its restart"
    );

    node.stop().await?;
    gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_and_keep_stops_seeding_at_once_and_keeps_the_files() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let seeder = Seeder::start().await?;
    let seeded = seeded(&seeder, src.path()).await?;
    let data = tempfile::tempdir()?;
    let settings = seeding_node(data.path(), nats.url());
    let (node, gateway) = Stage::start(settings).await?;
    let (base, http) = (gateway.base.clone(), reqwest::Client::new());
    let id = completed_task(&http, &base, &seeder, &seeded).await?;

    // A task still downloading is paused, not stopped; here the download is done.
    let leecher = Seeder::start().await?;
    let leech = leecher
        .leech(seeded.torrent.clone(), torrent_addr(&node)?)
        .await?;
    eventually(
        Duration::from_secs(30),
        "the leecher gets bytes from the node",
        || async { (leech.stats().progress_bytes > 0).then_some(()) },
    )
    .await?;
    let (status, stopped) = json_of(
        http.post(format!("{base}/api/tasks/{id}/stop"))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["data"]["seeding"], false, "{stopped}");
    assert!(
        stopped["data"]["seeding_stopped"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{stopped}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = leech.stats().progress_bytes;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = leech.stats().progress_bytes;
    assert_eq!(before, after, "the node kept seeding after stop-and-keep");
    assert!(
        after < SIZE as u64,
        "the leecher finished before the stop: nothing was shown"
    );

    // The files stay, byte for byte.
    let kept = std::fs::read(data.path().join("downloads").join(&id).join("movie.mkv"))?;
    assert_eq!(kept, std::fs::read(src.path().join("movie.mkv"))?);
    let t = task_of(&http, &base, &id).await?;
    assert_eq!(t["status"], "completed", "{t}");

    node.stop().await?;
    gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nodes_download_cap_holds() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let seeder = Seeder::start().await?;
    let movie = src.path().join("movie.mkv");
    random_file(&movie, 2 * 1024 * 1024, 16)?;
    let seeded = seeder.seed_pieces(&movie, 64 * 1024).await?;
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.torrent.download_limit_kibps = Some(256);
    let (node, gateway) = Stage::start(settings).await?;
    let (base, http) = (gateway.base.clone(), reqwest::Client::new());
    let started = Instant::now();
    let id = submit_magnet(&http, &base, &seeded.magnet).await?;
    eventually(Duration::from_secs(60), "download completed", || async {
        task_of(&http, &base, &id)
            .await
            .ok()
            .filter(|t| t["status"] == "completed")
    })
    .await?;
    // 2 MiB at 256 KiB/s take 8 s; a first burst may come at once. A bound from below holds
    // however loaded the machine is.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5),
        "2 MiB in {took:?} through a cap of 256 KiB/s"
    );
    node.stop().await?;
    gateway.stop().await?;
    Ok(())
}
