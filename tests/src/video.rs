//! Small test videos made with ffmpeg (`testsrc2` + `sine`, a keyframe every 2 s), H.264/AAC unless asked otherwise.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Codecs of a generated video.
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    /// H.264 + AAC (MP4): the remux path.
    H264Aac,
    /// MPEG-4 Part 2 + AC3 (Matroska): the transcode path, with audio browsers cannot play.
    Mpeg4Ac3,
}

/// Generates `seconds` of 320x240 test pattern with a tone.
pub fn generate(path: &Path, seconds: u32, codec: Codec) -> anyhow::Result<()> {
    generate_sized(path, seconds, "320x240", codec)
}

/// What ffprobe prints for `entries` of `path` in `format`, or why it refused the file.
fn ffprobe(path: &Path, entries: &str, format: &str) -> anyhow::Result<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", format])
        .arg(path)
        .output()?;
    if !out.status.success() {
        bail!(
            "ffprobe refused {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Duration of a media file or playlist, as ffprobe reads it.
pub fn duration(path: &Path) -> anyhow::Result<f64> {
    Ok(ffprobe(path, "format=duration", "default=nw=1:nk=1")?
        .trim()
        .parse()?)
}

/// Codec names of a file's streams (`v:h264`, `a:aac`), as ffprobe reads them.
pub fn codecs(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(ffprobe(path, "stream=codec_type,codec_name", "csv=p=0")?
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(codec, kind)| format!("{}:{codec}", &kind[..1]))
        .collect())
}

/// Like [`generate`], at a given size (e.g. "1280x720").
pub fn generate_sized(path: &Path, seconds: u32, size: &str, codec: Codec) -> anyhow::Result<()> {
    generate_with(path, seconds, size, codec, &[])
}

/// 720p H.264/AAC at the bitrate of a 720p release (2.5 Mbit/s, capped), its `moov` at the
/// end; the test pattern at x264's default quality would be several times denser.
pub fn generate_release(path: &Path, seconds: u32) -> anyhow::Result<()> {
    generate_with(
        path,
        seconds,
        "1280x720",
        Codec::H264Aac,
        &["-b:v", "2300k", "-maxrate", "2500k", "-bufsize", "5000k"],
    )
}

/// 1080p H.264/AAC at the bitrate of a 1080p release (5 Mbit/s, capped at 5.5).
pub fn generate_release_1080p(path: &Path, seconds: u32) -> anyhow::Result<()> {
    generate_with(
        path,
        seconds,
        "1920x1080",
        Codec::H264Aac,
        &["-b:v", "5000k", "-maxrate", "5500k", "-bufsize", "11000k"],
    )
}

fn generate_with(
    path: &Path,
    seconds: u32,
    size: &str,
    codec: Codec,
    extra: &[&str],
) -> anyhow::Result<()> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25:duration={seconds}"),
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:sample_rate=44100:duration={seconds}"),
        ]);
    match codec {
        Codec::H264Aac => cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ]),
        Codec::Mpeg4Ac3 => cmd.args(["-c:v", "mpeg4", "-q:v", "5", "-c:a", "ac3"]),
    };
    cmd.args(extra).args(["-shortest"]).arg(path);
    let out = cmd
        .output()
        .context("cannot run ffmpeg: is it installed? (`cargo xtask test` installs it)")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// `dir` holds what a finished task leaves, the original's VOD layout: `index.m3u8` (type VOD,
/// `#EXT-X-ENDLIST`) that ffmpeg reads without a word, `master.m3u8`, no `.progressive`
/// marker, and `seconds` of video within `tolerance`.
pub fn assert_vod(dir: &Path, seconds: f64, tolerance: f64) -> anyhow::Result<()> {
    let index = dir.join("index.m3u8");
    let playlist = std::fs::read_to_string(&index)?;
    anyhow::ensure!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.contains("#EXT-X-ENDLIST"),
        "not a finished VOD playlist: {playlist}"
    );
    anyhow::ensure!(dir.join("master.m3u8").exists(), "no master.m3u8");
    anyhow::ensure!(
        !dir.join(".progressive").exists(),
        "the .progressive marker is left"
    );
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&index)
        .args(["-f", "null", "-"])
        .output()?;
    anyhow::ensure!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg does not read it cleanly: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = duration(&index)?;
    anyhow::ensure!(
        (d - seconds).abs() < tolerance,
        "{d} s of video, expected {seconds} s"
    );
    Ok(())
}
