//! Domain ↔ protobuf at the downloader's edge; nothing else in the crate builds wire types
//! by hand.

use magnet_core::{Task, TaskStatus};
use magnet_proto::v1 as pb;

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

pub fn task(t: Task) -> pb::Task {
    pb::Task {
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
    }
}
