//! The container images, run as the chart's pods run them (issue 19): each binary starts as
//! uid 10001 on a read-only root with the chart's rendered configuration, every shared
//! library is found, and the transcoder's ffmpeg has the codecs we use. `cargo xtask test`
//! builds the images (see `magnet_tests::images`); without them these tests say why and pass.
//! And the whole system runs from them: nats-server and the five images as containers on
//! the host's loopback, a seeded magnet to `ready`, played through the gateway's relay.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use magnet_tests::images::{Images, SERVICES};
use magnet_tests::seeder::Seeder;
use magnet_tests::video::{Codec, duration, generate};
use magnet_tests::{init_logging, stack, submit_magnet, task_reaches};

fn images() -> Option<Images> {
    match Images::from_env() {
        Ok(images) => Some(images),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

#[test]
fn each_image_starts_as_its_pod_with_the_charts_config() -> anyhow::Result<()> {
    let Some(images) = images() else {
        return Ok(());
    };
    for service in SERVICES {
        let pod = images.pod(service)?;
        assert_eq!(pod.user, "10001:10001", "{service}");
        assert!(
            pod.read_only_root,
            "{service}: the chart's root is read-only"
        );
        assert!(
            pod.env
                .get("MAGNET_CONFIG")
                .is_some_and(|c| c.starts_with("/etc/magnetm3u8/")),
            "{service}: {:?}",
            pod.env
        );
        let ctr = images.container(service)?;
        let binary = format!("/usr/local/bin/magnet-{service}");

        let checked = ctr.run(&pod, &binary, &["--check-config"])?;
        assert!(checked.contains("configuration ok"), "{service}: {checked}");
        assert_eq!(ctr.run(&pod, "id", &["-u"])?.trim(), "10001", "{service}");
        // Even root could not write to it.
        let as_root = magnet_tests::images::Pod {
            user: "0:0".into(),
            ..pod.clone()
        };
        let write = ctr.run(&as_root, "touch", &["/usr/local/bin/x"]);
        assert!(
            write
                .as_ref()
                .is_err_and(|e| e.to_string().contains("Read-only file system")),
            "{service}: the root must be read-only: {write:?}"
        );
        // Where the pod writes: /tmp (and the node's volume, below).
        ctr.run(&pod, "touch", &["/tmp/x"])?;

        let mut programs = vec![binary.clone()];
        if service == "transcoder" {
            programs.extend(["/usr/bin/ffmpeg".to_owned(), "/usr/bin/ffprobe".to_owned()]);
        }
        for program in &programs {
            let libs = ctr.run(&pod, "ldd", &[program])?;
            assert!(
                !libs.contains("not found"),
                "{service}: {program} misses libraries: {libs}"
            );
        }
        // No compiler, no package manager's caches, only the transcoder has ffmpeg.
        for absent in ["usr/bin/cc", "usr/bin/rustc", "usr/local/cargo"] {
            assert!(!ctr.root().join(absent).exists(), "{service}: {absent}");
        }
        assert_eq!(
            ctr.root().join("usr/bin/ffmpeg").exists(),
            service == "transcoder",
            "{service}"
        );
        for (cache, what) in [
            ("var/lib/apt/lists", "apt lists"),
            ("var/cache/apt", "apt caches"),
        ] {
            let left: Vec<_> = std::fs::read_dir(ctr.root().join(cache))
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().is_file())
                        .map(|e| e.file_name())
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                left.is_empty(),
                "{service}: {what} left in the image: {left:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn the_transcoders_image_makes_h264_aac_hls_and_webvtt() -> anyhow::Result<()> {
    let Some(images) = images() else {
        return Ok(());
    };
    let mut pod = images.pod("transcoder")?;
    let data = tempfile::tempdir()?;
    pod.volume("/data", data.path())?;
    std::fs::write(
        data.path().join("in.srt"),
        "1\n00:00:00,500 --> 00:00:01,500\nHello\n",
    )?;
    let ctr = images.container("transcoder")?;
    let ffmpeg = |args: &[&str]| {
        let mut all = vec!["-hide_banner", "-v", "error", "-y"];
        all.extend_from_slice(args);
        ctr.run(&pod, "ffmpeg", &all)
    };
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=duration=2:size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-c:a",
        "aac",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
        "/data/index.m3u8",
    ])?;
    ffmpeg(&["-i", "/data/in.srt", "-c:s", "webvtt", "/data/sub.vtt"])?;

    let streams = ctr.run(
        &pod,
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            "/data/index.m3u8",
        ],
    )?;
    let codecs: Vec<&str> = streams.lines().map(str::trim).collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{streams}"
    );
    let vtt = std::fs::read_to_string(data.path().join("sub.vtt"))?;
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("Hello"), "{vtt}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_system_runs_from_its_images() -> anyhow::Result<()> {
    let Some(images) = images() else {
        return Ok(());
    };
    init_logging();
    let src = tempfile::tempdir()?;
    let movie = src.path().join("movie.mp4");
    generate(&movie, 6, Codec::H264Aac)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&movie).await?;

    let dir = tempfile::tempdir()?;
    // Dropped after the stack: the containers outlive their processes.
    let (wrap, _containers) = images.wrap();
    let stack = stack::start_shaped(dir.path(), 1, |_| {}, |o| o.wrap = Some(wrap))?;
    let (http, base) = (reqwest::Client::new(), stack.gateway_url());
    let id = submit_magnet(&http, &base, &seeded.magnet).await?;
    let task = task_reaches(&http, &base, &id, "ready", Duration::from_secs(120)).await?;

    // The node's volume holds what the containers wrote, as the pods' user.
    let hls = dir.path().join("node-1/m3u8").join(&id);
    let owner = std::fs::metadata(hls.join("index.m3u8"))?.uid();
    assert_eq!(owner, 10001, "{task}");
    // Played through the gateway's relay: ffprobe reads the playlist and its segments.
    let url = format!("{base}/video/{id}/index.m3u8");
    let seconds = duration(Path::new(&url))?;
    assert!((seconds - 6.0).abs() < 1.0, "{seconds} s through the relay");
    let played = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", &url, "-f", "null", "-"])
        .output()?;
    assert!(
        played.status.success() && played.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&played.stderr)
    );
    let killed = stack.stop();
    assert!(killed.is_empty(), "did not stop on SIGTERM: {killed:?}");
    Ok(())
}
