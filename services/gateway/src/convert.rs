//! Protobuf → the original's JSON shapes, field for field (`original-as-built.md`).

use magnet_proto::v1 as pb;
use serde_json::{Value, json};

use crate::auth::{Role, User};

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A node as the original's API shows it (`GET /api/nodes`), plus our `kind`.
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
            "disk_used_bytes": r.disk_used_bytes,
            "disk_quota_bytes": r.disk_quota_bytes,
        },
        "metadata": { "version": m.version, "arch": m.arch },
        "active_tasks": n.active_tasks,
        "kind": kind(n.kind()),
    })
}

/// Who runs a node: ours, or the original's Go worker (P2P with the original protocol only).
pub fn kind(k: pb::NodeKind) -> &'static str {
    match k {
        pb::NodeKind::Native => "magnetm3u8",
        pb::NodeKind::Original => "original",
    }
}

/// The status names the original exposes (its `completed` is our `downloaded`: the download
/// is done, the transcode not begun), plus `cancelled`, which it did not have.
pub fn status(s: pb::TaskStatus) -> &'static str {
    match s {
        pb::TaskStatus::Unspecified | pb::TaskStatus::Pending => "pending",
        pb::TaskStatus::Downloading => "downloading",
        pb::TaskStatus::Downloaded => "completed",
        pb::TaskStatus::Transcoding => "transcoding",
        pb::TaskStatus::Ready => "ready",
        pb::TaskStatus::Error => "error",
        pb::TaskStatus::Cancelled => "cancelled",
    }
}

/// The download's percentage as the original shows it: it stays 100 once the download is
/// done (the transcode has its own `transcode_progress`), so the original's bar never goes
/// 100 → 0 → 100.
pub fn download_percent(status: pb::TaskStatus, progress: f64) -> u32 {
    match status {
        pb::TaskStatus::Downloaded | pb::TaskStatus::Transcoding | pb::TaskStatus::Ready => 100,
        _ => percent(progress),
    }
}

/// A percentage for the API: an integer 0–100, as the original's clients expect.
pub fn percent(p: f64) -> u32 {
    p.round().clamp(0.0, 100.0) as u32
}

/// One video of a task's torrent: its size, what is here of it, whether it is the one
/// played, the folder of its HLS under the task's (`""` or `"v<index>"`) and its transcode.
fn video(v: &pb::TaskVideo) -> Value {
    json!({
        "index": v.index,
        "path": v.path,
        "size": v.size,
        "downloaded": v.downloaded,
        "current": v.current,
        "playlist": v.playlist,
        "state": v.state,
        "transcode_progress": percent(v.transcode_progress),
        "error": v.error,
    })
}

/// Uploaded bytes over the size, to two places (what torrent clients call the ratio).
pub fn ratio(uploaded: u64, size: u64) -> f64 {
    if size == 0 {
        return 0.0;
    }
    (uploaded as f64 / size as f64 * 100.0).round() / 100.0
}

/// Whether a task's torrent still seeds: its download completed and seeding was not stopped.
pub fn seeding(status: pb::TaskStatus, stopped: &str) -> bool {
    stopped.is_empty()
        && matches!(
            status,
            pb::TaskStatus::Downloaded | pb::TaskStatus::Transcoding | pb::TaskStatus::Ready
        )
}

/// Whether `viewer` submitted `t` or is an admin: then they may delete it and see its whole
/// magnet.
pub fn owns(viewer: &User, t: &pb::Task) -> bool {
    viewer.role == Role::Admin || (!t.owner.is_empty() && t.owner == viewer.id)
}

/// A task as `viewer` may see it: the whole magnet (private trackers' passkeys ride in it)
/// only for its submitter and admins; other users get the info-hash form, enough to share
/// it; a stranger (a public read without a session) gets no magnet at all.
pub fn task(t: &pb::Task, viewer: &User, node: pb::NodeKind) -> Value {
    let magnet = if owns(viewer, t) {
        t.magnet_url.clone()
    } else if viewer.is_anonymous() {
        String::new()
    } else {
        format!("magnet:?xt=urn:btih:{}", t.info_hash)
    };
    json!({
        "id": t.id,
        "magnet_url": magnet,
        "mine": owns(viewer, t),
        "status": status(t.status()),
        "progress": download_percent(t.status(), t.progress),
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
        "transcode_progress": percent(t.transcode_progress),
        "worker_kind": kind(node),
        "paused": t.paused,
        "uploaded": t.uploaded,
        "ratio": ratio(t.uploaded, t.size),
        "seeding": node == pb::NodeKind::Native && seeding(t.status(), &t.seeding_stopped),
        "seeding_stopped": t.seeding_stopped,
        "pinned": t.pinned,
        "payload_evicted": t.payload_evicted,
        "disk_bytes": t.disk_bytes,
        "last_played_at": t.last_played_at,
        "file_sizes": t.file_sizes,
        "videos": t.videos.iter().map(video).collect::<Vec<_>>(),
    })
}
