//! The downloader against real servers: seeded torrents on loopback, nats-server with
//! JetStream, its gRPC API, the registry, transcode events, `kill -9` and resume.

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use magnet_proto::v1 as pb;
use magnet_runtime::subjects;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::{Seeder, random_file};
use magnet_tests::services::{InProcess, Process, TaskClient, offline_node, submit};
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging};
use prost::Message as _;
use tonic::Code;

const NODE: &str = "worker-t";

async fn get(client: &mut TaskClient, id: &str) -> Option<pb::Task> {
    client
        .get(pb::GetRequest {
            task_id: id.into(),
            ..Default::default()
        })
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Waits (at most `limit`) until the task is as `wanted` says; the task then.
async fn task_where(
    client: &TaskClient,
    id: &str,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&pb::Task) -> bool,
) -> anyhow::Result<pb::Task> {
    let wanted = &wanted;
    eventually(limit, what, || {
        let mut c = client.clone();
        async move { get(&mut c, id).await.filter(wanted) }
    })
    .await
}

/// Waits until the task reaches `status`, failing early if it errors.
async fn wait_status(
    client: &mut TaskClient,
    id: &str,
    status: pb::TaskStatus,
    limit: Duration,
) -> anyhow::Result<pb::Task> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(t) = get(client, id).await {
            if t.status() == status {
                return Ok(t);
            }
            anyhow::ensure!(
                t.status() != pb::TaskStatus::Error || status == pb::TaskStatus::Error,
                "task failed: {} ({})",
                t.error,
                t.detail
            );
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "task {id} still {:?} ({}) after {limit:?}, wanted {status:?}",
                    t.status(),
                    t.detail
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_video_is_downloaded_reported_and_queued_for_transcoding() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let video = src.path().join("clip.mp4");
    generate(&video, 3, Codec::H264Aac)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&video).await?;
    assert!(
        seeded.magnet.contains("x.pe=127.0.0.1:"),
        "{}",
        seeded.magnet
    );

    let data = tempfile::tempdir()?;
    let node = InProcess::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let nc = nats.client().await?;
    let mut progress = nc.subscribe(subjects::PROGRESS_WILDCARD).await?;
    let mut client = node.client().await?;

    let submitted = client
        .submit(pb::SubmitRequest {
            magnet_url: seeded.magnet.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let task = submitted.task.expect("task");
    assert!(!submitted.existing);
    assert!(
        task.id.starts_with("task_") && task.id[5..].bytes().all(|b| b.is_ascii_digit()),
        "{}",
        task.id
    );
    assert_eq!(task.worker_id, NODE);
    assert_eq!(task.info_hash, seeded.info_hash);

    let done = wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Downloaded,
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(done.progress, 100.0);
    assert_eq!(done.files, vec!["clip.mp4"]);
    let original = std::fs::read(&video)?;
    assert_eq!(done.size, original.len() as u64);
    let downloaded = std::fs::read(
        data.path()
            .join("downloads")
            .join(&task.id)
            .join("clip.mp4"),
    )?;
    assert!(
        downloaded == original,
        "downloaded bytes differ from the seed"
    );

    // Progress events (protobuf) were published for this task.
    let mut seen = Vec::new();
    while let Ok(Some(msg)) =
        tokio::time::timeout(Duration::from_millis(500), progress.next()).await
    {
        let ev = pb::TaskProgress::decode(msg.payload)?;
        assert_eq!(
            msg.subject.as_str(),
            subjects::task_progress(NODE, &task.id)
        );
        seen.push(ev.status());
    }
    assert!(!seen.is_empty(), "no progress events");
    assert!(seen.contains(&pb::TaskStatus::Downloaded), "{seen:?}");

    // The transcode job is in JetStream for this node.
    let js = jetstream::new(nc.clone());
    let mut stream = js.get_stream(subjects::JOBS_STREAM).await?;
    assert_eq!(stream.info().await?.state.messages, 1);
    let raw = stream
        .get_last_raw_message_by_subject(&subjects::transcode_jobs(NODE))
        .await?;
    let job = pb::TranscodeJob::decode(raw.payload)?;
    assert_eq!(job.task_id, task.id);
    assert_eq!(job.node_id, NODE);
    assert_eq!(job.inputs.len(), 1);
    // Published when the metadata came (progressive playback): the input is the node's stream
    // endpoint, with the file's size from the metadata.
    assert!(job.progressive);
    assert_eq!(job.inputs[0].size, original.len() as u64);
    let Some(pb::transcode_input::Source::Url(input)) = &job.inputs[0].source else {
        panic!("no input URL: {:?}", job.inputs[0])
    };
    assert_eq!(
        input,
        &format!(
            "http://127.0.0.1:{}/stream/{}/0",
            node.stream_addr.port(),
            task.id
        )
    );
    assert_eq!(reqwest::get(input).await?.bytes().await?, original);
    assert!(
        job.output_dir.ends_with(&format!("m3u8/{}", task.id)),
        "{}",
        job.output_dir
    );

    // The same magnet again is the same task, not a second download.
    let again = client
        .submit(pb::SubmitRequest {
            magnet_url: seeded.magnet.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(again.existing);
    assert_eq!(again.task.map(|t| t.id), Some(task.id.clone()));
    assert_eq!(
        client
            .list(pb::ListRequest {})
            .await?
            .into_inner()
            .tasks
            .len(),
        1
    );

    // gRPC health (what Kubernetes probes ask), metrics and readiness.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", node.grpc_addr))?
        .connect()
        .await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "magnet.v1.TaskService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status();
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{service:?}"
        );
    }
    let metrics = http_get(node.admin_addr, "/metrics").await?;
    assert!(
        metrics.contains("magnet_tasks_submitted_total 1"),
        "{metrics}"
    );
    assert!(
        http_get(node.admin_addr, "/readyz")
            .await?
            .contains("ready")
    );
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_file_torrent_downloads_every_file() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let folder = src.path().join("Show");
    std::fs::create_dir_all(folder.join("Subs"))?;
    generate(&folder.join("episode.mp4"), 2, Codec::H264Aac)?;
    std::fs::write(
        folder.join("Subs/episode.srt"),
        "1\n00:00:00,000 --> 00:00:01,000\nHello\n",
    )?;
    std::fs::write(folder.join("readme.txt"), "a text file\n")?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&folder).await?;

    let data = tempfile::tempdir()?;
    let node = InProcess::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let mut client = node.client().await?;
    let task = submit(&mut client, &seeded.magnet).await?;
    let done = wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Downloaded,
        Duration::from_secs(60),
    )
    .await?;

    let mut files = done.files.clone();
    files.sort();
    assert_eq!(files, vec!["Subs/episode.srt", "episode.mp4", "readme.txt"]);
    assert_eq!(done.torrent_name, "Show");
    let out = data.path().join("downloads").join(&task.id);
    for f in &files {
        assert_eq!(
            std::fs::read(out.join(f))?,
            std::fs::read(folder.join(f))?,
            "{f}"
        );
    }
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_downloader_resumes_where_it_stopped() -> anyhow::Result<()> {
    init_logging();
    const SIZE: usize = 120 * 1024 * 1024;
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let file = src.path().join("big.bin");
    random_file(&file, SIZE, 7)?;
    // 8 MB/s until the kill: 15 s for the whole file, so even a busy machine that polls late
    // kills it part-way (the task's figures are written once a second). Unlimited afterwards.
    let seeder = Seeder::with_upload_limit(Some(8 * 1024 * 1024)).await?;
    let seeded = seeder.seed(&file).await?;

    let data = tempfile::tempdir()?;
    let settings = offline_node(data.path(), nats.url(), NODE);
    let mut first = Process::spawn_downloader(&settings, data.path())?;
    let mut client = first.client().await?;
    let task = submit(&mut client, &seeded.magnet).await?;
    let before = task_where(
        &client,
        &task.id,
        Duration::from_secs(60),
        "download part-way",
        |t| t.downloaded >= SIZE as u64 / 8,
    )
    .await?
    .downloaded;
    first.kill9()?;
    assert!(
        before < SIZE as u64,
        "finished before the kill; cannot test resume"
    );
    let uploaded_before_restart = Seeder::uploaded(&seeded);
    seeder.set_upload_limit(None);

    let second = Process::spawn_downloader(&settings, data.path())?;
    let mut client = second.client().await?;
    let done = wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Downloaded,
        Duration::from_secs(90),
    )
    .await?;
    let tasks = client.list(pb::ListRequest {}).await?.into_inner().tasks;
    assert_eq!(tasks.len(), 1, "one task after the restart");
    assert_eq!(done.size, SIZE as u64);
    let got = std::fs::read(data.path().join("downloads").join(&task.id).join("big.bin"))?;
    assert!(got == std::fs::read(&file)?, "bytes differ after resume");

    // Resumed, not restarted: the seeder sent far less than the whole file after the restart.
    let after_restart = Seeder::uploaded(&seeded) - uploaded_before_restart;
    assert!(
        after_restart < SIZE as u64 - before / 2,
        "sent {after_restart} bytes after the restart; {before} of {SIZE} were already on disk"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_magnets_are_rejected_each_with_its_own_message() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let node = InProcess::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let mut client = node.client().await?;
    let cases = [
        ("", "empty"),
        ("http://example.com/a.torrent", "not a magnet link"),
        ("magnet:?xt=urn:btih:abcdef", "6 characters"),
        (
            "magnet:?xt=urn:btih:0000000000000000000000000000000!",
            "base32",
        ),
        ("magnet:?dn=nothing", "no \"xt\""),
        (
            "magnet:?xt=urn:btih:zz00000000000000000000000000000000000000",
            "hex",
        ),
        (
            &format!("magnet:?xt=urn:btmh:1220{}", "ab".repeat(32)),
            "v2-only",
        ),
    ];
    let mut messages = std::collections::HashSet::new();
    for (magnet, want) in cases {
        let err = client
            .submit(pb::SubmitRequest {
                magnet_url: magnet.into(),
                ..Default::default()
            })
            .await
            .expect_err(magnet);
        assert_eq!(err.code(), Code::InvalidArgument, "{magnet:?}: {err:?}");
        assert!(
            err.message().contains(want),
            "{magnet:?}: {:?} lacks {want:?}",
            err.message()
        );
        messages.insert(err.message().to_owned());
    }
    assert_eq!(
        messages.len(),
        cases.len(),
        "each bad magnet has its own message"
    );
    assert!(
        client
            .list(pb::ListRequest {})
            .await?
            .into_inner()
            .tasks
            .is_empty(),
        "nothing stored"
    );

    // Unknown and malformed task ids.
    let err = client
        .get(pb::GetRequest {
            task_id: "task_1".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .get(pb::GetRequest {
            task_id: "../etc/passwd".into(),
            ..Default::default()
        })
        .await
        .expect_err("hostile");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .delete(pb::DeleteRequest {
            task_id: "task_2".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn node_record_appears_on_start_and_goes_after_stop() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let js = jetstream::new(nats.client().await?);
    let data = tempfile::tempdir()?;

    // Graceful stop removes the record at once.
    let node = InProcess::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let kv = js.get_key_value(subjects::NODES_BUCKET).await?;
    let record = pb::NodeRecord::decode(kv.get(NODE).await?.expect("record on start"))?;
    assert_eq!(record.id, NODE);
    assert_eq!(record.status, "online");
    assert_eq!(record.capabilities, vec!["torrent", "transcode", "webrtc"]);
    assert_eq!(
        record.downloader_endpoint,
        format!("http://127.0.0.1:{}", node.grpc_addr.port())
    );
    // Named as the original's nodes name it (Go's names).
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(record.metadata.map(|m| m.arch), Some(arch.to_owned()));
    // The node's streamer, from the node's shared settings (its own advertise or address:port).
    assert_eq!(record.streamer_endpoint, "http://127.0.0.1:0");
    node.stop().await?;
    assert!(
        kv.get(NODE).await?.is_none(),
        "record left after a clean stop"
    );

    // A killed node's record expires with the TTL (3 s here).
    let settings = offline_node(data.path(), nats.url(), NODE);
    let mut proc = Process::spawn_downloader(&settings, data.path())?;
    eventually(Duration::from_secs(10), "record of the process", || {
        let kv = kv.clone();
        async move { kv.get(NODE).await.ok().flatten() }
    })
    .await?;
    proc.kill9()?;
    eventually(Duration::from_secs(15), "record to expire", || {
        let kv = kv.clone();
        async move { kv.get(NODE).await.ok().filter(Option::is_none).map(|_| ()) }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn transcode_events_reach_the_store_even_while_the_downloader_is_down() -> anyhow::Result<()>
{
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let video = src.path().join("clip.mp4");
    generate(&video, 2, Codec::H264Aac)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&video).await?;
    let data = tempfile::tempdir()?;
    let settings = offline_node(data.path(), nats.url(), NODE);
    let node = InProcess::start(settings.clone()).await?;
    let mut client = node.client().await?;
    let task = submit(&mut client, &seeded.magnet).await?;
    wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Downloaded,
        Duration::from_secs(60),
    )
    .await?;

    let js = jetstream::new(nats.client().await?);
    let publish = |kind: pb::transcode_event::Kind| {
        let js = js.clone();
        let id = task.id.clone();
        async move {
            let ev = pb::TranscodeEvent {
                task_id: id.clone(),
                node_id: NODE.into(),
                timestamp_ms: 0,
                kind: Some(kind),
                ..Default::default()
            };
            js.publish(subjects::task_events(NODE, &id), ev.encode_to_vec().into())
                .await?
                .await?;
            anyhow::Ok(())
        }
    };
    publish(pb::transcode_event::Kind::Started(pb::TranscodeStarted {
        path_taken: "remux".into(),
        ..Default::default()
    }))
    .await?;
    publish(pb::transcode_event::Kind::Progress(
        pb::TranscodeProgressed { progress: 40.0 },
    ))
    .await?;
    let t = wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Transcoding,
        Duration::from_secs(10),
    )
    .await?;
    assert_eq!(t.transcode_path, "remux");

    // The downloader goes down; the result arrives meanwhile; nothing is lost.
    node.stop().await?;
    let m3u8 = format!("m3u8/{}/index.m3u8", task.id);
    publish(pb::transcode_event::Kind::Ready(pb::TranscodeReady {
        m3u8_path: m3u8.clone(),
        segments: vec!["index0.ts".into(), "index1.ts".into()],
        srts: vec!["clip.vtt".into()],
        path_taken: "remux".into(),
        ..Default::default()
    }))
    .await?;
    // A late failure for a task already ready must not undo it.
    publish(pb::transcode_event::Kind::Failed(pb::TranscodeFailed {
        error: "late duplicate".into(),
    }))
    .await?;

    let node = InProcess::start(settings).await?;
    let mut client = node.client().await?;
    let ready = wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Ready,
        Duration::from_secs(20),
    )
    .await?;
    assert_eq!(ready.m3u8_path, m3u8);
    assert_eq!(ready.segments, vec!["index0.ts", "index1.ts"]);
    assert_eq!(ready.srts, vec!["clip.vtt"]);
    assert_eq!(ready.progress, 100.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = get(&mut client, &task.id).await.expect("task");
    assert_eq!(still.status(), pb::TaskStatus::Ready);
    assert_eq!(still.error, "");
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_without_peers_says_so_then_fails_and_delete_cleans_up() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.torrent.no_peers_after_secs = 1;
    settings.torrent.metadata_timeout_secs = 4;
    let node = InProcess::start(settings).await?;
    let mut client = node.client().await?;
    // A peer hint where nobody listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let magnet = format!("magnet:?xt=urn:btih:{}&x.pe={dead}", "c".repeat(40));
    let task = client
        .submit(pb::SubmitRequest {
            magnet_url: magnet,
            ..Default::default()
        })
        .await?
        .into_inner()
        .task
        .expect("task");

    let waiting = task_where(
        &client,
        &task.id,
        Duration::from_secs(10),
        "a 'no peers' detail",
        |t| t.detail.contains("no peers"),
    )
    .await?;
    assert_eq!(waiting.status(), pb::TaskStatus::Downloading);
    assert!(
        waiting.detail.contains("waiting for metadata"),
        "{}",
        waiting.detail
    );

    let failed = wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Error,
        Duration::from_secs(20),
    )
    .await?;
    assert!(failed.error.contains("no metadata"), "{}", failed.error);

    client
        .delete(pb::DeleteRequest {
            task_id: task.id.clone(),
        })
        .await?;
    let err = client
        .get(pb::GetRequest {
            task_id: task.id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("deleted");
    assert_eq!(err.code(), Code::NotFound);
    assert!(!data.path().join("downloads").join(&task.id).exists());
    node.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_submits_get_unique_ids_and_the_disk_floor_refuses_new_tasks()
-> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let node = InProcess::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let client = node.client().await?;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let submits = (0..16).map(|i| {
        let mut c = client.clone();
        let magnet = format!("magnet:?xt=urn:btih:{:040x}&x.pe={dead}", i + 1);
        async move {
            c.submit(pb::SubmitRequest {
                magnet_url: magnet,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
        }
    });
    let results = futures::future::join_all(submits).await;
    let ids: std::collections::HashSet<String> = results
        .into_iter()
        .map(|r| r.map(|s| s.task.expect("task").id))
        .collect::<Result<_, _>>()?;
    assert_eq!(ids.len(), 16, "ids must be unique");
    node.stop().await?;

    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.limits.min_free_disk_mb = u64::MAX / (1024 * 1024);
    let node = InProcess::start(settings).await?;
    let mut client = node.client().await?;
    let err = client
        .submit(pb::SubmitRequest {
            magnet_url: format!("magnet:?xt=urn:btih:{}", "d".repeat(40)),
            ..Default::default()
        })
        .await
        .expect_err("disk floor");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("free disk space"),
        "{}",
        err.message()
    );
    node.stop().await
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// The downloader binary with the autoscaler on scales its transcoder Deployment through a
/// Kubernetes API (a stand-in of the scale subresource, found through `KUBECONFIG`) to the
/// node's queue. Found by `cargo xtask sim`: the kube client panicked at start, since rustls
/// had two crypto providers to choose from and chose none.
#[tokio::test(flavor = "multi_thread")]
async fn the_autoscaler_scales_the_deployment_through_the_api() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let (api, replicas) = magnet_tests::kube_api::serve(1, stop.clone()).await?;
    let kubeconfig = magnet_tests::kube_api::kubeconfig(data.path(), api, "media")?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    let scale = &mut settings.downloader.autoscale;
    scale.enabled = true;
    scale.deployment = "mm-worker-t-transcoder".into();
    scale.namespace = Some("media".into());
    (scale.min, scale.max, scale.jobs_per_replica) = (1, 4, 1);
    (scale.cooldown_secs, scale.interval_secs) = (0, 1);
    let _node = Process::spawn_with_env(
        "magnet-downloader",
        "downloader ready",
        &settings,
        data.path(),
        &[("KUBECONFIG", &kubeconfig.to_string_lossy())],
    )?;
    // Three jobs wait in the node's queue (no transcoder takes them).
    let js = jetstream::new(nats.client().await?);
    for i in 0..3 {
        js.publish(subjects::transcode_jobs(NODE), format!("job {i}").into())
            .await?
            .await?;
    }
    eventually(Duration::from_secs(20), "3 replicas asked for", || async {
        (replicas.get() == 3).then_some(())
    })
    .await?;
    stop.cancel();
    Ok(())
}

/// The autoscaler's measure: a node's jobs still in the work queue, queued or delivered and
/// not acked; other nodes' jobs do not count.
#[tokio::test(flavor = "multi_thread")]
async fn autoscaler_counts_the_nodes_queued_and_running_jobs() -> anyhow::Result<()> {
    use anyhow::Context;
    use async_nats::jetstream::consumer::pull;

    init_logging();
    let nats = NatsServer::start()?;
    let js = jetstream::new(nats.client().await?);
    let stream = magnet_runtime::nats::jobs_stream(&js, 1).await?;
    let count = |node: &'static str| {
        let js = js.clone();
        async move { magnet_downloader::autoscale::jobs_in_queue(&js, node).await }
    };
    assert_eq!(count("n1").await?, 0);
    for i in 0..3 {
        js.publish(subjects::transcode_jobs("n1"), format!("job {i}").into())
            .await?
            .await?;
    }
    js.publish(subjects::transcode_jobs("n2"), "other".into())
        .await?
        .await?;
    assert_eq!(count("n1").await?, 3);
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(subjects::transcoder_consumer("n1")),
            filter_subject: subjects::transcode_jobs("n1"),
            ..Default::default()
        })
        .await?;
    let mut batch = consumer.fetch().max_messages(2).messages().await?;
    let first = batch
        .next()
        .await
        .context("first job")?
        .map_err(anyhow::Error::msg)?;
    let _running = batch
        .next()
        .await
        .context("second job")?
        .map_err(anyhow::Error::msg)?;
    first.ack().await.map_err(anyhow::Error::msg)?;
    // One done (acked, gone), one running (delivered, not acked), one queued.
    eventually(Duration::from_secs(5), "acked job gone", || async {
        (count("n1").await.ok()? == 2).then_some(())
    })
    .await?;
    assert_eq!(count("n2").await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn files_stream_while_they_download_with_ranges_a_token_and_a_cap() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let file = src.path().join("movie.mkv");
    random_file(&file, 4 * 1024 * 1024, 7)?;
    let bytes = std::fs::read(&file)?;
    // About 10 s to download all of it: ranged reads must not wait for the whole file.
    let seeder = Seeder::with_upload_limit(Some(400_000)).await?;
    let seeded = seeder.seed_small_pieces(&file).await?;
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.internal.token = Some("a-shared-service-token-0123".into());
    settings.downloader.max_open_streams = 2;
    let node = InProcess::start(settings).await?;
    let mut client = node.client().await?;
    let task = submit(&mut client, &seeded.magnet).await?;
    task_where(
        &client,
        &task.id,
        Duration::from_secs(30),
        "metadata",
        |t| t.file_count == 1,
    )
    .await?;
    let url = format!("http://{}/stream/{}/0", node.stream_addr, task.id);
    let http = reqwest::Client::new();
    let auth = "Bearer a-shared-service-token-0123";
    let ranged = |range: &str| {
        http.get(&url)
            .header("authorization", auth)
            .header("range", range)
            .send()
    };

    // A range near the end, read while most of the file is still to come.
    let r = ranged("bytes=3000000-3000999").await?;
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 3000000-3000999/{}", bytes.len()).as_str()
    );
    assert_eq!(r.bytes().await?.as_ref(), &bytes[3_000_000..3_001_000]);
    let now = get(&mut client, &task.id).await.expect("task");
    assert_eq!(now.status(), pb::TaskStatus::Downloading, "{now:?}");
    assert!(
        now.progress < 90.0,
        "read before the download got there: {now:?}"
    );
    let r = ranged("bytes=-100").await?;
    assert_eq!(r.bytes().await?.as_ref(), &bytes[bytes.len() - 100..]);
    let r = ranged(&format!("bytes={}-", bytes.len())).await?;
    assert_eq!(r.status().as_u16(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", bytes.len()).as_str()
    );
    let r = http.head(&url).header("authorization", auth).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-length"],
        bytes.len().to_string().as_str()
    );

    // Only the node's own services: no token, a wrong one, bad paths.
    let r = http.get(&url).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get(&url)
        .header("authorization", "Bearer wrong-token-wrong-token")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    for (path, want) in [
        (format!("/stream/{}/7", task.id), 404),
        ("/stream/task_1/0".to_owned(), 404),
        ("/stream/..%2Fetc/0".to_owned(), 400),
        (format!("/stream/{}/-1", task.id), 400),
    ] {
        let r = http
            .get(format!("http://{}{path}", node.stream_addr))
            .header("authorization", auth)
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), want, "{path}");
    }

    // At most two bodies at once; a third waits its turn with 503 + Retry-After.
    let first = ranged("bytes=0-").await?;
    let second = ranged("bytes=0-").await?;
    let third = ranged("bytes=0-").await?;
    assert_eq!(third.status().as_u16(), 503);
    assert_eq!(third.headers()["retry-after"], "1");
    drop(third);
    drop(second);
    // The whole file through a stream equals the seeded one.
    assert_eq!(first.bytes().await?.as_ref(), bytes.as_slice());
    wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Downloaded,
        Duration::from_secs(60),
    )
    .await?;
    node.stop().await
}

/// Deleting a task that is downloading answers at once and leaves nothing: the driver stops,
/// the torrent and its files go. (The delete once held the drivers' lock while it waited for
/// the driver, which takes that lock on its way out: every such delete took 10 s.)
#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_downloading_task_answers_at_once() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let file = src.path().join("movie.mkv");
    random_file(&file, 4 * 1024 * 1024, 9)?;
    // About 20 s to download all of it.
    let seeder = Seeder::with_upload_limit(Some(200_000)).await?;
    let seeded = seeder.seed_small_pieces(&file).await?;
    let data = tempfile::tempdir()?;
    let node = InProcess::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let mut client = node.client().await?;
    let task = submit(&mut client, &seeded.magnet).await?;
    task_where(
        &client,
        &task.id,
        Duration::from_secs(30),
        "downloading",
        |t| t.status() == pb::TaskStatus::Downloading && t.downloaded > 0,
    )
    .await?;
    let started = std::time::Instant::now();
    client
        .delete(pb::DeleteRequest {
            task_id: task.id.clone(),
        })
        .await?;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the delete took {took:?}");
    assert!(get(&mut client, &task.id).await.is_none());
    assert!(!data.path().join("downloads").join(&task.id).exists());
    node.stop().await
}

/// Found by the chaos run: a download is stalled when no byte comes, not when no whole piece
/// does. A 2 MiB piece from a slow seeder takes longer than `give_up_after_secs` and the task
/// still completes; a seeder that stops sending fails the task after that time.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_piece_is_progress_and_silence_is_a_stall() -> anyhow::Result<()> {
    init_logging();
    const SIZE: usize = 2 * 1024 * 1024;
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let (slow, silent) = (src.path().join("slow.bin"), src.path().join("silent.bin"));
    random_file(&slow, SIZE, 11)?;
    random_file(&silent, SIZE, 12)?;
    // One piece each (librqbit's 2 MiB), at 300 kB/s: about 7 s for the whole piece.
    let seeder = Seeder::with_upload_limit(Some(300_000)).await?;
    let (slow_seed, silent_seed) = (seeder.seed(&slow).await?, seeder.seed(&silent).await?);

    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.torrent.give_up_after_secs = 3;
    let node = InProcess::start(settings).await?;
    let mut client = node.client().await?;
    let task = submit(&mut client, &slow_seed.magnet).await?;
    let started = std::time::Instant::now();
    wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Downloaded,
        Duration::from_secs(60),
    )
    .await?;
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "the piece came faster than the stall limit ({:?}): nothing tested",
        started.elapsed()
    );
    let got = std::fs::read(
        data.path()
            .join("downloads")
            .join(&task.id)
            .join("slow.bin"),
    )?;
    assert!(got == std::fs::read(&slow)?, "bytes differ");

    // The other torrent's metadata comes, then its seeder goes silent.
    let task = submit(&mut client, &silent_seed.magnet).await?;
    task_where(
        &client,
        &task.id,
        Duration::from_secs(30),
        "metadata in",
        |t| t.status() == pb::TaskStatus::Downloading && t.size > 0,
    )
    .await?;
    seeder.set_paused(&silent_seed, true).await?;
    let failed = wait_status(
        &mut client,
        &task.id,
        pb::TaskStatus::Error,
        Duration::from_secs(60),
    )
    .await?;
    assert!(failed.error.contains("stalled"), "{}", failed.error);
    node.stop().await
}
