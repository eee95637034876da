//! Must show 5 of progressive playback: `kill -9` of the transcoder, and separately of the
//! downloader, while a viewer plays a task that is still downloading. The whole system runs
//! as processes (magnet-stack) on a NATS server of the test's own, so the test can watch
//! the node's jobs and transcode events; the viewer fetches segments in order through the
//! gateway relay, as a player does.
//!
//! Afterwards: the viewer got every segment, each byte-equal to the finished folder's; no
//! ffmpeg outlived the killed transcoder; the job was published once and finished (`Ready`)
//! once; the task's status never went backwards; the folder is the VOD layout ffmpeg reads
//! without a word.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use magnet_proto::v1 as pb;
use magnet_runtime::subjects;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::Seeder;
use magnet_tests::stack;
use magnet_tests::video::{assert_vod, generate_release};
use magnet_tests::{eventually, init_logging, json_of};
use pb::transcode_event::Kind;
use prost::Message as _;
use serde_json::Value;

const NODE: &str = "node-1";
const SECONDS: u32 = 60;

/// Process ids of running ffmpeg processes, with their parent's.
fn ffmpegs() -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // pid (comm) state ppid …; comm may hold spaces, so read after the last ')'.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1;
        let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
        (comm == "ffmpeg").then_some((pid, ppid))
    })
    .collect()
}

/// Segment names of a VOD playlist.
fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Order of the statuses a task goes through.
fn rank(status: &str) -> u8 {
    match status {
        "pending" => 0,
        "downloading" => 1,
        "completed" => 2,
        "transcoding" => 3,
        "ready" => 4,
        _ => 5,
    }
}

async fn playback_survives(victim: &str) -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let movie = dir.path().join("movie.mp4");
    generate_release(&movie, SECONDS)?;
    // About 20 s of downloading at 1 MB/s.
    let seeder = Seeder::with_upload_limit(Some(1_000_000)).await?;
    let seeded = seeder.seed_pieces(&movie, 256 * 1024).await?;
    let mut stack = stack::start_on(&dir.path().join("stack"), nats.url(), 1, |s| {
        s.transcoder.ack_wait_secs = 3;
    })?;
    let watch = nats.client().await?;
    let mut events = watch.subscribe(subjects::node_events(NODE)).await?;
    let mut jobs = watch.subscribe(subjects::transcode_jobs(NODE)).await?;
    watch.flush().await?;

    let base = stack.gateway_url();
    let http = reqwest::Client::new();
    let (status, body) = json_of(
        http.post(format!("{base}/api/tasks/submit"))
            .json(&serde_json::json!({ "magnet_url": seeded.magnet }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["id"].as_str().unwrap_or_default().to_owned();

    // Every status the task shows, polled until the end.
    let statuses = Arc::new(Mutex::new(Vec::<String>::new()));
    let poller = {
        let (http, url, statuses) = (
            http.clone(),
            format!("{base}/api/tasks/{id}"),
            statuses.clone(),
        );
        tokio::spawn(async move {
            loop {
                if let Ok(r) = http.get(&url).send().await
                    && let Ok(v) = r.json::<Value>().await
                    && let Some(s) = v["data"]["status"].as_str()
                {
                    let mut seen = statuses.lock().unwrap_or_else(|e| e.into_inner());
                    if seen.last().map(String::as_str) != Some(s) {
                        seen.push(s.to_owned());
                    }
                    if s == "ready" || s == "error" {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    eventually(Duration::from_secs(60), "task playable", || {
        let req = http.get(format!("{base}/api/tasks/{id}"));
        async move {
            let v: Value = req.send().await.ok()?.json().await.ok()?;
            (v["data"]["playable"] == true).then_some(())
        }
    })
    .await?;
    let playlist = http
        .get(format!("{base}/video/{id}/index.m3u8"))
        .send()
        .await?
        .text()
        .await?;
    let names = segments(&playlist);
    assert!(names.len() > 8, "{playlist}");

    // The viewer: each segment in order, waiting through 503s and a gateway that cannot
    // reach a node for a moment.
    let got = Arc::new(Mutex::new(Vec::<(Instant, bytes::Bytes)>::new()));
    let viewer = {
        let (http, got, names) = (http.clone(), got.clone(), names.clone());
        let prefix = format!("{base}/video/{id}/");
        tokio::spawn(async move {
            for name in names {
                let url = format!("{prefix}{name}");
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    anyhow::ensure!(Instant::now() < deadline, "{name} never came");
                    match http.get(&url).send().await {
                        Ok(r) if r.status() == 200 => {
                            let bytes = r.bytes().await?;
                            got.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((Instant::now(), bytes));
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
            anyhow::Ok(())
        })
    };
    let have = |n: usize| {
        let got = got.clone();
        move || {
            let ok = got.lock().unwrap_or_else(|e| e.into_inner()).len() >= n;
            async move { ok.then_some(()) }
        }
    };
    eventually(Duration::from_secs(60), "two segments played", have(2)).await?;

    let name = match victim {
        "transcoder" => format!("{NODE}-transcoder-1"),
        _ => format!("{NODE}-downloader"),
    };
    let pid = stack.pid(&name).unwrap_or_default() as i32;
    let children: Vec<i32> = ffmpegs()
        .into_iter()
        .filter(|(_, ppid)| *ppid == pid)
        .map(|(p, _)| p)
        .collect();
    if victim == "transcoder" {
        assert!(!children.is_empty(), "the transcoder runs no ffmpeg");
    }
    let played_before = got.lock().unwrap_or_else(|e| e.into_inner()).len();
    stack.kill9(&name)?;
    eventually(
        Duration::from_secs(5),
        "the killed transcoder's ffmpeg gone",
        || {
            let alive: Vec<i32> = ffmpegs()
                .into_iter()
                .map(|(p, _)| p)
                .filter(|p| children.contains(p))
                .collect();
            async move { alive.is_empty().then_some(()) }
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.restart(&name)?;

    // Playback goes on past where it stopped, to the end.
    eventually(
        Duration::from_secs(90),
        "playback resumed",
        have(played_before + 2),
    )
    .await?;
    tokio::time::timeout(Duration::from_secs(180), viewer).await???;
    tokio::time::timeout(Duration::from_secs(120), poller).await??;
    let seen = statuses.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.last().map(String::as_str), Some("ready"), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
        "the status went backwards: {seen:?}"
    );

    // What the viewer got is what the finished folder holds.
    let folder = dir.path().join("stack").join(NODE).join("m3u8").join(&id);
    let got = got.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(got.len(), names.len());
    for ((_, bytes), name) in got.iter().zip(&names) {
        let on_disk = std::fs::read(folder.join(name))?;
        assert!(
            bytes[..] == on_disk[..],
            "{name} differs from what was served"
        );
    }
    let gap = got
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    eprintln!("kill -9 of the {victim}: longest wait between two segments {gap:?}");
    assert_vod(&folder, f64::from(SECONDS), 0.2)?;
    assert!(
        !folder.with_file_name(format!(".{id}.partial")).exists(),
        "work folder left"
    );
    let left: Vec<i32> = ffmpegs().into_iter().map(|(p, _)| p).collect();
    assert!(
        left.iter().all(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| !String::from_utf8_lossy(&c).contains(&id))
                .unwrap_or(true)
        }),
        "an ffmpeg of the task is still running"
    );

    // One job, one Ready.
    let mut published = 0;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), jobs.next()).await {
        if pb::TranscodeJob::decode(m.payload)?.task_id == id {
            published += 1;
        }
    }
    let mut readies = 0;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        let e = pb::TranscodeEvent::decode(m.payload)?;
        if e.task_id == id && matches!(e.kind, Some(Kind::Ready(_))) {
            readies += 1;
        }
    }
    assert_eq!(published, 1, "the job was published {published} times");
    assert_eq!(readies, 1, "the task finished {readies} times");
    stack.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_transcoder_during_playback_loses_nothing() -> anyhow::Result<()> {
    playback_survives("transcoder").await
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_downloader_during_playback_loses_nothing() -> anyhow::Result<()> {
    playback_survives("downloader").await
}
