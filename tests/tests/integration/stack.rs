//! The whole system as real processes (magnet-stack: nats-server, signaling, and per worker
//! node a downloader, a transcoder and a streamer, then the gateway), driven through the
//! gateway only: the API contract with live events, HTTP signaling, bad input, and the web UI
//! in Debian's chromium (Playwright) playing over P2P and over the relay.

use std::time::Duration;

use futures::StreamExt;
use magnet_tests::peer::Client;
use magnet_tests::seeder::Seeder;
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging, json_of, sse_json, stack};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The error shape of every refusal: `{"success": false, "error": "<text>", "code": "<code>"}`
/// (docs/api.md, "Error codes").
fn assert_error(status: StatusCode, body: &Value, want: u16, code: &str, says: &str) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let text = body["error"].as_str().unwrap_or_default();
    assert!(
        text.to_lowercase().contains(&says.to_lowercase()),
        "{text:?} should say {says:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_node_stack_serves_the_api_live_events_and_http_signaling() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let stack = stack::start(dir.path(), 2, |_| {})?;
    let base = stack.gateway_url();
    // Idle connections are dropped before the gateway's own 10 s limit for a next request
    // (`gateway.header_timeout_secs`): a POST on a connection the gateway is closing fails.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;

    // Both nodes are listed (registry watch).
    let nodes = eventually(Duration::from_secs(15), "two nodes listed", || async {
        let (_, b) = json_of(http.get(format!("{base}/api/nodes")).send().await.ok()?)
            .await
            .ok()?;
        let ids: Vec<String> = b["data"]
            .as_array()?
            .iter()
            .filter_map(|n| n["id"].as_str().map(str::to_owned))
            .collect();
        (ids.len() == 2).then_some(ids)
    })
    .await?;
    assert!(nodes.contains(&"node-1".into()) && nodes.contains(&"node-2".into()));
    let (status, one) = json_of(http.get(format!("{base}/api/nodes/node-2")).send().await?).await?;
    assert_eq!(
        (status.as_u16(), &one["data"]["id"]),
        (200, &json!("node-2"))
    );
    let (status, st) = json_of(http.get(format!("{base}/api/status")).send().await?).await?;
    assert_eq!(status, 200);
    assert_eq!(st["data"]["online_nodes"], 2);
    let (_, ice) = json_of(
        http.get(format!("{base}/api/webrtc/ice-servers"))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(
        (&ice["success"], &ice["iceServers"], &ice["ttl"]),
        (&json!(true), &json!([]), &json!(0))
    );

    // Live events: subscribe, then submit a seeded video to node-2 and watch it become ready.
    let src = tempfile::tempdir()?;
    let video = src.path().join("clip.mp4");
    generate(&video, 6, Codec::H264Aac)?;
    // A few seconds of downloading, so progress events have steps to show.
    let seeder = Seeder::with_upload_limit(Some(200_000)).await?;
    let seeded = seeder.seed_small_pieces(&video).await?;
    let events = http.get(format!("{base}/api/events")).send().await?;
    assert_eq!(
        events.headers()["content-type"].to_str()?,
        "text/event-stream"
    );
    let mut events = std::pin::pin!(sse_json(events));
    let (status, sub) = json_of(
        http.post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "worker_id": "node-2", "magnet_url": seeded.magnet }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(sub["message"], "Task submitted successfully");
    let id = sub["data"]["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(sub["data"]["worker_id"], "node-2");
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(v) = events.next().await {
            let v = v?;
            if v["id"] == json!(id) {
                seen.push(format!(
                    "{}:{}",
                    v["status"].as_str().unwrap_or_default(),
                    v["progress"]
                ));
                if v["status"] == json!("ready") {
                    return anyhow::Ok(());
                }
            }
        }
        anyhow::bail!("event stream ended")
    })
    .await
    .map_err(|_| anyhow::anyhow!("no ready event in 90 s; saw {seen:?}"))??;
    eprintln!("events seen: {seen:?}");
    let stepping = seen.iter().any(|s| {
        s.strip_prefix("downloading:")
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| p > 0 && p < 100)
    });
    assert!(
        stepping,
        "download progress between 0 and 100 expected: {seen:?}"
    );
    let (_, task) = json_of(http.get(format!("{base}/api/tasks/{id}")).send().await?).await?;
    assert_eq!(task["data"]["status"], "ready");
    assert!(
        task["data"]["m3u8_path"]
            .as_str()
            .is_some_and(|p| !p.is_empty())
    );
    let (_, list) = json_of(http.get(format!("{base}/api/tasks")).send().await?).await?;
    assert!(
        list["data"]["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["id"] == json!(id)))
    );

    // HTTP signaling (offer → answer in the reply, ice, answer polled for candidates) opens
    // a data channel to node-2's streamer that serves the same playlist as the relay.
    let session = "client-1700000000000-httpsigna";
    let peer = Client::connect_http(stack.gateway, "node-2", session).await?;
    let playlist = peer.hijack(&format!("/video/{id}/index.m3u8")).await?;
    let relayed = http
        .get(format!("{base}/video/{id}/index.m3u8"))
        .send()
        .await?;
    assert_eq!(
        relayed.headers()["content-type"].to_str()?,
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(relayed.bytes().await?.as_ref(), playlist.as_slice());
    peer.close().await;
    let (status, body) = json_of(
        http.post(format!("{base}/api/webrtc/ice"))
            .json(
                &json!({ "session_id": "client-1-unknown00", "candidate": "x", "is_client": true }),
            )
            .send()
            .await?,
    )
    .await?;
    assert_error(status, &body, 404, "session_unknown", "unknown session");

    // Bad input: each a clear JSON error.
    let submit = |body: Value| {
        http.post(format!("{base}/api/tasks/submit"))
            .json(&body)
            .send()
    };
    let (s, b) =
        json_of(submit(json!({ "magnet_url": "magnet:?xt=urn:btih:nothex" })).await?).await?;
    assert_error(s, &b, 400, "magnet_invalid", "invalid magnet link");
    let (s, b) =
        json_of(submit(json!({ "worker_id": "node-9", "magnet_url": seeded.magnet })).await?)
            .await?;
    assert_error(s, &b, 404, "node_not_found", "node-9");
    let (s, b) = json_of(http.get(format!("{base}/api/tasks/task_42")).send().await?).await?;
    assert_error(s, &b, 404, "task_not_found", "task not found");
    let (s, b) = json_of(
        http.get(format!("{base}/api/tasks/..%2Fetc"))
            .send()
            .await?,
    )
    .await?;
    assert_error(s, &b, 400, "task_id_invalid", "task");
    let (s, b) = json_of(
        http.delete(format!("{base}/api/tasks/task_42"))
            .send()
            .await?,
    )
    .await?;
    assert_error(s, &b, 404, "task_not_found", "task not found");
    let (s, b) = json_of(http.get(format!("{base}/api/nodes/nope")).send().await?).await?;
    assert_error(s, &b, 404, "node_not_found", "nope");
    // Past the submit route's limit (a .torrent file's); the next request on the same pooled
    // client must not pick the connection the 413 closed.
    let huge = json!({ "magnet_url": "magnet:?xt=urn:btih:".to_owned() + &"a".repeat(10_000_000) });
    let (s, b) = json_of(submit(huge).await?).await?;
    assert_error(s, &b, 413, "body_too_large", "");
    let (s, b) = json_of(
        http.post(format!("{base}/api/tasks/submit"))
            .header("content-type", "application/json")
            .body("{\"magnet_url\": ")
            .send()
            .await?,
    )
    .await?;
    assert_error(s, &b, 400, "body_invalid", "invalid request body");
    let (s, b) = json_of(
        http.post(format!("{base}/api/tasks/submit"))
            .body("magnet_url=x")
            .send()
            .await?,
    )
    .await?;
    assert_error(s, &b, 415, "body_invalid", "content-type");
    let (s, b) = json_of(http.get(format!("{base}/api/nothing")).send().await?).await?;
    assert_error(s, &b, 404, "route_not_found", "no such route");
    let (s, b) = json_of(
        http.get(format!("{base}/video/{id}/..%2F..%2Fdb.sqlite"))
            .send()
            .await?,
    )
    .await?;
    assert!(matches!(s.as_u16(), 400 | 404), "{s} {b}");
    assert_eq!(b["success"], false);
    // Malformed WebSocket frames get an error frame; the socket stays usable.
    {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!(
            "ws://{}/ws/clients?client_id=client-1-abcdefghi",
            stack.gateway
        ))
        .await?;
        for bad in [
            "{not json",
            r#"{"type":"webrtc_offer","payload":{}}"#,
            r#"{"type":"dance"}"#,
        ] {
            ws.send(Message::Text(bad.into())).await?;
            let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("socket closed after {bad:?}"))??;
            let v: Value = serde_json::from_str(reply.to_text()?)?;
            assert_eq!(v["type"], "error", "{v}");
            assert!(
                v["payload"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{v}"
            );
        }
    }
    // The gateway keeps serving.
    let (status, _) = json_of(http.get(format!("{base}/api/status")).send().await?).await?;
    assert_eq!(status, 200);

    // Delete through the API removes the task.
    let (status, _) = json_of(http.delete(format!("{base}/api/tasks/{id}")).send().await?).await?;
    assert_eq!(status, 200);
    let (status, _) = json_of(http.get(format!("{base}/api/tasks/{id}")).send().await?).await?;
    assert_eq!(status, 404);

    // Every service stops on SIGTERM within its grace period: nothing had to be killed.
    let killed = stack.stop();
    assert!(killed.is_empty(), "killed after SIGTERM: {killed:?}");
    Ok(())
}

/// Seeds a generated video (with an `.srt`) in a folder named `name` and starts a one-node
/// stack; returns what the browser tests need.
async fn browser_setup(
    name: &str,
) -> anyhow::Result<(tempfile::TempDir, magnet_stack::Stack, Seeder, String)> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let torrent = dir.path().join("src").join(name);
    std::fs::create_dir_all(&torrent)?;
    generate(&torrent.join("clip.mp4"), 8, Codec::H264Aac)?;
    std::fs::write(
        torrent.join("clip.en.srt"),
        "1\n00:00:00,500 --> 00:00:04,000\nHello from the subtitles\n\n",
    )?;
    // About 4 s of downloading, so the progress bar has steps to show.
    let seeder = Seeder::with_upload_limit(Some(200_000)).await?;
    let seeded = seeder.seed_small_pieces(&torrent).await?;
    let stack = stack::start(&dir.path().join("stack"), 1, |_| {})?;
    Ok((dir, stack, seeder, seeded.magnet))
}

/// Must show 2: in chromium, submit through the UI, watch the progress bar, play over P2P.
#[tokio::test(flavor = "multi_thread")]
async fn browser_plays_over_p2p() -> anyhow::Result<()> {
    let (_dir, stack, _seeder, magnet) = browser_setup("P2P Movie").await?;
    let out = stack::artefacts("p2p")?;
    let url = stack.gateway_url();
    let r =
        tokio::task::spawn_blocking(move || stack::browser(&url, &magnet, "p2p", &out)).await??;
    assert_eq!(r["transport"], "p2p");
    assert!(r["currentTime"].as_f64().is_some_and(|t| t > 2.0), "{r}");
    let moving = r["progressSeen"]
        .as_array()
        .is_some_and(|p| p.iter().filter_map(Value::as_u64).any(|v| v > 0 && v < 100));
    assert!(
        moving,
        "the progress bar should show steps between 0 and 100: {r}"
    );
    stack.stop();
    Ok(())
}

/// Must show 2: the same with WebRTC made to fail (no UDP candidates) plays over the relay.
#[tokio::test(flavor = "multi_thread")]
async fn browser_falls_back_to_the_relay() -> anyhow::Result<()> {
    let (_dir, stack, _seeder, magnet) = browser_setup("Relay Movie").await?;
    let out = stack::artefacts("relay")?;
    let url = stack.gateway_url();
    let r =
        tokio::task::spawn_blocking(move || stack::browser(&url, &magnet, "relay", &out)).await??;
    assert_eq!(r["transport"], "relay");
    assert!(
        r["fallbackReason"].as_str().is_some_and(|s| !s.is_empty()),
        "{r}"
    );
    assert!(r["currentTime"].as_f64().is_some_and(|t| t > 2.0), "{r}");
    stack.stop();
    Ok(())
}

/// P2P that recovers (issue 16): the node's streamer dies mid-play and comes back; the
/// player carries on over the relay, re-offers, and returns to P2P, the video never stalling.
#[tokio::test(flavor = "multi_thread")]
async fn browser_recovers_p2p_after_losing_it() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let torrent = dir.path().join("src").join("Recovery Movie");
    std::fs::create_dir_all(&torrent)?;
    generate(&torrent.join("clip.mp4"), 60, Codec::H264Aac)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&torrent).await?;
    let mut stack = stack::start(&dir.path().join("stack"), 1, |_| {})?;
    let out = stack::artefacts("recover")?;
    let _ = std::fs::remove_file(out.join("p2p-playing"));
    let (url, magnet, browser_out) = (stack.gateway_url(), seeded.magnet.clone(), out.clone());
    let browser = tokio::task::spawn_blocking(move || {
        stack::browser_with(
            &url,
            &magnet,
            "recover",
            &browser_out,
            &[("TIMEOUT_MS", "150000")],
        )
    });
    let playing = eventually(Duration::from_secs(120), "the player on P2P", || async {
        out.join("p2p-playing").exists().then_some(())
    })
    .await;
    if playing.is_ok() {
        // The streamer's peer connections die with it; the relay needs it back.
        stack.kill9("node-1-streamer")?;
        stack.restart("node-1-streamer")?;
    }
    let r = browser.await??;
    eprintln!(
        "switches {}; longest stall {} ms; {} bytes over the relay while P2P was lost, {} over P2P after",
        r["switches"], r["maxStallMs"], r["bytesRelayWhileLost"], r["bytesP2pAfterBack"]
    );
    stack.stop();
    Ok(())
}

/// Must show 5: a torrent named `<img src=x onerror=alert(1)>` shows as text; no script runs.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_torrent_names_show_as_text() -> anyhow::Result<()> {
    let (_dir, stack, _seeder, magnet) = browser_setup("<img src=x onerror=alert(1)>").await?;
    let out = stack::artefacts("xss")?;
    let url = stack.gateway_url();
    let r =
        tokio::task::spawn_blocking(move || stack::browser(&url, &magnet, "xss", &out)).await??;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["dialogs"], json!([]), "{r}");
    stack.stop();
    Ok(())
}

/// An admin adds a user with the UI's form (registration is closed in the chart).
#[tokio::test(flavor = "multi_thread")]
async fn browser_admin_adds_a_user() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let stack = stack::start(dir.path(), 1, |s| {
        s.gateway.auth.enabled = true;
        s.gateway.auth.allow_register = false;
        s.gateway.auth.admin_password = Some("correct horse battery".into());
    })?;
    let out = stack::artefacts("admin")?;
    let result = tokio::task::spawn_blocking({
        let url = stack.gateway_url();
        move || {
            stack::browser_as(
                &url,
                "",
                "admin",
                &out,
                Some(("admin", "correct horse battery")),
            )
        }
    })
    .await??;
    assert_eq!(result["addedUser"], true, "{result}");
    stack.stop();
    Ok(())
}
