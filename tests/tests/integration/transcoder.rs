//! The transcoder against real nats-server and ffmpeg: remux and transcode paths, subtitles,
//! bad input, replicas sharing a node's queue, a replica killed mid-job; and the whole path
//! seeded video → downloaded → transcoded → ready.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use magnet_proto::v1 as pb;
use magnet_runtime::Settings;
use magnet_tests::nats::NatsServer;
use magnet_tests::queue::{JobQueue, finals, ready_of};
use magnet_tests::seeder::Seeder;
use magnet_tests::services::{InProcess, Process, Transcoder, offline_node, submit, transcoder_of};
use magnet_tests::video::{Codec, codecs, duration, generate, generate_sized};
use magnet_tests::{eventually, init_logging};
use pb::transcode_event::Kind;

const NODE: &str = "worker-t";

fn node(data: &Path, nats: &NatsServer) -> Settings {
    offline_node(data, nats.url(), NODE)
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_video_with_subtitles_becomes_a_ready_hls_task() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let folder = src.path().join("Clip");
    std::fs::create_dir_all(&folder)?;
    generate(&folder.join("clip.mp4"), 8, Codec::H264Aac)?;
    std::fs::write(
        folder.join("clip.srt"),
        "1\n00:00:00,500 --> 00:00:02,000\nHello <b>there</b>\n\n2\n00:00:03,000 --> 00:00:04,000\nBye\n",
    )?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&folder).await?;

    let data = tempfile::tempdir()?;
    let settings = node(data.path(), &nats);
    let downloader = InProcess::start(settings.clone()).await?;
    let transcoder = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let mut client = downloader.client().await?;
    let task = submit(&mut client, &seeded.magnet).await?;

    let ready = eventually(Duration::from_secs(90), "task ready", || {
        let mut c = client.clone();
        let id = task.id.clone();
        async move {
            let t = c
                .get(pb::GetRequest {
                    task_id: id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            assert_ne!(
                t.status(),
                pb::TaskStatus::Error,
                "task failed: {}",
                t.error
            );
            (t.status() == pb::TaskStatus::Ready).then_some(t)
        }
    })
    .await?;
    assert_eq!(ready.m3u8_path, format!("m3u8/{}/index.m3u8", task.id));
    assert_eq!(ready.transcode_path, "remux");
    assert!(ready.segments.len() >= 2, "{:?}", ready.segments);
    assert_eq!(ready.segments[0], "index0.ts");
    assert_eq!(ready.srts, vec!["clip.vtt"]);

    let out = data.path().join("m3u8").join(&task.id);
    let playlist = out.join("index.m3u8");
    let got = duration(&playlist)?;
    assert!(
        (got - 8.0).abs() < 1.0,
        "playlist lasts {got} s, source 8 s"
    );
    assert!(std::fs::read_to_string(&playlist)?.contains("#EXT-X-ENDLIST"));
    for s in &ready.segments {
        assert!(out.join(s).exists(), "{s} listed but missing");
    }
    let vtt = std::fs::read_to_string(out.join("clip.vtt"))?;
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("Hello"), "{vtt}");
    let master = std::fs::read_to_string(out.join("master.m3u8"))?;
    assert!(
        master.contains("TYPE=SUBTITLES") && master.contains("URI=\"clip.m3u8\""),
        "{master}"
    );
    // Codecs and size as ffprobe reads the output (hls.js shows 0x0 levels without them).
    assert!(
        master.contains("CODECS=\"avc1.") && master.contains(",mp4a.40.2\",RESOLUTION=320x240"),
        "{master}"
    );
    assert!(out.join("clip.m3u8").exists());
    assert!(
        !data
            .path()
            .join("m3u8")
            .join(format!(".{}.partial", task.id))
            .exists()
    );
    transcoder.stop().await?;
    downloader.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn mpeg4_with_ac3_takes_the_transcode_path_to_h264_aac() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = JobQueue::new(&nats, NODE).await?;
    let data = tempfile::tempdir()?;
    let input = data.path().join("old.mkv");
    generate(&input, 4, Codec::Mpeg4Ac3)?;
    let settings = node(data.path(), &nats);
    let t = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let m3u8 = data.path().join("m3u8");
    queue
        .submit("task_1", &[(&input, "old.mkv")], &m3u8)
        .await?;
    let events = queue
        .collect(Duration::from_secs(60), |e| finals(e) == 1)
        .await?;
    let ready = ready_of(&events, "task_1").unwrap_or_else(|| panic!("not ready: {events:#?}"));
    assert_eq!(ready.path_taken, "transcode");
    let playlist = m3u8.join("task_1/index.m3u8");
    assert!((duration(&playlist)? - 4.0).abs() < 1.0);
    let seg_codecs = codecs(&m3u8.join("task_1").join(&ready.segments[0]))?;
    assert!(
        seg_codecs.contains(&"v:h264".to_owned()) && seg_codecs.contains(&"a:aac".to_owned()),
        "{seg_codecs:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, Some(Kind::Started(s)) if s.path_taken == "transcode"))
    );
    t.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_video_and_torrents_without_video_fail_with_a_message_and_leave_nothing()
-> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = JobQueue::new(&nats, NODE).await?;
    let data = tempfile::tempdir()?;
    let corrupt = data.path().join("movie.mp4");
    magnet_tests::seeder::random_file(&corrupt, 256 * 1024, 3)?;
    let text = data.path().join("readme.txt");
    std::fs::write(&text, "no video here")?;
    let settings = node(data.path(), &nats);
    let t = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let m3u8 = data.path().join("m3u8");
    queue
        .submit("task_1", &[(&corrupt, "movie.mp4")], &m3u8)
        .await?;
    queue
        .submit("task_2", &[(&text, "readme.txt")], &m3u8)
        .await?;
    let events = queue
        .collect(Duration::from_secs(60), |e| finals(e) == 2)
        .await?;
    let failed: HashMap<&str, &str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Failed(f)) => Some((e.task_id.as_str(), f.error.as_str())),
            _ => None,
        })
        .collect();
    assert!(
        failed["task_1"].contains("movie.mp4 is not a readable video"),
        "{}",
        failed["task_1"]
    );
    // The node's own paths stay out of what users read.
    let data_path = data.path().display().to_string();
    assert!(
        failed.values().all(|e| !e.contains(&data_path)),
        "{failed:?}"
    );
    assert!(
        failed["task_2"].contains("no video file") && failed["task_2"].contains("readme.txt"),
        "{}",
        failed["task_2"]
    );
    let left: Vec<_> = std::fs::read_dir(&m3u8)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "output left behind: {left:?}");
    t.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_four_jobs_each_done_once() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = JobQueue::new(&nats, NODE).await?;
    let data = tempfile::tempdir()?;
    let input = data.path().join("old.mkv");
    generate(&input, 6, Codec::Mpeg4Ac3)?;
    let settings = node(data.path(), &nats);
    let r1 = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let r2 = Transcoder::start(transcoder_of(&settings, "r2")).await?;
    let m3u8 = data.path().join("m3u8");
    for i in 1..=4 {
        queue
            .submit(&format!("task_{i}"), &[(&input, "old.mkv")], &m3u8)
            .await?;
    }
    let events = queue
        .collect(Duration::from_secs(120), |e| finals(e) == 4)
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = queue.collect(Duration::from_secs(2), |_| true).await?;
    assert!(
        late.iter().all(|e| !matches!(e.kind, Some(Kind::Ready(_)))),
        "a job ran twice: {late:#?}"
    );
    let mut replicas = std::collections::HashSet::new();
    for i in 1..=4 {
        let task = format!("task_{i}");
        let readies = events
            .iter()
            .filter(|e| e.task_id == task && matches!(e.kind, Some(Kind::Ready(_))))
            .count();
        assert_eq!(readies, 1, "{task} finished {readies} times");
        replicas.insert(
            ready_of(&events, &task)
                .map(|r| r.replica.clone())
                .unwrap_or_default(),
        );
        assert!(m3u8.join(&task).join("index.m3u8").exists());
    }
    assert_eq!(
        replicas,
        std::collections::HashSet::from(["r1".to_owned(), "r2".to_owned()]),
        "both replicas must take work"
    );
    r1.stop().await?;
    r2.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_of_a_killed_replica_is_finished_by_another() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = JobQueue::new(&nats, NODE).await?;
    let data = tempfile::tempdir()?;
    let input = data.path().join("long.mkv");
    generate_sized(&input, 20, "640x480", Codec::Mpeg4Ac3)?;
    let mut settings = node(data.path(), &nats);
    settings.transcoder.ack_wait_secs = 3;
    settings.transcoding.preset = "medium".into();
    let mut victim = Process::spawn_transcoder(&transcoder_of(&settings, "victim"), data.path())?;
    let m3u8 = data.path().join("m3u8");
    queue
        .submit("task_1", &[(&input, "long.mkv")], &m3u8)
        .await?;
    let started = queue
        .collect(Duration::from_secs(30), |e| {
            e.iter().any(|e| matches!(e.kind, Some(Kind::Started(_))))
        })
        .await?;
    assert!(
        started
            .iter()
            .any(|e| matches!(&e.kind, Some(Kind::Started(s)) if s.replica == "victim"))
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    victim.kill9()?;
    assert!(
        !m3u8.join("task_1").exists(),
        "a killed job must not publish output"
    );

    let heir = Transcoder::start(transcoder_of(&settings, "heir")).await?;
    let events = queue
        .collect(Duration::from_secs(120), |e| finals(e) == 1)
        .await?;
    let ready = ready_of(&events, "task_1").unwrap_or_else(|| panic!("not finished: {events:#?}"));
    assert_eq!(ready.replica, "heir");
    assert!((duration(&m3u8.join("task_1/index.m3u8"))? - 20.0).abs() < 1.0);
    assert!(
        !m3u8.join(".task_1.partial").exists(),
        "the victim's partial output was not cleaned"
    );
    heir.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_the_running_job_to_another_replica_and_cleans_up() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = JobQueue::new(&nats, NODE).await?;
    let data = tempfile::tempdir()?;
    let input = data.path().join("long.mkv");
    generate_sized(&input, 20, "640x480", Codec::Mpeg4Ac3)?;
    let mut settings = node(data.path(), &nats);
    settings.transcoding.preset = "medium".into();
    let mut leaving = Process::spawn_transcoder(&transcoder_of(&settings, "leaving"), data.path())?;
    let m3u8 = data.path().join("m3u8");
    queue
        .submit("task_1", &[(&input, "long.mkv")], &m3u8)
        .await?;
    queue
        .collect(Duration::from_secs(30), |e| {
            e.iter().any(|e| matches!(e.kind, Some(Kind::Started(_))))
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let asked = std::time::Instant::now();
    let status = leaving.terminate()?;
    assert!(status.success(), "transcoder exited with {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        asked.elapsed()
    );
    assert!(
        !m3u8.join(".task_1.partial").exists(),
        "partial output left after SIGTERM"
    );
    assert!(!m3u8.join("task_1").exists());

    // The job was handed back at once (no ack wait): another replica finishes it.
    let heir = Transcoder::start(transcoder_of(&settings, "heir")).await?;
    let events = queue
        .collect(Duration::from_secs(120), |e| finals(e) == 1)
        .await?;
    assert_eq!(
        ready_of(&events, "task_1").map(|r| r.replica.as_str()),
        Some("heir")
    );
    heir.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn fmp4_segments_and_every_video_by_configuration() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = JobQueue::new(&nats, NODE).await?;
    let data = tempfile::tempdir()?;
    let main = data.path().join("main.mp4");
    let extra = data.path().join("extra.mp4");
    generate(&main, 4, Codec::H264Aac)?;
    generate(&extra, 2, Codec::H264Aac)?;
    let mut settings = node(data.path(), &nats);
    settings.transcoding.hls_segment_type = "fmp4".into();
    settings.transcoding.all_videos = true;
    let t = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let m3u8 = data.path().join("m3u8");
    queue
        .submit(
            "task_1",
            &[(&extra, "extra.mp4"), (&main, "main.mp4")],
            &m3u8,
        )
        .await?;
    let events = queue
        .collect(Duration::from_secs(60), |e| finals(e) == 1)
        .await?;
    let ready = ready_of(&events, "task_1").unwrap_or_else(|| panic!("not ready: {events:#?}"));
    let out = m3u8.join("task_1");
    assert!(
        ready.segments.iter().all(|s| s.ends_with(".m4s")),
        "{:?}",
        ready.segments
    );
    assert!(out.join("init.mp4").exists());
    assert!(
        (duration(&out.join("index.m3u8"))? - 4.0).abs() < 1.0,
        "the largest video is the main playlist"
    );
    assert!(
        (duration(&out.join("v1/index.m3u8"))? - 2.0).abs() < 1.0,
        "the other video has its own folder"
    );
    let master = std::fs::read_to_string(out.join("master.m3u8"))?;
    assert!(
        master.contains("\nindex.m3u8\n") && master.contains("\nv1/index.m3u8\n"),
        "{master}"
    );
    t.stop().await
}

/// The transcoder reads a video from the downloader's stream endpoint while the torrent is
/// still downloading (an MP4 whose `moov` is at the end, as ffmpeg writes it by default),
/// with the service token, and makes the same HLS as from the finished file.
#[tokio::test(flavor = "multi_thread")]
async fn a_video_is_transcoded_from_the_stream_while_it_downloads() -> anyhow::Result<()> {
    use magnet_tests::video::generate_sized;

    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let video = src.path().join("film.mp4");
    generate_sized(&video, 12, "640x360", Codec::H264Aac)?;
    let size = std::fs::metadata(&video)?.len();
    // Several seconds of downloading.
    let seeder =
        Seeder::with_upload_limit(Some(u32::try_from(size / 6).unwrap_or(u32::MAX))).await?;
    let seeded = seeder.seed_small_pieces(&video).await?;
    let token = "a-shared-service-token-0123";
    let data = tempfile::tempdir()?;
    let mut settings = node(data.path(), &nats);
    settings.internal.token = Some(token.into());
    let downloader = InProcess::start(settings).await?;
    let mut client = downloader.client().await?;
    let task = submit(&mut client, &seeded.magnet).await?;
    let started = eventually(Duration::from_secs(30), "metadata", || {
        let mut c = client.clone();
        let id = task.id.clone();
        async move {
            let t = c
                .get(pb::GetRequest {
                    task_id: id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            (t.file_count == 1).then_some(t)
        }
    })
    .await?;
    assert!(started.progress < 50.0, "{started:?}");

    // A transcoder of another node name, so that it takes this job only.
    let pipe_dir = tempfile::tempdir()?;
    let mut pipe = offline_node(pipe_dir.path(), nats.url(), "pipe");
    pipe.internal.token = Some(token.into());
    let queue = JobQueue::new(&nats, "pipe").await?;
    let transcoder = Transcoder::start(transcoder_of(&pipe, "r1")).await?;
    let m3u8 = pipe_dir.path().join("m3u8");
    let url = format!("http://{}/stream/{}/0", downloader.stream_addr, task.id);
    queue
        .submit_inputs(
            "task_1",
            vec![pb::TranscodeInput {
                source: Some(pb::transcode_input::Source::Url(url)),
                name: "film.mp4".into(),
                size,
            }],
            &m3u8,
        )
        .await?;
    let events = queue
        .collect(Duration::from_secs(90), |e| finals(e) == 1)
        .await?;
    let ready = ready_of(&events, "task_1").expect("ready");
    assert_eq!(ready.path_taken, "remux");
    let played = duration(&m3u8.join("task_1/index.m3u8"))?;
    assert!((played - 12.0).abs() < 0.5, "{played}");
    transcoder.stop().await?;
    downloader.stop().await
}
