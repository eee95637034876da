//! TURN for viewers and nodes behind NATs (issue 16) with a real coturn on loopback: the
//! gateway hands out short-lived credentials made from the shared secret, the streamer makes
//! its own, and a Chromium player that may use TURN relays only plays over P2P through it;
//! with credentials the TURN server refuses, the player falls back to the gateway's relay and
//! says why. Cloudflare's TURN (the original's) works as a second source, through a stand-in
//! of its credentials API in front of the same coturn.

use std::path::Path;

use std::time::Duration;

use magnet_runtime::config::{CloudflareTurnSettings, TurnSettings};
use magnet_runtime::turn::TurnServers;
use magnet_tests::seeder::Seeder;
use magnet_tests::turn::{CloudflareApi, Turn};
use magnet_tests::video::{Codec, generate};
use magnet_tests::{init_logging, json_of, stack};

const SECRET: &str = "turn-test-secret";
const CF_KEY: &str = "cf-key-1";
const CF_TOKEN: &str = "cloudflare-api-token";

/// A short clip seeded slowly enough for the progress bar to show steps; its magnet.
async fn seeded(seeder: &Seeder, dir: &Path, name: &str) -> anyhow::Result<String> {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder)?;
    generate(&folder.join("clip.mp4"), 8, Codec::H264Aac)?;
    Ok(seeder.seed_small_pieces(&folder).await?.magnet)
}

/// Chromium with TURN relays only (`ice_policy=relay`) plays `magnet` over the transport it
/// should end on (`expect`); its result. Artefacts under `name`.
async fn play_relay_only(
    base: &str,
    magnet: &str,
    name: &str,
    expect: &'static str,
) -> anyhow::Result<serde_json::Value> {
    let out = stack::artefacts(name)?;
    let (url, magnet) = (base.to_owned(), magnet.to_owned());
    tokio::task::spawn_blocking(move || {
        stack::browser_with(
            &url,
            &magnet,
            "p2p",
            &out,
            &[
                ("PLAYER_PARAMS", "ice_policy=relay"),
                ("EXPECT_TRANSPORT", expect),
            ],
        )
    })
    .await?
}

/// [`play_relay_only`] over P2P, through TURN (its selected local candidate is a relay).
async fn plays_through_turn(base: &str, magnet: &str, name: &str) -> anyhow::Result<()> {
    let r = play_relay_only(base, magnet, name, "p2p").await?;
    assert_eq!(
        (r["transport"].as_str(), r["candidateType"].as_str()),
        (Some("p2p"), Some("relay")),
        "{r}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_through_turn_and_falls_back_when_turn_refuses() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let seeder = Seeder::with_upload_limit(Some(200_000)).await?;
    let first = seeded(&seeder, &dir.path().join("src"), "Turn Movie").await?;
    let second = seeded(&seeder, &dir.path().join("src"), "Refused Movie").await?;
    let turn = Turn::start(SECRET)?;
    let (url_turn, port) = (turn.url(), turn.port);
    let stack = stack::start(&dir.path().join("stack"), 1, |s| {
        s.turn.urls = vec![url_turn];
        s.turn.secret = Some(SECRET.into());
        s.turn.ttl_secs = 600;
    })?;
    let base = stack.gateway_url();

    // The credentials handed out: TURN REST, expiring with the TTL answered.
    let (_, ice) = json_of(reqwest::get(format!("{base}/api/webrtc/ice-servers")).await?).await?;
    assert_eq!(ice["ttl"], 600, "{ice}");
    let username = ice["iceServers"][0]["username"]
        .as_str()
        .unwrap_or_default();
    let expires: u64 = username
        .split(':')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    assert!((now + 590..=now + 610).contains(&expires), "{ice}");
    assert!(
        ice["iceServers"][0]["credential"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{ice}"
    );

    // Through TURN: only relay candidates, and P2P works.
    plays_through_turn(&base, &first, "turn").await?;

    // A TURN server with another secret refuses the credentials: the relay, with a reason.
    drop(turn);
    let _refusing = Turn::start_on("another-secret", port)?;
    let r = play_relay_only(&base, &second, "turn-refused", "relay").await?;
    assert_eq!(r["transport"], "relay", "{r}");
    assert!(
        r["fallbackReason"]
            .as_str()
            .is_some_and(|s| s.contains("P2P failed")),
        "{r}"
    );
    stack.stop();
    Ok(())
}

fn cloudflare(api_url: &str, token: &str) -> CloudflareTurnSettings {
    CloudflareTurnSettings {
        key_id: CF_KEY.into(),
        api_token: Some(token.into()),
        api_token_file: None,
        api_url: api_url.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_through_cloudflare_turn_credentials() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let seeder = Seeder::with_upload_limit(Some(200_000)).await?;
    let magnet = seeded(&seeder, &dir.path().join("src"), "Cloudflare Movie").await?;
    let turn = Turn::start(SECRET)?;
    let api = CloudflareApi::start(CF_KEY, CF_TOKEN, SECRET, &turn).await?;
    let settings = cloudflare(&api.url, CF_TOKEN);
    // Only Cloudflare's TURN: no TURN of our own.
    let stack = stack::start(&dir.path().join("stack"), 1, |s| {
        s.turn.ttl_secs = 600;
        s.turn.cloudflare = Some(settings);
    })?;
    let base = stack.gateway_url();

    let (_, ice) = json_of(reqwest::get(format!("{base}/api/webrtc/ice-servers")).await?).await?;
    assert_eq!(ice["iceServers"][0]["urls"][0], turn.url(), "{ice}");
    assert!(
        ice["ttl"].as_u64().is_some_and(|t| (590..=600).contains(&t)),
        "{ice}"
    );

    plays_through_turn(&base, &magnet, "turn-cloudflare").await?;
    // Minted once by the gateway (then cached for every viewer) and once by the streamer.
    assert_eq!(api.calls(), 2);
    stack.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudflare_credentials_are_cached_kept_through_an_outage_and_dropped_when_expired()
-> anyhow::Result<()> {
    init_logging();
    let turn = Turn::start(SECRET)?;
    let api = CloudflareApi::start(CF_KEY, CF_TOKEN, SECRET, &turn).await?;
    let settings = |token: &str| TurnSettings {
        ttl_secs: 2,
        cloudflare: Some(cloudflare(&api.url, token)),
        ..TurnSettings::default()
    };

    let servers = TurnServers::new(&settings(CF_TOKEN))?;
    let first = servers.for_user("a").await;
    assert_eq!(first.servers.len(), 1);
    assert_eq!(first.servers[0].urls, [turn.url()]);
    assert!(first.servers[0].username.ends_with(":cloudflare"));
    assert_eq!(first.ttl_secs, Some(1), "whole seconds left of 2");
    assert_eq!(servers.for_user("b").await.servers, first.servers);
    assert_eq!(api.calls(), 1, "cached for half their lifetime");

    // The API fails after the half-life: the credentials still valid are kept, and it is not
    // asked again at once.
    api.refuse();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(servers.for_user("c").await.servers, first.servers);
    assert_eq!(servers.for_user("d").await.servers, first.servers);
    assert_eq!(api.calls(), 2);
    // Expired: none left, and no TTL to answer.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let gone = servers.for_user("e").await;
    assert!(gone.servers.is_empty() && gone.ttl_secs.is_none(), "{gone:?}");

    // A wrong token gets nothing, and says so in the log, without failing the answer.
    let wrong = TurnServers::new(&settings("not-the-token"))?;
    assert!(wrong.for_user("f").await.servers.is_empty());
    Ok(())
}
