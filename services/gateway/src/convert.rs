//! Protobuf → the original's JSON shapes, field for field (`original-as-built.md`).

use magnet_proto::v1 as pb;
use serde_json::{Value, json};

use crate::auth::{Role, User};

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn node(n: &pb::NodeRecord) -> Value {
    let r = n.resources.unwrap_or_default();
    let m = n.metadata.clone().unwrap_or_default();
    json!({
        "id": n.id,
        "name": n.name,
        "address": n.address,
        "status": n.status,
        "last_seen": rfc3339(n.last_seen_ms),
        "capabilities": n.capabilities,
        "resources": {
            "max_downloads": r.max_downloads,
            "max_transcodes": r.max_transcodes,
            "disk_space_gb": r.disk_space_gb,
            "disk_free_gb": r.disk_free_gb,
        },
        "metadata": { "version": m.version, "arch": m.arch },
        "active_tasks": n.active_tasks,
    })
}

/// The status names the original exposes, plus ours for the steps it did not have.
pub fn status(s: pb::TaskStatus) -> &'static str {
    match s {
        pb::TaskStatus::Unspecified | pb::TaskStatus::Pending => "pending",
        pb::TaskStatus::Downloading => "downloading",
        pb::TaskStatus::Downloaded => "downloaded",
        pb::TaskStatus::Transcoding => "transcoding",
        pb::TaskStatus::Ready => "ready",
        pb::TaskStatus::Error => "error",
        pb::TaskStatus::Cancelled => "cancelled",
    }
}

/// Whether `viewer` submitted `t` or is an admin: then they may delete it and see its whole
/// magnet.
pub fn owns(viewer: &User, t: &pb::Task) -> bool {
    viewer.role == Role::Admin || (!t.owner.is_empty() && t.owner == viewer.id)
}

/// A task as `viewer` may see it: the whole magnet (private trackers' passkeys ride in it)
/// only for its submitter and admins; others get the info-hash form, enough to share it.
pub fn task(t: &pb::Task, viewer: &User) -> Value {
    let magnet = if owns(viewer, t) {
        t.magnet_url.clone()
    } else {
        format!("magnet:?xt=urn:btih:{}", t.info_hash)
    };
    json!({
        "id": t.id,
        "magnet_url": magnet,
        "mine": owns(viewer, t),
        "status": status(t.status()),
        "progress": t.progress.round().clamp(0.0, 100.0) as u32,
        "speed": t.speed,
        "size": t.size,
        "downloaded": t.downloaded,
        "files": t.files,
        "file_count": t.file_count,
        "torrent_name": t.torrent_name,
        "m3u8_path": t.m3u8_path,
        "srts": t.srts,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "worker_id": t.worker_id,
        "error": t.error,
        "detail": t.detail,
        "transcode_path": t.transcode_path,
        "peers": t.peers,
        // Plays already while it downloads (progressive playback); always once ready.
        "playable": t.playable || t.status() == pb::TaskStatus::Ready,
        "transcode_progress": t.transcode_progress.round().clamp(0.0, 100.0) as u32,
    })
}
