//! TURN for viewers and nodes behind NATs (issue 16) with a real coturn on loopback: the
//! gateway hands out short-lived credentials made from the shared secret, the streamer makes
//! its own, and a Chromium player that may use TURN relays only plays over P2P through it;
//! with credentials the TURN server refuses, the player falls back to the gateway's relay and
//! says why.

use std::path::Path;

use magnet_tests::seeder::Seeder;
use magnet_tests::turn::Turn;
use magnet_tests::video::{Codec, generate};
use magnet_tests::{init_logging, json_of, stack};

const SECRET: &str = "turn-test-secret";

/// A short clip seeded slowly enough for the progress bar to show steps; its magnet.
async fn seeded(seeder: &Seeder, dir: &Path, name: &str) -> anyhow::Result<String> {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder)?;
    generate(&folder.join("clip.mp4"), 8, Codec::H264Aac)?;
    Ok(seeder.seed_small_pieces(&folder).await?.magnet)
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
    let out = stack::artefacts("turn")?;
    let (url, magnet) = (base.clone(), first.clone());
    let r = tokio::task::spawn_blocking(move || {
        stack::browser_with(
            &url,
            &magnet,
            "p2p",
            &out,
            &[("PLAYER_PARAMS", "ice_policy=relay")],
        )
    })
    .await??;
    assert_eq!(
        (r["transport"].as_str(), r["candidateType"].as_str()),
        (Some("p2p"), Some("relay")),
        "{r}"
    );

    // A TURN server with another secret refuses the credentials: the relay, with a reason.
    drop(turn);
    let _refusing = Turn::start_on("another-secret", port)?;
    let out = stack::artefacts("turn-refused")?;
    let (url, magnet) = (base.clone(), second.clone());
    let r = tokio::task::spawn_blocking(move || {
        stack::browser_with(
            &url,
            &magnet,
            "p2p",
            &out,
            &[
                ("PLAYER_PARAMS", "ice_policy=relay"),
                ("EXPECT_TRANSPORT", "relay"),
            ],
        )
    })
    .await??;
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
