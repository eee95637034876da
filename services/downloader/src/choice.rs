//! Choosing what to play: a torrent's videos, the one fetched and played (its submitter's
//! choice, else the largest), and what follows from it.
//!
//! - Only the chosen video and its subtitles are downloaded when the torrent holds more than
//!   one video (librqbit's `only_files`; a single-video torrent downloads whole, as before).
//! - The largest video's HLS is the task's own folder (the original's `index.m3u8` at the top);
//!   any other chosen video gets `v<index>/` beside it, from its own transcode job.
//! - The task's status and playlist follow the chosen video's job; every video's own state is
//!   kept by file index, so switching back to one made earlier plays at once.
//! - Choosing another video stops the transcode of the one before if it is still being made
//!   progressively (its folder's `.progressive` marker goes: its job ends at once), and ends
//!   the stream endpoint's open reads of the files no longer wanted (a reader left open, a
//!   probe of the video before, would make librqbit fetch all of it), so the torrent stops
//!   fetching it; a file not wanted does not open on the stream endpoint.

use std::collections::HashSet;
use std::path::Path;

use magnet_core::task::VideoState;
use magnet_core::{Task, TaskId, TaskStatus, media};

use crate::tasks::Tasks;
use crate::torrent::Handle;
use crate::{Error, Result};

use magnet_core::hls::{PROGRESSIVE_MARKER, STOP_MARKER as STOP, variant_folder, variant_index};

/// The largest video of the files (ties: the first by path), by file index.
pub fn largest_video(files: &[String], sizes: &[u64]) -> Option<u32> {
    files
        .iter()
        .enumerate()
        .filter(|(_, f)| media::is_video(f))
        .max_by(|(a, fa), (b, fb)| {
            let (sa, sb) = (
                sizes.get(*a).copied().unwrap_or(0),
                sizes.get(*b).copied().unwrap_or(0),
            );
            sa.cmp(&sb).then_with(|| fb.cmp(fa))
        })
        .and_then(|(i, _)| u32::try_from(i).ok())
}

/// The video fetched and played: the chosen one, else the largest.
pub fn current(task: &Task) -> Option<u32> {
    task.chosen
        .or_else(|| largest_video(&task.files, &task.file_sizes))
}

/// The folder of video `index`'s HLS under the task's: "" for the largest, else `v<index>`.
pub fn variant(task: &Task, index: u32) -> String {
    if largest_video(&task.files, &task.file_sizes) == Some(index) {
        String::new()
    } else {
        variant_folder(index)
    }
}

/// The file index a job's variant stands for in this task.
fn index_of(task: &Task, variant: &str) -> Option<u32> {
    if variant.is_empty() {
        largest_video(&task.files, &task.file_sizes)
    } else {
        variant_index(variant)
    }
}

fn stem(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.')
        .map_or(name, |(s, _)| s)
        .to_lowercase()
}

/// The subtitle files that go with video `index`: those whose name starts with the video's
/// (`S01E03.mkv` ↔ `S01E03.en.srt`); when no subtitle of the torrent is named after any of
/// its videos, every subtitle.
pub fn subtitles_for(files: &[String], index: u32) -> Vec<usize> {
    let subtitles: Vec<usize> = (0..files.len())
        .filter(|&i| media::is_subtitle(&files[i]))
        .collect();
    let video_stems: Vec<String> = files
        .iter()
        .filter(|f| media::is_video(f))
        .map(|f| stem(f))
        .collect();
    let named = |i: &usize, s: &str| stem(&files[*i]).starts_with(s);
    let own: Vec<usize> = match files.get(index as usize) {
        Some(video) => {
            let s = stem(video);
            subtitles.iter().copied().filter(|i| named(i, &s)).collect()
        }
        None => Vec::new(),
    };
    let any_named = subtitles
        .iter()
        .any(|i| video_stems.iter().any(|s| named(i, s)));
    if any_named { own } else { subtitles }
}

/// The files to download, or none for all of them: a torrent of one video (or a node that
/// transcodes every video) downloads whole; otherwise the current video and its subtitles.
pub fn wanted(task: &Task, all_videos: bool) -> Option<HashSet<usize>> {
    let videos = task.files.iter().filter(|f| media::is_video(f)).count();
    if all_videos || (videos <= 1 && task.chosen.is_none()) {
        return None;
    }
    let index = current(task)?;
    let mut set: HashSet<usize> = subtitles_for(&task.files, index).into_iter().collect();
    set.insert(index as usize);
    Some(set)
}

/// What one transcode job reads, and the folder it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFiles {
    pub indexes: Vec<usize>,
    pub variant: String,
}

/// The task's job: the current video and its subtitles. A node that transcodes every video,
/// or a torrent without one, sends the videos and subtitles (or, with no video, the first few
/// other files, so that the transcoder's error lists what the torrent holds).
pub fn job_files(task: &Task, all_videos: bool) -> JobFiles {
    match current(task) {
        Some(index) if !all_videos => video_job(task, index),
        _ => {
            let mut indexes: Vec<usize> = (0..task.files.len())
                .filter(|&i| media::is_video(&task.files[i]) || media::is_subtitle(&task.files[i]))
                .collect();
            if !indexes.iter().any(|&i| media::is_video(&task.files[i])) {
                indexes.extend(
                    (0..task.files.len())
                        .filter(|&i| !media::is_subtitle(&task.files[i]))
                        .take(20),
                );
            }
            JobFiles {
                indexes,
                variant: String::new(),
            }
        }
    }
}

/// The job of video `index`: it, its subtitles, and its folder.
fn video_job(task: &Task, index: u32) -> JobFiles {
    let mut indexes = vec![index as usize];
    indexes.extend(subtitles_for(&task.files, index));
    JobFiles {
        indexes,
        variant: variant(task, index),
    }
}

impl Tasks {
    /// Makes video `index` the one fetched and played: only it and its subtitles download
    /// from now on, the transcode of the one before stops if it was still being made, and
    /// its own job goes out unless its HLS is made or being made already.
    #[tracing::instrument(skip(self))]
    pub async fn play(&self, id: &str, index: u32) -> Result<Task> {
        let id = TaskId::parse(id)?;
        let task = self.store().get(&id).await?;
        if task.files.is_empty() {
            return Err(Error::Unsupported(
                "the torrent's file list has not arrived yet; try again in a moment",
            ));
        }
        if !task
            .files
            .get(index as usize)
            .is_some_and(|f| media::is_video(f))
        {
            return Err(Error::Unsupported(
                "that file is not a video of this torrent",
            ));
        }
        if matches!(task.status, TaskStatus::Error | TaskStatus::Cancelled) {
            return Err(Error::Unsupported("the task ended; retry it first"));
        }
        if self.settings().transcoding.all_videos {
            return Err(Error::Unsupported(
                "this node transcodes every video of a torrent (transcoding.all_videos)",
            ));
        }
        let before = current(&task);
        self.store().set_chosen(&id, index).await?;
        let task = self.store().get(&id).await?;
        // A torrent still checking its files takes the choice when its driver starts it.
        if let Some(handle) = self
            .engine()
            .get(&task.info_hash)
            .filter(|h| !crate::torrent::snapshot(h).checking)
        {
            self.apply_choice(&id, &handle).await?;
            // Past its download the torrent may be paused (seeding over): it fetches the newly
            // chosen file. While it downloads, its driver runs it; paused by its submitter, it
            // stays so.
            if !task.status.is_downloading() && !task.paused {
                self.engine().resume(&handle).await?;
            }
        }
        if let Some(previous) = before.filter(|&p| p != index) {
            self.stop_video(&task, previous).await?;
        }
        // Before the torrent starts, its driver sends the job of whatever is chosen then.
        if self.store().job_published(&id).await? && !self.video_in_hand(&task, index).await {
            self.send_video_job(&task, index).await?;
        }
        let task = self.get(id.as_str()).await?;
        self.publish_progress(&task).await;
        Ok(task)
    }

    /// Points the torrent at what the task's choice wants now, and ends the open streams of
    /// the other files. One at a time, each reading the choice under the lock: a driver
    /// starting the torrent and a choice made meanwhile cannot leave the older choice applied.
    pub(crate) async fn apply_choice(&self, id: &TaskId, handle: &Handle) -> Result<()> {
        let _one = self.choosing().lock().await;
        let task = self.store().get(id).await?;
        if let Some(files) = wanted(&task, self.settings().transcoding.all_videos) {
            self.engine().set_only_files(handle, &files).await?;
            self.streams().end_unwanted(id, &files);
        }
        Ok(())
    }

    /// Whether video `index`'s HLS is made, or being made, already.
    async fn video_in_hand(&self, task: &Task, index: u32) -> bool {
        let state = task.videos.get(&index).map(|v| v.state.as_str());
        if matches!(state, Some("queued" | "transcoding" | "playable" | "ready")) {
            return true;
        }
        if state == Some("stopped") {
            return false;
        }
        let folder = self.video_folder(task, index);
        // The task's first job reports as it goes; until it does, its folder tells.
        let there = |f: &str| tokio::fs::try_exists(folder.join(f));
        there(PROGRESSIVE_MARKER).await.unwrap_or(false)
            || there("index.m3u8").await.unwrap_or(false)
    }

    /// Publishes video `index`'s own job (progressive while its file is still coming).
    async fn send_video_job(&self, task: &Task, index: u32) -> Result<()> {
        let complete = self
            .engine()
            .get(&task.info_hash)
            .map(|h| h.stats())
            .and_then(|s| s.file_progress.get(index as usize).copied())
            .zip(task.file_sizes.get(index as usize).copied())
            .is_some_and(|(have, size)| have >= size);
        let progressive = !complete && self.settings().transcoding.progressive_playback();
        let stop = self.video_folder(task, index).join(STOP);
        match tokio::fs::remove_file(&stop).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    path: stop,
                    source: e,
                });
            }
            _ => {}
        }
        let nonce = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        self.send_job(task, &video_job(task, index), progressive, Some(nonce))
            .await?;
        self.store()
            .set_video_state(
                &task.id,
                index,
                &VideoState {
                    state: "queued".into(),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    /// The folder of video `index`'s HLS.
    fn video_folder(&self, task: &Task, index: u32) -> std::path::PathBuf {
        let mut folder = self.m3u8().join(task.id.as_str());
        let variant = variant(task, index);
        if !variant.is_empty() {
            folder.push(&variant);
        }
        folder
    }

    /// Stops video `index`'s transcode unless its HLS is whole: its job stops, queued or
    /// running (the folder's stop mark), and the segments it made go.
    async fn stop_video(&self, task: &Task, index: u32) -> Result<()> {
        let folder = self.video_folder(task, index);
        let whole = tokio::fs::try_exists(folder.join("index.m3u8"))
            .await
            .unwrap_or(false)
            && !tokio::fs::try_exists(folder.join(PROGRESSIVE_MARKER))
                .await
                .unwrap_or(false);
        if whole {
            return Ok(());
        }
        let io = |source| Error::Io {
            path: folder.clone(),
            source,
        };
        tokio::fs::create_dir_all(&folder).await.map_err(io)?;
        tokio::fs::write(folder.join(STOP), b"").await.map_err(io)?;
        remove_files(&folder).await?;
        self.store()
            .set_video_state(
                &task.id,
                index,
                &VideoState {
                    state: "stopped".into(),
                    ..Default::default()
                },
            )
            .await?;
        tracing::info!(task = %task.id, index, "the video before the choice is no longer made");
        Ok(())
    }

    /// Records what a transcode event says of its video; true when the event is about the
    /// video currently played, and so also about the task.
    pub(crate) async fn record_video_event(
        &self,
        task: &Task,
        variant: &str,
        kind: &magnet_proto::v1::transcode_event::Kind,
    ) -> Result<bool> {
        use magnet_proto::v1::transcode_event::Kind;
        let Some(index) = index_of(task, variant) else {
            return Ok(variant.is_empty());
        };
        let mut state = task.videos.get(&index).cloned().unwrap_or_default();
        match kind {
            Kind::Started(_) => state.state = "transcoding".into(),
            Kind::Progress(p) => {
                state.progress = p.progress.clamp(0.0, 100.0);
                if state.state.is_empty() || state.state == "queued" {
                    state.state = "transcoding".into();
                }
            }
            Kind::Playable(_) => state.state = "playable".into(),
            Kind::Ready(_) => {
                state.state = "ready".into();
                state.progress = 100.0;
            }
            Kind::Failed(f) => {
                state.state = "error".into();
                state.error = f.error.clone();
            }
        }
        // A stopped video's job may still report on its way out: it stays stopped.
        let stopped = task
            .videos
            .get(&index)
            .is_some_and(|v| v.state == "stopped")
            && !matches!(kind, Kind::Ready(_));
        if !stopped {
            self.store()
                .set_video_state(&task.id, index, &state)
                .await?;
        }
        Ok(current(task) == Some(index) && !stopped)
    }
}

/// Removes the files of an HLS folder, not the folders of other videos inside it.
async fn remove_files(folder: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: folder.to_owned(),
        source,
    };
    // The marker first: the job sees it gone and stops writing.
    match tokio::fs::remove_file(folder.join(PROGRESSIVE_MARKER)).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let mut entries = tokio::fs::read_dir(folder).await.map_err(io)?;
    while let Some(entry) = entries.next_entry().await.map_err(io)? {
        if entry.file_name() != STOP && entry.file_type().await.is_ok_and(|t| t.is_file()) {
            match tokio::fs::remove_file(entry.path()).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack() -> Vec<String> {
        [
            "Show/S01E01.mkv",
            "Show/S01E02.mkv",
            "Show/S01E03.mkv",
            "Show/S01E03.en.srt",
            "Show/S01E01.en.srt",
            "Show/notes.nfo",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    #[test]
    fn the_largest_video_and_each_videos_own_subtitles() {
        let files = pack();
        let sizes = [50, 70, 60, 1, 1, 1];
        assert_eq!(largest_video(&files, &sizes), Some(1));
        assert_eq!(subtitles_for(&files, 2), vec![3]);
        assert_eq!(subtitles_for(&files, 0), vec![4]);
        assert!(subtitles_for(&files, 1).is_empty());
        // Subtitles named after no video go with every video.
        let movie: Vec<String> = ["Movie.mkv", "English.srt", "French.srt"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(subtitles_for(&movie, 0), vec![1, 2]);
    }
}
