//! What to do with a job, decided without I/O: which inputs are videos and subtitles, and the
//! ffmpeg arguments for remuxing or transcoding one video into HLS.

use std::path::Path;

use magnet_core::media;
use magnet_runtime::config::TranscodingSettings;

use crate::probe::MediaInfo;
use crate::{Error, Result, untrusted};

/// One input of a job: where ffmpeg reads it, its name inside the torrent, its size.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub source: String,
    pub name: String,
    pub size: u64,
}

/// Videos to convert (largest first; only the largest unless `all`) and subtitle files.
pub fn pick(inputs: &[Input], all: bool) -> Result<(Vec<Input>, Vec<Input>)> {
    let mut videos: Vec<Input> = inputs
        .iter()
        .filter(|i| media::is_video(&i.name))
        .cloned()
        .collect();
    if videos.is_empty() {
        let files = inputs
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::NoVideoFile {
            files: if files.is_empty() {
                "none".into()
            } else {
                files
            },
        });
    }
    videos.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    if !all {
        videos.truncate(1);
    }
    let subtitles = inputs
        .iter()
        .filter(|i| media::is_subtitle(&i.name))
        .cloned()
        .collect();
    Ok((videos, subtitles))
}

/// How the audio goes into HLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio {
    None,
    Copy,
    /// Browsers cannot play AC3/DTS/FLAC/… in HLS: re-encode.
    Aac,
}

/// The path a video takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub video_stream: u32,
    pub copy_video: bool,
    pub audio_stream: Option<u32>,
    pub audio: Audio,
}

impl Plan {
    /// "remux" when the video is copied, "transcode" otherwise.
    pub fn path_taken(&self) -> &'static str {
        if self.copy_video {
            "remux"
        } else {
            "transcode"
        }
    }
}

/// H.264 in 8-bit 4:2:0 is copied (browsers play it); anything else is re-encoded.
pub fn plan(info: &MediaInfo, name: &str) -> Result<Plan> {
    let video = info
        .video()
        .ok_or_else(|| Error::NoVideoStream { name: name.into() })?;
    let copy_video = video.codec == "h264"
        && matches!(
            video.pix_fmt.as_deref(),
            Some("yuv420p" | "yuvj420p") | None
        );
    let audio = info.audio();
    Ok(Plan {
        video_stream: video.index,
        copy_video,
        audio_stream: audio.map(|a| a.index),
        audio: match audio.map(|a| a.codec.as_str()) {
            None => Audio::None,
            Some("aac" | "mp3") => Audio::Copy,
            Some(_) => Audio::Aac,
        },
    })
}

/// ffmpeg arguments that write `index.m3u8` and its segments into `out`, with machine-readable
/// progress on stdout.
pub fn ffmpeg_args(
    input: &str,
    token: Option<&str>,
    plan: &Plan,
    t: &TranscodingSettings,
    out: &Path,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-nostats",
    ]
    .map(String::from)
    .to_vec();
    a.extend(untrusted::input_options(
        input,
        untrusted::VIDEO_FORMATS,
        token,
    ));
    a.extend(["-i".into(), input.into()]);
    a.extend(["-map".into(), format!("0:{}", plan.video_stream)]);
    if let Some(audio) = plan.audio_stream {
        a.extend(["-map".into(), format!("0:{audio}")]);
    }
    // A keyframe at every segment boundary, so segments are the configured length.
    let keyframes = format!("expr:gte(t,n_forced*{})", t.segment_duration);
    a.extend(codec_args(plan, t, Some(keyframes)));
    a.extend(
        [
            "-sn",
            "-dn",
            "-f",
            "hls",
            "-start_number",
            "0",
            "-hls_playlist_type",
            "vod",
        ]
        .map(String::from),
    );
    a.extend(["-hls_time".into(), t.segment_duration.to_string()]);
    if t.hls_segment_type == "fmp4" {
        a.extend(
            [
                "-hls_segment_type",
                "fmp4",
                "-hls_fmp4_init_filename",
                "init.mp4",
            ]
            .map(String::from),
        );
        a.extend([
            "-hls_segment_filename".into(),
            out.join("index%d.m4s").to_string_lossy().into_owned(),
        ]);
    } else {
        a.extend([
            "-hls_segment_filename".into(),
            out.join("index%d.ts").to_string_lossy().into_owned(),
        ]);
    }
    a.push(out.join("index.m3u8").to_string_lossy().into_owned());
    a
}

/// The codec arguments of a plan: the video copied, or re-encoded with the configured codec,
/// preset and CRF and `keyframes` forced (a `-force_key_frames` value); the audio copied, or
/// converted to stereo AAC.
pub fn codec_args(plan: &Plan, t: &TranscodingSettings, keyframes: Option<String>) -> Vec<String> {
    let mut a = Vec::new();
    if plan.copy_video {
        a.extend(["-c:v", "copy"].map(String::from));
    } else {
        a.extend([
            "-c:v".into(),
            t.video_codec.clone(),
            "-preset".into(),
            t.preset.clone(),
            "-crf".into(),
            t.crf.to_string(),
            "-pix_fmt".into(),
            "yuv420p".into(),
        ]);
        if let Some(k) = keyframes {
            a.extend(["-force_key_frames".into(), k]);
        }
    }
    match plan.audio {
        Audio::None => {}
        Audio::Copy => a.extend(["-c:a", "copy"].map(String::from)),
        Audio::Aac => a.extend([
            "-c:a".into(),
            t.audio_codec.clone(),
            "-ac".into(),
            "2".into(),
            "-b:a".into(),
            "160k".into(),
        ]),
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Kind, Stream};

    fn input(name: &str, size: u64) -> Input {
        Input {
            source: format!("/d/{name}"),
            name: name.into(),
            size,
        }
    }

    #[test]
    fn picks_the_largest_video_and_the_subtitles() {
        let inputs = [
            input("sample.mkv", 10),
            input("Movie.mkv", 900),
            input("movie.srt", 1),
            input("notes.txt", 5),
        ];
        let (videos, subs) = pick(&inputs, false).expect("has video");
        assert_eq!(videos, vec![input("Movie.mkv", 900)]);
        assert_eq!(subs, vec![input("movie.srt", 1)]);
        let (all, _) = pick(&inputs, true).expect("has video");
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn no_video_file_names_the_files() {
        let err = pick(&[input("a.txt", 1), input("b.nfo", 1)], false).expect_err("no video");
        assert!(err.to_string().contains("a.txt, b.nfo"), "{err}");
        assert!(err.is_permanent());
    }

    fn info(video: &str, pix: &str, audio: Option<&str>) -> MediaInfo {
        let mut streams = vec![Stream {
            index: 0,
            kind: Kind::Video,
            codec: video.into(),
            pix_fmt: Some(pix.into()),
            ..Default::default()
        }];
        if let Some(a) = audio {
            streams.push(Stream {
                index: 1,
                kind: Kind::Audio,
                codec: a.into(),
                ..Default::default()
            });
        }
        MediaInfo {
            duration: Some(10.0),
            streams,
        }
    }

    #[test]
    fn h264_is_remuxed_and_other_codecs_transcoded() {
        let p = plan(&info("h264", "yuv420p", Some("aac")), "x").expect("plan");
        assert_eq!((p.path_taken(), p.audio), ("remux", Audio::Copy));
        let p = plan(&info("h264", "yuv420p10le", Some("mp3")), "x").expect("plan");
        assert_eq!(
            (p.path_taken(), p.audio),
            ("transcode", Audio::Copy),
            "10-bit H.264 does not play in browsers"
        );
        let p = plan(&info("mpeg4", "yuv420p", Some("ac3")), "x").expect("plan");
        assert_eq!((p.path_taken(), p.audio), ("transcode", Audio::Aac));
        let p = plan(&info("vp9", "yuv420p", None), "x").expect("plan");
        assert_eq!(
            (p.path_taken(), p.audio, p.audio_stream),
            ("transcode", Audio::None, None)
        );
        let only_audio = MediaInfo {
            duration: None,
            streams: vec![Stream {
                kind: Kind::Audio,
                ..Default::default()
            }],
        };
        assert!(matches!(
            plan(&only_audio, "x"),
            Err(Error::NoVideoStream { .. })
        ));
    }

    #[test]
    fn args_write_the_originals_layout() {
        let t = TranscodingSettings::default();
        let p = plan(&info("h264", "yuv420p", Some("aac")), "x").expect("plan");
        let args = ffmpeg_args("/in.mp4", None, &p, &t, Path::new("/out"));
        let joined = args.join(" ");
        assert!(joined.contains("-c:v copy -c:a copy"), "{joined}");
        assert!(joined.contains("-start_number 0"), "{joined}");
        assert!(joined.contains("-hls_time 6"), "{joined}");
        assert!(
            joined.ends_with("-hls_segment_filename /out/index%d.ts /out/index.m3u8"),
            "{joined}"
        );
    }
}
