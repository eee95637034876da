//! `.torrent` files and trackers (issue 15, "Adding"): a magnet whose only source of peers is
//! its tracker (Debian's opentracker on loopback) downloads; a `.torrent` file uploaded as
//! JSON base64 and one dropped on the index page in Chromium (multipart) play; bad files each
//! get their clear error and nothing is stored.

use std::path::Path;
use std::time::Duration;

use librqbit::spawn_utils::BlockingSpawner;
use librqbit::{CreateTorrentOptions, create_torrent};
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::Seeder;
use magnet_tests::services::{Served, offline_node};
use magnet_tests::stack::{artefacts, browser};
use magnet_tests::tracker::Tracker;
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging, json_of};
use serde_json::{Value, json};

const NODE: &str = "node-t";

/// The `.torrent` of `path`, made without seeding it.
async fn torrent_of(path: &Path) -> anyhow::Result<Vec<u8>> {
    let created = create_torrent(
        path,
        CreateTorrentOptions::default(),
        &BlockingSpawner::new(2),
    )
    .await?;
    Ok(created.as_bytes()?.to_vec())
}

/// Waits until task `id` is ready (failing at once if it fails).
async fn ready(http: &reqwest::Client, base: &str, id: &str) -> anyhow::Result<Value> {
    eventually(Duration::from_secs(90), "task ready", || async {
        let (_, t) = json_of(
            http.get(format!("{base}/api/tasks/{id}"))
                .send()
                .await
                .ok()?,
        )
        .await
        .ok()?;
        assert_ne!(t["data"]["status"], "error", "{t}");
        (t["data"]["status"] == "ready").then(|| t["data"].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn torrent_files_and_tracker_magnets_play_and_bad_files_are_refused() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let tracker = Tracker::start()?;
    let seeder = Seeder::with_trackers().await?;
    let src = tempfile::tempdir()?;
    let mut seeded = Vec::new();
    for name in ["a.mp4", "b.mp4", "c.mp4"] {
        let video = src.path().join(name);
        generate(&video, 6, Codec::H264Aac)?;
        seeded.push(seeder.seed_via(&video, &tracker).await?);
    }
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    // Trackers on (DHT and discovery stay off): the tracker on loopback is the only way to
    // the seeder.
    settings.torrent.trackers = true;
    settings.torrent.max_files = 5;
    let served = Served::start(settings).await?;
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let submit = |body: Value| {
        http.post(format!("{base}/api/tasks/submit"))
            .json(&body)
            .send()
    };

    // A magnet with a tracker and no x.pe: its tracker is used.
    assert!(!seeded[0].magnet.contains("x.pe"), "{}", seeded[0].magnet);
    let (status, a) = json_of(submit(json!({ "magnet_url": seeded[0].magnet })).await?).await?;
    assert_eq!(status, 200, "{a}");
    let a_id = a["data"]["id"].as_str().unwrap_or_default().to_owned();

    // A .torrent file as JSON base64: its magnet (hash, name, tracker) stands for it.
    let b64 = data_encoding::BASE64.encode(&seeded[1].torrent);
    let (status, b) = json_of(submit(json!({ "torrent": b64 })).await?).await?;
    assert_eq!(status, 200, "{b}");
    let magnet = b["data"]["magnet_url"].as_str().unwrap_or_default();
    assert!(
        magnet.starts_with(&format!("magnet:?xt=urn:btih:{}", seeded[1].info_hash))
            && magnet.contains("dn=b.mp4")
            && magnet.contains("tr="),
        "{b}"
    );
    assert_eq!(b["data"]["torrent_name"], "b.mp4");
    let b_id = b["data"]["id"].as_str().unwrap_or_default().to_owned();
    let (status, again) = json_of(submit(json!({ "torrent": b64 })).await?).await?;
    assert_eq!(
        (status.as_u16(), again["message"].clone()),
        (200, json!("Task already exists"))
    );
    for id in [&a_id, &b_id] {
        let t = ready(&http, &base, id).await?;
        assert!(
            t["m3u8_path"].as_str().is_some_and(|p| !p.is_empty()),
            "{t}"
        );
    }

    // Bad files: each its own clear error, and nothing stored.
    let listed = || async {
        let (_, l) = json_of(http.get(format!("{base}/api/tasks")).send().await?).await?;
        anyhow::Ok(l["data"]["tasks"].as_array().map_or(0, Vec::len))
    };
    let before = listed().await?;
    let text = src.path().join("notes.txt");
    std::fs::write(&text, "no video here")?;
    let many = src.path().join("many");
    std::fs::create_dir_all(&many)?;
    for i in 0..6 {
        std::fs::write(many.join(format!("extra{i}.txt")), format!("{i}"))?;
    }
    std::fs::copy(src.path().join("a.mp4"), many.join("film.mp4"))?;
    let v2_only = b"d4:infod9:file treed1:xd0:d6:lengthi1eeee12:meta versioni2e4:name1:x12:piece lengthi16384eee".to_vec();
    // Each with its code (docs/api.md), which the node sends with its gRPC error.
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "not bencode",
            b"hello, not a torrent".to_vec(),
            "not a .torrent file",
            "torrent_invalid",
        ),
        (
            "no video",
            torrent_of(&text).await?,
            "no video file",
            "torrent_invalid",
        ),
        ("v2-only", v2_only, "v2-only", "torrent_invalid"),
        (
            "too many files",
            torrent_of(&many).await?,
            "at most 5",
            "torrent_too_large",
        ),
    ];
    for (what, bytes, says, code) in cases {
        let body = json!({ "torrent": data_encoding::BASE64.encode(&bytes) });
        let (status, e) = json_of(submit(body).await?).await?;
        assert_eq!(status, 400, "{what}: {e}");
        assert!(
            e["error"].as_str().is_some_and(|m| m.contains(says)),
            "{what}: {e}"
        );
        assert_eq!(e["code"], code, "{what}: {e}");
        // The same file as a multipart form, as the UI sends it.
        let form = reqwest::multipart::Form::new().part(
            "torrent",
            reqwest::multipart::Part::bytes(bytes).file_name("x.torrent"),
        );
        let r = http
            .post(format!("{base}/api/tasks/submit"))
            .multipart(form)
            .send()
            .await?;
        let (status, e) = json_of(r).await?;
        assert_eq!(status, 400, "{what} (form): {e}");
        assert!(
            e["error"].as_str().is_some_and(|m| m.contains(says)),
            "{what} (form): {e}"
        );
    }
    let huge = data_encoding::BASE64.encode(&vec![b'd'; 6 * 1024 * 1024]);
    let (status, e) = json_of(submit(json!({ "torrent": huge })).await?).await?;
    assert_eq!(status, 413, "an oversize file: {e}");
    assert_eq!(e["code"], "body_too_large", "{e}");
    let (status, e) = json_of(submit(json!({ "torrent": "%%%" })).await?).await?;
    assert!(
        status == 400 && e["error"].as_str().is_some_and(|m| m.contains("base64")),
        "{e}"
    );
    assert_eq!(e["code"], "torrent_invalid", "{e}");
    let (status, e) =
        json_of(submit(json!({ "magnet_url": seeded[0].magnet, "torrent": b64 })).await?).await?;
    assert!(
        status == 400 && e["error"].as_str().is_some_and(|m| m.contains("not both")),
        "{e}"
    );
    assert_eq!(e["code"], "source_required", "{e}");
    let (status, e) = json_of(submit(json!({})).await?).await?;
    assert_eq!(
        (status.as_u16(), &e["code"]),
        (400, &json!("source_required")),
        "{e}"
    );
    assert_eq!(listed().await?, before, "nothing stored for a refused file");

    // Chromium: the third video's .torrent dropped on the index page plays over P2P.
    let file = src.path().join("c.torrent");
    std::fs::write(&file, &seeded[2].torrent)?;
    let out = artefacts("torrent_drop")?;
    let result = tokio::task::spawn_blocking({
        let base = base.clone();
        let file = file.to_string_lossy().into_owned();
        move || browser(&base, &file, "torrent", &out)
    })
    .await??;
    assert_eq!(result["transport"], "p2p", "{result}");

    served.stop().await?;
    Ok(())
}
