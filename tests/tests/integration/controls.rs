//! Controlling a task (issue 15, "Controlling"): pause stops all of a task's traffic (the bytes
//! the seeder counts do not move), also across a restart of the downloader; resume continues
//! from what is on disk.

use std::time::Duration;

use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::Seeder;
use magnet_tests::services::{InProcess, offline_node};
use magnet_tests::video::generate_release;
use magnet_runtime::Settings;
use magnet_tests::{eventually, init_logging, json_of, submit_magnet};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NODE: &str = "node-c";

/// A gateway in front of the node whose downloader the test runs (and may restart).
pub(crate) struct Stage {
    pub(crate) base: String,
    running: magnet_gateway::Running,
    shutdown: CancellationToken,
}

impl Stage {
    /// The node's downloader and a gateway, once the gateway lists the node.
    pub(crate) async fn start(mut settings: Settings) -> anyhow::Result<(InProcess, Self)> {
        settings.gateway.listen = ([127, 0, 0, 1], 0).into();
        settings.gateway.admin_listen = ([127, 0, 0, 1], 0).into();
        let node = InProcess::start(settings.clone()).await?;
        let shutdown = CancellationToken::new();
        let running = magnet_gateway::start(settings, shutdown.clone()).await?;
        let base = format!("http://{}", running.addr);
        let http = reqwest::Client::new();
        eventually(Duration::from_secs(10), "node listed", || async {
            let (_, b) = json_of(http.get(format!("{base}/api/nodes")).send().await.ok()?)
                .await
                .ok()?;
            b["data"].as_array().filter(|a| !a.is_empty()).map(|_| ())
        })
        .await?;
        Ok((
            node,
            Self {
                base,
                running,
                shutdown,
            },
        ))
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        Ok(self.running.wait().await?)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_all_traffic_and_survives_a_restart_and_resume_continues() -> anyhow::Result<()>
{
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let movie = src.path().join("movie.mp4");
    generate_release(&movie, 60)?;
    let size = std::fs::metadata(&movie)?.len();
    // About 15 s for the whole file.
    let seeder = Seeder::with_upload_limit(Some(u32::try_from(size / 15)?)).await?;
    let seeded = seeder.seed(&movie).await?;

    let data = tempfile::tempdir()?;
    let settings = offline_node(data.path(), nats.url(), NODE);
    let (node, gateway) = Stage::start(settings.clone()).await?;
    let (base, http) = (gateway.base.clone(), reqwest::Client::new());
    let id = submit_magnet(&http, &base, &seeded.magnet).await?;
    let task = || async {
        let (_, b) = json_of(http.get(format!("{base}/api/tasks/{id}")).send().await?).await?;
        anyhow::Ok(b["data"].clone())
    };
    let fraction = |t: &Value| t["downloaded"].as_f64().unwrap_or(0.0) / size as f64;
    eventually(Duration::from_secs(30), "some downloaded", || async {
        task().await.ok().filter(|t| fraction(t) > 0.1)
    })
    .await?;

    // Pause: the seeder sends nothing for 5 s.
    let (status, paused) =
        json_of(http.post(format!("{base}/api/tasks/{id}/pause")).send().await?).await?;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["data"]["paused"], true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let quiet = |what: &'static str| {
        let seeded = &seeded;
        async move {
            let before = Seeder::uploaded(seeded);
            tokio::time::sleep(Duration::from_secs(5)).await;
            let after = Seeder::uploaded(seeded);
            assert_eq!(before, after, "{what}: the seeder sent {} bytes", after - before);
        }
    };
    quiet("paused").await;
    let held = task().await?;
    assert_eq!((held["status"].clone(), held["paused"].clone()), (json!("downloading"), json!(true)));
    assert!(fraction(&held) < 0.9, "{held}");

    // A restart of the downloader keeps it paused.
    node.stop().await?;
    let node = InProcess::start(settings.clone()).await?;
    let after_restart = eventually(Duration::from_secs(20), "task listed again", || async {
        task().await.ok().filter(|t| t["paused"] == true)
    })
    .await?;
    assert!(fraction(&after_restart) >= fraction(&held) - 0.01, "{after_restart}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    quiet("paused across a restart").await;

    // Resume: it continues from what it had, and completes.
    let sent_before = Seeder::uploaded(&seeded);
    let (status, resumed) =
        json_of(http.post(format!("{base}/api/tasks/{id}/resume")).send().await?).await?;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["data"]["paused"], false);
    let done = eventually(Duration::from_secs(60), "download done", || async {
        task().await.ok().filter(|t| t["status"] != "downloading" && t["status"] != "pending")
    })
    .await?;
    assert_eq!(done["status"], "completed", "{done}");
    let resent = Seeder::uploaded(&seeded) - sent_before;
    assert!(
        (resent as f64) < size as f64 * (1.0 - fraction(&held)) + 4.0 * 1024.0 * 1024.0,
        "resumed from what it had: {resent} bytes sent after the resume, {size} in all, {} held",
        fraction(&held)
    );
    // A finished download cannot be paused.
    let (status, e) =
        json_of(http.post(format!("{base}/api/tasks/{id}/pause")).send().await?).await?;
    assert_eq!(status, 400, "{e}");

    node.stop().await?;
    gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_in_error_is_retried_and_completes() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let movie = src.path().join("movie.mp4");
    magnet_tests::video::generate(&movie, 6, magnet_tests::video::Codec::H264Aac)?;
    // A seeder that serves nothing yet: the task gives up waiting for the metadata.
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&movie).await?;
    seeder.set_paused(&seeded, true).await?;

    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.torrent.metadata_timeout_secs = 3;
    settings.torrent.give_up_after_secs = 3;
    let (node, gateway) = Stage::start(settings.clone()).await?;
    let (base, http) = (gateway.base.clone(), reqwest::Client::new());
    let id = submit_magnet(&http, &base, &seeded.magnet).await?;
    let task = || async {
        let (_, b) = json_of(http.get(format!("{base}/api/tasks/{id}")).send().await?).await?;
        anyhow::Ok(b["data"].clone())
    };
    // Only a task in error can be retried.
    let (status, _) =
        json_of(http.post(format!("{base}/api/tasks/{id}/retry")).send().await?).await?;
    assert_eq!(status, 400);
    let failed = eventually(Duration::from_secs(30), "task in error", || async {
        task().await.ok().filter(|t| t["status"] == "error")
    })
    .await?;
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()), "{failed}");

    // The seeder serves again; a retry completes the task, its error gone.
    seeder.set_paused(&seeded, false).await?;
    let (status, retried) =
        json_of(http.post(format!("{base}/api/tasks/{id}/retry")).send().await?).await?;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["data"]["status"], "pending");
    assert_eq!(retried["data"]["error"], "");
    let done = eventually(Duration::from_secs(60), "download done", || async {
        task().await.ok().filter(|t| t["status"] == "completed")
    })
    .await?;
    assert_eq!(done["progress"], 100);

    node.stop().await?;
    gateway.stop().await?;
    Ok(())
}
