//! Choosing what to play (issue 15) on a whole node: a season pack of five episodes lists its
//! videos once its metadata is in; playing episode 3 fetches only episode 3 (and the pieces it
//! shares with its neighbours), transcodes it into its own folder and plays through the relay;
//! switching to episode 4 fetches and plays episode 4, and episode 3 stays.

use std::time::Duration;

use magnet_proto::v1 as pb;
use magnet_tests::nats::NatsServer;
use magnet_tests::seeder::{Seeded, Seeder};
use magnet_tests::services::{InProcess, Served, TaskClient, offline_node, submit};
use magnet_tests::video::{Codec, assert_vod, generate};
use magnet_tests::{eventually, init_logging, json_of, stack, submit_magnet, task_of};
use serde_json::{Value, json};

const NODE: &str = "node-e";
const PIECE: u64 = 64 * 1024;
const TOKEN: &str = "a-shared-service-token-0123";

/// The task's video whose path ends with `name`.
fn video<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["videos"]
        .as_array()
        .and_then(|v| {
            v.iter()
                .find(|v| v["path"].as_str().is_some_and(|p| p.ends_with(name)))
        })
        .unwrap_or(&Value::Null)
}

fn bytes(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

async fn play(http: &reqwest::Client, base: &str, id: &str, index: u64) -> anyhow::Result<Value> {
    let (status, b) = json_of(
        http.post(format!("{base}/api/tasks/{id}/play"))
            .json(&json!({ "file": index }))
            .send()
            .await?,
    )
    .await?;
    anyhow::ensure!(status == 200, "play {index}: {status} {b}");
    Ok(b["data"].clone())
}

/// Waits until episode `name` is made and whole on the node.
async fn made(http: &reqwest::Client, base: &str, id: &str, name: &str) -> anyhow::Result<Value> {
    eventually(Duration::from_secs(90), name, || async {
        let t = task_of(http, base, id).await.ok()?;
        let v = video(&t, name);
        (v["state"] == "ready" && bytes(v, "downloaded") == bytes(v, "size")).then(|| v.clone())
    })
    .await
}

/// A season pack in `dir/Show`: five episodes, the first the largest, and episode 3's
/// subtitles.
fn season_pack(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let show = dir.join("Show");
    std::fs::create_dir_all(&show)?;
    for (n, seconds) in [(1, 16), (2, 5), (3, 5), (4, 5), (5, 5)] {
        generate(
            &show.join(format!("Show.S01E0{n}.mp4")),
            seconds,
            Codec::H264Aac,
        )?;
    }
    std::fs::write(
        show.join("Show.S01E03.en.srt"),
        "1\n00:00:00,500 --> 00:00:02,000\nEpisode three\n",
    )?;
    Ok(show)
}

/// A NATS server for a node, and the season pack (its folder) seeded slowly, so that the
/// default video (episode 1, the largest) gets little before a choice.
async fn slow_season_pack() -> anyhow::Result<(NatsServer, tempfile::TempDir, Seeder, Seeded)> {
    let nats = NatsServer::start()?;
    let src = tempfile::tempdir()?;
    let show = season_pack(src.path())?;
    let seeder = Seeder::with_upload_limit(Some(32 * 1024)).await?;
    let seeded = seeder.seed_pieces(&show, u32::try_from(PIECE)?).await?;
    Ok((nats, src, seeder, seeded))
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_the_chosen_episode_and_the_next_over_p2p() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let show = season_pack(&dir.path().join("src"))?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed_pieces(&show, u32::try_from(PIECE)?).await?;
    let stack = stack::start(&dir.path().join("stack"), 1, |_| {})?;
    let out = stack::artefacts("episodes")?;
    let url = stack.gateway_url();
    let magnet = seeded.magnet.clone();
    let r = tokio::task::spawn_blocking(move || {
        stack::browser_with(
            &url,
            &magnet,
            "episodes",
            &out,
            &[("EPISODE", "S01E03"), ("TIMEOUT_MS", "90000")],
        )
    })
    .await?;
    if r.is_err() {
        let (_, l) =
            json_of(reqwest::get(format!("{}/api/tasks", stack.gateway_url())).await?).await?;
        eprintln!("the tasks when the browser run failed: {l}");
    }
    let r = r?;
    let played: Vec<&str> = r["episodesPlayed"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        played.len() == 2 && played[0].contains("S01E03") && played[1].contains("S01E04"),
        "{r}"
    );
    let id = r["taskId"].as_str().unwrap_or_default().to_owned();
    let http = reqwest::Client::new();
    let t = task_of(&http, &stack.gateway_url(), &id).await?;
    for other in ["S01E02.mp4", "S01E05.mp4"] {
        let got = bytes(video(&t, other), "downloaded");
        assert!(
            got <= 2 * PIECE,
            "{other}: {got} bytes fetched for an episode nobody chose"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_season_pack_plays_the_chosen_episode_only_and_switches() -> anyhow::Result<()> {
    init_logging();
    let (nats, _src, seeder, seeded) = slow_season_pack().await?;
    let data = tempfile::tempdir()?;
    let served = Served::start(offline_node(data.path(), nats.url(), NODE)).await?;
    let (base, http) = (served.base.clone(), reqwest::Client::new());
    let id = submit_magnet(&http, &base, &seeded.magnet).await?;

    // The metadata lists five videos with their sizes; the largest is the one played.
    let listed = eventually(Duration::from_secs(30), "videos listed", || async {
        task_of(&http, &base, &id)
            .await
            .ok()
            .filter(|t| t["videos"].as_array().is_some_and(|v| v.len() == 5))
    })
    .await?;
    assert_eq!(video(&listed, "S01E01.mp4")["current"], true, "{listed}");
    assert!(bytes(video(&listed, "S01E03.mp4"), "size") > 0, "{listed}");
    let file_sizes = listed["file_sizes"].as_array().map_or(0, Vec::len);
    assert_eq!(file_sizes, 6, "sizes beside the paths: {listed}");

    // Play episode 3: its own folder, and only it comes. The seeder holds back meanwhile, so
    // what the default got before the choice stays small whatever the machine's load.
    seeder.set_paused(&seeded, true).await?;
    let e3 = bytes(video(&listed, "S01E03.mp4"), "index");
    let chosen = play(&http, &base, &id, e3).await?;
    seeder.set_paused(&seeded, false).await?;
    assert_eq!(video(&chosen, "S01E03.mp4")["current"], true, "{chosen}");
    assert_eq!(
        video(&chosen, "S01E03.mp4")["playlist"],
        format!("v{e3}"),
        "{chosen}"
    );
    seeder.set_upload_limit(None);
    let third = made(&http, &base, &id, "S01E03.mp4").await?;
    let t = task_of(&http, &base, &id).await?;
    assert_eq!(
        t["status"], "ready",
        "the task follows the episode played: {t}"
    );
    assert!(
        t["m3u8_path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("/v{e3}/index.m3u8"))),
        "{t}"
    );
    for other in ["S01E02.mp4", "S01E04.mp4", "S01E05.mp4"] {
        let got = bytes(video(&t, other), "downloaded");
        assert!(
            got <= 2 * PIECE,
            "{other}: {got} bytes fetched for an episode nobody chose"
        );
    }
    let first = video(&t, "S01E01.mp4");
    assert!(
        bytes(first, "downloaded") < bytes(first, "size"),
        "the default kept downloading: {first}"
    );
    let folder = data.path().join("m3u8").join(&id).join(format!("v{e3}"));
    assert_vod(&folder, 5.0, 1.0)?;
    let master = std::fs::read_to_string(folder.join("master.m3u8"))?;
    assert!(
        master.contains("LANGUAGE=\"en\""),
        "episode 3's own subtitle: {master}"
    );
    let relay = http
        .get(format!("{base}/video/{id}/v{e3}/index.m3u8"))
        .send()
        .await?;
    assert_eq!(relay.status(), 200);
    assert_eq!(third["state"], "ready");

    // Switch to episode 4: it comes and plays; episode 3 stays.
    let e4 = bytes(video(&t, "S01E04.mp4"), "index");
    play(&http, &base, &id, e4).await?;
    made(&http, &base, &id, "S01E04.mp4").await?;
    assert_vod(
        &data.path().join("m3u8").join(&id).join(format!("v{e4}")),
        5.0,
        1.0,
    )?;
    let after = task_of(&http, &base, &id).await?;
    assert_eq!(video(&after, "S01E03.mp4")["state"], "ready", "{after}");
    assert_eq!(video(&after, "S01E04.mp4")["current"], true, "{after}");
    for other in ["S01E02.mp4", "S01E05.mp4"] {
        let got = bytes(video(&after, other), "downloaded");
        assert!(
            got <= 2 * PIECE,
            "{other}: {got} bytes fetched for an episode nobody chose"
        );
    }
    let relay = http
        .get(format!("{base}/video/{id}/v{e4}/master.m3u8"))
        .send()
        .await?;
    assert_eq!(relay.status(), 200);

    // Not a video, or out of range: a clear 400.
    let srt = after["files"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .position(|p| p.as_str().is_some_and(|p| p.ends_with(".srt")))
        })
        .unwrap_or(0);
    for bad in [srt as u64, 9999] {
        let (status, e) = json_of(
            http.post(format!("{base}/api/tasks/{id}/play"))
                .json(&json!({ "file": bad }))
                .send()
                .await?,
        )
        .await?;
        assert_eq!(status, 400, "{e}");
    }
    served.stop().await?;
    Ok(())
}

/// The task as the node has it, once `wanted` says so.
async fn node_task(
    client: &TaskClient,
    id: &str,
    what: &str,
    wanted: impl Fn(&pb::Task) -> bool,
) -> anyhow::Result<pb::Task> {
    let wanted = &wanted;
    eventually(Duration::from_secs(60), what, || {
        let mut client = client.clone();
        async move {
            let t = client
                .get(pb::GetRequest {
                    task_id: id.into(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            wanted(&t).then_some(t)
        }
    })
    .await
}

fn node_video<'a>(t: &'a pb::Task, name: &str) -> Option<&'a pb::TaskVideo> {
    t.videos.iter().find(|v| v.path.ends_with(name))
}

/// Found by CI: a transcoder slow to take the default video's job probed that video after
/// another episode was chosen, and its read, left open on the node's stream endpoint, made
/// the torrent fetch all of the video nobody played. A choice now ends the open streams of
/// the files it no longer wants, and those files no longer open.
#[tokio::test(flavor = "multi_thread")]
async fn a_choice_ends_the_open_reads_of_the_video_before() -> anyhow::Result<()> {
    init_logging();
    let (nats, _src, seeder, seeded) = slow_season_pack().await?;
    let data = tempfile::tempdir()?;
    let mut settings = offline_node(data.path(), nats.url(), NODE);
    settings.internal.token = Some(TOKEN.into());
    let node = InProcess::start(settings).await?;
    let mut client = node.client().await?;
    let id = submit(&mut client, &seeded.magnet).await?.id;
    let listed = node_task(&client, &id, "videos listed", |t| t.videos.len() == 5).await?;
    let (Some(first), Some(third)) = (
        node_video(&listed, "S01E01.mp4").cloned(),
        node_video(&listed, "S01E03.mp4").cloned(),
    ) else {
        anyhow::bail!("episodes 1 and 3 listed: {listed:?}");
    };
    assert!(first.current, "{listed:?}");

    // A reader of the default video (what a transcoder's probe is), reading while it comes.
    let http = reqwest::Client::new();
    let stream = |index: u32| {
        http.get(format!("http://{}/stream/{id}/{index}", node.stream_addr))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
    };
    let reading = stream(first.index).await?;
    assert_eq!(reading.status(), 200);
    let reader = tokio::spawn(async move {
        let mut body = reading.bytes_stream();
        let mut got = 0;
        while let Some(Ok(chunk)) = futures::StreamExt::next(&mut body).await {
            got += chunk.len() as u64;
        }
        got
    });

    // Episode 3 is chosen and the seeder goes full speed: the read of episode 1 ends short,
    // episode 1 does not open again, and only episode 3 comes.
    client
        .play(pb::PlayRequest {
            task_id: id.clone(),
            file_index: third.index,
        })
        .await?;
    seeder.set_upload_limit(None);
    let read = tokio::time::timeout(Duration::from_secs(30), reader).await??;
    assert!(
        read < first.size,
        "the read of the video before went on: {read} of {} bytes",
        first.size
    );
    assert_eq!(stream(first.index).await?.status(), 404);
    assert_eq!(stream(third.index).await?.status(), 200);
    let done = node_task(&client, &id, "episode 3 downloaded", |t| {
        node_video(t, "S01E03.mp4").is_some_and(|v| v.downloaded == v.size)
    })
    .await?;
    let first_now = node_video(&done, "S01E01.mp4").map_or(0, |v| v.downloaded);
    assert!(
        first_now < first.size,
        "episode 1 was fetched whole though nobody plays it: {first_now} bytes"
    );
    node.stop().await?;
    Ok(())
}
