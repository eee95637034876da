//! Streamer and signaling with a real WebRTC peer (webrtc-rs) over loopback: both data-channel
//! protocols, confinement against hostile requests, many requests in flight, session limits
//! and idle timeout, and the gRPC FileService.

use std::path::Path;
use std::time::Duration;

use magnet_proto::v1 as pb;
use magnet_proto::v1::file_service_client::FileServiceClient;
use magnet_runtime::{Settings, nats, subjects};
use magnet_tests::nats::NatsServer;
use magnet_tests::peer::Client;
use magnet_tests::seeder::random_file;
use magnet_tests::services::offline_node;
use magnet_tests::{eventually, init_logging};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

const NODE: &str = "worker-s";
const SECRET: &[u8] = b"TOP-SECRET-BYTES-outside-the-media-folder";

/// A node's media folder: a playlist, two segments (one of several slices), a subtitle, an
/// empty file, a symlink pointing at a secret placed beside the folder.
fn media(data: &Path) -> anyhow::Result<()> {
    let task = data.join("m3u8/task_1");
    std::fs::create_dir_all(&task)?;
    std::fs::write(
        task.join("index.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nindex0.ts\n#EXTINF:6.0,\nindex1.ts\n#EXT-X-ENDLIST\n",
    )?;
    random_file(&task.join("index0.ts"), 300_000, 1)?;
    random_file(&task.join("index1.ts"), 16384, 2)?;
    std::fs::write(
        task.join("sub.vtt"),
        "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n",
    )?;
    std::fs::write(task.join("empty.ts"), b"")?;
    std::fs::write(data.join("secret.ts"), SECRET)?;
    std::fs::write(data.join("m3u8/secret.ts"), SECRET)?;
    std::os::unix::fs::symlink(data.join("secret.ts"), task.join("evil.ts"))?;
    Ok(())
}

struct Node {
    _nats: NatsServer,
    _data: tempfile::TempDir,
    data: std::path::PathBuf,
    signaling: std::net::SocketAddr,
    streamer_grpc: std::net::SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// nats-server, the node's registry record, a streamer and a signaling service.
async fn node(tune: impl FnOnce(&mut Settings)) -> anyhow::Result<Node> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    media(dir.path())?;
    let mut settings = offline_node(dir.path(), nats.url(), NODE);
    tune(&mut settings);
    // The registry record (normally the downloader's heartbeat).
    let js = async_nats::jetstream::new(nats.client().await?);
    let kv = nats::nodes_bucket(&js, Duration::from_secs(60), 1).await?;
    let record = pb::NodeRecord {
        id: NODE.into(),
        status: "online".into(),
        ..Default::default()
    };
    kv.put(NODE, record.encode_to_vec().into()).await?;
    let shutdown = CancellationToken::new();
    let streamer = magnet_streamer::start(settings.clone(), shutdown.clone()).await?;
    let signaling = magnet_signaling::start(settings, shutdown.clone()).await?;
    Ok(Node {
        data: dir.path().to_owned(),
        _data: dir,
        _nats: nats,
        signaling: signaling.grpc_addr,
        streamer_grpc: streamer.grpc_addr,
        shutdown,
    })
}

fn file(n: &Node, name: &str) -> Vec<u8> {
    std::fs::read(n.data.join("m3u8/task_1").join(name)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn both_protocols_serve_the_files_byte_for_byte() -> anyhow::Result<()> {
    init_logging();
    let n = node(|_| {}).await?;
    let client = Client::connect(n.signaling, NODE, "client-1700000000000-abcdefghi").await?;
    // The original protocol, relative and absolute URLs.
    assert_eq!(
        client.hijack("/video/task_1/index.m3u8").await?,
        file(&n, "index.m3u8")
    );
    assert_eq!(
        client
            .hijack("http://127.0.0.1:8080/video/task_1/index0.ts")
            .await?,
        file(&n, "index0.ts")
    );
    assert_eq!(
        client.hijack("/video/task_1/index1.ts").await?,
        file(&n, "index1.ts"),
        "exactly one full slice"
    );
    assert_eq!(
        client.hijack("/video/task_1/sub.vtt").await?,
        file(&n, "sub.vtt")
    );
    assert_eq!(
        client.hijack("/video/task_1/empty.ts").await?,
        Vec::<u8>::new(),
        "an empty file is one empty slice"
    );
    // The binary protocol, whole and ranged.
    let (bytes, ct) = client
        .get("/video/task_1/index0.ts", 0, None)
        .await?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(bytes == file(&n, "index0.ts"));
    assert_eq!(ct, "video/mp2t");
    let (m3u8, ct) = client
        .get("/video/task_1/index.m3u8", 0, None)
        .await?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(
        (m3u8, ct.as_str()),
        (file(&n, "index.m3u8"), "application/vnd.apple.mpegurl")
    );
    let (range, _) = client
        .get("/video/task_1/index0.ts", 1000, Some(70_000))
        .await?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(range == file(&n, "index0.ts")[1000..71_000]);
    client.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_are_refused_and_nothing_outside_is_read() -> anyhow::Result<()> {
    init_logging();
    let n = node(|_| {}).await?;
    // Another node's task: it exists on node B's volume only.
    std::fs::create_dir_all(n.data.join("other-node/m3u8/task_9"))?;
    std::fs::write(n.data.join("other-node/m3u8/task_9/index.m3u8"), SECRET)?;
    let client = Client::connect(n.signaling, NODE, "client-hostile").await?;
    // Each with the status the relay answers too (one table: `FileError::reason`).
    let hostile = [
        ("/video/task_1/../secret.ts", "bad request path", 400),
        ("/video/task_1/../../secret.ts", "bad request path", 400),
        ("/etc/passwd", "bad request path", 400),
        ("/video/task_1/%2e%2e/secret.ts", "bad request path", 400),
        ("/video/task_1/%2E%2E%2Fsecret.ts", "bad request path", 400),
        ("/video/task_1/evil.ts", "symbolic links", 403),
        ("/video/task_9/index.m3u8", "not found", 404),
        ("/video/task_1/index.sh", "file type not served", 400),
        ("/video/../m3u8/secret.ts", "bad request path", 400),
        ("file:///etc/passwd", "bad request path", 400),
    ];
    for (url, want, want_status) in hostile {
        let err = client.hijack(url).await.expect_err(url).to_string();
        assert!(err.contains(want), "{url}: {err}");
        assert!(!err.contains("TOP-SECRET"), "{url} leaked: {err}");
        match client.get(url, 0, None).await? {
            Err((status, message)) => {
                assert_eq!(status, want_status, "{url}: {message}");
                assert!(message.contains(want), "{url}: {message}");
            }
            Ok((bytes, _)) => panic!("{url} served {} bytes", bytes.len()),
        }
    }
    // An oversized request.
    let big = serde_json::json!({ "type": "hijackReq", "id": "big", "ts": format!("/video/task_1/{}.ts", "a".repeat(8000)) });
    let err = client
        .hijack_raw("big", &big.to_string())
        .await
        .expect_err("oversized")
        .to_string();
    assert!(err.contains("over the 4096-byte limit"), "{err}");
    // Malformed JSON gets an error too, and the channel keeps working.
    let err = client
        .hijack_raw("", "{not json")
        .await
        .expect_err("malformed")
        .to_string();
    assert!(err.contains("malformed request"), "{err}");
    assert_eq!(
        client.hijack("/video/task_1/index.m3u8").await?,
        file(&n, "index.m3u8")
    );
    client.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_requests_in_flight_on_one_channel() -> anyhow::Result<()> {
    init_logging();
    let n = node(|_| {}).await?;
    let client = Client::connect(n.signaling, NODE, "client-many").await?;
    let want0 = file(&n, "index0.ts");
    let want1 = file(&n, "index1.ts");
    let requests = (0..20).map(|i| {
        let client = &client;
        async move {
            match i % 4 {
                0 => client
                    .hijack("/video/task_1/index0.ts")
                    .await
                    .map(|b| (i, b)),
                1 => client
                    .get("/video/task_1/index0.ts", 0, None)
                    .await
                    .and_then(|r| r.map_err(|e| anyhow::anyhow!("{e:?}")))
                    .map(|(b, _)| (i, b)),
                2 => client
                    .hijack("/video/task_1/index1.ts")
                    .await
                    .map(|b| (i, b)),
                _ => client
                    .get("/video/task_1/index1.ts", 0, None)
                    .await
                    .and_then(|r| r.map_err(|e| anyhow::anyhow!("{e:?}")))
                    .map(|(b, _)| (i, b)),
            }
        }
    });
    let results = futures::future::join_all(requests).await;
    for r in results {
        let (i, bytes) = r?;
        let want = if i % 4 < 2 { &want0 } else { &want1 };
        assert!(&bytes == want, "request {i} got {} bytes", bytes.len());
    }
    client.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_over_the_limit_are_refused_idle_ones_closed_unknown_nodes_named()
-> anyhow::Result<()> {
    init_logging();
    let n = node(|s| {
        s.streamer.max_sessions = 1;
        s.streamer.idle_timeout_secs = 2;
    })
    .await?;
    let first = Client::connect(n.signaling, NODE, "client-first").await?;
    let err = Client::connect(n.signaling, NODE, "client-second")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("limit of 1 sessions"), "{err}");
    let err = Client::connect(n.signaling, "worker-nowhere", "client-third")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("node worker-nowhere is unknown or offline"),
        "{err}"
    );

    // No request for 2 s: the streamer closes the session.
    tokio::time::timeout(Duration::from_secs(15), first.closed())
        .await
        .map_err(|_| anyhow::anyhow!("idle session not closed"))?;
    // Its slot is free again.
    let again = Client::connect(n.signaling, NODE, "client-again").await?;
    assert_eq!(
        again.hijack("/video/task_1/sub.vtt").await?,
        file(&n, "sub.vtt")
    );
    again.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn file_service_reads_ranges_and_refuses_what_the_channel_refuses() -> anyhow::Result<()> {
    init_logging();
    let n = node(|_| {}).await?;
    let mut fs = FileServiceClient::connect(format!("http://{}", n.streamer_grpc)).await?;
    let read = |task: &str, file: &str, offset: u64, length: u64| pb::ReadRequest {
        task_id: task.into(),
        file: file.into(),
        offset,
        length,
    };
    let collect = |mut s: tonic::Streaming<pb::ReadChunk>| async move {
        let mut out = Vec::new();
        let mut first = None;
        while let Some(c) = s.message().await? {
            first.get_or_insert((c.total_size, c.content_type.clone()));
            out.extend_from_slice(&c.data);
        }
        anyhow::Ok((out, first))
    };
    let (all, first) = collect(
        fs.read(read("task_1", "index0.ts", 0, 0))
            .await?
            .into_inner(),
    )
    .await?;
    assert!(all == file(&n, "index0.ts"));
    assert_eq!(first, Some((300_000, "video/mp2t".to_owned())));
    let (part, _) = collect(
        fs.read(read("task_1", "index0.ts", 100, 1000))
            .await?
            .into_inner(),
    )
    .await?;
    assert!(part == file(&n, "index0.ts")[100..1100]);
    let (empty, _) = collect(
        fs.read(read("task_1", "empty.ts", 0, 0))
            .await?
            .into_inner(),
    )
    .await?;
    assert!(empty.is_empty());
    for (task, f, code) in [
        ("task_1", "../secret.ts", tonic::Code::InvalidArgument),
        ("task_1", "%2e%2e/secret.ts", tonic::Code::InvalidArgument),
        ("../m3u8", "secret.ts", tonic::Code::InvalidArgument),
        ("task_1", "evil.ts", tonic::Code::PermissionDenied),
        ("task_1", "index.sh", tonic::Code::InvalidArgument),
        ("task_9", "index.m3u8", tonic::Code::NotFound),
    ] {
        let got = match fs.read(read(task, f, 0, 0)).await {
            Err(status) => status.code(),
            Ok(s) => match collect(s.into_inner()).await {
                Ok((bytes, _)) => panic!("{task}/{f} served {} bytes", bytes.len()),
                Err(e) => e
                    .downcast_ref::<tonic::Status>()
                    .map(|s| s.code())
                    .unwrap_or(tonic::Code::Unknown),
            },
        };
        assert_eq!(got, code, "{task}/{f}");
    }
    let _ = subjects::signal_offer(NODE);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_capped_per_user_atomically_and_unconnected_ones_released()
-> anyhow::Result<()> {
    use magnet_tests::peer::Unanswered;

    init_logging();
    let n = node(|s| {
        s.streamer.max_sessions = 4;
        s.streamer.max_sessions_per_user = 2;
        s.streamer.connect_timeout_secs = 2;
    })
    .await?;
    // One user (the gateway's tag before the id) offers six sessions at once, none of which
    // ever connects: two are answered, the rest refused (the limit is reserved atomically;
    // it once let 65 through a limit of 64).
    let ids: Vec<String> = (0..6).map(|i| format!("0123456789ab_s{i}")).collect();
    let offers = ids
        .iter()
        .map(|id| Unanswered::offer(n.signaling, NODE, id));
    let results = futures::future::join_all(offers).await;
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for r in results {
        match r {
            Ok(h) => held.push(h),
            Err(e) => refused.push(e.to_string()),
        }
    }
    assert_eq!(held.len(), 2, "{refused:?}");
    for e in &refused {
        assert!(e.contains("2 sessions"), "{e}");
    }
    // Another user still gets in while the node has room.
    let other = Unanswered::offer(n.signaling, NODE, "ba9876543210_s0").await?;
    // Never connected: after 2 s their slots are freed, and the first user gets one again.
    let again = eventually(Duration::from_secs(15), "a freed slot", || async {
        Unanswered::offer(n.signaling, NODE, "0123456789ab_again")
            .await
            .ok()
    })
    .await?;
    again.close().await;
    other.close().await;
    for h in held {
        h.close().await;
    }
    Ok(())
}
