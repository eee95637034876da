//! `master.m3u8`: the video playlist(s) as variants with `BANDWIDTH`, `CODECS` and
//! `RESOLUTION` (hls.js shows a level as 0x0, and cannot tell what it will play, without them),
//! and the subtitles as `EXT-X-MEDIA` renditions. Codecs are named as RFC 6381 spells them,
//! from what ffprobe says of the output (or of a source whose streams are copied).

use crate::output::Track;
use crate::plan::{Audio, Plan};
use crate::probe::{Kind, MediaInfo, Stream};

/// One variant: its playlist, bits per second (0 until known), and when known its codecs and
/// size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variant {
    pub uri: String,
    pub bandwidth: u64,
    pub codecs: Option<String>,
    pub resolution: Option<(u32, u32)>,
}

impl Variant {
    /// A variant of the playlist at `uri` (relative to `master.m3u8`), `bandwidth` in bits per
    /// second; codecs and size unknown until [`Variant::described`] or [`Variant::planned`].
    pub fn new(uri: impl Into<String>, bandwidth: u64) -> Self {
        Self {
            uri: uri.into(),
            bandwidth,
            ..Self::default()
        }
    }

    /// With the codecs and size of `output`, the streams the variant's segments hold.
    pub fn described(mut self, output: &MediaInfo) -> Self {
        let video = output.video();
        self.resolution = video.and_then(|v| Some((v.width?, v.height?)));
        self.codecs = codecs(output);
        self
    }

    /// Before any segment exists: the size (the video is never scaled), and the codecs when
    /// the video is copied (the audio is then copied too, or made AAC-LC).
    pub fn planned(uri: impl Into<String>, source: &MediaInfo, plan: &Plan) -> Self {
        let mut out = MediaInfo::default();
        out.streams.extend(source.video().cloned());
        if let Some(a) = source.audio() {
            out.streams.push(match plan.audio {
                Audio::Copy => a.clone(),
                Audio::Aac | Audio::None => Stream {
                    kind: Kind::Audio,
                    codec: "aac".into(),
                    profile: Some("LC".into()),
                    ..Stream::default()
                },
            });
        }
        let described = Self::new(uri, 0).described(&out);
        if plan.copy_video {
            described
        } else {
            Self {
                codecs: None,
                ..described
            }
        }
    }
}

/// `avc1.PPCCLL` of an H.264 stream: profile_idc and constraint flags from ffprobe's profile
/// name, the level in hex.
fn avc1(v: &Stream) -> Option<String> {
    let profile = match v.profile.as_deref()? {
        "Baseline" | "Constrained Baseline" => "42e0",
        "Main" => "4d40",
        "High" => "6400",
        "High 10" => "6e00",
        "High 4:2:2" => "7a00",
        _ => return None,
    };
    let level = u8::try_from(v.level?).ok().filter(|l| *l > 0)?;
    Some(format!("avc1.{profile}{level:02x}"))
}

/// `mp4a.40.<object type>` of an AAC or MP3 stream.
fn mp4a(a: &Stream) -> Option<&'static str> {
    match (a.codec.as_str(), a.profile.as_deref()) {
        ("aac", Some("HE-AACv2")) => Some("mp4a.40.29"),
        ("aac", Some("HE-AAC")) => Some("mp4a.40.5"),
        ("aac", _) => Some("mp4a.40.2"),
        ("mp3", _) => Some("mp4a.40.34"),
        _ => None,
    }
}

/// `CODECS` for every audio and video stream of `info`, or `None` when one cannot be named (a
/// partial list would make players refuse the variant).
pub fn codecs(info: &MediaInfo) -> Option<String> {
    let video = info.video().filter(|v| v.codec == "h264")?;
    let mut names = vec![avc1(video)?];
    if let Some(a) = info.audio() {
        names.push(mp4a(a)?.to_owned());
    }
    Some(names.join(","))
}

/// The whole `master.m3u8`.
pub fn playlist(variants: &[Variant], tracks: &[Track]) -> String {
    let mut m = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    for (i, t) in tracks.iter().enumerate() {
        let lang = t
            .language
            .as_deref()
            .map(|l| format!(",LANGUAGE=\"{}\"", quote(l)))
            .unwrap_or_default();
        let default = if i == 0 { "YES" } else { "NO" };
        m.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"{}\"{lang},DEFAULT={default},AUTOSELECT=YES,URI=\"{}\"\n",
            quote(&t.name),
            t.file.trim_end_matches(".vtt").to_owned() + ".m3u8"
        ));
    }
    for v in variants {
        m.push_str(&format!("#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth.max(1)));
        if let Some(c) = &v.codecs {
            m.push_str(&format!(",CODECS=\"{c}\""));
        }
        if let Some((w, h)) = v.resolution {
            m.push_str(&format!(",RESOLUTION={w}x{h}"));
        }
        if !tracks.is_empty() {
            m.push_str(",SUBTITLES=\"subs\"");
        }
        m.push('\n');
        m.push_str(&v.uri);
        m.push('\n');
    }
    m
}

fn quote(s: &str) -> String {
    s.replace(['"', '\n', '\r'], "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(kind: Kind, codec: &str, profile: &str) -> Stream {
        Stream {
            kind,
            codec: codec.into(),
            profile: Some(profile.into()),
            ..Stream::default()
        }
    }

    #[test]
    fn master_lists_variants_with_codecs_and_size_and_subtitle_renditions() {
        let tracks = [Track {
            file: "movie.vtt".into(),
            name: "movie".into(),
            language: Some("en".into()),
        }];
        let mut video = stream(Kind::Video, "h264", "High");
        video.level = Some(31);
        video.width = Some(1280);
        video.height = Some(720);
        let output = MediaInfo {
            duration: None,
            streams: vec![video, stream(Kind::Audio, "aac", "LC")],
        };
        let v = Variant::new("index.m3u8", 800_000).described(&output);
        let m = playlist(&[v], &tracks);
        assert!(m.contains("#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"movie\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,URI=\"movie.m3u8\""), "{m}");
        assert!(
            m.contains("#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,SUBTITLES=\"subs\"\nindex.m3u8\n"),
            "{m}"
        );
    }

    #[test]
    fn codecs_are_named_or_left_out_whole() {
        let mut v = stream(Kind::Video, "h264", "Constrained Baseline");
        v.level = Some(30);
        let only_video = MediaInfo {
            duration: None,
            streams: vec![v.clone()],
        };
        assert_eq!(codecs(&only_video).as_deref(), Some("avc1.42e01e"));
        let mp3 = MediaInfo {
            duration: None,
            streams: vec![v.clone(), stream(Kind::Audio, "mp3", "")],
        };
        assert_eq!(codecs(&mp3).as_deref(), Some("avc1.42e01e,mp4a.40.34"));
        let ac3 = MediaInfo {
            duration: None,
            streams: vec![v, stream(Kind::Audio, "ac3", "")],
        };
        assert_eq!(codecs(&ac3), None, "a list missing one stream is worse than none");
        let hevc = MediaInfo {
            duration: None,
            streams: vec![stream(Kind::Video, "hevc", "Main")],
        };
        assert_eq!(codecs(&hevc), None);
        assert_eq!(Variant::new("index.m3u8", 0).described(&hevc).resolution, None);
    }
}
