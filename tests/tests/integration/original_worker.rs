//! The original's worker nodes join our cluster through `/ws/nodes` (issue 14, section 2),
//! against a stand-in that speaks the original worker's side of the socket and serves an HLS
//! folder with the original data-channel protocol (`magnet_tests::original_worker`): it
//! registers with a token, is listed by two gateway replicas, takes a submit, has its tasks
//! merged with our node's, plays in our player in Chromium over P2P; it reconnects under its
//! id, leaves, goes offline without heartbeats, and is refused without a valid token, under a
//! taken id, past the worker limit, and for oversized or too many messages.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use magnet_tests::nats::NatsServer;
use magnet_tests::original_worker::{Options, OriginalWorker};
use magnet_tests::peer::Client;
use magnet_tests::services::{Served, offline_node};
use magnet_tests::stack::{artefacts, browser};
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging, json_of};
use futures::{SinkExt, StreamExt};
use magnet_runtime::Settings;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NODE: &str = "node-a";
const ORIGINAL: &str = "worker-001";
const TOKEN: &str = "original-worker-token-1";
const READY: &str = "task_1700000000001";
const COMPLETED: &str = "task_1700000000002";
const HASH: &str = "c9e15763f722f23e98a29decdfae341b98d53056";

/// `seconds` of video as the original's worker leaves it: `index.m3u8`, `index0.ts`, … in
/// `dir`.
fn hls_folder(dir: &Path, seconds: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let src = dir.join("source.mp4");
    generate(&src, seconds, Codec::H264Aac)?;
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args(["-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"])
        .args(["-start_number", "0", "-hls_segment_filename"])
        .arg(dir.join("index%d.ts"))
        .arg(dir.join("index.m3u8"))
        .status()?;
    anyhow::ensure!(status.success(), "ffmpeg could not cut the HLS folder");
    std::fs::remove_file(src)?;
    Ok(())
}

/// The tasks the worker reports, in its JSON.
fn worker_tasks() -> Vec<Value> {
    let task = |id: &str, status: &str, path: &str| {
        json!({
            "id": id, "magnet_url": format!("magnet:?xt=urn:btih:{HASH}&dn=film"),
            "status": status, "progress": 100, "speed": 0, "size": 1000, "downloaded": 1000,
            "files": ["film/film.mp4"], "torrent_name": "film", "m3u8_path": path, "srts": null,
            "created_at": "2026-01-02T03:04:05.123456789Z", "updated_at": "2026-01-02T03:04:05.123456789Z",
            "worker_id": ORIGINAL,
        })
    };
    vec![
        task(READY, "ready", "data/m3u8/film/index.m3u8"),
        task(COMPLETED, "completed", ""),
    ]
}

fn settings(data: &Path, nats: &str) -> Settings {
    let mut s = offline_node(data, nats, NODE);
    let o = &mut s.gateway.original_workers;
    o.token = Some(TOKEN.into());
    o.offline_after_secs = 3;
    o.forget_after_secs = 60;
    o.answer_timeout_secs = 3;
    o.max_workers = 2;
    o.max_message_kib = 64;
    o.messages_per_second = 20;
    s
}

/// A second gateway replica beside `served`'s.
async fn second_gateway(
    mut s: Settings,
    shutdown: &CancellationToken,
) -> anyhow::Result<magnet_gateway::Running> {
    s.gateway.listen = ([127, 0, 0, 1], 0).into();
    s.gateway.admin_listen = ([127, 0, 0, 1], 0).into();
    Ok(magnet_gateway::start(s, shutdown.clone()).await?)
}

fn worker_url(gateway: SocketAddr, token: Option<&str>) -> String {
    match token {
        Some(t) => format!("ws://{gateway}/ws/nodes?token={t}"),
        None => format!("ws://{gateway}/ws/nodes"),
    }
}

fn options(id: &str, root: &Path) -> Options {
    Options {
        id: id.into(),
        heartbeat: Duration::from_millis(500),
        root: root.to_owned(),
        tasks: worker_tasks(),
    }
}

/// The node as `base` lists it, if online.
async fn listed(http: &reqwest::Client, base: &str, id: &str) -> Option<Value> {
    let (_, b) = json_of(http.get(format!("{base}/api/nodes")).send().await.ok()?)
        .await
        .ok()?;
    b["data"].as_array()?.iter().find(|n| n["id"] == id).cloned()
}

fn addr_of(base: &str) -> anyhow::Result<SocketAddr> {
    Ok(base.trim_start_matches("http://").parse()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_original_worker_joins_lists_submits_and_plays() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let hls = tempfile::tempdir()?;
    hls_folder(&hls.path().join(READY), 12)?;
    let settings = settings(data.path(), nats.url());
    let served = Served::start(settings.clone()).await?;
    let shutdown = CancellationToken::new();
    let second = second_gateway(settings.clone(), &shutdown).await?;
    let (base, base2) = (served.base.clone(), format!("http://{}", second.addr));
    let http = reqwest::Client::new();

    // The worker dials the second replica, token in its --gateway URL.
    let worker = OriginalWorker::connect(
        &worker_url(second.addr, Some(TOKEN)),
        options(ORIGINAL, hls.path()),
    )
    .await?;
    worker.registered().await?;
    // Both replicas list it, marked as an original worker, in the original's shape.
    for b in [&base, &base2] {
        let node = eventually(Duration::from_secs(10), "original worker listed", || {
            listed(&http, b, ORIGINAL)
        })
        .await?;
        assert_eq!(node["kind"], "original", "{node}");
        assert_eq!(node["metadata"]["arch"], "amd64");
        assert_eq!(node["resources"]["max_transcodes"], 2);
        assert_eq!(node["status"], "online");
    }
    let (_, st) = json_of(http.get(format!("{base}/api/status")).send().await?).await?;
    assert_eq!(st["data"]["online_nodes"], 2, "{st}");

    // A submit to it reaches the worker (through the replica holding its socket).
    let magnet = format!("magnet:?xt=urn:btih:{HASH}&dn=new");
    let (status, sub) = json_of(
        http.post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "worker_id": ORIGINAL, "magnet_url": magnet }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{sub}");
    assert!(sub["data"]["id"].as_str().is_some_and(|i| i.starts_with("task_")), "{sub}");
    assert_eq!(*worker.submitted.lock().await, std::slice::from_ref(&magnet));

    // Its tasks are merged with our node's.
    let (status, ours) = json_of(
        http.post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "worker_id": NODE, "magnet_url": format!("magnet:?xt=urn:btih:{}", "a".repeat(40)) }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{ours}");
    let (_, list) = json_of(http.get(format!("{base}/api/tasks")).send().await?).await?;
    assert_eq!(list["data"]["node_errors"], json!([]), "{list}");
    let tasks = list["data"]["tasks"].as_array().cloned().unwrap_or_default();
    let by_id = |id: &str| tasks.iter().find(|t| t["id"] == id).cloned().unwrap_or_default();
    assert_eq!(by_id(ours["data"]["id"].as_str().unwrap_or_default())["worker_id"], NODE);
    let ready = by_id(READY);
    assert_eq!((ready["status"].clone(), ready["progress"].clone()), (json!("ready"), json!(100)));
    assert_eq!(ready["worker_id"], ORIGINAL);
    assert_eq!(ready["worker_kind"], "original");
    assert_eq!(ready["playable"], true);
    assert_eq!(by_id(COMPLETED)["status"], "completed");
    // One task, through get_task_detail.
    let (status, one) = json_of(http.get(format!("{base}/api/tasks/{READY}")).send().await?).await?;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["data"]["files"], json!(["film/film.mp4"]));
    let (status, _) =
        json_of(http.get(format!("{base}/api/tasks/task_1")).send().await?).await?;
    assert_eq!(status, 404);
    // No relay and no delete on such a node: it cannot.
    let (status, e) = json_of(http.get(format!("{base}/video/{READY}/index.m3u8")).send().await?).await?;
    assert_eq!(status, 409, "{e}");
    assert!(e["error"].as_str().is_some_and(|m| m.contains("P2P")), "{e}");
    let (status, _) = json_of(http.delete(format!("{base}/api/tasks/{READY}")).send().await?).await?;
    assert_eq!(status, 409);

    // A browser session through our signaling, the first replica, NATS, and the second
    // replica's socket: the original protocol's bytes equal the files.
    let peer = Client::connect_ws(addr_of(&base)?, ORIGINAL, "client-1-original1").await?;
    for file in ["index.m3u8", "index0.ts", "index5.ts"] {
        let got = peer.hijack(&format!("/video/{READY}/{file}")).await?;
        assert_eq!(got, std::fs::read(hls.path().join(READY).join(file))?, "{file}");
    }
    peer.close().await;

    // Our player in Chromium: the index marks the node, Play plays over P2P, original protocol.
    let out = artefacts("original_worker")?;
    let result = tokio::task::spawn_blocking({
        let base = base.clone();
        move || browser(&base, READY, "original", &out)
    })
    .await??;
    assert_eq!(result["protocol"], "original", "{result}");

    drop(worker);
    shutdown.cancel();
    second.wait().await?;
    served.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn original_workers_reconnect_leave_and_are_refused() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let hls = tempfile::tempdir()?;
    let settings = settings(data.path(), nats.url());
    let served = Served::start(settings.clone()).await?;
    let shutdown = CancellationToken::new();
    let second = second_gateway(settings.clone(), &shutdown).await?;
    let base = served.base.clone();
    let (gw1, gw2) = (addr_of(&base)?, second.addr);
    let http = reqwest::Client::new();
    let refused = |r: anyhow::Result<OriginalWorker>| match r {
        Err(e) => e
            .downcast::<tokio_tungstenite::tungstenite::Error>()
            .ok()
            .and_then(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => Some(r.status().as_u16()),
                _ => None,
            }),
        Ok(_) => None,
    };

    // Without a token, or with a wrong one: refused before the upgrade.
    let o = || options(ORIGINAL, hls.path());
    assert_eq!(refused(OriginalWorker::connect(&worker_url(gw1, None), o()).await), Some(401));
    assert_eq!(
        refused(OriginalWorker::connect(&worker_url(gw1, Some("wrong-token-wrong-token")), o()).await),
        Some(401)
    );
    assert!(listed(&http, &base, ORIGINAL).await.is_none());
    // A first message that is not a NodeInfo, or one with an id that cannot be a node's:
    // closed with the reason.
    for first in ["not json", r#"{"type":"heartbeat","payload":{}}"#, r#"{"id":"../etc"}"#] {
        let (mut ws, _) = tokio_tungstenite::connect_async(worker_url(gw1, Some(TOKEN))).await?;
        ws.send(WsMessage::Text(first.into())).await?;
        let closed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await?;
        match closed {
            Some(Ok(WsMessage::Close(Some(c)))) => {
                assert_eq!(u16::from(c.code), 1008, "{first}: {c:?}");
                assert!(!c.reason.is_empty(), "{first}");
            }
            other => panic!("{first}: {other:?}"),
        }
    }

    // Registered on one replica; a reconnect under the same id on the other replica wins,
    // the older connection is closed, and the node stays listed throughout.
    let first = OriginalWorker::connect(&worker_url(gw1, Some(TOKEN)), o()).await?;
    first.registered().await?;
    eventually(Duration::from_secs(10), "listed", || listed(&http, &base, ORIGINAL)).await?;
    let again = OriginalWorker::connect(&worker_url(gw2, Some(TOKEN)), o()).await?;
    again.registered().await?;
    let reason = first.closed_by_gateway(Duration::from_secs(10)).await?;
    eprintln!("older connection closed: {reason}");
    for _ in 0..6 {
        assert!(listed(&http, &base, ORIGINAL).await.is_some(), "listed after the reconnect");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Calls reach the newer connection.
    let (status, one) = json_of(http.get(format!("{base}/api/tasks/{READY}")).send().await?).await?;
    assert_eq!(status, 200, "{one}");
    // A worker that does not answer in time is named in node_errors, and stays listed.
    again.mute.store(true, std::sync::atomic::Ordering::Relaxed);
    let (_, list) = json_of(http.get(format!("{base}/api/tasks")).send().await?).await?;
    let errors = list["data"]["node_errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{list}");
    assert_eq!(errors[0]["node_id"], ORIGINAL);
    assert!(errors[0]["error"].as_str().is_some_and(|e| e.contains("did not")), "{list}");
    assert!(listed(&http, &base, ORIGINAL).await.is_some());
    again.mute.store(false, std::sync::atomic::Ordering::Relaxed);

    // A heartbeat gap marks it offline (3 s here, the original's 2 min by default), though
    // its socket stays open; heartbeats again bring it back.
    again.heartbeats.store(false, std::sync::atomic::Ordering::Relaxed);
    eventually(Duration::from_secs(15), "offline", || async {
        listed(&http, &base, ORIGINAL).await.is_none().then_some(())
    })
    .await?;
    again.heartbeats.store(true, std::sync::atomic::Ordering::Relaxed);
    eventually(Duration::from_secs(15), "online again", || listed(&http, &base, ORIGINAL)).await?;

    // Closing removes it at once (well within the registry's TTL).
    again.close();
    eventually(Duration::from_secs(2), "removed", || async {
        listed(&http, &base, ORIGINAL).await.is_none().then_some(())
    })
    .await?;

    // An id of one of our nodes is refused after the upgrade, with the reason.
    let taken = OriginalWorker::connect(&worker_url(gw1, Some(TOKEN)), options(NODE, hls.path())).await?;
    assert!(taken.registered().await.is_err());
    let (_, node) = json_of(http.get(format!("{base}/api/nodes/{NODE}")).send().await?).await?;
    assert_eq!(node["data"]["kind"], "magnetm3u8", "our node's record is untouched: {node}");

    // At most max_workers (2) original workers.
    let a = OriginalWorker::connect(&worker_url(gw1, Some(TOKEN)), options("worker-a", hls.path())).await?;
    a.registered().await?;
    let b = OriginalWorker::connect(&worker_url(gw2, Some(TOKEN)), options("worker-b", hls.path())).await?;
    b.registered().await?;
    eventually(Duration::from_secs(10), "both listed", || async {
        (listed(&http, &base, "worker-a").await.is_some() && listed(&http, &base, "worker-b").await.is_some())
            .then_some(())
    })
    .await?;
    let c = OriginalWorker::connect(&worker_url(gw1, Some(TOKEN)), options("worker-c", hls.path())).await?;
    let closed = c.registered().await.expect_err("a third worker is refused");
    assert!(closed.to_string().contains("most"), "{closed}");

    // A message over max_message_kib, and a flood past messages_per_second: closed.
    a.send_raw(format!("{{\"type\":\"heartbeat\",\"payload\":{{\"pad\":\"{}\"}}}}", "x".repeat(100 * 1024)));
    a.closed_by_gateway(Duration::from_secs(10)).await?;
    for _ in 0..200 {
        b.send_raw(json!({"type": "heartbeat", "payload": {"node_id": "worker-b"}}).to_string());
    }
    let why = b.closed_by_gateway(Duration::from_secs(10)).await?;
    assert!(why.contains("messages a second"), "{why}");
    for id in ["worker-a", "worker-b"] {
        eventually(Duration::from_secs(5), "flooders removed", || async {
            listed(&http, &base, id).await.is_none().then_some(())
        })
        .await?;
    }
    // The gateways still answer.
    let (status, _) = json_of(http.get(format!("{base}/api/status")).send().await?).await?;
    assert_eq!(status, 200);

    shutdown.cancel();
    second.wait().await?;
    served.stop().await?;
    Ok(())
}
