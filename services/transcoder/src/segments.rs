//! The segments of a progressive transcode, decided before any is made, without I/O: where
//! each one starts (on the container's keyframes when the video is copied, on a grid of
//! forced keyframes when it is re-encoded), the VOD playlist that lists them all up front, and
//! the ffmpeg arguments of a "head" that makes segments from number N on.
//!
//! Every head writes the source's own timestamps plus [`TS_OFFSET`] (`-copyts -start_at_zero
//! -output_ts_offset`, and the MPEG-TS muxer told to keep them), so segments made by different
//! heads join without a gap or an overlap. A copying head that starts at N > 0 seeks just past
//! segment N's keyframe: the demuxer lands on that keyframe and `-copypriorss 1` keeps it, so
//! the head reads nothing before N (a seek waits only for N's own bytes). A re-encoding head
//! starts a second before N's start, for the encoder to settle; what comes before N is
//! numbered N-1 and thrown away, so the cut at N's start is the segment muxer's, exactly as in
//! a head from 0.

use std::fmt::Write as _;
use std::path::Path;

use magnet_runtime::config::TranscodingSettings;

use crate::index::Container;
use crate::plan::{self, Plan};
use crate::untrusted;

/// The first segments are short, so playback starts soon after a seek too.
const SHORT_SEGMENT: f64 = 2.0;
const SHORT_SEGMENTS: usize = 3;
/// A last segment shorter than this is merged into the one before.
const MIN_LAST: f64 = 0.5;
/// Pre-roll of a re-encoding head that starts at N > 0, in seconds.
const PRE_ROLL: f64 = 1.0;
/// How far past its first keyframe a copying head seeks: the demuxer goes back to the
/// keyframe at or before the target, which is that one.
const PAST_KEYFRAME: f64 = 0.001;
/// Every head's output clock is the source's plus this: a stream with B-frames starts with a
/// negative DTS, which a muxer would otherwise shift away in the head from 0 only.
pub const TS_OFFSET: f64 = 1.0;

/// How the cuts were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On keyframes of the container's index (the video is copied).
    Indexed,
    /// On a fixed grid, keyframes forced there (the video is re-encoded).
    Grid,
}

impl Mode {
    /// How the mode is named in logs and the `Playable` report (`indexed`, `grid`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Indexed => "indexed",
            Mode::Grid => "grid",
        }
    }
}

/// The plan of a progressive transcode: every segment's start, decided before any is made, so
/// the playlist can list them all up front.
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub mode: Mode,
    /// The container of an indexed source, whose demuxer a head that starts at N > 0 is told
    /// how to seek.
    container: Option<Container>,
    /// Start of each segment, seconds; `starts[0] == 0`.
    pub starts: Vec<f64>,
    pub duration: f64,
}

fn target_length(k: usize, target: f64) -> f64 {
    if k < SHORT_SEGMENTS {
        SHORT_SEGMENT.min(target)
    } else {
        target
    }
}

impl Segments {
    /// Cuts on `keyframes`: each segment ends at the first keyframe at least its target
    /// length after its start.
    pub fn indexed(keyframes: &[f64], duration: f64, target: f64) -> Self {
        let mut starts = vec![0.0];
        let mut at = 0;
        while let Some(&last) = starts.last() {
            let want = last + target_length(starts.len() - 1, target);
            while at < keyframes.len() && keyframes[at] < want - 1e-6 {
                at += 1;
            }
            match keyframes.get(at) {
                Some(&k) if k < duration - MIN_LAST => starts.push(k),
                _ => break,
            }
        }
        Self {
            mode: Mode::Indexed,
            container: None,
            starts,
            duration,
        }
    }

    /// Cuts every 2 s for the first segments, then every `target` seconds.
    pub fn grid(duration: f64, target: f64) -> Self {
        let mut starts = vec![0.0];
        while let Some(&last) = starts.last() {
            let next = last + target_length(starts.len() - 1, target);
            if next >= duration - MIN_LAST {
                break;
            }
            starts.push(next);
        }
        Self {
            mode: Mode::Grid,
            container: None,
            starts,
            duration,
        }
    }

    /// These keyframes were read from a `container`'s index.
    pub fn read_from(mut self, container: Container) -> Self {
        self.container = Some(container);
        self
    }

    /// Number of segments planned.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether no segment is planned (never, for a plan from [`Segments::indexed`] or
    /// [`Segments::grid`], which start with one at 0).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Seconds of segment `n`.
    pub fn length(&self, n: usize) -> f64 {
        let end = self.starts.get(n + 1).copied().unwrap_or(self.duration);
        (end - self.starts.get(n).copied().unwrap_or(end)).max(0.0)
    }

    /// The segment's file name in the task's folder (the original's: `index<n>.ts`).
    pub fn file(n: usize) -> String {
        format!("index{n}.ts")
    }

    /// `index<n>.ts` → `n`.
    pub fn number(file: &str) -> Option<usize> {
        file.strip_prefix("index")?
            .strip_suffix(".ts")?
            .parse()
            .ok()
    }

    /// The whole VOD playlist, as ffmpeg's HLS muxer writes it.
    pub fn playlist(&self) -> String {
        let longest = (0..self.len()).map(|n| self.length(n)).fold(0.0, f64::max);
        let mut p = String::new();
        let _ = write!(
            p,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n",
            longest.ceil().max(1.0) as u64
        );
        for n in 0..self.len() {
            let _ = write!(p, "#EXTINF:{:.6},\n{}\n", self.length(n), Self::file(n));
        }
        p.push_str("#EXT-X-ENDLIST\n");
        p
    }

    /// Where a head for segments from `n` seeks to, and the number its first segment gets
    /// (`n - 1` when that one is pre-roll to throw away).
    fn entry(&self, n: usize) -> (Option<f64>, usize) {
        if n == 0 {
            return (None, 0);
        }
        let start = self.starts[n];
        match self.mode {
            // N starts on a keyframe of the index: begin right there.
            Mode::Indexed => (Some(start + PAST_KEYFRAME), n),
            Mode::Grid => (Some((start - PRE_ROLL).max(0.0)), n - 1),
        }
    }

    /// ffmpeg arguments of a head that makes segments `n…` into `dir/seg<k>.ts`, listing each
    /// finished one on stdout (`seg<k>.ts`).
    pub fn head_args(
        &self,
        n: usize,
        input: &str,
        token: Option<&str>,
        plan: &Plan,
        t: &TranscodingSettings,
        dir: &Path,
    ) -> Vec<String> {
        let (seek, first) = self.entry(n);
        let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
            .map(String::from)
            .to_vec();
        a.extend(untrusted::input_options(
            input,
            untrusted::VIDEO_FORMATS,
            token,
        ));
        if let Some(s) = seek {
            a.extend(["-ss".into(), format!("{s:.6}")]);
        }
        if first == n && n > 0 && self.container == Some(Container::Mp4) {
            // Every stream positioned where it stands in the file after N's keyframe, as a
            // head from 0 reads it, rather than each at its own sample nearest the time: an
            // audio packet that comes before the keyframe in the file belongs to N-1, and
            // would otherwise be in both.
            a.extend(["-seek_streams_individually".into(), "0".into()]);
        }
        a.extend(["-copyts", "-start_at_zero", "-i"].map(String::from));
        a.push(input.into());
        a.extend(["-map".into(), format!("0:{}", plan.video_stream)]);
        if let Some(audio) = plan.audio_stream {
            a.extend(["-map".into(), format!("0:{audio}")]);
        }
        // Cuts after the head's first segment starts.
        let cuts: Vec<String> = self.starts[first + 1..]
            .iter()
            .map(|s| format!("{s:.6}"))
            .collect();
        // The segment muxer sees the output clock.
        let output_cuts: Vec<String> = self.starts[first + 1..]
            .iter()
            .map(|s| format!("{:.6}", s + TS_OFFSET))
            .collect();
        // Forced keyframes at absolute times on the source's clock, which the encoder sees
        // with -copyts.
        a.extend(plan::codec_args(
            plan,
            t,
            (!cuts.is_empty()).then(|| cuts.join(",")),
        ));
        a.extend(
            [
                "-sn",
                "-dn",
                "-f",
                "segment",
                "-segment_format",
                "mpegts",
                "-segment_format_options",
                "mpegts_copyts=1",
            ]
            .map(String::from),
        );
        if first == n && n > 0 {
            // The keyframe N starts on lies just before the seek target: keep it.
            a.extend(["-copypriorss".into(), "1".into()]);
        }
        a.extend(["-output_ts_offset".into(), format!("{TS_OFFSET}")]);
        if !output_cuts.is_empty() {
            a.extend(["-segment_times".into(), output_cuts.join(",")]);
        } else {
            // One segment to the end: no cut before it.
            a.extend([
                "-segment_time".into(),
                format!("{}", self.duration.ceil() + 1.0),
            ]);
        }
        a.extend(
            [
                "-segment_time_delta",
                "0.05",
                "-segment_list",
                "pipe:1",
                "-segment_list_type",
                "flat",
            ]
            .map(String::from),
        );
        a.extend(["-segment_start_number".into(), first.to_string()]);
        a.push(dir.join("seg%d.ts").to_string_lossy().into_owned());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_cuts_land_on_keyframes_short_ones_first() {
        let kf: Vec<f64> = (0..12).map(|k| k as f64 * 2.5).collect();
        let s = Segments::indexed(&kf, 30.0, 6.0);
        assert_eq!(s.starts, vec![0.0, 2.5, 5.0, 7.5, 15.0, 22.5]);
        assert!((s.length(5) - 7.5).abs() < 1e-9);
        let total: f64 = (0..s.len()).map(|n| s.length(n)).sum();
        assert!((total - 30.0).abs() < 1e-9);
        // No keyframe at all after 0: one segment.
        assert_eq!(Segments::indexed(&[0.0], 30.0, 6.0).len(), 1);
        // A keyframe just before the end does not make a sliver of a segment.
        assert_eq!(
            Segments::indexed(&[0.0, 2.0, 9.8], 10.0, 6.0).starts,
            vec![0.0, 2.0]
        );
    }

    #[test]
    fn grid_cuts_every_target_after_three_short_ones() {
        let s = Segments::grid(25.0, 6.0);
        assert_eq!(s.starts, vec![0.0, 2.0, 4.0, 6.0, 12.0, 18.0, 24.0]);
        assert_eq!(Segments::grid(1.0, 6.0).starts, vec![0.0]);
    }

    #[test]
    fn playlist_is_vod_with_every_segment() {
        let s = Segments::indexed(&[0.0, 2.5, 5.0], 7.0, 6.0);
        let p = s.playlist();
        assert!(p.starts_with("#EXTM3U\n"), "{p}");
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{p}");
        assert!(p.contains("#EXTINF:2.500000,\nindex0.ts\n#EXTINF:2.500000,\nindex1.ts\n#EXTINF:2.000000,\nindex2.ts\n"), "{p}");
        assert!(p.ends_with("#EXT-X-ENDLIST\n"), "{p}");
        assert_eq!(Segments::number("index12.ts"), Some(12));
        assert_eq!(Segments::number("index.m3u8"), None);
    }

    #[test]
    fn heads_after_zero_start_on_their_keyframe_or_before_it_when_encoding() {
        let kf: Vec<f64> = (0..12).map(|k| k as f64 * 2.5).collect();
        let s = Segments::indexed(&kf, 30.0, 6.0);
        assert_eq!(s.entry(0), (None, 0));
        // Segment 4 starts on the keyframe at 15.0: a copying head begins there.
        assert_eq!(s.entry(4), (Some(15.001), 4));
        let g = Segments::grid(25.0, 6.0);
        assert_eq!(g.entry(4), (Some(11.0), 3));
    }
}
