//! `demo-seed <dir>`: what `cargo xtask demo` seeds. Makes a sample video with English
//! subtitles under `<dir>/magnetm3u8 demo/` (once; kept for later runs), seeds it from a
//! librqbit session on loopback (no DHT, trackers or discovery), prints one line
//! `magnet: <uri>` (the uri names the seeder in `x.pe`), and seeds until SIGTERM/Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use magnet_tests::seeder::Seeder;
use magnet_tests::video::{Codec, generate_sized};

/// Length of the sample, seconds.
const SECONDS: u32 = 60;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: demo-seed <dir>")?;
    let torrent = dir.join("magnetm3u8 demo");
    let video = torrent.join("sample.mp4");
    if !video.exists() {
        std::fs::create_dir_all(&torrent)?;
        eprintln!("demo-seed: generating a {SECONDS} s sample video with ffmpeg…");
        let partial = torrent.join("sample.partial.mp4");
        generate_sized(&partial, SECONDS, "1280x720", Codec::H264Aac)?;
        std::fs::rename(&partial, &video)?;
        std::fs::write(torrent.join("sample.en.srt"), subtitles())?;
    }
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&torrent).await?;
    println!("magnet: {}", seeded.magnet);
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// One cue every 5 s saying where the video is.
fn subtitles() -> String {
    (0..SECONDS / 5)
        .map(|i| {
            let (a, b) = (i * 5, i * 5 + 4);
            format!(
                "{}\n00:{:02}:{:02},000 --> 00:{:02}:{:02},000\nmagnetm3u8 demo: {a} to {b} s\n\n",
                i + 1,
                a / 60,
                a % 60,
                b / 60,
                b % 60
            )
        })
        .collect()
}
