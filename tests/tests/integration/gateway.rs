//! The gateway's API against a real node (nats-server, downloader, transcoder, streamer), field
//! for field as the original's web client reads it, with its error shapes and the video relay.

use std::time::Duration;

use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::Seeder;
use magnet_tests::services::{InProcess, Transcoder, offline_node, transcoder_of};
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NODE: &str = "worker-g";

#[tokio::test(flavor = "multi_thread")]
async fn the_originals_api_serves_nodes_tasks_and_video() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    let video = src.path().join("clip.mp4");
    generate(&video, 4, Codec::H264Aac)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&video).await?;

    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.gateway.listen = ([127, 0, 0, 1], 0).into();
    settings.gateway.admin_listen = ([127, 0, 0, 1], 0).into();
    settings.gateway.cors_origins = vec!["http://allowed.example".into()];
    let shutdown = CancellationToken::new();
    let streamer = magnet_streamer::start(settings.clone(), shutdown.clone()).await?;
    settings.streamer.advertise = Some(format!("http://{}", streamer.grpc_addr));
    let node = InProcess::start(settings.clone()).await?;
    let transcoder = Transcoder::start(transcoder_of(&settings, "r1")).await?;
    let gateway = magnet_gateway::start(settings.clone(), shutdown.clone()).await?;
    let base = format!("http://{}", gateway.addr);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).send().await?;
            let status = r.status().as_u16();
            let body: Value = r.json().await?;
            anyhow::Ok((status, body))
        }
    };

    // Nodes: the registry record, in the original's shape.
    let (status, nodes) = eventually(Duration::from_secs(10), "node listed", || {
        let url = format!("{base}/api/nodes");
        async move {
            get(url)
                .await
                .ok()
                .filter(|(_, b)| b["data"].as_array().is_some_and(|a| !a.is_empty()))
        }
    })
    .await?;
    assert_eq!(status, 200);
    assert_eq!(nodes["success"], true);
    let n = &nodes["data"][0];
    assert_eq!(n["id"], NODE);
    assert_eq!(n["status"], "online");
    assert_eq!(n["capabilities"], json!(["torrent", "transcode", "webrtc"]));
    for key in ["max_downloads", "max_transcodes", "disk_space_gb"] {
        assert!(n["resources"][key].is_u64(), "resources.{key}: {n}");
    }
    assert!(
        n["metadata"]["version"].is_string()
            && n["last_seen"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{n}"
    );
    // The architecture as the original's nodes name it (Go's names).
    if cfg!(target_arch = "x86_64") {
        assert_eq!(n["metadata"]["arch"], "amd64", "{n}");
    }
    // CORS only for the configured origin (with credentials, never a wildcard); gzip for JSON.
    let r = http
        .get(format!("{base}/api/nodes"))
        .header("origin", "http://allowed.example")
        .send()
        .await?;
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"http://allowed.example"[..])
    );
    assert_eq!(
        r.headers()
            .get("access-control-allow-credentials")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let r = http
        .get(format!("{base}/api/nodes"))
        .header("origin", "http://evil.example")
        .send()
        .await?;
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        r.headers()
    );
    let r = http
        .get(format!("{base}/api/nodes"))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(
        r.headers().get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let (status, one) = get(format!("{base}/api/nodes/{NODE}")).await?;
    assert_eq!((status, one["data"]["id"].clone()), (200, json!(NODE)));
    let (status, missing) = get(format!("{base}/api/nodes/worker-nowhere")).await?;
    assert_eq!(status, 404);
    assert_eq!(missing["success"], false);
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown or offline")),
        "{missing}"
    );

    // Bad submissions: each a clear JSON error.
    let post = |body: String| {
        let http = http.clone();
        let url = format!("{base}/api/tasks/submit");
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            anyhow::Ok((status, body))
        }
    };
    let (status, e) =
        post(json!({"worker_id": NODE, "magnet_url": "http://x/y.torrent"}).to_string()).await?;
    assert_eq!(status, 400);
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("invalid magnet link: not a magnet link")),
        "{e}"
    );
    let (status, e) =
        post(json!({"worker_id": "worker-nowhere", "magnet_url": seeded.magnet}).to_string())
            .await?;
    assert_eq!(status, 404, "{e}");
    let (status, e) = post("{not json".into()).await?;
    assert_eq!(status, 400);
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("invalid request body")),
        "{e}"
    );
    // The submit route takes bodies as large as a .torrent file (gateway.max_torrent_kib):
    // a long magnet inside gets the magnet's own limit, a body past the route's limit 413.
    let (status, e) = post(format!(
        "{{\"magnet_url\": \"{}\"}}",
        "a".repeat(100 * 1024)
    ))
    .await?;
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"].as_str().is_some_and(|m| m.contains("longer than")),
        "{e}"
    );
    let (status, _) = post(format!(
        "{{\"magnet_url\": \"{}\"}}",
        "a".repeat(6 * 1024 * 1024)
    ))
    .await?;
    assert_eq!(status, 413, "oversized body");

    // Submit, then follow the task to ready.
    let (status, submitted) =
        post(json!({"worker_id": NODE, "magnet_url": seeded.magnet}).to_string()).await?;
    assert_eq!(status, 200, "{submitted}");
    assert_eq!(submitted["success"], true);
    let id = submitted["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(id.starts_with("task_"), "{submitted}");
    let ready = eventually(Duration::from_secs(60), "task ready", || {
        let url = format!("{base}/api/tasks");
        async move {
            let (_, body) = get(url).await.ok()?;
            body["data"]["tasks"]
                .as_array()?
                .iter()
                .find(|t| t["status"] == "ready")
                .cloned()
        }
    })
    .await?;
    assert_eq!(ready["id"], id.as_str());
    assert_eq!(ready["worker_id"], NODE);
    assert_eq!(ready["progress"], 100);
    assert_eq!(ready["magnet_url"], seeded.magnet.as_str());
    assert_eq!(ready["m3u8_path"], format!("m3u8/{id}/index.m3u8"));
    assert_eq!(ready["files"], json!(["clip.mp4"]));
    for key in ["speed", "size", "downloaded"] {
        assert!(ready[key].is_u64(), "{key}: {ready}");
    }
    let (status, one) = get(format!("{base}/api/tasks/{id}")).await?;
    assert_eq!(
        (status, one["data"]["status"].clone()),
        (200, json!("ready"))
    );
    let (status, e) = get(format!("{base}/api/tasks/task_1")).await?;
    assert_eq!((status, e["error"].clone()), (404, json!("Task not found")));
    let (status, _) = get(format!("{base}/api/tasks/..%2Fetc")).await?;
    assert_eq!(status, 400);

    // The relay: whole files, ranges, refusals.
    let out = data.path().join("m3u8").join(&id);
    let r = http
        .get(format!("{base}/video/{id}/index.m3u8"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(
        r.bytes().await?.to_vec(),
        std::fs::read(out.join("index.m3u8"))?
    );
    let segment = std::fs::read(out.join("index0.ts"))?;
    let r = http
        .get(format!("{base}/video/{id}/index0.ts"))
        .header("range", "bytes=100-1099")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-1099/{}", segment.len())
    );
    assert_eq!(r.bytes().await?.to_vec(), segment[100..1100].to_vec());
    let r = http
        .get(format!("{base}/video/{id}/index0.ts"))
        .header("range", "bytes=-500")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!(
            "bytes {}-{}/{}",
            segment.len() - 500,
            segment.len() - 1,
            segment.len()
        )
    );
    assert_eq!(
        r.bytes().await?.to_vec(),
        segment[segment.len() - 500..].to_vec()
    );
    // An end past u64's range of sizes: clamped to the file (it used to overflow).
    let r = http
        .get(format!("{base}/video/{id}/index0.ts"))
        .header("range", "bytes=0-18446744073709551615")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-length"],
        segment.len().to_string().as_str()
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await?.to_vec(), segment);
    let r = http
        .get(format!("{base}/video/{id}/index0.ts"))
        .header("range", format!("bytes={}-", segment.len() + 10))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 416);
    // Starting exactly at the end, or an empty suffix: nothing in range either.
    for range in [format!("bytes={}-", segment.len()), "bytes=-0".to_owned()] {
        let r = http
            .get(format!("{base}/video/{id}/index0.ts"))
            .header("range", &range)
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 416, "{range}");
    }
    let r = http
        .get(format!("{base}/video/{id}/index0.ts"))
        .header("range", format!("bytes={}-", segment.len()))
        .send()
        .await?;
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", segment.len())
    );
    let r = http
        .get(format!("{base}/video/{id}/index.sh"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);

    // Status and ICE servers.
    let (_, st) = get(format!("{base}/api/status")).await?;
    assert_eq!(st["data"]["online_nodes"], 1);
    let (_, ice) = get(format!("{base}/api/webrtc/ice-servers")).await?;
    assert_eq!(ice, json!({"success": true, "iceServers": [], "ttl": 0}));

    // Delete.
    let r = http.delete(format!("{base}/api/tasks/{id}")).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    let (status, _) = get(format!("{base}/api/tasks/{id}")).await?;
    assert_eq!(status, 404);
    assert!(!out.exists());

    transcoder.stop().await?;
    node.stop().await?;
    shutdown.cancel();
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_originals_websocket_signals_a_p2p_session() -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use prost::Message as _;
    use tokio_tungstenite::tungstenite::Message;

    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let task = data.path().join("m3u8/task_7");
    std::fs::create_dir_all(&task)?;
    std::fs::write(task.join("index.m3u8"), "#EXTM3U\n#EXT-X-ENDLIST\n")?;
    magnet_tests::seeder::random_file(&task.join("index0.ts"), 100_000, 9)?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.gateway.listen = ([127, 0, 0, 1], 0).into();
    settings.gateway.admin_listen = ([127, 0, 0, 1], 0).into();
    // The node's registry record (normally the downloader's heartbeat).
    let js = async_nats::jetstream::new(nats.client().await?);
    let kv = magnet_runtime::nats::nodes_bucket(&js, Duration::from_secs(60), 1).await?;
    let record = magnet_proto::v1::NodeRecord {
        id: NODE.into(),
        status: "online".into(),
        ..Default::default()
    };
    kv.put(NODE, record.encode_to_vec().into()).await?;
    let shutdown = CancellationToken::new();
    let _streamer = magnet_streamer::start(settings.clone(), shutdown.clone()).await?;
    let signaling = magnet_signaling::start(settings.clone(), shutdown.clone()).await?;
    settings.gateway.signaling = format!("http://{}", signaling.grpc_addr);
    let gateway = magnet_gateway::start(settings, shutdown.clone()).await?;

    // A browser-like peer signalling over /ws/clients with the original's messages.
    let client = magnet_tests::peer::Client::connect_ws(
        gateway.addr,
        NODE,
        "client-1700000000000-wsabcdefg",
    )
    .await?;
    assert_eq!(
        client.hijack("/video/task_7/index.m3u8").await?,
        std::fs::read(task.join("index.m3u8"))?
    );
    assert_eq!(
        client.hijack("/video/task_7/index0.ts").await?,
        std::fs::read(task.join("index0.ts"))?
    );
    client.close().await;

    // An unknown node and malformed frames: clear error frames, and the socket keeps serving.
    let err = magnet_tests::peer::Client::connect_ws(gateway.addr, "worker-nowhere", "client-x")
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("node worker-nowhere is unknown or offline")),
        "{err:?}"
    );
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/clients?client_id=c1", gateway.addr))
            .await?;
    for (bad, want) in [
        ("{not json", "malformed message"),
        (r#"{"type":"hello"}"#, "unknown message type"),
        (
            r#"{"type":"webrtc_offer","payload":{}}"#,
            "needs payload.sdp",
        ),
    ] {
        ws.send(Message::Text(bad.into())).await?;
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await?
            .expect("reply")?;
        let v: Value = serde_json::from_str(reply.to_text()?)?;
        assert_eq!(v["type"], "error", "{v}");
        assert!(
            v["payload"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(want)),
            "{bad}: {v}"
        );
    }
    shutdown.cancel();
    Ok(())
}
