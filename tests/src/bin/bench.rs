//! Benchmarks of magnetm3u8 against baselines measured in the same run (`cargo xtask bench`).
//! Each ends with one line `bench <name>: key=value …`.

use std::time::{Duration, Instant};

use anyhow::Context;
use librqbit::{AddTorrent, AddTorrentOptions, Session, SessionOptions};
use magnet_proto::v1 as pb;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::{Seeded, Seeder, random_file};
use magnet_tests::services::{InProcess, offline_node};

const DOWNLOAD_SIZE: usize = 500 * 1024 * 1024;
const ROUNDS: usize = 2;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let names: Vec<String> = std::env::args().skip(1).collect();
    for name in &names {
        match name.as_str() {
            "download" => download().await?,
            other => anyhow::bail!("unknown benchmark {other:?}"),
        }
    }
    Ok(())
}

/// A 500 MB file from a local seeder: a bare librqbit session vs our downloader service
/// (submit → `downloaded`), alternating, best of each.
async fn download() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let file = src.path().join("payload.bin");
    random_file(&file, DOWNLOAD_SIZE, 1)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&file).await?;
    let nats = NatsServer::start()?;

    let mut bare = Duration::MAX;
    let mut ours = Duration::MAX;
    for round in 1..=ROUNDS {
        let b = bare_download(&seeded, seeder.addr()).await?;
        let o = service_download(&seeded, nats.url(), round).await?;
        eprintln!("round {round}: bare {:.2} s, ours {:.2} s", b.as_secs_f64(), o.as_secs_f64());
        bare = bare.min(b);
        ours = ours.min(o);
    }
    let mb = DOWNLOAD_SIZE as f64 / 1e6;
    let bare_mbps = mb / bare.as_secs_f64();
    let ours_mbps = mb / ours.as_secs_f64();
    println!("bench download: ours_mbps={ours_mbps:.0} bare_mbps={bare_mbps:.0} ratio={:.2}", ours_mbps / bare_mbps);
    Ok(())
}

async fn bare_download(seeded: &Seeded, peer: std::net::SocketAddr) -> anyhow::Result<Duration> {
    let out = tempfile::tempdir()?;
    let session = Session::new_with_opts(
        out.path().to_owned(),
        SessionOptions {
            dht: None,
            disable_trackers: true,
            disable_local_service_discovery: true,
            persistence: None,
            listen: None,
            ..Default::default()
        },
    )
    .await?;
    let started = Instant::now();
    let handle = session
        .add_torrent(
            AddTorrent::from_url(seeded.magnet.as_str()),
            Some(AddTorrentOptions {
                initial_peers: Some(vec![peer]),
                output_folder: Some(out.path().join("t").to_string_lossy().into_owned()),
                overwrite: true,
                ..Default::default()
            }),
        )
        .await?
        .into_handle()
        .context("no handle")?;
    tokio::time::timeout(Duration::from_secs(300), handle.wait_until_completed()).await??;
    let took = started.elapsed();
    session.stop().await;
    Ok(took)
}

async fn service_download(seeded: &Seeded, nats_url: &str, round: usize) -> anyhow::Result<Duration> {
    let data = tempfile::tempdir()?;
    let node = InProcess::start(offline_node(data.path(), nats_url, &format!("bench-{round}"))).await?;
    let mut client = node.client().await?;
    let started = Instant::now();
    let task = client.submit(pb::SubmitRequest { magnet_url: seeded.magnet.clone() }).await?.into_inner().task.context("task")?;
    loop {
        let t = client.get(pb::GetRequest { task_id: task.id.clone() }).await?.into_inner();
        match t.status() {
            pb::TaskStatus::Downloaded => break,
            pb::TaskStatus::Error => anyhow::bail!("download failed: {}", t.error),
            _ if started.elapsed() > Duration::from_secs(300) => anyhow::bail!("download took over 300 s"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let took = started.elapsed();
    node.stop().await?;
    Ok(took)
}
