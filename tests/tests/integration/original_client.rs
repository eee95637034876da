//! The original's web client with accounts on (issue 14, section 1), checked against the API
//! as its `index.html` calls it: the public reads answer before a login; a submit right after
//! a login finds the node its page listed before; statuses and progress are as its page shows
//! them (`completed`, and `progress` staying 100 once the download is done), while our own
//! fields keep the transcode's progress apart.

use std::time::Duration;

use futures::StreamExt;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::Seeder;
use magnet_tests::services::{Served, offline_node};
use magnet_tests::video::{Codec, generate_sized};
use magnet_tests::{init_logging, json_of, sse_json};
use serde_json::json;

const NODE: &str = "worker-oc";
const ADMIN_PASSWORD: &str = "admin-password-1";

/// The statuses the original's page has badges for.
const ORIGINAL_STATUSES: [&str; 7] = [
    "pending",
    "downloading",
    "processing",
    "completed",
    "transcoding",
    "ready",
    "error",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_originals_page_flow_works_with_accounts_on() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    // MPEG-4 + AC3 at 720p: re-encoded, so the transcode lasts seconds and reports progress.
    let video = src.path().join("film.mkv");
    generate_sized(&video, 30, "1280x720", Codec::Mpeg4Ac3)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&video).await?;

    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.gateway.auth.enabled = true;
    settings.gateway.auth.admin_password = Some(ADMIN_PASSWORD.into());
    // The download, then the transcode: the phases the original's page knows.
    settings.transcoding.progressive = false;
    let served = Served::start(settings.clone()).await?;
    let base = served.base.clone();
    let anon = reqwest::Client::new();

    // Before any login, the page's first reads answer (its "system online" and node list).
    let (status, st) = json_of(anon.get(format!("{base}/api/status")).send().await?).await?;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["data"]["online_nodes"], 1, "{st}");
    let (status, nodes) = json_of(anon.get(format!("{base}/api/nodes")).send().await?).await?;
    assert_eq!(status, 200, "{nodes}");
    assert_eq!(nodes["data"][0]["id"], NODE);
    let (status, tasks) = json_of(anon.get(format!("{base}/api/tasks")).send().await?).await?;
    assert_eq!((status.as_u16(), tasks["data"]["tasks"].clone()), (200, json!([])));
    // What writes, plays or signals still needs a session.
    for path in ["/api/events", "/video/task_1/index.m3u8", "/api/tasks/task_1"] {
        let (status, body) = json_of(anon.get(format!("{base}{path}")).send().await?).await?;
        assert_eq!(status, 401, "{path}: {body}");
    }

    // A name the original accepts (Unicode and a space), then a login.
    let user = reqwest::Client::builder().cookie_store(true).build()?;
    let creds = json!({ "username": "Zoë Ünal", "password": "secret-enough" });
    let (status, body) = json_of(
        user.post(format!("{base}/api/auth/register"))
            .json(&creds)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = json_of(
        user.post(format!("{base}/api/auth/login"))
            .json(&creds)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    // Right after the login the page reloads only /api/auth/me and submits to the node it
    // listed before: that works.
    let (status, me) = json_of(user.get(format!("{base}/api/auth/me")).send().await?).await?;
    assert_eq!((status.as_u16(), me["data"]["username"].clone()), (200, json!("Zoë Ünal")));
    let (status, submitted) = json_of(
        user.post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "worker_id": nodes["data"][0]["id"], "magnet_url": seeded.magnet }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{submitted}");
    let id = submitted["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Follow the task as the page does (its list, polled), and as our UI does (the events).
    let events = user.get(format!("{base}/api/events")).send().await?;
    assert_eq!(events.status().as_u16(), 200);
    let follow = tokio::spawn(transcode_events(events, id.clone()));
    let mut seen: Vec<(String, u64)> = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let (_, list) = json_of(anon.get(format!("{base}/api/tasks")).send().await?).await?;
            if let Some(t) = list["data"]["tasks"]
                .as_array()
                .and_then(|a| a.iter().find(|t| t["id"] == id.as_str()))
            {
                let sample = (
                    t["status"].as_str().unwrap_or_default().to_owned(),
                    t["progress"].as_u64().unwrap_or(u64::MAX),
                );
                if seen.last() != Some(&sample) {
                    seen.push(sample);
                }
                if t["status"] == "ready" || t["status"] == "error" {
                    return anyhow::Ok(t.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("not ready in 120 s; saw {seen:?}"))??;
    eprintln!("list samples: {seen:?}");
    assert_eq!(ready["status"], "ready", "{ready}");
    // A stranger sees no magnet; its submitter sees the whole one.
    assert_eq!(ready["magnet_url"], "", "{ready}");
    assert_eq!(ready["mine"], false);
    let (_, mine) = json_of(user.get(format!("{base}/api/tasks")).send().await?).await?;
    assert_eq!(mine["data"]["tasks"][0]["magnet_url"], seeded.magnet.as_str());
    assert_eq!(mine["data"]["tasks"][0]["mine"], true);

    for (status, _) in &seen {
        assert!(ORIGINAL_STATUSES.contains(&status.as_str()), "{seen:?}");
    }
    // Progress is the download's: it never goes back, and stays 100 once the download is done.
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "{seen:?}");
    for (status, progress) in &seen {
        if ["completed", "transcoding", "ready"].contains(&status.as_str()) {
            assert_eq!(*progress, 100, "{seen:?}");
        }
    }
    // The transcode's own progress, which our UI shows, came in the events.
    let transcoding = follow.await??;
    assert!(
        !transcoding.is_empty() && transcoding.iter().all(|(p, _)| *p == 100),
        "transcoding events keep progress at 100: {transcoding:?}"
    );
    assert!(
        transcoding.iter().any(|(_, t)| *t > 0 && *t < 100),
        "transcode progress between 0 and 100 expected: {transcoding:?}"
    );

    // A closed instance: no public reads.
    served.stop().await?;
    let mut closed = settings.clone();
    closed.gateway.auth.public_reads = false;
    closed.gateway.listen = ([127, 0, 0, 1], 0).into();
    closed.gateway.admin_listen = ([127, 0, 0, 1], 0).into();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let gateway = magnet_gateway::start(closed, shutdown.clone()).await?;
    for path in ["/api/status", "/api/nodes", "/api/tasks"] {
        let url = format!("http://{}{path}", gateway.addr);
        let (status, body) = json_of(anon.get(url).send().await?).await?;
        assert_eq!(status, 401, "{path}: {body}");
    }
    shutdown.cancel();
    gateway.wait().await?;
    Ok(())
}

/// `(progress, transcode_progress)` of the task's `transcoding` events, until it is ready.
async fn transcode_events(events: reqwest::Response, id: String) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut events = std::pin::pin!(sse_json(events));
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(v) = events.next().await {
            let v = v?;
            if v["id"] != id.as_str() {
                continue;
            }
            if v["status"] == "transcoding" {
                let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
                seen.push((n("progress"), n("transcode_progress")));
            }
            if v["status"] == "ready" {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("event stream ended")
    })
    .await;
    read.map_err(|_| anyhow::anyhow!("no ready event; saw {seen:?}"))??;
    Ok(seen)
}
