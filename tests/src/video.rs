//! Small test videos made with ffmpeg (`testsrc2` + `sine`), H.264/AAC unless asked otherwise.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Codecs of a generated video.
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    /// H.264 + AAC in MP4.
    H264Aac,
}

/// Generates `seconds` of 320x240 test pattern with a tone.
pub fn generate(path: &Path, seconds: u32, codec: Codec) -> anyhow::Result<()> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &format!("testsrc2=size=320x240:rate=25:duration={seconds}")])
        .args(["-f", "lavfi", "-i", &format!("sine=frequency=440:sample_rate=44100:duration={seconds}")]);
    match codec {
        Codec::H264Aac => cmd.args(["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]),
    };
    cmd.args(["-shortest"]).arg(path);
    let out = cmd.output().context("cannot run ffmpeg: is it installed? (`cargo xtask test` installs it)")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
