//! The transcoder against real nats-server and ffmpeg: remux and transcode paths, subtitles,
//! bad input, replicas sharing a node's queue, a replica killed mid-job; and the whole path
//! seeded video → downloaded → transcoded → ready.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use magnet_proto::v1 as pb;
use magnet_runtime::{Settings, nats, subjects};
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::Seeder;
use magnet_tests::services::{InProcess, Process, Transcoder, offline_node, transcoder_of};
use magnet_tests::video::{Codec, codecs, duration, generate, generate_sized};
use magnet_tests::{eventually, init_logging};
use pb::transcode_event::Kind;
use prost::Message as _;

const NODE: &str = "worker-t";

/// Test side of a node without a downloader: publishes jobs, reads the events.
struct Queue {
    js: jetstream::Context,
    events: jetstream::consumer::PullConsumer,
}

impl Queue {
    async fn new(nats: &NatsServer) -> anyhow::Result<Self> {
        let js = jetstream::new(nats.client().await?);
        nats::jobs_stream(&js).await?;
        let stream = nats::events_stream(&js).await?;
        let events = stream
            .get_or_create_consumer(
                "test-events",
                pull::Config {
                    durable_name: Some("test-events".into()),
                    filter_subject: subjects::node_events(NODE),
                    ..Default::default()
                },
            )
            .await?;
        Ok(Self { js, events })
    }

    async fn submit(&self, task_id: &str, inputs: &[(&Path, &str)], m3u8: &Path) -> anyhow::Result<()> {
        let job = pb::TranscodeJob {
            task_id: task_id.into(),
            node_id: NODE.into(),
            inputs: inputs
                .iter()
                .map(|(path, name)| pb::TranscodeInput {
                    source: Some(pb::transcode_input::Source::Path(path.to_string_lossy().into_owned())),
                    name: (*name).into(),
                    size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
                })
                .collect(),
            output_dir: m3u8.join(task_id).to_string_lossy().into_owned(),
        };
        self.js.publish(subjects::transcode_jobs(NODE), job.encode_to_vec().into()).await?.await?;
        Ok(())
    }

    /// Collects events until `done` says the collection is complete, or `limit` passes.
    async fn collect(&self, limit: Duration, done: impl Fn(&[pb::TranscodeEvent]) -> bool) -> anyhow::Result<Vec<pb::TranscodeEvent>> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while !done(&got) {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out; events so far: {got:#?}");
            let mut batch = self.events.fetch().max_messages(10).messages().await?;
            let mut any = false;
            while let Some(m) = batch.next().await {
                let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
                got.push(pb::TranscodeEvent::decode(m.payload.clone())?);
                m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                any = true;
            }
            if !any {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(got)
    }
}

fn finals(events: &[pb::TranscodeEvent]) -> usize {
    events.iter().filter(|e| matches!(e.kind, Some(Kind::Ready(_)) | Some(Kind::Failed(_)))).count()
}

fn ready_of<'a>(events: &'a [pb::TranscodeEvent], task: &str) -> Option<&'a pb::TranscodeReady> {
    events.iter().filter(|e| e.task_id == task).find_map(|e| match &e.kind {
        Some(Kind::Ready(r)) => Some(r),
        _ => None,
    })
}

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
    std::fs::write(folder.join("clip.srt"), "1\n00:00:00,500 --> 00:00:02,000\nHello <b>there</b>\n\n2\n00:00:03,000 --> 00:00:04,000\nBye\n")?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&folder).await?;

    let data = tempfile::tempdir()?;
    let settings = node(data.path(), &nats);
    let downloader = InProcess::start(settings.clone()).await?;
    let transcoder = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let mut client = downloader.client().await?;
    let task = client.submit(pb::SubmitRequest { magnet_url: seeded.magnet }).await?.into_inner().task.expect("task");

    let ready = eventually(Duration::from_secs(90), "task ready", || {
        let mut c = client.clone();
        let id = task.id.clone();
        async move {
            let t = c.get(pb::GetRequest { task_id: id }).await.ok()?.into_inner();
            assert_ne!(t.status(), pb::TaskStatus::Error, "task failed: {}", t.error);
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
    assert!((got - 8.0).abs() < 1.0, "playlist lasts {got} s, source 8 s");
    assert!(std::fs::read_to_string(&playlist)?.contains("#EXT-X-ENDLIST"));
    for s in &ready.segments {
        assert!(out.join(s).exists(), "{s} listed but missing");
    }
    let vtt = std::fs::read_to_string(out.join("clip.vtt"))?;
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("Hello"), "{vtt}");
    let master = std::fs::read_to_string(out.join("master.m3u8"))?;
    assert!(master.contains("TYPE=SUBTITLES") && master.contains("URI=\"clip.m3u8\""), "{master}");
    assert!(out.join("clip.m3u8").exists());
    assert!(!data.path().join("m3u8").join(format!(".{}.partial", task.id)).exists());
    transcoder.stop().await?;
    downloader.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn mpeg4_with_ac3_takes_the_transcode_path_to_h264_aac() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = Queue::new(&nats).await?;
    let data = tempfile::tempdir()?;
    let input = data.path().join("old.mkv");
    generate(&input, 4, Codec::Mpeg4Ac3)?;
    let settings = node(data.path(), &nats);
    let t = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let m3u8 = data.path().join("m3u8");
    queue.submit("task_1", &[(&input, "old.mkv")], &m3u8).await?;
    let events = queue.collect(Duration::from_secs(60), |e| finals(e) == 1).await?;
    let ready = ready_of(&events, "task_1").unwrap_or_else(|| panic!("not ready: {events:#?}"));
    assert_eq!(ready.path_taken, "transcode");
    let playlist = m3u8.join("task_1/index.m3u8");
    assert!((duration(&playlist)? - 4.0).abs() < 1.0);
    let seg_codecs = codecs(&m3u8.join("task_1").join(&ready.segments[0]))?;
    assert!(seg_codecs.contains(&"v:h264".to_owned()) && seg_codecs.contains(&"a:aac".to_owned()), "{seg_codecs:?}");
    assert!(events.iter().any(|e| matches!(&e.kind, Some(Kind::Started(s)) if s.path_taken == "transcode")));
    t.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_video_and_torrents_without_video_fail_with_a_message_and_leave_nothing() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = Queue::new(&nats).await?;
    let data = tempfile::tempdir()?;
    let corrupt = data.path().join("movie.mp4");
    magnet_tests::seeder::random_file(&corrupt, 256 * 1024, 3)?;
    let text = data.path().join("readme.txt");
    std::fs::write(&text, "no video here")?;
    let settings = node(data.path(), &nats);
    let t = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let m3u8 = data.path().join("m3u8");
    queue.submit("task_1", &[(&corrupt, "movie.mp4")], &m3u8).await?;
    queue.submit("task_2", &[(&text, "readme.txt")], &m3u8).await?;
    let events = queue.collect(Duration::from_secs(60), |e| finals(e) == 2).await?;
    let failed: HashMap<&str, &str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(Kind::Failed(f)) => Some((e.task_id.as_str(), f.error.as_str())),
            _ => None,
        })
        .collect();
    assert!(failed["task_1"].contains("movie.mp4 is not a readable video"), "{}", failed["task_1"]);
    assert!(failed["task_2"].contains("no video file") && failed["task_2"].contains("readme.txt"), "{}", failed["task_2"]);
    let left: Vec<_> = std::fs::read_dir(&m3u8).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "output left behind: {left:?}");
    t.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_four_jobs_each_done_once() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = Queue::new(&nats).await?;
    let data = tempfile::tempdir()?;
    let input = data.path().join("old.mkv");
    generate(&input, 6, Codec::Mpeg4Ac3)?;
    let settings = node(data.path(), &nats);
    let r1 = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let r2 = Transcoder::start(transcoder_of(&settings, "r2")).await?;
    let m3u8 = data.path().join("m3u8");
    for i in 1..=4 {
        queue.submit(&format!("task_{i}"), &[(&input, "old.mkv")], &m3u8).await?;
    }
    let events = queue.collect(Duration::from_secs(120), |e| finals(e) == 4).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = queue.collect(Duration::from_secs(2), |_| true).await?;
    assert!(late.iter().all(|e| !matches!(e.kind, Some(Kind::Ready(_)))), "a job ran twice: {late:#?}");
    let mut replicas = std::collections::HashSet::new();
    for i in 1..=4 {
        let task = format!("task_{i}");
        let readies = events.iter().filter(|e| e.task_id == task && matches!(e.kind, Some(Kind::Ready(_)))).count();
        assert_eq!(readies, 1, "{task} finished {readies} times");
        replicas.insert(ready_of(&events, &task).map(|r| r.replica.clone()).unwrap_or_default());
        assert!(m3u8.join(&task).join("index.m3u8").exists());
    }
    assert_eq!(replicas, ["r1".to_owned(), "r2".to_owned()].into(), "both replicas must take work");
    r1.stop().await?;
    r2.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_of_a_killed_replica_is_finished_by_another() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let queue = Queue::new(&nats).await?;
    let data = tempfile::tempdir()?;
    let input = data.path().join("long.mkv");
    generate_sized(&input, 20, "640x480", Codec::Mpeg4Ac3)?;
    let mut settings = node(data.path(), &nats);
    settings.transcoder.ack_wait_secs = 3;
    settings.transcoding.preset = "medium".into();
    let mut victim = Process::spawn_transcoder(&transcoder_of(&settings, "victim"), data.path())?;
    let m3u8 = data.path().join("m3u8");
    queue.submit("task_1", &[(&input, "long.mkv")], &m3u8).await?;
    let started = queue.collect(Duration::from_secs(30), |e| e.iter().any(|e| matches!(e.kind, Some(Kind::Started(_))))).await?;
    assert!(started.iter().any(|e| matches!(&e.kind, Some(Kind::Started(s)) if s.replica == "victim")));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    victim.kill9()?;
    assert!(!m3u8.join("task_1").exists(), "a killed job must not publish output");

    let heir = Transcoder::start(transcoder_of(&settings, "heir")).await?;
    let events = queue.collect(Duration::from_secs(120), |e| finals(e) == 1).await?;
    let ready = ready_of(&events, "task_1").unwrap_or_else(|| panic!("not finished: {events:#?}"));
    assert_eq!(ready.replica, "heir");
    assert!((duration(&m3u8.join("task_1/index.m3u8"))? - 20.0).abs() < 1.0);
    assert!(!m3u8.join(".task_1.partial").exists(), "the victim's partial output was not cleaned");
    heir.stop().await
}
