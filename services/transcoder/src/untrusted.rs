//! Torrents are untrusted input, and ffmpeg follows whatever a file says: an HLS playlist
//! named `movie.mp4` opens files anywhere on the node, an ffconcat script repeats a clip
//! without end. So ffprobe and ffmpeg read an input only through the protocols it needs and
//! only with the demuxers of real containers, and every run has a wall-clock and an output
//! budget scaled from what the input is.

use std::time::Duration;

/// Demuxers of the video containers torrents carry (names as ffmpeg matches them: any
/// comma-separated part of a demuxer's name, so `mov` covers `mov,mp4,m4a,3gp,3g2,mj2`).
/// Playlists (`hls`), scripts (`concat`), images and devices are absent on purpose.
pub const VIDEO_FORMATS: &str = "mov,matroska,avi,mpegts,mpeg,flv,asf,ogg,rm,nut,mxf,dv,wtv";

/// Demuxers of subtitle files (`.srt`, `.ass`/`.ssa`, `.vtt`).
pub const SUBTITLE_FORMATS: &str = "srt,ass,webvtt";

/// What an input's source may be read through: a file on the node's volume, or (progressive
/// transcodes) the downloader's streaming endpoint over HTTP.
fn protocols(source: &str) -> &'static str {
    if source.starts_with("http://") {
        "http,tcp"
    } else {
        "file"
    }
}

/// The options that go right before `-i source` in ffmpeg and ffprobe. A source on the
/// downloader's stream endpoint is read with the service `token`, as seekable, and with
/// reconnects (the downloader may restart, or end a body that did not move; a read waiting
/// for pieces is normal, so there is no read timeout).
pub fn input_options(source: &str, formats: &str, token: Option<&str>) -> Vec<String> {
    let mut o: Vec<String> = vec![
        "-protocol_whitelist".into(),
        protocols(source).into(),
        "-format_whitelist".into(),
        formats.into(),
    ];
    if source.starts_with("http://") {
        o.extend(
            [
                "-seekable",
                "1",
                "-reconnect",
                "1",
                "-reconnect_on_network_error",
                "1",
                "-reconnect_on_http_error",
                "503",
                "-reconnect_delay_max",
                "30",
            ]
            .map(String::from),
        );
        if let Some(t) = token {
            o.extend(["-headers".into(), format!("Authorization: Bearer {t}\r\n")]);
        }
    }
    o
}

/// The demuxer ffmpeg refused, from its stderr (`[hls @ 0x…] Format not on whitelist …`).
pub fn refused_format(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find(|l| l.contains("not on whitelist"))
        .and_then(|l| l.strip_prefix('['))
        .and_then(|l| l.split(" @ ").next())
        .map(str::to_owned)
}

/// How long one ffmpeg run may take and how much it may write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub time: Duration,
    pub bytes: u64,
}

/// Every run may take this long and write this much, however short or small its input.
const MIN_TIME: Duration = Duration::from_secs(120);
const MIN_BYTES: u64 = 256 * 1024 * 1024;
/// Beyond that, this many times the probed duration (a transcode on a slow node runs near
/// real time; a remux far faster) and the input's size (a transcode of a very compressed
/// input may grow it).
const TIME_FACTOR: f64 = 4.0;
const SIZE_FACTOR: u64 = 4;
/// No run gets more than this, whatever duration its input claims.
const MAX_TIME: Duration = Duration::from_secs(12 * 3600);
/// A run whose input says nothing of its duration gets this much time.
const UNKNOWN_DURATION_TIME: Duration = Duration::from_secs(6 * 3600);

impl Budget {
    /// A subtitle track: text, so small and quick whatever the video.
    pub const SUBTITLE: Budget = Budget {
        time: MIN_TIME,
        bytes: 64 * 1024 * 1024,
    };

    /// The budget of a run over a video input of `duration` seconds (as probed, if known) and
    /// `size` bytes: a multiple of each, never under the floors, and never over `MAX_TIME`.
    pub fn for_input(duration: Option<f64>, size: u64) -> Self {
        let time = match duration {
            // A container may claim any duration: the budget stops at MAX_TIME.
            Some(d) if d.is_finite() && d > 0.0 => {
                Duration::from_secs_f64((d * TIME_FACTOR).min(MAX_TIME.as_secs_f64())).max(MIN_TIME)
            }
            _ => UNKNOWN_DURATION_TIME,
        };
        Self {
            time,
            bytes: size.saturating_mul(SIZE_FACTOR).max(MIN_BYTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_files_are_read_as_files_only() {
        let o = input_options("/data/downloads/task_1/a.mkv", VIDEO_FORMATS, Some("t"));
        assert_eq!(
            o,
            [
                "-protocol_whitelist",
                "file",
                "-format_whitelist",
                VIDEO_FORMATS
            ]
        );
        let o = input_options(
            "http://127.0.0.1:1/stream/task_1/0",
            VIDEO_FORMATS,
            Some("tok"),
        );
        assert_eq!(o[1], "http,tcp");
        assert!(o.contains(&"-reconnect".to_owned()));
        assert_eq!(
            o.last().map(String::as_str),
            Some("Authorization: Bearer tok\r\n")
        );
    }

    #[test]
    fn names_the_refused_format() {
        let err =
            "[hls @ 0x55e9c71f9280] Format not on whitelist 'mov,matroska'\nx: Invalid argument";
        assert_eq!(refused_format(err).as_deref(), Some("hls"));
        assert_eq!(refused_format("x: Invalid data found"), None);
    }

    #[test]
    fn budgets_scale_with_the_input() {
        let small = Budget::for_input(Some(1.0), 60_000);
        assert_eq!(small.time, MIN_TIME);
        assert_eq!(small.bytes, MIN_BYTES);
        let film = Budget::for_input(Some(7200.0), 4 << 30);
        assert_eq!(film.time, Duration::from_secs(28_800));
        assert_eq!(film.bytes, 16 << 30);
        assert_eq!(Budget::for_input(None, 0).time, UNKNOWN_DURATION_TIME);
        assert_eq!(
            Budget::for_input(Some(1e9), 0).time,
            MAX_TIME,
            "a claimed 31 years"
        );
        assert_eq!(Budget::for_input(Some(f64::NAN), u64::MAX).bytes, u64::MAX);
    }
}
