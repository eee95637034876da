//! Keyframe times of a video, read from its container's index with a few ranged reads: an
//! MP4's `moov` (wherever it sits, found by walking the top-level box headers past `mdat`) or
//! a Matroska file's `Cues` (found through its `SeekHead`). While a torrent downloads, this
//! costs the pieces that hold the index, never the media: ffprobe's packet list would read the
//! whole file. A container without a usable index gives `None` (the caller falls back).

use std::io::Cursor;
use std::path::PathBuf;

use bytes::Bytes;

use crate::{Error, Result};

/// Largest `moov` read into memory (two hours at 60 fps with audio is about 12 MiB).
const MAX_MOOV_BYTES: u64 = 64 * 1024 * 1024;
/// Largest `Cues` element read (hours of video index in well under 1 MiB).
const MAX_CUES_BYTES: u64 = 16 * 1024 * 1024;
/// Top-level boxes looked at before giving up on finding `moov`.
const MAX_BOXES: usize = 256;
/// What is read from the start of a Matroska file to find its `SeekHead` and `Info`.
const MKV_HEAD_BYTES: u64 = 256 * 1024;

/// Where the bytes come from: a file on the node's volume or the downloader's stream endpoint.
pub enum Source {
    File(PathBuf),
    Http {
        client: reqwest::Client,
        url: String,
        token: Option<String>,
    },
}

impl Source {
    /// A source for `location` as a job names it (`http://…` or a path).
    pub fn new(location: &str, token: Option<&str>) -> Self {
        if location.starts_with("http://") {
            Source::Http {
                client: reqwest::Client::new(),
                url: location.to_owned(),
                token: token.map(str::to_owned),
            }
        } else {
            Source::File(PathBuf::from(location))
        }
    }

    /// `len` bytes from `offset` (fewer at the end of the file).
    pub async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let last = offset
            .checked_add(len - 1)
            .ok_or_else(|| Error::Index("read past the largest offset".into()))?;
        match self {
            Source::File(path) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut f = tokio::fs::File::open(path).await.map_err(Error::io(path))?;
                f.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(Error::io(path))?;
                let mut buf = Vec::new();
                f.take(len)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(Error::io(path))?;
                Ok(buf.into())
            }
            Source::Http { client, url, token } => {
                let mut req = client
                    .get(url)
                    .header(reqwest::header::RANGE, format!("bytes={offset}-{last}"));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let res = req
                    .send()
                    .await
                    .map_err(|e| Error::Index(format!("reading the index: {e}")))?;
                if res.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                    return Err(Error::Index(format!(
                        "reading the index: the stream endpoint answered {}",
                        res.status()
                    )));
                }
                res.bytes()
                    .await
                    .map_err(|e| Error::Index(format!("reading the index: {e}")))
            }
        }
    }
}

/// The containers whose index this reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Matroska,
}

/// A video's keyframe times in seconds, ascending, and the container they were read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyframes {
    pub container: Container,
    pub times: Vec<f64>,
}

/// The video's keyframes from the container's index; `None` when the container has none this
/// reader understands (MPEG-TS, AVI, fragmented MP4, Matroska without `Cues`).
pub async fn keyframes(src: &Source, size: u64, name: &str) -> Result<Option<Keyframes>> {
    if size < 16 {
        return Ok(None);
    }
    let head = src.read_at(0, 16).await?;
    let (container, times) = if head.len() >= 8 && &head[4..8] == b"ftyp" {
        (Container::Mp4, mp4(src, size).await?)
    } else if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        (Container::Matroska, mkv(src, size).await?)
    } else {
        return Ok(None);
    };
    Ok(times.and_then(|mut t| {
        t.retain(|x| x.is_finite() && *x >= 0.0);
        t.sort_by(f64::total_cmp);
        t.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
        if t.is_empty() {
            tracing::info!(input = %name, "container index lists no keyframe");
            None
        } else {
            Some(Keyframes {
                container,
                times: t,
            })
        }
    }))
}

async fn mp4(src: &Source, size: u64) -> Result<Option<Vec<f64>>> {
    let mut pos = 0u64;
    for _ in 0..MAX_BOXES {
        if pos.checked_add(8).is_none_or(|end| end > size) {
            return Ok(None);
        }
        let h = src.read_at(pos, 16).await?;
        if h.len() < 8 {
            return Ok(None);
        }
        let small = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let kind = [h[4], h[5], h[6], h[7]];
        let len = match small {
            0 => size - pos,
            1 if h.len() >= 16 => {
                u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]])
            }
            n => n,
        };
        if len < 8 {
            return Err(Error::Index(format!(
                "an MP4 box at byte {pos} is {len} bytes long"
            )));
        }
        match &kind {
            b"moov" => {
                if len > MAX_MOOV_BYTES {
                    return Err(Error::Index(format!(
                        "the MP4 index is {len} bytes, over the {MAX_MOOV_BYTES} this reads"
                    )));
                }
                let moov = src.read_at(pos, len).await?;
                return Ok(mp4_sync_times(&moov));
            }
            // Fragments carry their own indexes; the one-pass fallback takes those.
            b"moof" => return Ok(None),
            _ => {}
        }
        pos = match pos.checked_add(len) {
            Some(p) => p,
            None => return Ok(None),
        };
    }
    Ok(None)
}

/// Presentation times of the sync samples of the first video track in `moov`.
fn mp4_sync_times(moov: &[u8]) -> Option<Vec<f64>> {
    let ctx = mp4parse::read_mp4(&mut Cursor::new(moov))
        .map_err(|e| tracing::info!(error = ?e, "MP4 index unreadable"))
        .ok()?;
    if ctx.mvex.is_some() {
        return None;
    }
    let movie_scale = ctx.timescale.map(|t| t.0).filter(|t| *t > 0)?;
    let track = ctx
        .tracks
        .iter()
        .find(|t| t.track_type == mp4parse::TrackType::Video)?;
    let scale = track.timescale.map(|t| t.0).filter(|t| *t > 0)?;
    // The edit list: an empty edit delays the track, `media_time` skips its start.
    let empty = track
        .empty_duration
        .map(|d| (d.0 as u128 * scale as u128 / movie_scale as u128) as i64)
        .unwrap_or(0);
    let skip = track.media_time.map(|t| t.0 as i64).unwrap_or(0);
    let table = mp4parse::unstable::create_sample_table(track, (empty - skip).into())?;
    Some(
        table
            .iter()
            .filter(|i| i.sync)
            .map(|i| i.start_composition.0 as f64 / scale as f64)
            .collect(),
    )
}

// Matroska element ids.
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2AD7B1;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CLUSTER: u32 = 0x1F43_B675;

/// One EBML element header: id, data size (`None`: unknown), header length.
fn element(b: &[u8]) -> Option<(u32, Option<u64>, usize)> {
    let first = *b.first()?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 || b.len() < id_len {
        return None;
    }
    let id = b[..id_len]
        .iter()
        .fold(0u32, |acc, x| (acc << 8) | u32::from(*x));
    let s = &b[id_len..];
    let first = *s.first()?;
    let size_len = first.leading_zeros() as usize + 1;
    if size_len > 8 || s.len() < size_len {
        return None;
    }
    let mask = if size_len == 8 { 0 } else { 0xFFu8 >> size_len };
    let mut size = u64::from(first & mask);
    for x in &s[1..size_len] {
        size = (size << 8) | u64::from(*x);
    }
    let unknown = size == (1u64 << (7 * size_len)) - 1;
    Some((id, (!unknown).then_some(size), id_len + size_len))
}

/// The children of a master element's data, as `(id, data)`; stops at the first element that
/// does not fit (a truncated read).
fn children(mut b: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    while let Some((id, Some(size), h)) = element(b) {
        let Some(end) = usize::try_from(size).ok().and_then(|s| s.checked_add(h)) else {
            break;
        };
        if end > b.len() {
            break;
        }
        out.push((id, &b[h..end]));
        b = &b[end..];
    }
    out
}

fn uint(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

async fn mkv(src: &Source, size: u64) -> Result<Option<Vec<f64>>> {
    let head = src.read_at(0, MKV_HEAD_BYTES.min(size)).await?;
    // The EBML header, then the Segment (its size may be unknown).
    let Some((_, Some(ebml_len), h)) = element(&head) else {
        return Ok(None);
    };
    let seg_at = usize::try_from(ebml_len)
        .ok()
        .and_then(|l| l.checked_add(h));
    let Some(seg_at) = seg_at.filter(|s| *s < head.len()) else {
        return Ok(None);
    };
    let Some((SEGMENT, _, seg_h)) = element(&head[seg_at..]) else {
        return Ok(None);
    };
    let data_start = seg_at + seg_h;
    // Top-level elements of the segment that fit in the head: SeekHead, Info, Tracks.
    let mut cues_at = None;
    let mut scale = 1_000_000u64;
    let mut video_track = None;
    let mut b = &head[data_start..];
    while let Some((id, len, h)) = element(b) {
        if id == CLUSTER {
            break;
        }
        let Some(end) = len
            .and_then(|l| usize::try_from(l).ok())
            .and_then(|l| l.checked_add(h))
            .filter(|e| *e <= b.len())
        else {
            break;
        };
        let data = &b[h..end];
        match id {
            SEEK_HEAD => {
                for (sid, seek) in children(data) {
                    if sid != SEEK {
                        continue;
                    }
                    let fields = children(seek);
                    let target = fields
                        .iter()
                        .find(|(i, _)| *i == SEEK_ID)
                        .map(|(_, v)| uint(v));
                    let position = fields
                        .iter()
                        .find(|(i, _)| *i == SEEK_POSITION)
                        .map(|(_, v)| uint(v));
                    if target == Some(u64::from(CUES)) {
                        cues_at = position.and_then(|p| p.checked_add(data_start as u64));
                    }
                }
            }
            INFO => {
                if let Some((_, v)) = children(data)
                    .into_iter()
                    .find(|(i, _)| *i == TIMESTAMP_SCALE)
                {
                    scale = uint(v).max(1);
                }
            }
            TRACKS => {
                video_track = children(data)
                    .into_iter()
                    .filter(|(i, _)| *i == TRACK_ENTRY)
                    .map(|(_, e)| children(e))
                    .find(|f| f.iter().any(|(i, v)| *i == TRACK_TYPE && uint(v) == 1))
                    .and_then(|f| {
                        f.iter()
                            .find(|(i, _)| *i == TRACK_NUMBER)
                            .map(|(_, v)| uint(v))
                    });
            }
            _ => {}
        }
        b = &b[end..];
    }
    let Some(cues_at) = cues_at.filter(|c| *c < size) else {
        return Ok(None);
    };
    let header = src.read_at(cues_at, 12.min(size - cues_at)).await?;
    let Some((CUES, Some(len), h)) = element(&header) else {
        return Ok(None);
    };
    if len > MAX_CUES_BYTES {
        return Err(Error::Index(format!(
            "the Matroska index is {len} bytes, over the {MAX_CUES_BYTES} this reads"
        )));
    }
    let cues = src.read_at(cues_at + h as u64, len).await?;
    let mut times = Vec::new();
    for (id, point) in children(&cues) {
        if id != CUE_POINT {
            continue;
        }
        let fields = children(point);
        let Some(time) = fields
            .iter()
            .find(|(i, _)| *i == CUE_TIME)
            .map(|(_, v)| uint(v))
        else {
            continue;
        };
        let for_video = fields
            .iter()
            .filter(|(i, _)| *i == CUE_TRACK_POSITIONS)
            .any(|(_, p)| {
                children(p)
                    .iter()
                    .find(|(i, _)| *i == CUE_TRACK)
                    .is_some_and(|(_, v)| video_track.is_none_or(|t| uint(v) == t))
            });
        if for_video {
            times.push(time as f64 * scale as f64 / 1e9);
        }
    }
    Ok(Some(times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebml_headers_read_ids_and_sizes() {
        // Cues id, 2-byte size 0x4123 & 0x3FFF.
        assert_eq!(
            element(&[0x1C, 0x53, 0xBB, 0x6B, 0x41, 0x23]),
            Some((CUES, Some(0x123), 6))
        );
        // An unknown size (all ones).
        assert_eq!(element(&[0xBB, 0xFF]), Some((CUE_POINT, None, 2)));
        assert_eq!(element(&[0x00]), None, "ids are at most four bytes");
        assert!(children(&[0xB3, 0x85, 1, 2]).is_empty(), "truncated");
        assert_eq!(children(&[0xB3, 0x81, 7, 0xF7, 0x81, 1]).len(), 2);
    }

    fn ffprobe_keyframes(path: &std::path::Path) -> Vec<f64> {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args(["packet=pts_time,flags", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        let mut t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains('K'))
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect();
        t.sort_by(f64::total_cmp);
        t
    }

    /// MP4 (moov at the end, as ffmpeg writes it by default; B-frames) and Matroska: the
    /// index gives the keyframes ffprobe finds reading every packet.
    #[tokio::test]
    async fn index_keyframes_match_the_packets() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, extra) in [
            ("tail.mp4", &[][..]),
            ("cues.mkv", &[][..]),
            ("fast.mp4", &["-movflags", "+faststart"][..]),
        ] {
            let path = dir.path().join(name);
            let status = std::process::Command::new("ffmpeg")
                .args([
                    "-v",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=320x240:rate=24",
                ])
                .args([
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000",
                    "-t",
                    "12",
                ])
                .args([
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-bf",
                    "2",
                    "-g",
                    "30",
                ])
                .args(["-keyint_min", "10", "-c:a", "aac", "-shortest"])
                .args(extra)
                .arg(&path)
                .status()
                .expect("ffmpeg runs");
            assert!(status.success());
            let size = std::fs::metadata(&path).expect("made").len();
            let got = keyframes(&Source::File(path.clone()), size, name)
                .await
                .expect("readable")
                .expect("indexed");
            let container = if name.ends_with(".mkv") {
                Container::Matroska
            } else {
                Container::Mp4
            };
            assert_eq!(got.container, container, "{name}");
            let got = got.times;
            let want = ffprobe_keyframes(&path);
            assert_eq!(got.len(), want.len(), "{name}: {got:?} vs {want:?}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 0.002, "{name}: {got:?} vs {want:?}");
            }
        }
        // A file with no index this reader knows: MPEG-TS.
        let ts = dir.path().join("plain.ts");
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120:rate=24",
                "-t",
                "2",
            ])
            .args(["-c:v", "libx264", "-preset", "ultrafast"])
            .arg(&ts)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        let size = std::fs::metadata(&ts).expect("made").len();
        assert_eq!(
            keyframes(&Source::File(ts), size, "plain.ts")
                .await
                .expect("read"),
            None
        );
    }
}
