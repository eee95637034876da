//! Accounts on: register, login, submit, logout; without a session or token the API, the
//! WebSocket, the events and the relay answer 401; a banned user cannot submit; the admin
//! lists and bans. Users and sessions live in NATS KV, so a second gateway replica knows them.

use std::time::Duration;

use magnet_tests::nats::NatsServer;
use magnet_tests::services::{InProcess, offline_node};
use magnet_tests::{eventually, init_logging, json_of};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NODE: &str = "worker-auth";
const ADMIN_PASSWORD: &str = "correct horse battery";
const API_TOKEN: &str = "api-token-0123456789abcdef";
const MAGNET: &str = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=x";

#[tokio::test(flavor = "multi_thread")]
async fn accounts_guard_the_api_websocket_and_relay() -> anyhow::Result<()> {
    init_logging();
    let nats = NatsServer::start()?;
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.gateway.listen = ([127, 0, 0, 1], 0).into();
    settings.gateway.admin_listen = ([127, 0, 0, 1], 0).into();
    settings.gateway.auth.enabled = true;
    settings.gateway.auth.admin_username = "root".into();
    settings.gateway.auth.admin_password = Some(ADMIN_PASSWORD.into());
    settings.gateway.auth.api_token = Some(API_TOKEN.into());
    let node = InProcess::start(settings.clone()).await?;
    let shutdown = CancellationToken::new();
    let gateway = magnet_gateway::start(settings.clone(), shutdown.clone()).await?;
    let base = format!("http://{}", gateway.addr);
    let anon = reqwest::Client::new();

    // Nobody logged in: 401 everywhere but the login routes, the UI and the original's public
    // reads (status, nodes, tasks; `original_client.rs` has those).
    for path in [
        "/api/events",
        "/api/webrtc/ice-servers",
        "/api/admin/users",
        "/video/task_1/index.m3u8",
        "/api/auth/me",
    ] {
        let (status, body) = json_of(anon.get(format!("{base}{path}")).send().await?).await?;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["success"], false, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, _) = json_of(
        anon.post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "magnet_url": MAGNET }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 401);
    let ws = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws/clients?client_id=client-1-abcdefghi",
        gateway.addr
    ))
    .await;
    match ws {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("WebSocket without a session: {other:?}"),
    }
    let page = anon.get(format!("{base}/")).send().await?;
    assert_ne!(
        page.status(),
        401,
        "the UI itself is public (it shows the login form)"
    );

    // Register: 201 with the original's User; the same name again is refused.
    let (status, body) = json_of(
        anon.post(format!("{base}/api/auth/register"))
            .json(&json!({ "username": "Alice", "password": "secret1" }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["username"], "Alice");
    assert_eq!(body["data"]["role"], "user");
    assert_eq!(body["data"]["is_banned"], false);
    assert!(
        body["data"]["password_hash"].is_null(),
        "no hash in answers"
    );
    let alice_id = body["data"]["id"].as_str().unwrap_or_default().to_owned();
    for (creds, want) in [
        (json!({ "username": "alice", "password": "other12" }), 409),
        (json!({ "username": "al", "password": "secret1" }), 400),
        (json!({ "username": "bob", "password": "123" }), 400),
        (json!({ "username": "  a  ", "password": "secret1" }), 400),
        (
            json!({ "username": "bad\u{7}name", "password": "secret1" }),
            400,
        ),
        // Any name of 3+ characters, as the original takes them (they used to be invalid
        // KV keys: 503).
        (json!({ "username": "...", "password": "secret1" }), 201),
        (json!({ "username": "a..b", "password": "secret1" }), 201),
        (
            json!({ "username": "Zoë Ünal", "password": "secret1" }),
            201,
        ),
        (json!({ "username": "张小明", "password": "secret1" }), 201),
        (
            json!({ "username": "zoë ünal", "password": "secret1" }),
            409,
        ),
        // The pseudo users' ids, and names that would pass for another in the admin table.
        (json!({ "username": "API", "password": "secret1" }), 409),
        (json!({ "username": "local", "password": "secret1" }), 409),
        (
            json!({ "username": "ro\u{200B}ot", "password": "secret1" }),
            400,
        ),
    ] {
        let (status, body) = json_of(
            anon.post(format!("{base}/api/auth/register"))
                .json(&creds)
                .send()
                .await?,
        )
        .await?;
        assert_eq!(status, want, "{creds}: {body}");
        assert_eq!(body["success"], want == 201, "{body}");
    }
    let (status, body) = json_of(
        anon.post(format!("{base}/api/auth/login"))
            .json(&json!({ "username": " ZOË ÜNAL ", "password": "secret1" }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(
        status, 200,
        "names compare trimmed and case-insensitively: {body}"
    );

    // Login: wrong password refused; right one sets an HttpOnly, SameSite=Lax cookie.
    let (status, _) = json_of(
        anon.post(format!("{base}/api/auth/login"))
            .json(&json!({ "username": "alice", "password": "wrong12" }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 401);
    let alice = reqwest::Client::builder().cookie_store(true).build()?;
    let r = alice
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "username": "alice", "password": "secret1" }))
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = json_of(r).await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    let (status, me) = json_of(alice.get(format!("{base}/api/auth/me")).send().await?).await?;
    assert_eq!(
        (status.as_u16(), &me["data"]["username"]),
        (200, &json!("Alice"))
    );
    assert_eq!(me["auth_enabled"], true);

    // Logged in: the API answers, and a submit goes through.
    eventually(Duration::from_secs(10), "node listed", || async {
        let (_, b) = json_of(alice.get(format!("{base}/api/nodes")).send().await.ok()?)
            .await
            .ok()?;
        b["data"].as_array().filter(|a| !a.is_empty()).map(|_| ())
    })
    .await?;
    let (status, body) = json_of(
        alice
            .post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "worker_id": NODE, "magnet_url": MAGNET }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let task_id = body["data"]["id"].as_str().unwrap_or_default().to_owned();
    // The bearer token from the login works as well (API clients), and the static API token.
    for t in [token.as_str(), API_TOKEN] {
        let (status, body) = json_of(
            anon.get(format!("{base}/api/tasks/{task_id}"))
                .bearer_auth(t)
                .send()
                .await?,
        )
        .await?;
        assert_eq!(status, 200, "{body}");
    }
    // A user is not an admin.
    let (status, _) = json_of(alice.get(format!("{base}/api/admin/users")).send().await?).await?;
    assert_eq!(status, 403);

    // The admin from configuration lists users and bans Alice; she can no longer submit.
    let admin = reqwest::Client::builder().cookie_store(true).build()?;
    let (status, body) = json_of(
        admin
            .post(format!("{base}/api/auth/login"))
            .json(&json!({ "username": "root", "password": ADMIN_PASSWORD }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(
        (status.as_u16(), &body["data"]["role"]),
        (200, &json!("admin"))
    );
    let (_, users) = json_of(admin.get(format!("{base}/api/admin/users")).send().await?).await?;
    let names: Vec<&str> = users["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|u| u["username"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        ["root", "Alice", "...", "a..b", "Zoë Ünal", "张小明"],
        "{users}"
    );
    // Admins add users (how accounts are made where registration is closed); users cannot.
    let bob = json!({ "username": "Bob Smith", "password": "secret1" });
    let (status, body) = json_of(
        admin
            .post(format!("{base}/api/admin/users"))
            .json(&bob)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["role"], "user");
    let (status, _) = json_of(
        alice
            .post(format!("{base}/api/admin/users"))
            .json(&json!({ "username": "Mallory", "password": "secret1", "admin": true }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 403);
    let (status, _) = json_of(
        anon.post(format!("{base}/api/auth/login"))
            .json(&bob)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "the added user logs in");
    let (status, body) = json_of(
        admin
            .patch(format!("{base}/api/admin/users/{alice_id}/ban"))
            .json(&json!({ "banned": true }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["is_banned"], true);
    let (status, body) = json_of(
        alice
            .post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "magnet_url": MAGNET }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("banned")));
    let (status, _) = json_of(
        alice
            .delete(format!("{base}/api/tasks/{task_id}"))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 403, "a banned user cannot delete either");
    // Nor play or signal: a ban ends everything the session could do.
    for path in ["/api/events", "/video/task_1/index.m3u8", "/api/tasks/task_1"] {
        let (status, body) = json_of(alice.get(format!("{base}{path}")).send().await?).await?;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // The public reads answer a banned user as a stranger: no magnet, not theirs.
    let (status, body) = json_of(alice.get(format!("{base}/api/tasks")).send().await?).await?;
    assert_eq!(status, 200, "{body}");
    let listed = &body["data"]["tasks"][0];
    assert_eq!((listed["magnet_url"].clone(), listed["mine"].clone()), (json!(""), json!(false)));
    let banned_ws = tokio_tungstenite::connect_async(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/ws/clients?client_id=x",
            gateway.addr
        ))
        .map(|mut r| {
            if let Ok(v) = format!("Bearer {token}").parse() {
                r.headers_mut().insert("authorization", v);
            }
            r
        })?,
    )
    .await;
    assert!(banned_ws.is_err(), "a banned user's WebSocket is refused");
    let (status, _) = json_of(
        admin
            .patch(format!("{base}/api/admin/users/nobody/ban"))
            .json(&json!({ "banned": true }))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 404);

    // A second gateway replica shares users and sessions (NATS KV): Alice's token works there.
    let mut second = settings.clone();
    second.gateway.auth.admin_password = None;
    let gateway2 = magnet_gateway::start(second, shutdown.clone()).await?;
    let (status, me2) = json_of(
        anon.get(format!("http://{}/api/auth/me", gateway2.addr))
            .bearer_auth(&token)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(me2["data"]["is_banned"], true);

    // Logout ends the session everywhere.
    let (status, _) = json_of(alice.post(format!("{base}/api/auth/logout")).send().await?).await?;
    assert_eq!(status, 200);
    let (status, _) = json_of(alice.get(format!("{base}/api/auth/me")).send().await?).await?;
    assert_eq!(status, 401);
    let (status, _) = json_of(
        anon.get(format!("{base}/api/admin/users"))
            .bearer_auth(&token)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 401);

    // Behind a TLS proxy the cookie is Secure.
    let r = anon
        .post(format!("{base}/api/auth/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "username": "root", "password": ADMIN_PASSWORD }))
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(cookie.contains("Secure"), "{cookie}");

    shutdown.cancel();
    gateway.wait().await?;
    gateway2.wait().await?;
    node.stop().await?;
    Ok(())
}
