//! The HLS output folder: built in `m3u8/.<task_id>.partial`, checked, then renamed into
//! `m3u8/<task_id>/` in one step, so a half-written output is never visible. Also the
//! subtitle renditions (`master.rs` has `master.m3u8`).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where a job's output is built.
pub fn partial_dir(final_dir: &Path) -> PathBuf {
    let name = final_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_dir.with_file_name(format!(".{name}.partial"))
}

/// Removes a folder if it exists.
pub async fn remove(dir: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir)(e)),
        _ => Ok(()),
    }
}

/// An empty partial folder (leftovers of a crashed attempt removed).
pub async fn fresh(partial: &Path) -> Result<()> {
    remove(partial).await?;
    tokio::fs::create_dir_all(partial)
        .await
        .map_err(Error::io(partial))
}

/// The segment URIs of a finished VOD playlist; an unfinished one (no `#EXT-X-ENDLIST`, as a
/// killed ffmpeg leaves) is an error, never counted as complete.
pub async fn segments(playlist: &Path, name: &str) -> Result<(Vec<String>, f64)> {
    let text = tokio::fs::read_to_string(playlist)
        .await
        .map_err(Error::io(playlist))?;
    if !text.lines().any(|l| l.trim() == "#EXT-X-ENDLIST") {
        return Err(Error::IncompletePlaylist { name: name.into() });
    }
    let mut duration = 0.0;
    let mut segments = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration += d
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        } else if !line.is_empty() && !line.starts_with('#') {
            segments.push(line.to_owned());
        }
    }
    Ok((segments, duration))
}

/// Empties a task's HLS folder for a new attempt, keeping the folders of videos chosen apart
/// (their own jobs write them). A folder whose video is no longer wanted is left alone and
/// the job stops ([`Error::TaskGone`]).
pub async fn clear(dir: &Path) -> Result<()> {
    if stopped(dir).await {
        return Err(Error::TaskGone);
    }
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    while let Some(entry) = entries.next_entry().await.map_err(Error::io(dir))? {
        let path = entry.path();
        let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
        if is_dir && is_variant(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let gone = if is_dir {
            tokio::fs::remove_dir_all(&path).await
        } else {
            tokio::fs::remove_file(&path).await
        };
        match gone {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path)(e)),
            _ => {}
        }
    }
    Ok(())
}

/// Whether the job writing `final_dir` is no longer wanted.
pub async fn stopped(final_dir: &Path) -> bool {
    tokio::fs::try_exists(final_dir.join(magnet_core::hls::STOP_MARKER))
        .await
        .unwrap_or(false)
}

/// A chosen video's folder name: `v` and its file index.
pub fn is_variant(name: &str) -> bool {
    magnet_core::hls::variant_index(name).is_some()
}

/// Moves the finished output into place, replacing an older one (but not the folders of
/// videos chosen apart, which their own jobs make).
pub async fn publish(partial: &Path, final_dir: &Path) -> Result<()> {
    if let Ok(mut entries) = tokio::fs::read_dir(final_dir).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let chosen = is_variant(&name);
            let target = partial.join(&name);
            if chosen
                && entry.file_type().await.is_ok_and(|t| t.is_dir())
                && !tokio::fs::try_exists(&target).await.unwrap_or(true)
            {
                tokio::fs::rename(entry.path(), &target)
                    .await
                    .map_err(Error::io(&target))?;
            }
        }
    }
    remove(final_dir).await?;
    tokio::fs::rename(partial, final_dir)
        .await
        .map_err(Error::io(final_dir))
}

/// A file name made safe: letters, digits, `.`, `-`, `_` only.
pub fn safe_name(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() { "subtitle".into() } else { s }
}

/// One WebVTT subtitle track next to the playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// File name of the `.vtt`.
    pub file: String,
    pub name: String,
    pub language: Option<String>,
}

/// A single-segment media playlist for a subtitle track (HLS renditions point at playlists).
pub fn subtitle_playlist(track: &Track, duration: f64) -> String {
    let target = duration.ceil().max(1.0) as u64;
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:{duration:.3},\n{}\n#EXT-X-ENDLIST\n",
        track.file
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_dir_is_hidden_beside_the_final_one() {
        assert_eq!(
            partial_dir(Path::new("/d/m3u8/task_1")),
            PathBuf::from("/d/m3u8/.task_1.partial")
        );
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("Épisode 1.fr"), "_pisode_1.fr");
        assert_eq!(safe_name(""), "subtitle");
    }

    #[tokio::test]
    async fn unfinished_playlists_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("index.m3u8");
        std::fs::write(&p, "#EXTM3U\n#EXTINF:6.0,\nindex0.ts\n").expect("write");
        assert!(matches!(
            segments(&p, "x").await,
            Err(Error::IncompletePlaylist { .. })
        ));
        std::fs::write(
            &p,
            "#EXTM3U\n#EXTINF:6.000,\nindex0.ts\n#EXTINF:2.5,\nindex1.ts\n#EXT-X-ENDLIST\n",
        )
        .expect("write");
        let (segs, dur) = segments(&p, "x").await.expect("complete");
        assert_eq!(segs, vec!["index0.ts", "index1.ts"]);
        assert!((dur - 8.5).abs() < 1e-9);
    }
}
