//! The original worker's side of `/ws/nodes` as its Go code speaks it
//! (`original-as-built.md`): frames `{"type", "payload"}`, except the first, a bare NodeInfo.
//! Every field is bounded when read (Go writes `null` for an empty list, so lists accept it),
//! and converted to our types: a [`pb::NodeRecord`], [`pb::Task`]s.

use magnet_core::{Magnet, NodeId, TaskId};
use magnet_proto::v1 as pb;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

/// Longest name, address, version or arch taken from a worker.
const MAX_TEXT: usize = 256;
/// Capabilities kept from a registration.
const MAX_CAPABILITIES: usize = 16;
/// Files of a listed task kept in its summary (as our nodes' `List` answers).
pub const SUMMARY_FILES: usize = 8;
/// Files of one task kept at most.
const MAX_FILES: usize = 100_000;

/// `null` (Go's empty slice or absent pointer) as the type's default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A number as Go writes it (an integer, or a float for a progress), clamped to `u64`.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = Option::<f64>::deserialize(d)?.unwrap_or(0.0);
    Ok(if n.is_finite() && n > 0.0 { n as u64 } else { 0 })
}

fn bounded(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_TEXT).collect()
}

#[derive(Debug, Default, Deserialize)]
struct Resources {
    #[serde(default, deserialize_with = "count")]
    max_downloads: u64,
    #[serde(default, deserialize_with = "count")]
    max_transcodes: u64,
    #[serde(default, deserialize_with = "count")]
    disk_space_gb: u64,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default, deserialize_with = "nullable")]
    version: String,
    #[serde(default, deserialize_with = "nullable")]
    arch: String,
}

/// The registration: the worker's first message.
#[derive(Debug, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    address: String,
    #[serde(default, deserialize_with = "nullable")]
    capabilities: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    resources: Resources,
    #[serde(default, deserialize_with = "nullable")]
    metadata: Metadata,
}

/// Why a worker's first message is no registration; the socket is closed with it.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("the first message must be the worker's NodeInfo: {0}")]
    Malformed(String),
    #[error(transparent)]
    Id(#[from] magnet_core::node::InvalidNodeId),
}

impl NodeInfo {
    /// The worker's NodeInfo and its id, checked (1-63 characters of `a-z`, `0-9` and `-`).
    pub fn parse(text: &str) -> Result<(NodeId, Self), RegistrationError> {
        let info: Self =
            serde_json::from_str(text).map_err(|e| RegistrationError::Malformed(e.to_string()))?;
        let id = NodeId::parse(&info.id)?;
        Ok((id, info))
    }

    /// The registry record of this worker, held by `connection`.
    pub fn record(&self, connection: &str, now_ms: i64) -> pb::NodeRecord {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        pb::NodeRecord {
            id: self.id.clone(),
            name: bounded(&self.name),
            address: bounded(&self.address),
            status: "online".into(),
            capabilities: self
                .capabilities
                .iter()
                .take(MAX_CAPABILITIES)
                .map(|c| bounded(c))
                .collect(),
            resources: Some(pb::NodeResources {
                max_downloads: clamp(self.resources.max_downloads),
                max_transcodes: clamp(self.resources.max_transcodes),
                disk_space_gb: self.resources.disk_space_gb,
                disk_free_gb: 0,
                ..Default::default()
            }),
            metadata: Some(pb::NodeMetadata {
                version: bounded(&self.metadata.version),
                arch: bounded(&self.metadata.arch),
            }),
            last_seen_ms: now_ms,
            kind: pb::NodeKind::Original.into(),
            connection: connection.to_owned(),
            ..Default::default()
        }
    }
}

/// A file of a task: a display path in `tasks_response`, an object in `task_detail_response`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum FileEntry {
    Path(String),
    Detail {
        #[serde(default, deserialize_with = "nullable")]
        file_path: String,
        #[serde(default, deserialize_with = "nullable")]
        file_name: String,
    },
}

impl FileEntry {
    fn path(&self) -> &str {
        match self {
            Self::Path(p) => p,
            Self::Detail {
                file_path,
                file_name,
            } => {
                if file_path.is_empty() {
                    file_name
                } else {
                    file_path
                }
            }
        }
    }
}

/// A task as the original worker reports it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OriginalTask {
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    magnet_url: String,
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default, deserialize_with = "count")]
    progress: u64,
    #[serde(default, deserialize_with = "count")]
    speed: u64,
    #[serde(default, deserialize_with = "count")]
    size: u64,
    #[serde(default, deserialize_with = "count")]
    downloaded: u64,
    #[serde(default, deserialize_with = "nullable")]
    files: Vec<FileEntry>,
    #[serde(default, deserialize_with = "nullable")]
    torrent_name: String,
    #[serde(default, deserialize_with = "nullable")]
    m3u8_path: String,
    #[serde(default, deserialize_with = "nullable")]
    srts: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    created_at: String,
    #[serde(default, deserialize_with = "nullable")]
    updated_at: String,
}

/// The original's statuses in ours: its `completed` is our `downloaded`; `processing`, which
/// its page knows, is a transcode. An unknown word reads as pending.
fn status(s: &str) -> pb::TaskStatus {
    match s {
        "downloading" => pb::TaskStatus::Downloading,
        "completed" => pb::TaskStatus::Downloaded,
        "processing" | "transcoding" => pb::TaskStatus::Transcoding,
        "ready" => pb::TaskStatus::Ready,
        "error" | "failed" => pb::TaskStatus::Error,
        _ => pb::TaskStatus::Pending,
    }
}

impl OriginalTask {
    /// Our task for it, on `node`, with `files` cut to `[offset, offset + limit)`; `None` when
    /// its id is not the original's `task_<digits>` (it could not be asked for again).
    pub fn into_task(self, node: &str, offset: usize, limit: usize) -> Option<pb::Task> {
        TaskId::parse(&self.id).ok()?;
        let status = status(&self.status);
        let file_count = u32::try_from(self.files.len().min(MAX_FILES)).unwrap_or(u32::MAX);
        let files = self
            .files
            .iter()
            .skip(offset)
            .take(limit)
            .map(|f| bounded_path(f.path()))
            .collect();
        let info_hash = Magnet::parse(&self.magnet_url)
            .map(|m| m.info_hash.to_string())
            .unwrap_or_default();
        Some(pb::Task {
            id: self.id,
            magnet_url: self.magnet_url,
            status: status.into(),
            progress: self.progress.min(100) as f64,
            speed: self.speed,
            size: self.size,
            downloaded: self.downloaded,
            files,
            torrent_name: bounded(&self.torrent_name),
            m3u8_path: bounded(&self.m3u8_path),
            srts: self.srts.iter().take(64).map(|s| bounded_path(s)).collect(),
            created_at: bounded(&self.created_at),
            updated_at: bounded(&self.updated_at),
            worker_id: node.to_owned(),
            info_hash,
            file_count,
            playable: status == pb::TaskStatus::Ready,
            transcode_progress: if status == pb::TaskStatus::Ready {
                100.0
            } else {
                0.0
            },
            ..Default::default()
        })
    }
}

fn bounded_path(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(4096).collect()
}

/// A message from the worker after its registration.
#[derive(Debug)]
pub enum Inbound {
    Heartbeat,
    /// Sent once after a submit: the new task's id.
    TaskStatus { task_id: String },
    Tasks {
        request_id: String,
        tasks: Vec<OriginalTask>,
    },
    TaskDetail {
        task_id: String,
        task: Option<Box<OriginalTask>>,
    },
    Answer { session_id: String, sdp: String },
    Ice { session_id: String, candidate: String },
    /// A type we do not use (logged, ignored).
    Other(String),
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
struct TasksPayload {
    #[serde(default, deserialize_with = "nullable")]
    request_id: String,
    #[serde(default, deserialize_with = "nullable")]
    tasks: Vec<OriginalTask>,
}

#[derive(Deserialize)]
struct DetailPayload {
    #[serde(default, deserialize_with = "nullable")]
    task_id: String,
    #[serde(default)]
    found: bool,
    #[serde(default)]
    task: Option<OriginalTask>,
}

impl Inbound {
    /// A worker's frame `{"type", "payload"}`; a type we do not use is [`Inbound::Other`], a
    /// frame that does not parse an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let frame: Frame = serde_json::from_str(text).map_err(|e| format!("malformed: {e}"))?;
        let p = frame.payload;
        let text_of = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
        Ok(match frame.kind.as_str() {
            "heartbeat" => Self::Heartbeat,
            "task_status" => Self::TaskStatus {
                task_id: text_of("task_id"),
            },
            "tasks_response" => {
                let t: TasksPayload =
                    serde_json::from_value(p).map_err(|e| format!("tasks_response: {e}"))?;
                Self::Tasks {
                    request_id: t.request_id,
                    tasks: t.tasks,
                }
            }
            "task_detail_response" => {
                let d: DetailPayload = serde_json::from_value(p)
                    .map_err(|e| format!("task_detail_response: {e}"))?;
                Self::TaskDetail {
                    task_id: d.task_id,
                    task: d.task.filter(|_| d.found).map(Box::new),
                }
            }
            "webrtc_answer" => Self::Answer {
                session_id: text_of("session_id"),
                sdp: text_of("sdp"),
            },
            "ice_candidate" => Self::Ice {
                session_id: text_of("session_id"),
                candidate: text_of("candidate"),
            },
            other => Self::Other(bounded(other)),
        })
    }
}

/// Seconds since the epoch, as the original's messages carry them.
fn timestamp() -> i64 {
    chrono::Utc::now().timestamp()
}

fn frame(kind: &str, payload: Value) -> String {
    json!({ "type": kind, "payload": payload }).to_string()
}

/// The answer to a worker's NodeInfo, once it is in the registry and calls can reach it.
pub fn registration_confirmed(node: &str) -> String {
    frame(
        "registration_confirmed",
        json!({ "node_id": node, "status": "registered" }),
    )
}

/// Asks the worker for its tasks; its `tasks_response` carries `request_id` back.
pub fn get_tasks(request_id: &str) -> String {
    frame(
        "get_tasks",
        json!({ "request_id": request_id, "timestamp": timestamp() }),
    )
}

/// Asks the worker for one task with its files; it answers with `task_detail_response`.
pub fn get_task_detail(task_id: &str) -> String {
    frame(
        "get_task_detail",
        json!({ "task_id": task_id, "timestamp": timestamp() }),
    )
}

/// Has the worker download `magnet_url`; the `task_status` that follows names the new task.
pub fn task_submit(magnet_url: &str) -> String {
    frame(
        "task_submit",
        json!({ "magnet_url": magnet_url, "timestamp": timestamp() }),
    )
}

/// The browser's offer, as the original's gateway forwards it.
pub fn webrtc_offer(node: &str, session_id: &str, sdp: &str) -> String {
    frame(
        "webrtc_offer",
        json!({ "sdp": sdp, "client_id": session_id, "session_id": session_id, "worker_id": node }),
    )
}

/// One of the browser's candidates, unchanged.
pub fn ice_candidate(session_id: &str, candidate: &str) -> String {
    frame(
        "ice_candidate",
        json!({ "candidate": candidate, "session_id": session_id, "is_client": true }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_as_the_original_sends_it() {
        let text = r#"{"id":"worker-001","name":"Main Worker","address":"192.168.1.100","status":"online",
            "capabilities":["torrent","transcode","webrtc"],
            "resources":{"max_downloads":5,"max_transcodes":2,"disk_space_gb":500},
            "metadata":{"version":"1.0.0","arch":"amd64"}}"#;
        let (id, info) = NodeInfo::parse(text).expect("parses");
        assert_eq!(id.as_str(), "worker-001");
        let r = info.record("c1", 7);
        assert_eq!(r.kind(), pb::NodeKind::Original);
        assert_eq!((r.status.as_str(), r.connection.as_str()), ("online", "c1"));
        assert_eq!(r.resources.map(|r| r.max_transcodes), Some(2));
        assert_eq!(r.metadata.map(|m| m.arch), Some("amd64".into()));
        // Go's nil slices and maps.
        let (_, bare) =
            NodeInfo::parse(r#"{"id":"w","capabilities":null,"resources":null}"#).expect("nulls");
        assert!(bare.record("c", 0).capabilities.is_empty());
        for bad in [r#"{"type":"heartbeat"}"#, r#"{"id":"Worker_1"}"#, "[]", "x"] {
            assert!(NodeInfo::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tasks_as_the_original_lists_them() {
        let text = r#"{"type":"tasks_response","payload":{"request_id":"req_1_2","tasks":[
            {"id":"task_1700000000000","magnet_url":"magnet:?xt=urn:btih:c9e15763f722f23e98a29decdfae341b98d53056",
             "status":"completed","progress":100,"speed":0,"size":1000,"downloaded":1000,
             "files":["a/film.mp4","a/film.srt"],"torrent_name":"a","m3u8_path":"","srts":null,
             "created_at":"2026-01-02T03:04:05.123456789Z","updated_at":"2026-01-02T03:04:05Z","worker_id":"x"},
            {"id":"../etc","status":"ready"}]}}"#;
        let Ok(Inbound::Tasks { request_id, tasks }) = Inbound::parse(text) else {
            panic!("tasks_response");
        };
        assert_eq!(request_id, "req_1_2");
        let converted: Vec<_> = tasks
            .into_iter()
            .filter_map(|t| t.into_task("worker-001", 0, SUMMARY_FILES))
            .collect();
        assert_eq!(converted.len(), 1, "a task id that is not task_<digits> is left out");
        let t = &converted[0];
        assert_eq!(t.status(), pb::TaskStatus::Downloaded);
        assert_eq!((t.progress, t.file_count), (100.0, 2));
        assert_eq!(t.worker_id, "worker-001");
        assert_eq!(t.info_hash, "c9e15763f722f23e98a29decdfae341b98d53056");
    }

    #[test]
    fn detail_files_are_objects() {
        let text = r#"{"type":"task_detail_response","payload":{"task_id":"task_5","found":true,
            "task":{"id":"task_5","status":"ready","files":[{"file_name":"f.mp4","file_size":3,"file_path":"d/f.mp4","is_selected":true}]}}}"#;
        let Ok(Inbound::TaskDetail { task_id, task }) = Inbound::parse(text) else {
            panic!("detail");
        };
        assert_eq!(task_id, "task_5");
        let t = task.and_then(|t| t.into_task("w", 0, 10)).expect("task");
        assert_eq!(t.files, ["d/f.mp4"]);
        assert!(t.playable);
        let missing = r#"{"type":"task_detail_response","payload":{"task_id":"task_6","found":false,"task":null}}"#;
        assert!(matches!(
            Inbound::parse(missing),
            Ok(Inbound::TaskDetail { task: None, .. })
        ));
    }
}
