//! Progressive playback against a real node (nats-server, downloader, transcoder, streamer,
//! gateway) and a seeder whose upload is capped: an MP4 with its index at the END plays
//! through the gateway relay long before it has downloaded, a segment far past what is
//! downloaded is made when asked for (also over the original's data-channel protocol), and
//! the finished folder is the original's VOD layout.

use std::path::Path;
use std::time::Duration;

use futures::FutureExt as _;
use magnet_tests::nats::NatsServer;
use magnet_tests::peer::Client;
use magnet_tests::seeder::Seeder;
use magnet_tests::services::{Served, offline_node};
use magnet_tests::stack;
use magnet_tests::video::{Codec, assert_vod, duration, generate_release, generate_sized};
use magnet_tests::{eventually, init_logging, json_of, submit_magnet};
use serde_json::Value;

const NODE: &str = "worker-p";

/// Start times of the playlist's segments and their names.
fn planned(playlist: &str) -> Vec<(f64, String)> {
    let mut at = 0.0;
    let mut out = Vec::new();
    let mut length = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            length = d.trim_end_matches(',').parse::<f64>().ok();
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((at, line.to_owned()));
            at += length.take().unwrap_or(0.0);
        }
    }
    out
}

/// Segments carry the source's clock plus this (see the transcoder's `segments.rs`).
const TS_OFFSET: f64 = 1.0;

/// The first video timestamp of a segment file, on the source's clock.
fn first_video_pts(path: &Path) -> anyhow::Result<f64> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "packet=pts_time",
            "-of",
            "csv=p=0",
            "-read_intervals",
            "%+#1",
        ])
        .arg(path)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .next()
        .and_then(|l| l.trim_end_matches(',').parse::<f64>().ok())
        .map_or(f64::NAN, |t| t - TS_OFFSET))
}

#[tokio::test(flavor = "multi_thread")]
async fn plays_and_seeks_while_downloading_and_ends_in_the_vod_layout() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    // ffmpeg writes the MP4 index (moov) at the end unless told otherwise.
    let video = src.path().join("movie.mp4");
    generate_sized(&video, 60, "640x360", Codec::H264Aac)?;
    let size = std::fs::metadata(&video)?.len();
    // About 30 s for the whole file.
    let cap = u32::try_from((size / 30).max(64 * 1024))?;
    let seeder = Seeder::with_upload_limit(Some(cap)).await?;
    let seeded = seeder.seed(&video).await?;

    let served = Served::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let id = submit_magnet(&http, &base, &seeded.magnet).await?;
    let task = |http: reqwest::Client| {
        let url = format!("{base}/api/tasks/{id}");
        async move {
            let (_, body) = json_of(http.get(url).send().await?).await?;
            anyhow::Ok(body["data"].clone())
        }
    };
    let fraction = |t: &Value| {
        t["downloaded"].as_f64().unwrap_or(0.0) / t["size"].as_f64().unwrap_or(1.0).max(1.0)
    };

    // Playable long before the download is done.
    let playable = eventually(Duration::from_secs(60), "task playable", || {
        let http = http.clone();
        let task = &task;
        async move { task(http).await.ok().filter(|t| t["playable"] == true) }
    })
    .await?;
    assert_eq!(playable["status"], "downloading", "{playable}");
    assert!(
        fraction(&playable) < 0.5,
        "playable only at {}",
        fraction(&playable)
    );

    // A segment answered through the relay: at once, or after 503s with Retry-After.
    let fetch = |file: String| {
        let http = http.clone();
        let url = format!("{base}/video/{id}/{file}");
        async move {
            for _ in 0..60 {
                let r = http.get(&url).send().await?;
                match r.status().as_u16() {
                    200 => return anyhow::Ok(r.bytes().await?),
                    503 => {
                        assert!(r.headers().contains_key("retry-after"));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    other => anyhow::bail!("{url}: {other} {}", r.text().await?),
                }
            }
            anyhow::bail!("{url}: still not made")
        }
    };
    let playlist = String::from_utf8(fetch("index.m3u8".into()).await?.to_vec())?;
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{playlist}");
    assert!(
        playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "{playlist}"
    );
    let plan = planned(&playlist);
    let source = duration(&video)?;
    let total: f64 = {
        let (last_start, _) = plan.last().cloned().unwrap_or_default();
        let last_len: f64 = playlist
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .next_back()
            .and_then(|d| d.trim_end_matches(',').parse().ok())
            .unwrap_or(0.0);
        last_start + last_len
    };
    assert!(
        (total - source).abs() < 0.2,
        "plan {total} s, source {source} s"
    );
    assert!(!fetch("index0.ts".into()).await?.is_empty());

    // A seek to 80 %: the segment there is made while most of the file is still missing.
    let before = task(http.clone()).await?;
    let (start, file) = plan
        .iter()
        .rev()
        .find(|(s, _)| *s <= source * 0.8)
        .cloned()
        .unwrap_or_default();
    let bytes = fetch(file.clone()).await?;
    let after = task(http.clone()).await?;
    eprintln!(
        "seek tried at {:.3} downloaded, answered at {:.3}",
        fraction(&before),
        fraction(&after)
    );
    assert!(
        // Under half downloaded when asked (CI runs heavy tests beside this one), and the
        // segment at 80 % answered while the download is still going.
        fraction(&before) < 0.5 && after["status"] == "downloading",
        "the seek was tried at {} downloaded, answered at {} ({})",
        fraction(&before),
        fraction(&after),
        after["status"]
    );
    // The first master.m3u8, while the task downloads, already names codecs and size (the
    // video is copied, so the source's are the output's).
    let master = http
        .get(format!("{base}/video/{id}/master.m3u8"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        master.contains("CODECS=\"avc1.") && master.contains("RESOLUTION=640x360"),
        "{master}"
    );
    let seg = src.path().join("seek.ts");
    std::fs::write(&seg, &bytes)?;
    let pts = first_video_pts(&seg)?;
    assert!(
        (pts - start).abs() < 0.05,
        "{file} starts at {pts}, planned {start}"
    );

    // The original's player speaks `hijackReq` over the data channel and never retries: a
    // segment not made yet is waited for and sent, not refused.
    let gateway: std::net::SocketAddr = base.trim_start_matches("http://").parse()?;
    let original = Client::connect_http(gateway, NODE, "client-1700000000000-original").await?;
    let (_, late) = plan
        .iter()
        .rev()
        .find(|(s, _)| *s <= source * 0.95)
        .cloned()
        .unwrap_or_default();
    let waiting = task(http.clone()).await?;
    let late_bytes = original
        .hijack(&format!("/video/{id}/{late}"))
        .await
        .map_err(|e| anyhow::anyhow!("{late} over the original protocol: {e}"))?;
    assert!(
        fraction(&waiting) < 0.9,
        "{late} was asked for at {} downloaded",
        fraction(&waiting)
    );

    // Let the rest come quickly; the task ends ready, in the original's VOD layout.
    seeder.set_upload_limit(None);
    let ready = eventually(Duration::from_secs(120), "task ready", || {
        let http = http.clone();
        let task = &task;
        async move { task(http).await.ok().filter(|t| t["status"] == "ready") }
    })
    .await?;
    assert_eq!(ready["playable"], true);
    let dir = data.path().join("m3u8").join(&id);
    assert!(!dir.join(".progressive").exists());
    assert!(
        !data
            .path()
            .join("m3u8")
            .join(format!(".{id}.partial"))
            .exists()
    );
    let index = std::fs::read_to_string(dir.join("index.m3u8"))?;
    assert_eq!(
        index, playlist,
        "the playlist served up front is the final one"
    );
    let master = std::fs::read_to_string(dir.join("master.m3u8"))?;
    assert!(
        master.contains("CODECS=\"avc1.") && master.contains("RESOLUTION=640x360"),
        "{master}"
    );
    for (n, (start, file)) in plan.iter().enumerate() {
        assert_eq!(file, &format!("index{n}.ts"));
        let pts = first_video_pts(&dir.join(file))?;
        assert!(
            (pts - start).abs() < 0.05,
            "{file} starts at {pts}, planned {start}"
        );
    }
    let check = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(dir.join("index.m3u8"))
        .args(["-f", "null", "-"])
        .output()?;
    assert!(check.status.success());
    assert_eq!(
        String::from_utf8_lossy(&check.stderr),
        "",
        "ffmpeg reads it cleanly"
    );
    let made = duration(&dir.join("index.m3u8"))?;
    assert!(
        (made - source).abs() < 0.2,
        "HLS {made} s, source {source} s"
    );
    // The original protocol serves the finished folder, and served the same bytes while the
    // segment was new.
    assert_eq!(std::fs::read(dir.join(&late))?, late_bytes, "{late}");
    let listed = original.hijack(&format!("/video/{id}/index.m3u8")).await?;
    assert_eq!(listed, index.as_bytes());
    let first = original.hijack(&format!("/video/{id}/index0.ts")).await?;
    assert_eq!(first, std::fs::read(dir.join("index0.ts"))?);
    original.close().await;

    served.stop().await
}

/// The transcode path (MPEG-4 Part 2 + AC3 in Matroska) is progressive too, on a grid of
/// forced keyframes; and with one transcode slot, a second task still becomes playable while
/// the first one's torrent downloads.
#[tokio::test(flavor = "multi_thread")]
async fn a_transcoded_task_plays_beside_another_on_a_grid_of_keyframes() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    let first = src.path().join("first.mp4");
    generate_sized(&first, 40, "320x240", Codec::H264Aac)?;
    let second = src.path().join("second.mkv");
    generate_sized(&second, 20, "320x240", Codec::Mpeg4Ac3)?;
    let size = std::fs::metadata(&first)?.len() + std::fs::metadata(&second)?.len();
    let seeder =
        Seeder::with_upload_limit(Some(u32::try_from((size / 20).max(32 * 1024))?)).await?;
    let seeded = [seeder.seed(&first).await?, seeder.seed(&second).await?];

    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.limits.max_transcodes = 1;
    let served = Served::start(settings).await?;
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for s in &seeded {
        ids.push(submit_magnet(&http, &base, &s.magnet).await?);
    }
    let task = |id: String| {
        let http = http.clone();
        let url = format!("{base}/api/tasks/{id}");
        async move {
            let (_, body) = json_of(http.get(url).send().await.ok()?).await.ok()?;
            Some(body["data"].clone())
        }
    };
    // The second task plays while both torrents still download: the first one's job does not
    // hold the node's only transcode slot.
    let t = eventually(Duration::from_secs(60), "second task playable", || {
        task(ids[1].clone()).map(|t| t.filter(|t| t["playable"] == true))
    })
    .await?;
    assert_eq!(
        t["status"], "downloading",
        "playable while downloading: {t}"
    );
    let other = task(ids[0].clone()).await.unwrap_or_default();
    assert_eq!(
        other["status"], "downloading",
        "the first task still downloads: {other}"
    );
    let transcoded = &ids[1];
    let t = task(transcoded.clone()).await.unwrap_or_default();
    assert_eq!(t["transcode_path"], "transcode", "{t}");

    seeder.set_upload_limit(None);
    for id in &ids {
        eventually(Duration::from_secs(120), "ready", || {
            task(id.clone()).map(|t| t.filter(|t| t["status"] == "ready"))
        })
        .await?;
    }
    // Every segment of the re-encoded video starts with a keyframe at its grid time.
    let dir = data.path().join("m3u8").join(transcoded);
    let playlist = std::fs::read_to_string(dir.join("index.m3u8"))?;
    let plan = planned(&playlist);
    let grid: Vec<f64> = plan.iter().map(|(s, _)| *s).collect();
    assert_eq!(&grid[..4], &[0.0, 2.0, 4.0, 6.0], "{playlist}");
    for (start, file) in &plan {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args([
                "packet=pts_time,flags",
                "-of",
                "csv=p=0",
                "-read_intervals",
                "%+#1",
            ])
            .arg(dir.join(file))
            .output()?;
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut parts = first.split(',');
        let pts: f64 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(f64::NAN)
            - TS_OFFSET;
        assert!(
            (pts - start).abs() < 0.05,
            "{file} starts at {pts}, planned {start}"
        );
        assert!(
            parts.next().is_some_and(|f| f.starts_with('K')),
            "{file} starts with a keyframe: {first}"
        );
    }
    let check = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(dir.join("index.m3u8"))
        .args(["-f", "null", "-"])
        .output()?;
    assert_eq!(
        String::from_utf8_lossy(&check.stderr),
        "",
        "ffmpeg reads it cleanly"
    );
    let made = duration(&dir.join("index.m3u8"))?;
    let source = duration(&second)?;
    assert!(
        (made - source).abs() < 0.2,
        "HLS {made} s, source {source} s"
    );

    served.stop().await
}

/// Must show 1 and 2 in Chromium: a 2-minute 720p MP4 whose index is at the end, seeded at
/// 1 MB/s in 256 KiB pieces, plays over P2P in our player before half of it has downloaded;
/// a seek to 80 % while less than 40 % has downloaded plays on from there, still over P2P.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_and_seeks_over_p2p_while_it_downloads() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let torrent = dir.path().join("src").join("Progressive Movie");
    std::fs::create_dir_all(&torrent)?;
    generate_release(&torrent.join("movie.mp4"), 120)?;
    let seeder = Seeder::with_upload_limit(Some(1_000_000)).await?;
    let seeded = seeder.seed_pieces(&torrent, 256 * 1024).await?;
    let stack = stack::start(&dir.path().join("stack"), 1, |_| {})?;
    let out = stack::artefacts("progressive")?;
    let url = stack.gateway_url();
    let magnet = seeded.magnet.clone();
    let r = tokio::task::spawn_blocking(move || stack::browser(&url, &magnet, "progressive", &out))
        .await??;
    eprintln!(
        "playing at {} % downloaded; seek to {} s at {} %: playing again after {} ms, 1 s past the target after {} ms",
        r["progressAtPlaying"],
        r["seekTarget"],
        r["progressAtSeek"],
        r["seekResumeMs"],
        r["seekPlusOneMs"]
    );
    assert_eq!(r["transport"], "p2p", "{r}");
    assert!(
        r["progressAtPlaying"].as_f64().is_some_and(|p| p < 50.0),
        "{r}"
    );
    assert!(
        r["progressAtSeek"].as_f64().is_some_and(|p| p < 40.0),
        "{r}"
    );
    assert!(r["seekPlusOneMs"].as_u64().is_some(), "{r}");
    // Here everything is a debug build (webrtc-rs moves a segment several times slower than
    // in release: ~2.6 s on a quiet machine, up to ~6.3 s beside another heavy test in CI);
    // the release figure (1.8 s) is measured with --release and by `cargo xtask bench seek`.
    assert!(
        r["seekResumeMs"].as_u64().is_some_and(|ms| ms < 12_000),
        "the seek took too long: {r}"
    );
    stack.stop();
    Ok(())
}

/// Must show 7: twelve progressive tasks on one node at once all finish. Each keeps a
/// librqbit file stream (one of its blocking permits) open while it waits for pieces; with
/// librqbit's default of 8 permits the ninth stream would wait for a permit that the waiting
/// streams never give back (the node raises the budget, `torrent.blocking_threads`).
#[tokio::test(flavor = "multi_thread")]
async fn twelve_progressive_tasks_at_once_all_finish() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    let video = src.path().join("movie.mp4");
    generate_sized(&video, 20, "640x360", Codec::H264Aac)?;
    let size = std::fs::metadata(&video)?.len();
    // Twelve torrents (one file under twelve names), about 30 s to send them all.
    let seeder =
        Seeder::with_upload_limit(Some(u32::try_from((12 * size / 30).max(64 * 1024))?)).await?;
    let mut magnets = Vec::new();
    for i in 0..12 {
        let copy = src.path().join(format!("movie-{i}.mp4"));
        std::fs::copy(&video, &copy)?;
        magnets.push(seeder.seed_pieces(&copy, 64 * 1024).await?.magnet);
    }
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.limits.max_downloads = 12;
    let served = Served::start(settings).await?;
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for magnet in &magnets {
        ids.push(submit_magnet(&http, &base, magnet).await?);
    }
    let statuses = || {
        let http = http.clone();
        let ids = ids.clone();
        let base = base.clone();
        async move {
            let mut out = Vec::new();
            for id in &ids {
                let (_, body) = json_of(
                    http.get(format!("{base}/api/tasks/{id}"))
                        .send()
                        .await
                        .ok()?,
                )
                .await
                .ok()?;
                out.push(body["data"].clone());
            }
            Some(out)
        }
    };
    // More than librqbit's 8 permits' worth download and play at the same time...
    eventually(Duration::from_secs(60), "nine playable at once", || {
        statuses().map(|s| {
            s.filter(|s| {
                s.iter()
                    .filter(|t| t["playable"] == true && t["status"] == "downloading")
                    .count()
                    >= 9
            })
            .map(|_| ())
        })
    })
    .await?;
    // ...and all finish.
    let done = eventually(Duration::from_secs(180), "twelve ready", || {
        statuses().map(|s| s.filter(|s| s.iter().all(|t| t["status"] == "ready")))
    })
    .await;
    let last = statuses().await.unwrap_or_default();
    assert!(done.is_ok(), "not all ready: {last:#?}");
    // Each task got its own torrent (librqbit once answered magnets whose metadata came
    // together with one another's torrent).
    for (i, t) in last.iter().enumerate() {
        assert_eq!(t["torrent_name"], format!("movie-{i}.mp4"), "{t}");
    }
    for id in &ids {
        let playlist = data.path().join("m3u8").join(id).join("index.m3u8");
        assert!((duration(&playlist)? - 20.0).abs() < 0.2, "{id}");
    }
    served.stop().await
}

/// `src` copied into another container with ffmpeg; through a pipe when `unseekable`, so
/// that muxers which seek back to write an index (Matroska's Cues) cannot.
fn remux(src: &Path, dst: &Path, format: &str, unseekable: bool) -> anyhow::Result<()> {
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-i"])
        .arg(src)
        .args(["-c", "copy", "-f", format]);
    if unseekable {
        cmd.arg("pipe:1").stdout(std::fs::File::create(dst)?);
    } else {
        cmd.arg(dst);
    }
    anyhow::ensure!(cmd.status()?.success(), "ffmpeg could not write {dst:?}");
    Ok(())
}

/// Must show 6: sources with no index to cut on (MPEG-TS, and Matroska written without
/// Cues) play while they download, from an EVENT playlist that grows as one ffmpeg pass goes,
/// and end in the VOD layout.
#[tokio::test(flavor = "multi_thread")]
async fn sources_without_an_index_play_from_a_growing_playlist() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    let mp4 = src.path().join("base.mp4");
    generate_sized(&mp4, 30, "640x360", Codec::H264Aac)?;
    let ts = src.path().join("movie.ts");
    remux(&mp4, &ts, "mpegts", false)?;
    let mkv = src.path().join("nocues.mkv");
    remux(&mp4, &mkv, "matroska", true)?;
    let cues_id = [0x1C, 0x53, 0xBB, 0x6B];
    assert!(
        !std::fs::read(&mkv)?.windows(4).any(|w| w == cues_id),
        "the Matroska file has Cues"
    );
    let size = std::fs::metadata(&ts)?.len() + std::fs::metadata(&mkv)?.len();
    // About 20 s for both.
    let seeder =
        Seeder::with_upload_limit(Some(u32::try_from((size / 20).max(64 * 1024))?)).await?;
    let seeded = [
        seeder.seed_pieces(&ts, 64 * 1024).await?,
        seeder.seed_pieces(&mkv, 64 * 1024).await?,
    ];
    let served = Served::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for s in &seeded {
        ids.push(submit_magnet(&http, &base, &s.magnet).await?);
    }
    let task = |id: String| {
        let http = http.clone();
        let url = format!("{base}/api/tasks/{id}");
        async move {
            let (_, body) = json_of(http.get(url).send().await.ok()?).await.ok()?;
            Some(body["data"].clone())
        }
    };
    for id in &ids {
        let t = eventually(Duration::from_secs(60), "playable", || {
            task(id.clone()).map(|t| t.filter(|t| t["playable"] == true))
        })
        .await?;
        assert_eq!(
            t["status"], "downloading",
            "playable while downloading: {t}"
        );
        // The playlist grows: what it lists is served, the first segment and the last.
        let playlist = http
            .get(format!("{base}/video/{id}/index.m3u8"))
            .send()
            .await?
            .text()
            .await?;
        assert!(
            playlist.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && !playlist.contains("#EXT-X-ENDLIST"),
            "{playlist}"
        );
        let listed: Vec<&str> = playlist
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        for file in [listed.first(), listed.last()].into_iter().flatten() {
            let r = http.get(format!("{base}/video/{id}/{file}")).send().await?;
            assert_eq!(r.status(), 200, "{file}");
            assert!(!r.bytes().await?.is_empty());
        }
    }
    seeder.set_upload_limit(None);
    for id in &ids {
        eventually(Duration::from_secs(120), "ready", || {
            task(id.clone()).map(|t| t.filter(|t| t["status"] == "ready"))
        })
        .await?;
        assert_vod(&data.path().join("m3u8").join(id), 30.0, 0.3)
            .map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
    }
    served.stop().await
}

/// Tasks deleted while they play give their slots back at once: the bodies their heads wait
/// on end when the torrent goes, and each job sees its files gone (the stream endpoint's 404)
/// and ends for good instead of being tried again. On a node with one download slot and one
/// transcode slot, two deleted tasks once held both for a minute (the bodies' idle time, then
/// retries), and the next task waited that long to become playable.
#[tokio::test(flavor = "multi_thread")]
async fn tasks_deleted_while_they_play_give_their_slots_back() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    let mut files = Vec::new();
    for (name, seconds) in [("a.mp4", 60), ("b.mp4", 60), ("c.mp4", 20)] {
        let path = src.path().join(name);
        generate_sized(&path, seconds, "640x360", Codec::H264Aac)?;
        files.push(path);
    }
    // Each would download for about two minutes.
    let size = std::fs::metadata(&files[0])?.len();
    let seeder =
        Seeder::with_upload_limit(Some(u32::try_from((size / 120).max(16 * 1024))?)).await?;
    let mut magnets = Vec::new();
    for f in &files {
        magnets.push(seeder.seed_pieces(f, 64 * 1024).await?.magnet);
    }
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.limits.max_downloads = 1;
    settings.limits.max_transcodes = 1;
    let served = Served::start(settings).await?;
    let base = served.base.clone();
    let http = reqwest::Client::new();
    let playable = |id: String| {
        let http = http.clone();
        let url = format!("{base}/api/tasks/{id}");
        move || {
            let req = http.get(url.clone());
            async move {
                let v: Value = req.send().await.ok()?.json().await.ok()?;
                (v["data"]["playable"] == true).then_some(())
            }
        }
    };
    for magnet in &magnets[..2] {
        let id = submit_magnet(&http, &base, magnet).await?;
        eventually(Duration::from_secs(60), "playable", playable(id.clone())).await?;
        // A viewer far ahead: a head waits there for pieces that come slowly.
        let far = http.get(format!("{base}/video/{id}/index25.ts")).send();
        let _ = tokio::time::timeout(Duration::from_secs(2), far).await;
        let r = http.delete(format!("{base}/api/tasks/{id}")).send().await?;
        assert!(r.status().is_success(), "delete: {}", r.status());
    }
    let last = submit_magnet(&http, &base, &magnets[2]).await?;
    eventually(
        Duration::from_secs(20),
        "the next task playable soon after the others were deleted",
        playable(last),
    )
    .await?;
    served.stop().await
}
