//! The hostile-input suite: the whole system as processes (NATS with its users, the five
//! services, accounts on) fed bad input of every kind a client controls: magnets, JSON bodies,
//! credentials, WebSocket frames, signaling, relay paths and ranges, event streams, task ids,
//! hostile torrents and media. Each case must get a clear error (or a harmless answer); after
//! all of them the stack still answers and plays, no byte of a secret planted beside the data
//! folder appears anywhere, and every service's memory stays under a stated bound.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use magnet_tests::seeder::Seeder;
use magnet_tests::stack;
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging, json_of};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Resident memory every one of our services stays under after the suite (debug builds;
/// measured: gateway 58 MiB, downloader 30, streamer 19, signaling 15, transcoder 14).
const SERVICE_RSS_BOUND_MIB: u64 = 150;
const ADMIN_PASSWORD: &str = "correct horse battery";
const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

/// The cases run and what each answered, for the summary line.
struct Suite {
    base: String,
    http: reqwest::Client,
    token: String,
    marker: String,
    cases: usize,
}

impl Suite {
    /// One case: `req` (sent with the admin's token unless `anonymous`) must answer one of
    /// `want`; an error is JSON `{success: false, error: "<text>"}`; nothing carries the marker.
    async fn case(&mut self, name: &str, req: reqwest::RequestBuilder, want: &[u16]) -> Value {
        self.cases += 1;
        let r = req.send().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        assert!(want.contains(&status), "{name}: {status} {text:.300}");
        assert!(!text.contains(&self.marker), "{name}: the secret leaked");
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 {
            assert_eq!(body["success"], false, "{name}: {text:.300}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{name}: no error text: {text:.300}"
            );
        }
        body
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn submit(&mut self, name: &str, magnet: &str, want: &[u16]) -> Value {
        let req = self
            .post("/api/tasks/submit")
            .json(&json!({ "magnet_url": magnet }));
        self.case(name, req, want).await
    }
}

fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_gets_clear_errors_and_the_stack_stays_up() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    // A secret beside the node's data folder, and a video there a playlist could point at.
    let marker = format!("SECRET-{}", std::process::id());
    std::fs::write(dir.path().join("secret.txt"), &marker)?;
    let secret_video = dir.path().join("secret.ts");
    generate(&secret_video, 2, Codec::H264Aac)?;

    let stack = stack::start(&dir.path().join("stack"), 1, |s| {
        s.gateway.auth.enabled = true;
        s.gateway.auth.admin_password = Some(ADMIN_PASSWORD.into());
        s.gateway.auth.attempts_per_minute_per_ip = 10_000;
        s.gateway.max_active_tasks_per_user = 100;
    })?;
    let base = stack.gateway_url();
    let http = reqwest::Client::new();
    let (_, login) = json_of(
        http.post(format!("{base}/api/auth/login"))
            .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
            .send()
            .await?,
    )
    .await?;
    let token = login["token"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(!token.is_empty(), "admin login: {login}");
    let mut s = Suite {
        base: base.clone(),
        http: http.clone(),
        token,
        marker: marker.clone(),
        cases: 0,
    };
    eventually(Duration::from_secs(15), "node online", || {
        let req = s.get("/api/nodes");
        async move {
            let (_, b) = json_of(req.send().await.ok()?).await.ok()?;
            (!b["data"].as_array()?.is_empty()).then_some(())
        }
    })
    .await?;

    // A real task, ready, for the relay and signaling cases and the final check.
    let src = tempfile::tempdir()?;
    let video = src.path().join("clip.mp4");
    generate(&video, 3, Codec::H264Aac)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&video).await?;
    let body = s.submit("a real magnet", &seeded.magnet, &[200]).await;
    let id = body["data"]["id"].as_str().unwrap_or_default().to_owned();
    eventually(Duration::from_secs(90), "the real task ready", || {
        let req = s.get(&format!("/api/tasks/{id}"));
        async move {
            let (_, b) = json_of(req.send().await.ok()?).await.ok()?;
            (b["data"]["status"] == "ready").then_some(())
        }
    })
    .await?;

    // Magnets.
    let long_dn = format!("magnet:?xt=urn:btih:{HASH}&dn={}", "a".repeat(9000));
    let magnets: Vec<(&str, String)> = vec![
        ("empty magnet", String::new()),
        ("blank magnet", "   ".into()),
        ("scheme only", "magnet:".into()),
        ("no parameters", "magnet:?".into()),
        ("no info hash", "magnet:?dn=film".into()),
        ("empty btih", "magnet:?xt=urn:btih:".into()),
        ("39 hex", format!("magnet:?xt=urn:btih:{}", &HASH[..39])),
        (
            "non-hex 40",
            format!("magnet:?xt=urn:btih:{}", "z".repeat(40)),
        ),
        (
            "bad base32",
            format!("magnet:?xt=urn:btih:{}", "1".repeat(32)),
        ),
        ("unknown urn", format!("magnet:?xt=urn:sha1:{HASH}")),
        ("http URL", "http://example.org/file.torrent".into()),
        ("javascript URL", "javascript:alert(1)".into()),
        (
            "two hashes",
            format!("magnet:?xt=urn:btih:{HASH}&xt=urn:btih:{}", "1".repeat(40)),
        ),
        (
            "file tracker",
            format!("magnet:?xt=urn:btih:{HASH}&tr=file%3A%2F%2F%2Fetc%2Fpasswd"),
        ),
        (
            "javascript tracker",
            format!("magnet:?xt=urn:btih:{HASH}&tr=javascript%3Aalert(1)"),
        ),
        (
            "peer without port",
            format!("magnet:?xt=urn:btih:{HASH}&x.pe=127.0.0.1"),
        ),
        (
            "peer port too big",
            format!("magnet:?xt=urn:btih:{HASH}&x.pe=127.0.0.1%3A99999"),
        ),
        (
            "v2 only",
            format!("magnet:?xt=urn:btmh:1220{}", "ab".repeat(32)),
        ),
        ("oversized magnet", long_dn),
        ("NUL in magnet", format!("magnet:?xt=urn:btih:{HASH}\u{0}")),
    ];
    for (name, m) in &magnets {
        s.submit(name, m, &[400, 413]).await;
    }

    // JSON bodies.
    let raw = |s: &Suite, body: &str, ctype: &str| {
        s.post("/api/tasks/submit")
            .header("content-type", ctype)
            .body(body.to_owned())
    };
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    for (name, body, ctype, want) in [
        ("not JSON", "magnet please", "application/json", &[400][..]),
        (
            "truncated JSON",
            "{\"magnet_url\": ",
            "application/json",
            &[400],
        ),
        (
            "wrong type",
            "{\"magnet_url\": 5}",
            "application/json",
            &[400, 422],
        ),
        (
            "missing field",
            "{\"worker_id\": \"node-1\"}",
            "application/json",
            &[400, 422],
        ),
        (
            "array body",
            "[\"magnet:?xt=urn:btih:x\"]",
            "application/json",
            &[400, 422],
        ),
        ("null body", "null", "application/json", &[400, 422]),
        (
            "deeply nested",
            deep.as_str(),
            "application/json",
            &[400, 422],
        ),
        (
            "form body",
            "magnet_url=x",
            "application/x-www-form-urlencoded",
            &[415],
        ),
        (
            "no content type",
            "{\"magnet_url\": \"x\"}",
            "",
            &[400, 415],
        ),
        (
            "invalid UTF-8 escape",
            "{\"magnet_url\": \"\\udc00\"}",
            "application/json",
            &[400, 422],
        ),
    ] {
        let req = raw(&s, body, ctype);
        s.case(name, req, want).await;
    }
    // The submit route's limit is a .torrent file's (gateway.max_torrent_kib), other routes'
    // gateway.max_body_kib.
    let huge = json!({ "magnet_url": "x".repeat(6_000_000) });
    let req = s.post("/api/tasks/submit").json(&huge);
    s.case("body over the limit", req, &[413]).await;
    let long = json!({ "magnet_url": "x".repeat(100_000) });
    let req = s.post("/api/tasks/submit").json(&long);
    s.case("magnet over its limit", req, &[400]).await;
    let req = s.post("/api/admin/users").json(&long);
    s.case("body over the limit elsewhere", req, &[413]).await;
    let req = s.post("/api/tasks/submit").json(
        &json!({ "magnet_url": format!("magnet:?xt=urn:btih:{HASH}"), "worker_id": "node-404" }),
    );
    s.case("unknown node", req, &[404]).await;
    let req = s.post("/api/tasks/submit").json(
        &json!({ "magnet_url": format!("magnet:?xt=urn:btih:{HASH}"), "worker_id": "../../etc" }),
    );
    s.case("node id with a path", req, &[404]).await;

    // Credentials.
    let anon = |path: &str| http.get(format!("{base}{path}"));
    for (name, req, want) in [
        ("no session", anon("/api/tasks/task_1"), &[401][..]),
        (
            "garbage bearer",
            anon("/api/tasks/task_1").bearer_auth("nope"),
            &[401],
        ),
        (
            "huge bearer",
            anon("/api/tasks/task_1").bearer_auth("x".repeat(6000)),
            &[401, 431],
        ),
        (
            "garbage cookie",
            anon("/api/tasks/task_1").header("cookie", "magnet_session=%00%ff"),
            &[401],
        ),
        // A public read with garbage credentials reads as a stranger.
        (
            "public read, garbage bearer",
            anon("/api/tasks").bearer_auth("nope"),
            &[200],
        ),
        (
            "wrong password",
            http.post(format!("{base}/api/auth/login"))
                .json(&json!({ "username": "admin", "password": "wrong-wrong" })),
            &[401],
        ),
        (
            "unknown user",
            http.post(format!("{base}/api/auth/login"))
                .json(&json!({ "username": "nobody-here", "password": "whatever1" })),
            &[401],
        ),
        (
            "login without password",
            http.post(format!("{base}/api/auth/login"))
                .json(&json!({ "username": "admin" })),
            &[400, 422],
        ),
        (
            "register two characters",
            http.post(format!("{base}/api/auth/register"))
                .json(&json!({ "username": "ab", "password": "secret1" })),
            &[400],
        ),
        (
            "register control characters",
            http.post(format!("{base}/api/auth/register"))
                .json(&json!({ "username": "a\u{1b}[31mb", "password": "secret1" })),
            &[400],
        ),
        (
            "register short password",
            http.post(format!("{base}/api/auth/register"))
                .json(&json!({ "username": "mallory", "password": "123" })),
            &[400],
        ),
        (
            "register the admin's name",
            http.post(format!("{base}/api/auth/register"))
                .json(&json!({ "username": "ADMIN", "password": "secret123" })),
            &[409],
        ),
        (
            "cross-site logout",
            http.post(format!("{base}/api/auth/logout"))
                .header("origin", "http://evil.example"),
            &[403],
        ),
    ] {
        s.case(name, req, want).await;
    }

    // Task ids.
    for (name, path, want) in [
        ("id without digits", "/api/tasks/task_", &[400][..]),
        ("id with letters", "/api/tasks/task_1a", &[400]),
        (
            "encoded traversal id",
            "/api/tasks/..%2F..%2Fetc%2Fpasswd",
            &[400, 404],
        ),
        ("unknown id", "/api/tasks/task_1", &[404]),
        (
            "files page far away",
            &format!("/api/tasks/{id}?files_offset=4294967295"),
            &[200],
        ),
        (
            "files page not a number",
            &format!("/api/tasks/{id}?files_offset=-1"),
            &[400],
        ),
    ] {
        let req = s.get(path);
        s.case(name, req, want).await;
    }
    let req = s
        .http
        .delete(format!("{base}/api/tasks/task_99"))
        .bearer_auth(&s.token);
    s.case("delete unknown", req, &[404]).await;

    // Relay paths and ranges.
    let video = format!("/video/{id}");
    for (name, path, range, want) in [
        (
            "relay traversal",
            format!("{video}/..%2F..%2Fsecret.txt"),
            None,
            &[400, 404][..],
        ),
        (
            "relay absolute path",
            format!("{video}/%2Fetc%2Fpasswd"),
            None,
            &[400, 404],
        ),
        (
            "relay database",
            format!("{video}/..%2F..%2Fconfig%2Fworker.db"),
            None,
            &[400, 404],
        ),
        (
            "relay unknown file",
            format!("{video}/index99.ts"),
            None,
            &[404],
        ),
        (
            "relay bad extension",
            format!("{video}/index.sh"),
            None,
            &[400, 404],
        ),
        (
            "relay NUL",
            format!("{video}/index.m3u8%00.ts"),
            None,
            &[400, 404],
        ),
        (
            "relay bad task id",
            "/video/task_x/index.m3u8".into(),
            None,
            &[400],
        ),
        (
            "range not a number",
            format!("{video}/index0.ts"),
            Some("bytes=abc-"),
            &[200],
        ),
        (
            "range reversed",
            format!("{video}/index0.ts"),
            Some("bytes=50-10"),
            &[200, 416],
        ),
        (
            "range overflowing end",
            format!("{video}/index0.ts"),
            Some("bytes=0-18446744073709551615"),
            &[206],
        ),
        (
            "range empty suffix",
            format!("{video}/index0.ts"),
            Some("bytes=-0"),
            &[416],
        ),
        (
            "range past the end",
            format!("{video}/index0.ts"),
            Some("bytes=999999999-"),
            &[416],
        ),
        (
            "many ranges",
            format!("{video}/index0.ts"),
            Some("bytes=0-1,2-3,4-5,6-7"),
            &[200, 206],
        ),
        (
            "range other unit",
            format!("{video}/index0.ts"),
            Some("items=0-5"),
            &[200],
        ),
    ] {
        let mut req = s.get(&path);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        s.case(name, req, want).await;
    }

    // HTTP signaling.
    for (name, path, body, want) in [
        (
            "offer without sdp",
            "/api/webrtc/offer",
            json!({ "session_id": "client-1-aaaaaaaaa", "worker_id": "node-1" }),
            &[400, 422][..],
        ),
        (
            "offer with garbage sdp",
            "/api/webrtc/offer",
            json!({ "sdp": "v=0 garbage", "session_id": "client-1-bbbbbbbbb", "worker_id": "node-1" }),
            &[400, 503],
        ),
        (
            "offer to an unknown node",
            "/api/webrtc/offer",
            json!({ "sdp": "v=0", "session_id": "client-1-ccccccccc", "worker_id": "node-404" }),
            &[404, 503],
        ),
        (
            "offer with a bad session id",
            "/api/webrtc/offer",
            json!({ "sdp": "v=0", "session_id": "../bad id", "worker_id": "node-1" }),
            &[400],
        ),
        (
            "offer with a long session id",
            "/api/webrtc/offer",
            json!({ "sdp": "v=0", "session_id": "x".repeat(60), "worker_id": "node-1" }),
            &[400],
        ),
        (
            "ice for no session",
            "/api/webrtc/ice",
            json!({ "session_id": "client-1-ddddddddd", "candidate": "candidate:x", "is_client": true }),
            &[404],
        ),
        (
            "answer for no session",
            "/api/webrtc/answer",
            json!({ "session_id": "client-1-eeeeeeeee" }),
            &[404],
        ),
    ] {
        let req = s.post(path).json(&body);
        s.case(name, req, want).await;
    }

    // Event streams.
    let req = http.get(format!("{base}/api/events"));
    s.case("events without a session", req, &[401]).await;
    let req = s
        .get("/api/events")
        .header("last-event-id", "99999999999999999999999';--<script>");
    s.cases += 1;
    let r = req.send().await?;
    assert_eq!(
        r.status().as_u16(),
        200,
        "events with a garbage Last-Event-ID"
    );
    drop(r);

    // WebSocket frames: each bad one gets an error frame; the socket stays usable.
    let mut ws_req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/ws/clients?client_id=client-1-hostilews",
            stack.gateway
        ))?;
    ws_req
        .headers_mut()
        .insert("authorization", format!("Bearer {}", s.token).parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_req).await?;
    for (name, frame) in [
        ("ws not JSON", "{not json".to_owned()),
        ("ws no type", "{\"payload\": {}}".to_owned()),
        ("ws unknown type", "{\"type\": \"reboot\", \"payload\": {}}".to_owned()),
        ("ws offer without sdp", "{\"type\": \"webrtc_offer\", \"payload\": {\"session_id\": \"client-1-x\"}}".to_owned()),
        ("ws offer with a bad session", "{\"type\": \"webrtc_offer\", \"payload\": {\"sdp\": \"v=0\", \"session_id\": \"a b\"}}".to_owned()),
        ("ws payload not an object", "{\"type\": \"ice_candidate\", \"payload\": 5}".to_owned()),
    ] {
        s.cases += 1;
        ws.send(Message::Text(frame.into())).await?;
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("{name}: no reply"))?;
        let text = match reply {
            Some(Ok(Message::Text(t))) => t.to_string(),
            other => anyhow::bail!("{name}: {other:?}"),
        };
        let v: Value = serde_json::from_str(&text)?;
        assert_eq!(v["type"], "error", "{name}: {text}");
        assert!(!text.contains(&marker));
    }
    s.cases += 1;
    ws.send(Message::Binary(vec![0u8; 100].into())).await?;
    s.cases += 1;
    ws.send(Message::Text("x".repeat(70_000).into())).await?;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            if matches!(m, Ok(Message::Close(_)) | Err(_)) {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an oversized frame closes the socket");

    // Hostile torrents and media: a playlist named like a video pointing at the secret video.
    let disguised = src.path().join("Disguised");
    std::fs::create_dir_all(&disguised)?;
    std::fs::write(
        disguised.join("sample.mp4"),
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile://{}\n#EXT-X-ENDLIST\n",
            secret_video.display()
        ),
    )?;
    let seeded_bad = seeder.seed(&disguised).await?;
    let body = s
        .submit("a disguised playlist", &seeded_bad.magnet, &[200])
        .await;
    let bad_id = body["data"]["id"].as_str().unwrap_or_default().to_owned();
    let failed = eventually(Duration::from_secs(60), "the disguised task failed", || {
        let req = s.get(&format!("/api/tasks/{bad_id}"));
        async move {
            let (_, b) = json_of(req.send().await.ok()?).await.ok()?;
            (b["data"]["status"] == "error").then_some(b)
        }
    })
    .await?;
    let error = failed["data"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("refused"), "{error}");
    assert!(
        !error.contains(&dir.path().display().to_string()),
        "{error}"
    );
    let req = s.get(&format!("/video/{bad_id}/index.m3u8"));
    s.case("the disguised task serves nothing", req, &[404])
        .await;

    // Afterwards: everything answers, the real task still plays, memory is bounded.
    let req = s.get("/api/status");
    s.case("status afterwards", req, &[200]).await;
    let list = s.case("list afterwards", s.get("/api/tasks"), &[200]).await;
    assert!(!list.to_string().contains(&marker));
    let playlist = s
        .get(&format!("{video}/index.m3u8"))
        .send()
        .await?
        .bytes()
        .await?;
    let on_disk = std::fs::read(
        dir.path()
            .join("stack/node-1/m3u8")
            .join(&id)
            .join("index.m3u8"),
    )?;
    assert_eq!(playlist.as_ref(), on_disk.as_slice());
    for (name, pid) in stack.processes() {
        if name == "nats" {
            continue;
        }
        let rss = rss_mib(pid);
        println!("{name}: {rss} MiB");
        assert!(
            rss < SERVICE_RSS_BOUND_MIB,
            "{name} holds {rss} MiB (bound {SERVICE_RSS_BOUND_MIB} MiB)"
        );
    }
    println!("hostile input: {} cases", s.cases);
    assert!(s.cases >= 60, "only {} cases", s.cases);
    stack.stop();
    Ok(())
}
