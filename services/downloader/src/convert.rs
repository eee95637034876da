//! Domain ↔ protobuf of tasks at the downloader's edge: a `Task` and its status as the
//! gateway reads them. The other wire types are built where they are made: the node's
//! record in `registry.rs`, transcode jobs in `tasks.rs`, the gRPC answers in `api.rs`.

use magnet_core::{Task, TaskStatus};
use magnet_proto::v1 as pb;

/// The wire form of a task's status; every domain status has exactly one.
pub fn status(s: TaskStatus) -> pb::TaskStatus {
    match s {
        TaskStatus::Pending => pb::TaskStatus::Pending,
        TaskStatus::Downloading => pb::TaskStatus::Downloading,
        TaskStatus::Downloaded => pb::TaskStatus::Downloaded,
        TaskStatus::Transcoding => pb::TaskStatus::Transcoding,
        TaskStatus::Ready => pb::TaskStatus::Ready,
        TaskStatus::Error => pb::TaskStatus::Error,
        TaskStatus::Cancelled => pb::TaskStatus::Cancelled,
    }
}

/// Files a task summary (`List`) carries; the rest are counted in `file_count`.
pub const SUMMARY_FILES: usize = 8;
/// Files a `Get` answer carries when the caller asks for no page size, and at most.
pub const FILES_PAGE: usize = 1000;

/// A task as `List` sends it: bounded whatever the torrent holds.
pub fn summary(mut t: Task) -> pb::Task {
    let count = file_count(&t);
    let videos = videos(&t);
    t.files.truncate(SUMMARY_FILES);
    t.file_sizes.truncate(SUMMARY_FILES);
    t.segments = Vec::new();
    pb::Task {
        file_count: count,
        videos,
        ..task(t)
    }
}

/// Videos a task lists at most (a season pack has tens).
pub const MAX_VIDEOS: usize = 200;

/// The torrent's videos, each with its size, what is here of it and its own transcode.
fn videos(t: &Task) -> Vec<pb::TaskVideo> {
    let current = crate::choice::current(t);
    t.files
        .iter()
        .enumerate()
        .filter(|(_, f)| magnet_core::media::is_video(f))
        .take(MAX_VIDEOS)
        .filter_map(|(i, path)| {
            let index = u32::try_from(i).ok()?;
            let state = t.videos.get(&index).cloned().unwrap_or_default();
            let size = t.file_sizes.get(i).copied().unwrap_or(0);
            let downloaded = match t.file_progress.get(i) {
                Some(have) => *have,
                // Not loaded: a finished download holds what was wanted of it.
                None if current == Some(index) && !t.status.is_downloading() => size,
                None => 0,
            };
            Some(pb::TaskVideo {
                index,
                path: path.clone(),
                size,
                downloaded: downloaded.min(size),
                current: current == Some(index),
                playlist: crate::choice::variant(t, index),
                state: state.state,
                transcode_progress: state.progress,
                error: state.error,
            })
        })
        .collect()
}

fn file_count(t: &Task) -> u32 {
    u32::try_from(t.files.len()).unwrap_or(u32::MAX)
}

/// A task as `Get` sends it: one page of its files, from `offset`, at most `limit`
/// (0 or over [`FILES_PAGE`]: [`FILES_PAGE`]).
pub fn page(mut t: Task, offset: u32, limit: u32) -> pb::Task {
    let limit = match limit as usize {
        0 => FILES_PAGE,
        n => n.min(FILES_PAGE),
    };
    let count = file_count(&t);
    let videos = videos(&t);
    t.files = t
        .files
        .into_iter()
        .skip(offset as usize)
        .take(limit)
        .collect();
    t.file_sizes = t
        .file_sizes
        .into_iter()
        .skip(offset as usize)
        .take(limit)
        .collect();
    pb::Task {
        file_count: count,
        videos,
        ..task(t)
    }
}

/// A task with all its files, as `Submit`, `Pause`, `Retry`, `StopSeeding` and `Pin` answer;
/// [`summary`] and [`page`] build on it and bound the file list.
pub fn task(t: Task) -> pb::Task {
    let videos = videos(&t);
    pb::Task {
        file_count: file_count(&t),
        id: t.id.to_string(),
        magnet_url: t.magnet_url,
        status: status(t.status).into(),
        progress: t.progress,
        speed: t.speed,
        size: t.size,
        downloaded: t.downloaded,
        files: t.files,
        torrent_name: t.torrent_name,
        m3u8_path: t.m3u8_path.unwrap_or_default(),
        srts: t.srts,
        segments: t.segments,
        created_at: t.created_at,
        updated_at: t.updated_at,
        worker_id: t.node_id,
        info_hash: t.info_hash,
        error: t.error.unwrap_or_default(),
        detail: t.detail,
        peers: t.peers,
        transcode_path: t.transcode_path.unwrap_or_default(),
        owner: t.owner,
        playable: t.playable,
        transcode_progress: t.transcode_progress,
        paused: t.paused,
        uploaded: t.uploaded,
        seeding_stopped: t.seeding_stopped.unwrap_or_default(),
        pinned: t.pinned,
        payload_evicted: t.payload_evicted,
        disk_bytes: t.disk_bytes,
        last_played_at: t.last_played_at.unwrap_or_default(),
        file_sizes: t.file_sizes,
        videos,
    }
}

/// A progress event carrying a task's current figures.
pub fn progress(t: &Task) -> pb::TaskProgress {
    pb::TaskProgress {
        task_id: t.id.to_string(),
        node_id: t.node_id.clone(),
        status: status(t.status).into(),
        progress: t.progress,
        downloaded: t.downloaded,
        size: t.size,
        speed: t.speed,
        peers: t.peers,
        detail: if t.status == TaskStatus::Error {
            t.error.clone().unwrap_or_default()
        } else {
            t.detail.clone()
        },
        timestamp_ms: chrono::Utc::now().timestamp_millis(),
        playable: t.playable,
        transcode_progress: t.transcode_progress,
        paused: t.paused,
        uploaded: t.uploaded,
        seeding_stopped: t.seeding_stopped.clone().unwrap_or_default(),
    }
}
