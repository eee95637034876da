//! `ffprobe` of an input: its streams and duration, in our own types.

use std::process::Stdio;

use serde::Deserialize;

use crate::untrusted;

use crate::{Error, Result};

/// What matters of a media file for HLS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    pub duration: Option<f64>,
    pub streams: Vec<Stream>,
}

/// One stream of an input as ffprobe describes it: what the plan and `master.m3u8` need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stream {
    /// Index in the container (for `-map 0:<index>`).
    pub index: u32,
    pub kind: Kind,
    pub codec: String,
    pub pix_fmt: Option<String>,
    pub language: Option<String>,
    /// Cover art shows up as a video stream; it is not the video.
    pub attached_pic: bool,
    /// ffprobe's profile name ("High", "LC") and level (31 for H.264 level 3.1).
    pub profile: Option<String>,
    pub level: Option<i64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// What a stream holds, from ffprobe's `codec_type`; anything else (data, attachments) is
/// `Other`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
    Subtitle,
    #[default]
    Other,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawStream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    pix_fmt: Option<String>,
    #[serde(default)]
    disposition: std::collections::HashMap<String, i64>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    profile: Option<String>,
    level: Option<i64>,
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Deserialize)]
struct RawFormat {
    duration: Option<String>,
}

impl MediaInfo {
    /// Parses `ffprobe -print_format json -show_format -show_streams` output.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: Raw = serde_json::from_slice(json)?;
        Ok(Self {
            duration: raw
                .format
                .and_then(|f| f.duration)
                .and_then(|d| d.parse().ok())
                .filter(|d: &f64| *d > 0.0),
            streams: raw
                .streams
                .into_iter()
                .map(|s| Stream {
                    index: s.index,
                    kind: match s.codec_type.as_deref() {
                        Some("video") => Kind::Video,
                        Some("audio") => Kind::Audio,
                        Some("subtitle") => Kind::Subtitle,
                        _ => Kind::Other,
                    },
                    codec: s.codec_name.unwrap_or_default(),
                    pix_fmt: s.pix_fmt,
                    language: s.tags.get("language").cloned(),
                    attached_pic: s.disposition.get("attached_pic").copied().unwrap_or(0) == 1,
                    profile: s.profile,
                    level: s.level,
                    width: s.width,
                    height: s.height,
                })
                .collect(),
        })
    }

    /// The main video stream (not cover art).
    pub fn video(&self) -> Option<&Stream> {
        self.streams
            .iter()
            .find(|s| s.kind == Kind::Video && !s.attached_pic)
    }

    /// The first audio stream, the one the plan keeps (the others are dropped).
    pub fn audio(&self) -> Option<&Stream> {
        self.streams.iter().find(|s| s.kind == Kind::Audio)
    }

    /// Subtitle streams that are text (convertible to WebVTT); bitmap ones are skipped.
    pub fn text_subtitles(&self) -> impl Iterator<Item = &Stream> {
        self.streams.iter().filter(|s| {
            s.kind == Kind::Subtitle
                && matches!(
                    s.codec.as_str(),
                    "subrip" | "ass" | "ssa" | "mov_text" | "webvtt" | "text"
                )
        })
    }
}

/// Runs ffprobe on `input` (a path or URL); `name` is how the user knows the file.
/// `token`: the service credential, for inputs on the downloader's stream endpoint.
pub async fn probe(
    ffprobe: &str,
    input: &str,
    name: &str,
    token: Option<&str>,
) -> Result<MediaInfo> {
    let mut cmd = crate::ffmpeg::command(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ])
    .args(untrusted::input_options(
        input,
        untrusted::VIDEO_FORMATS,
        token,
    ))
    .arg(input)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let spawn_error = |source| Error::Spawn {
        program: ffprobe.into(),
        source,
    };
    let out = crate::ffmpeg::spawn(cmd)
        .await
        .map_err(spawn_error)?
        .wait_with_output()
        .await
        .map_err(spawn_error)?;
    let full = String::from_utf8_lossy(&out.stderr);
    if let Some(format) = untrusted::refused_format(&full) {
        return Err(Error::FormatRefused {
            name: name.into(),
            format,
        });
    }
    let stderr = crate::ffmpeg::tail(&full, 3);
    if !out.status.success() {
        return Err(Error::Unreadable {
            name: name.into(),
            detail: stderr,
        });
    }
    let info = MediaInfo::from_json(&out.stdout).map_err(|e| Error::Unreadable {
        name: name.into(),
        detail: e.to_string(),
    })?;
    if info.streams.is_empty() {
        return Err(Error::Unreadable {
            name: name.into(),
            detail: "no streams".into(),
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_streams_and_skips_cover_art() {
        let json = br#"{"streams":[
            {"index":0,"codec_type":"video","codec_name":"mjpeg","disposition":{"attached_pic":1}},
            {"index":1,"codec_type":"video","codec_name":"h264","pix_fmt":"yuv420p","disposition":{"attached_pic":0}},
            {"index":2,"codec_type":"audio","codec_name":"ac3","tags":{"language":"eng"}},
            {"index":3,"codec_type":"subtitle","codec_name":"subrip","tags":{"language":"fre"}},
            {"index":4,"codec_type":"subtitle","codec_name":"hdmv_pgs_subtitle"}],
            "format":{"duration":"12.500000"}}"#;
        let info = MediaInfo::from_json(json).expect("parses");
        assert_eq!(info.duration, Some(12.5));
        assert_eq!(info.video().map(|v| v.index), Some(1));
        assert_eq!(info.audio().map(|a| a.codec.as_str()), Some("ac3"));
        let subs: Vec<u32> = info.text_subtitles().map(|s| s.index).collect();
        assert_eq!(subs, vec![3]);
    }
}
