//! The node's disk quota (issue 15, "Disk that never fills") on a whole node: with a quota of
//! about three tasks, a fourth evicts the payload of the least recently played finished task
//! (which still plays), never a pinned one or one being played; a task that cannot fit even
//! after every allowed eviction, or that is larger than the quota, is refused and nothing is
//! lost; disk use shows per task, per node and as a metric.

use std::path::Path;
use std::time::Duration;

use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::{Seeded, Seeder, random_file};
use magnet_tests::services::{Served, offline_node};
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging, json_of, submit_magnet, task_of, task_reaches};
use serde_json::json;

const NODE: &str = "node-q";
const MB: u64 = 1024 * 1024;
/// Each task: a short clip and 3 MiB of extras, about 3.8 MiB with its HLS: three fit in
/// [`QUOTA_MB`], four do not.
const EXTRAS: usize = 3 * 1024 * 1024;
const QUOTA_MB: u64 = 13;

/// A folder torrent `<name>/clip.mp4` + `<name>/extras.bin` (`extras` random bytes).
async fn release(
    seeder: &Seeder,
    dir: &Path,
    name: &str,
    extras: usize,
    seed: u64,
) -> anyhow::Result<Seeded> {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder)?;
    generate(&folder.join("clip.mp4"), 4, Codec::H264Aac)?;
    random_file(&folder.join("extras.bin"), extras, seed)?;
    seeder.seed(&folder).await
}

/// Fetches the task's playlist through the gateway's relay (a viewer playing it).
async fn play(http: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<u16> {
    Ok(http
        .get(format!("{base}/video/{id}/index.m3u8"))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fourth_task_evicts_the_least_recently_played_never_pinned_or_playing()
-> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let seeder = Seeder::start().await?;
    let mut seeded = Vec::new();
    for (n, name) in ["alpha", "bravo", "charlie", "delta", "echo"]
        .iter()
        .enumerate()
    {
        seeded.push(release(&seeder, src.path(), name, EXTRAS, n as u64).await?);
    }
    let huge = release(&seeder, src.path(), "huge", 14 * 1024 * 1024, 99).await?;

    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.limits.disk_quota_mb = Some(QUOTA_MB);
    let served = Served::start(settings).await?;
    let (base, http) = (served.base.clone(), reqwest::Client::new());
    let payload = |id: &str| data.path().join("downloads").join(id);

    // Three tasks fit, one after the other; nothing is evicted meanwhile.
    let mut ids = Vec::new();
    for s in &seeded[..3] {
        let id = submit_magnet(&http, &base, &s.magnet).await?;
        task_reaches(&http, &base, &id, "ready", Duration::from_secs(90)).await?;
        if ids.is_empty() {
            // A is pinned (the oldest, first to go otherwise).
            let (status, pinned) = json_of(
                http.post(format!("{base}/api/tasks/{id}/pin"))
                    .send()
                    .await?,
            )
            .await?;
            assert_eq!(
                (status.as_u16(), pinned["data"]["pinned"].clone()),
                (200, json!(true)),
                "{pinned}"
            );
        }
        ids.push(id);
    }
    let (a, b, c) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    for id in &ids {
        let t = task_of(&http, &base, id).await?;
        assert_eq!(
            t["payload_evicted"], false,
            "evicted while the quota still had room: {t}"
        );
    }
    // B is being played; C is neither pinned nor played.
    assert_eq!(play(&http, &base, &b).await?, 200);
    eventually(Duration::from_secs(10), "B's play recorded", || async {
        task_of(&http, &base, &b)
            .await
            .ok()
            .filter(|t| t["last_played_at"].as_str().is_some_and(|s| !s.is_empty()))
    })
    .await?;

    // A fourth: C gives up its payload, and still plays.
    let d = submit_magnet(&http, &base, &seeded[3].magnet).await?;
    task_reaches(&http, &base, &d, "ready", Duration::from_secs(90)).await?;
    let evicted = task_of(&http, &base, &c).await?;
    assert_eq!(evicted["payload_evicted"], true, "{evicted}");
    assert_eq!(evicted["status"], "ready", "{evicted}");
    assert!(!payload(&c).exists(), "C's payload is still on disk");
    for kept in [&a, &b, &d] {
        let t = task_of(&http, &base, kept).await?;
        assert_eq!(t["payload_evicted"], false, "{t}");
        assert!(payload(kept).exists(), "{kept}'s payload is gone");
    }
    assert_eq!(
        play(&http, &base, &c).await?,
        200,
        "the evicted task no longer plays"
    );

    // A fifth that would need a pinned or playing task's room is refused; nothing goes.
    assert_eq!(play(&http, &base, &d).await?, 200);
    let listed = || async {
        let (_, l) = json_of(http.get(format!("{base}/api/tasks")).send().await?).await?;
        anyhow::Ok(l["data"]["tasks"].as_array().map_or(0, Vec::len))
    };
    let before = listed().await?;
    let submit = |torrent: &bytes::Bytes| {
        http.post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "torrent": data_encoding::BASE64.encode(torrent) }))
            .send()
    };
    let (status, refused) = json_of(submit(&seeded[4].torrent).await?).await?;
    assert_eq!(status, 507, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("not enough room")),
        "{refused}"
    );
    let (status, too_big) = json_of(submit(&huge.torrent).await?).await?;
    assert_eq!(status, 507, "{too_big}");
    assert!(
        too_big["error"]
            .as_str()
            .is_some_and(|e| e.contains("whole quota")),
        "{too_big}"
    );
    assert_eq!(listed().await?, before, "a refused submit stored a task");
    for id in [&a, &b, &c, &d] {
        assert_eq!(
            task_of(&http, &base, id).await?["status"],
            "ready",
            "{id} lost"
        );
    }

    // Disk use: per task, per node (used of quota) and as a metric.
    let node = eventually(Duration::from_secs(15), "node disk use", || async {
        let (_, n) = json_of(
            http.get(format!("{base}/api/nodes/{NODE}"))
                .send()
                .await
                .ok()?,
        )
        .await
        .ok()?;
        let used = n["data"]["resources"]["disk_used_bytes"].as_u64()?;
        (used > 0).then_some(n)
    })
    .await?;
    let resources = &node["data"]["resources"];
    assert_eq!(resources["disk_quota_bytes"], QUOTA_MB * MB, "{node}");
    assert!(
        resources["disk_used_bytes"]
            .as_u64()
            .is_some_and(|u| u <= QUOTA_MB * MB),
        "{node}"
    );
    let b_disk = task_of(&http, &base, &b).await?["disk_bytes"]
        .as_u64()
        .unwrap_or(0);
    assert!(b_disk > EXTRAS as u64, "B holds {b_disk} bytes");
    let metrics = reqwest::get(format!("http://{}/metrics", served.node.admin_addr))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("magnet_disk_used_bytes ")
            && metrics.contains(&format!("magnet_disk_quota_bytes {}", QUOTA_MB * MB)),
        "{metrics}"
    );

    served.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ready_tasks_payload_goes_when_asked_and_its_video_still_plays() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let seeder = Seeder::start().await?;
    let seeded = release(&seeder, src.path(), "foxtrot", 1024 * 1024, 7).await?;
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.limits.drop_payload_when_ready = true;
    let served = Served::start(settings).await?;
    let (base, http) = (served.base.clone(), reqwest::Client::new());
    let id = submit_magnet(&http, &base, &seeded.magnet).await?;
    task_reaches(&http, &base, &id, "ready", Duration::from_secs(90)).await?;
    let dropped = eventually(Duration::from_secs(15), "payload dropped", || async {
        task_of(&http, &base, &id)
            .await
            .ok()
            .filter(|t| t["payload_evicted"] == true)
    })
    .await?;
    assert_eq!(dropped["seeding"], false, "{dropped}");
    assert!(
        !data.path().join("downloads").join(&id).exists(),
        "the payload is still on disk"
    );
    assert_eq!(play(&http, &base, &id).await?, 200);
    served.stop().await?;
    Ok(())
}
