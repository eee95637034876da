//! Benchmarks of magnetm3u8 against baselines measured in the same run (`cargo xtask bench`).
//! Each ends with one line `bench <name>: key=value …`.

mod browser;
mod progressive;
mod viewers;

use std::time::{Duration, Instant};

use anyhow::Context;
use librqbit::{AddTorrent, AddTorrentOptions, Session, SessionOptions};
use magnet_proto::v1 as pb;
use magnet_tests::nats::NatsServer;
use magnet_tests::queue::{JobQueue, finals, ready_of};
use magnet_tests::seeder::{Seeded, Seeder, random_file};
use magnet_tests::services::{InProcess, Transcoder, offline_node, transcoder_of};
use magnet_tests::video::{Codec, generate_sized};

const DOWNLOAD_SIZE: usize = 500 * 1024 * 1024;
const ROUNDS: usize = 2;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let names: Vec<String> = std::env::args().skip(1).collect();
    // Quiet unless asked: `RUST_LOG=info cargo xtask bench seek` shows the services' logs.
    if std::env::var_os("RUST_LOG").is_some() {
        magnet_tests::init_logging();
    }
    for name in &names {
        match name.as_str() {
            "download" => download().await?,
            "transcode" => transcode().await?,
            "datachannel" => datachannel().await?,
            "gateway" => gateway().await?,
            "progressive" => progressive::progressive().await?,
            "seek" => progressive::seek().await?,
            "viewers" => viewers::viewers().await?,
            "browser" => browser::browser().await?,
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
        eprintln!(
            "round {round}: bare {:.2} s, ours {:.2} s",
            b.as_secs_f64(),
            o.as_secs_f64()
        );
        bare = bare.min(b);
        ours = ours.min(o);
    }
    let mb = DOWNLOAD_SIZE as f64 / 1e6;
    let bare_mbps = mb / bare.as_secs_f64();
    let ours_mbps = mb / ours.as_secs_f64();
    println!(
        "bench download: ours_mbps={ours_mbps:.0} bare_mbps={bare_mbps:.0} ratio={:.2}",
        ours_mbps / bare_mbps
    );
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

async fn service_download(
    seeded: &Seeded,
    nats_url: &str,
    round: usize,
) -> anyhow::Result<Duration> {
    let data = tempfile::tempdir()?;
    let node = InProcess::start(offline_node(
        data.path(),
        nats_url,
        &format!("bench-{round}"),
    ))
    .await?;
    let mut client = node.client().await?;
    let started = Instant::now();
    let task = client
        .submit(pb::SubmitRequest {
            magnet_url: seeded.magnet.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .task
        .context("task")?;
    loop {
        let t = client
            .get(pb::GetRequest {
                task_id: task.id.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        match t.status() {
            pb::TaskStatus::Downloaded => break,
            pb::TaskStatus::Error => anyhow::bail!("download failed: {}", t.error),
            _ if started.elapsed() > Duration::from_secs(300) => {
                anyhow::bail!("download took over 300 s")
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let took = started.elapsed();
    node.stop().await?;
    Ok(took)
}

const REMUX_SECONDS: u32 = 600;
const CLIP_SECONDS: u32 = 60;
const TRANSCODE_ROUNDS: usize = 4;

/// (a) Remux of a 10-minute 1080p H.264/AAC file through the transcoder service, as × realtime;
/// (b) the transcode path of a 1-minute clip through the service vs the same ffmpeg command
/// run bare, as a time ratio (service overhead).
async fn transcode() -> anyhow::Result<()> {
    let cache = bench_cache()?;
    let long = cache.join("remux-1080p-600s.mp4");
    if !long.exists() {
        eprintln!(
            "generating the 10-minute 1080p source once (cached in {})",
            cache.display()
        );
        let tmp = cache.join("remux-1080p-600s.tmp.mp4");
        generate_sized(&tmp, REMUX_SECONDS, "1920x1080", Codec::H264Aac)?;
        std::fs::rename(&tmp, &long)?;
    }
    let clip = cache.join("clip-640x360-60s.mkv");
    if !clip.exists() {
        let tmp = cache.join("clip-640x360-60s.tmp.mkv");
        generate_sized(&tmp, CLIP_SECONDS, "640x360", Codec::Mpeg4Ac3)?;
        std::fs::rename(&tmp, &clip)?;
    }

    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), "bench");
    settings.transcoding.preset = "veryfast".into();
    let queue = JobQueue::new(&nats, "bench").await?;
    let replica = Transcoder::start(transcoder_of(&settings, "bench")).await?;
    let m3u8 = data.path().join("m3u8");

    // (a) remux through the service.
    let started = Instant::now();
    queue
        .submit("task_1", &[(&long, "movie.mp4")], &m3u8)
        .await?;
    let events = queue
        .collect(Duration::from_secs(600), |e| finals(e) == 1)
        .await?;
    let remux = started.elapsed();
    let ready = ready_of(&events, "task_1").context("remux failed")?;
    anyhow::ensure!(
        ready.path_taken == "remux",
        "took the {} path",
        ready.path_taken
    );
    let x_realtime = f64::from(REMUX_SECONDS) / remux.as_secs_f64();
    eprintln!(
        "remux: {REMUX_SECONDS} s of 1080p in {:.2} s",
        remux.as_secs_f64()
    );

    // (b) transcode path: service vs bare ffmpeg with the same arguments, alternating.
    let mut service = Duration::MAX;
    let mut bare = Duration::MAX;
    // Best of several rounds, alternating which goes first, against noise on 2 cores.
    for round in 1..=TRANSCODE_ROUNDS {
        let task = format!("task_{}", round + 1);
        let bare_first = round % 2 == 0;
        let mut b = Duration::MAX;
        if bare_first {
            b = bare_ffmpeg(&clip, &settings, data.path()).await?;
        }
        let started = Instant::now();
        queue.submit(&task, &[(&clip, "clip.mkv")], &m3u8).await?;
        let events = queue
            .collect(Duration::from_secs(600), |e| finals(e) == 1)
            .await?;
        let s = started.elapsed();
        anyhow::ensure!(
            ready_of(&events, &task).is_some_and(|r| r.path_taken == "transcode"),
            "clip did not transcode"
        );
        if !bare_first {
            b = bare_ffmpeg(&clip, &settings, data.path()).await?;
        }
        eprintln!(
            "round {round}: service {:.2} s, bare ffmpeg {:.2} s",
            s.as_secs_f64(),
            b.as_secs_f64()
        );
        service = service.min(s);
        bare = bare.min(b);
    }
    replica.stop().await?;
    let overhead = service.as_secs_f64() / bare.as_secs_f64();
    println!("bench transcode: remux_x_realtime={x_realtime:.0} overhead_ratio={overhead:.3}");
    Ok(())
}

/// The transcoder's own ffmpeg command for `input`, run bare.
async fn bare_ffmpeg(
    input: &std::path::Path,
    settings: &magnet_runtime::Settings,
    scratch: &std::path::Path,
) -> anyhow::Result<Duration> {
    let info =
        magnet_transcoder::probe::probe("ffprobe", &input.to_string_lossy(), "clip", None).await?;
    let plan = magnet_transcoder::plan::plan(&info, "clip")?;
    let out = scratch.join("bare");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let args = magnet_transcoder::plan::ffmpeg_args(
        &input.to_string_lossy(),
        None,
        &plan,
        &settings.transcoding,
        &out,
    );
    let started = Instant::now();
    let status = tokio::process::Command::new("ffmpeg")
        .args(&args)
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
    anyhow::ensure!(status.success(), "bare ffmpeg failed");
    Ok(started.elapsed())
}

/// `<target>/bench-cache`, next to the bench binary's profile folder.
fn bench_cache() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let target = exe
        .parent()
        .and_then(std::path::Path::parent)
        .context("no target folder")?;
    let dir = target.join("bench-cache");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `BENCH_SEND_BUFFER_KIB`, when set, replaces the streamer's send buffer (what to try when
/// a data-channel figure moves).
pub fn send_buffer_from_env(settings: &mut magnet_runtime::Settings) {
    if let Some(kib) = std::env::var("BENCH_SEND_BUFFER_KIB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.streamer.send_buffer_kib = kib;
    }
}

const DATACHANNEL_SIZE: usize = 50 * 1024 * 1024;

/// A 50 MB file over loopback: (a) binary data-channel protocol, (b) the original base64
/// protocol, (c) gRPC FileService (the relay's path); best of a few rounds each.
async fn datachannel() -> anyhow::Result<()> {
    use magnet_proto::v1::file_service_client::FileServiceClient;

    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let task = data.path().join("m3u8/task_1");
    std::fs::create_dir_all(&task)?;
    random_file(&task.join("big.ts"), DATACHANNEL_SIZE, 5)?;
    let want = std::fs::read(task.join("big.ts"))?;
    let mut settings = offline_node(data.path(), nats.url(), "bench");
    send_buffer_from_env(&mut settings);
    magnet_tests::nats::register_node(&nats, "bench").await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let streamer = magnet_streamer::start(settings.clone(), shutdown.clone()).await?;
    let signaling = magnet_signaling::start(settings, shutdown.clone()).await?;
    let client =
        magnet_tests::peer::Client::connect(signaling.grpc_addr, "bench", "client-bench").await?;
    let mut relay = FileServiceClient::connect(format!("http://{}", streamer.grpc_addr))
        .await?
        .max_decoding_message_size(8 << 20);

    let mb = DATACHANNEL_SIZE as f64 / 1e6;
    let (mut binary, mut base64, mut grpc) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for round in 1..=3 {
        let t = Instant::now();
        let (got, _) = client
            .get("/video/task_1/big.ts", 0, None)
            .await?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let b = t.elapsed();
        anyhow::ensure!(got == want, "binary bytes differ");
        let t = Instant::now();
        let got = client.hijack("/video/task_1/big.ts").await?;
        let h = t.elapsed();
        anyhow::ensure!(got == want, "base64 bytes differ");
        let t = Instant::now();
        let mut s = relay
            .read(pb::ReadRequest {
                task_id: "task_1".into(),
                file: "big.ts".into(),
                offset: 0,
                length: 0,
            })
            .await?
            .into_inner();
        let mut got = Vec::with_capacity(DATACHANNEL_SIZE);
        while let Some(c) = s.message().await? {
            got.extend_from_slice(&c.data);
        }
        let r = t.elapsed();
        anyhow::ensure!(got == want, "relay bytes differ");
        eprintln!(
            "round {round}: binary {:.0} MB/s, base64 {:.0} MB/s, relay {:.0} MB/s",
            mb / b.as_secs_f64(),
            mb / h.as_secs_f64(),
            mb / r.as_secs_f64()
        );
        binary = binary.min(b);
        base64 = base64.min(h);
        grpc = grpc.min(r);
    }
    client.close().await;
    shutdown.cancel();
    let (b, h, r) = (
        mb / binary.as_secs_f64(),
        mb / base64.as_secs_f64(),
        mb / grpc.as_secs_f64(),
    );
    println!(
        "bench datachannel: binary_mbps={b:.0} base64_mbps={h:.0} relay_mbps={r:.0} binary_over_base64={:.2}",
        b / h
    );
    Ok(())
}

/// Concurrent connections of the gateway benchmark.
const GATEWAY_CONNECTIONS: usize = 50;
/// How long each route is loaded.
const GATEWAY_SECONDS: u64 = 5;

/// `GET /api/nodes` and `GET /api/tasks` (a node with 5 tasks) with 50 keep-alive
/// connections, next to a static file (`/favicon.svg`) served by the same gateway, the whole
/// system running as processes (magnet-stack).
async fn gateway() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = magnet_tests::stack::start(dir.path(), 1, |_| {})?;
    let base = stack.gateway_url();
    let http = reqwest::Client::new();
    magnet_tests::json_until(
        &format!("{base}/api/nodes"),
        Duration::from_secs(15),
        "node listed",
        |v| v["data"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await?;
    for i in 0..5u8 {
        let magnet = format!(
            "magnet:?xt=urn:btih:{}&dn=bench-{i}",
            format!("{i:02x}").repeat(20)
        );
        let r = http
            .post(format!("{base}/api/tasks/submit"))
            .json(&serde_json::json!({ "magnet_url": magnet }))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "submit: {}", r.text().await?);
    }
    let mut results = Vec::new();
    for path in ["/favicon.svg", "/api/nodes", "/api/tasks"] {
        let magnet_tests::load::Load {
            rps, p99_ms: p99, ..
        } = magnet_tests::load::get(
            &[format!("{base}{path}")],
            GATEWAY_CONNECTIONS,
            GATEWAY_SECONDS,
        )
        .await?;
        eprintln!("  {path:<14} {rps:>8.0} req/s  p99 {p99:.2} ms");
        results.push((rps, p99));
    }
    stack.stop();
    let [
        (static_rps, _),
        (nodes_rps, nodes_p99),
        (tasks_rps, tasks_p99),
    ] = results[..]
    else {
        anyhow::bail!("missing results");
    };
    println!(
        "bench gateway: nodes_rps={nodes_rps:.0} tasks_rps={tasks_rps:.0} static_rps={static_rps:.0} p99_ms={:.2} nodes_over_static={:.2} tasks_over_static={:.2} connections={GATEWAY_CONNECTIONS}",
        nodes_p99.max(tasks_p99),
        nodes_rps / static_rps,
        tasks_rps / static_rps,
    );
    Ok(())
}
