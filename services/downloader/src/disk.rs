//! The node's disk: what each task's folders hold, the quota for payloads and HLS together
//! (`limits.disk_quota_mb`), and eviction to make room for a new task.
//!
//! A task's footprint is its payload (`downloads/<id>`) plus its HLS (`m3u8/<id>`, and the
//! partial folder of a transcode at work). A new task is expected to take its payload plus as
//! much again for the HLS of its videos; a task still working is counted at the larger of
//! what it holds and twice its size. When a new task does not fit, the least recently played
//! finished tasks give up their payloads first (HLS is what is served, so they still play),
//! then their HLS (the task goes); a pinned task, or one played within [`PLAYING`], is never
//! touched. The plan is made whole before anything is deleted: when even every candidate
//! would not be enough, the new task is refused and nothing is lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use magnet_core::{Task, TaskId, TaskStatus, media};
use tokio_util::sync::CancellationToken;

use crate::tasks::Tasks;
use crate::torrent;
use crate::{Error, Result};

/// A task a viewer fetched a file of within this long counts as being played.
pub const PLAYING: Duration = Duration::from_secs(120);

/// Bytes a new task is expected to take: its payload, and its videos again as HLS.
pub fn expected_bytes(files: &[(String, u64)]) -> u64 {
    let payload: u64 = files.iter().map(|(_, len)| len).sum();
    let videos: u64 = files
        .iter()
        .filter(|(p, _)| media::is_video(p))
        .map(|(_, len)| len)
        .sum();
    payload.saturating_add(videos)
}

/// Bytes of the regular files under `dir` (symlinks not followed; missing: 0).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// One task's folders as measured now.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    payload: u64,
    hls: u64,
}

impl Held {
    fn total(&self) -> u64 {
        self.payload.saturating_add(self.hls)
    }
}

/// What to delete to make room, in order.
#[derive(Debug, PartialEq)]
enum Evict {
    Payload(TaskId),
    Whole(TaskId),
}

/// The eviction plan for `need` more bytes under `quota`, given every other task and what it
/// holds (`now`: for "is it being played"); `Err` says why there is no room.
fn plan(
    quota: u64,
    need: u64,
    tasks: &[(Task, Held)],
    now: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<Vec<Evict>, String> {
    let mb = |b: u64| b.div_ceil(1024 * 1024);
    if need > quota {
        return Err(format!(
            "the torrent needs about {} MB with its HLS, more than this node's whole quota of {} MB \
             (limits.disk_quota_mb)",
            mb(need),
            mb(quota)
        ));
    }
    let counted = |(t, held): &(Task, Held)| {
        if finished(t) {
            held.total()
        } else {
            held.total().max(t.size.saturating_mul(2))
        }
    };
    let used: u64 = tasks.iter().map(counted).sum();
    if used.saturating_add(need) <= quota {
        return Ok(Vec::new());
    }
    let playing = |t: &Task| {
        t.last_played_at
            .as_deref()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .is_some_and(|at| {
                (now - at.with_timezone(&chrono::Utc))
                    .to_std()
                    .unwrap_or_default()
                    < PLAYING
            })
    };
    let mut candidates: Vec<&(Task, Held)> = tasks
        .iter()
        .filter(|(t, _)| finished(t) && !t.pinned && !playing(t))
        .collect();
    // Least recently played first; never played counts from its creation.
    candidates.sort_by(|(a, _), (b, _)| {
        let key = |t: &Task| {
            t.last_played_at
                .clone()
                .unwrap_or_else(|| t.created_at.clone())
        };
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
    let short = used.saturating_add(need) - quota;
    let mut freed = 0u64;
    let mut evict = Vec::new();
    for (t, held) in &candidates {
        if freed >= short {
            break;
        }
        if held.payload > 0 {
            evict.push(Evict::Payload(t.id.clone()));
            freed = freed.saturating_add(held.payload);
        }
    }
    for (t, held) in &candidates {
        if freed >= short {
            break;
        }
        evict.push(Evict::Whole(t.id.clone()));
        freed = freed.saturating_add(held.hls);
    }
    if freed < short {
        return Err(format!(
            "not enough room on this node: the torrent needs about {} MB, {} MB of the {} MB quota \
             are in use and only {} MB could be freed (pinned tasks and tasks being played are kept)",
            mb(need),
            mb(used),
            mb(quota),
            mb(freed)
        ));
    }
    Ok(evict)
}

/// A task whose work is over: only these are evicted (with `ready`, the HLS is whole).
fn finished(t: &Task) -> bool {
    matches!(t.status, TaskStatus::Ready | TaskStatus::Error)
}

impl Tasks {
    fn payload_dir(&self, id: &TaskId) -> PathBuf {
        torrent::output_dir(self.downloads(), id.as_str())
    }

    async fn held(&self, id: &TaskId) -> Held {
        let payload = self.payload_dir(id);
        let hls = [
            self.m3u8().join(id.as_str()),
            self.m3u8().join(format!(".{id}.partial")),
        ];
        tokio::task::spawn_blocking(move || Held {
            payload: dir_bytes(&payload),
            hls: hls.iter().map(|d| dir_bytes(d)).sum(),
        })
        .await
        .unwrap_or_default()
    }

    /// Measures every task's folders, records them, and gives the node's total. With
    /// `limits.drop_payload_when_ready`, a ready task's payload goes first.
    pub async fn refresh_disk(&self) -> Result<u64> {
        let drop_payloads = self.settings().limits.drop_payload_when_ready;
        let mut total = 0u64;
        for task in self.store().list().await? {
            if drop_payloads && task.status == TaskStatus::Ready && !task.payload_evicted {
                self.evict_payload(&task.id, "payload deleted once its HLS was complete")
                    .await?;
            }
            let bytes = self.held(&task.id).await.total();
            self.store().set_disk_bytes(&task.id, bytes).await?;
            total = total.saturating_add(bytes);
        }
        self.set_disk_used(total);
        Ok(total)
    }

    /// Makes room under the quota for `need` more bytes (for `task`, which is not counted),
    /// evicting as [`plan`] says; refuses with [`Error::NoRoom`] when it cannot. Without a
    /// quota, nothing to do.
    pub(crate) async fn make_room(&self, task: Option<&TaskId>, need: u64) -> Result<()> {
        let Some(quota_mb) = self.settings().limits.disk_quota_mb else {
            return Ok(());
        };
        let quota = quota_mb.saturating_mul(1024 * 1024);
        let _one_at_a_time = self.room().lock().await;
        let mut tasks = Vec::new();
        for t in self.store().list().await? {
            if Some(&t.id) != task {
                let held = self.held(&t.id).await;
                tasks.push((t, held));
            }
        }
        let evictions = plan(quota, need, &tasks, chrono::Utc::now()).map_err(Error::NoRoom)?;
        for evict in evictions {
            match evict {
                Evict::Payload(id) => {
                    self.evict_payload(&id, "payload evicted to make room")
                        .await?
                }
                Evict::Whole(id) => {
                    tracing::info!(task = %id, "evicting the task to make room");
                    self.delete(id.as_str()).await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes a finished task's payload (its torrent leaves the session: no more seeding);
    /// its HLS stays and plays.
    pub(crate) async fn evict_payload(&self, id: &TaskId, why: &str) -> Result<()> {
        let task = self.store().get(id).await?;
        self.engine().remove(&task.info_hash, true).await?;
        let dir = self.payload_dir(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path: dir, source }),
        }
        self.store().payload_evicted(id, why).await?;
        tracing::info!(task = %id, why, "payload deleted; its HLS stays");
        if let Ok(now) = self.store().get(id).await {
            self.publish_progress(&now).await;
        }
        Ok(())
    }

    /// Pins (never evicted) or unpins a task.
    #[tracing::instrument(skip(self))]
    pub async fn set_pinned(&self, id: &str, pinned: bool) -> Result<Task> {
        let id = TaskId::parse(id)?;
        if !self.store().set_pinned(&id, pinned).await? {
            return Err(Error::TaskNotFound(id));
        }
        self.store().get(&id).await
    }
}

/// Records the streamer's notices that a task's files are being fetched
/// (`subjects::task_played`), until shutdown.
pub async fn watch_plays(
    tasks: Arc<Tasks>,
    client: async_nats::Client,
    node: String,
    shutdown: CancellationToken,
) {
    let subject = magnet_runtime::subjects::task_played(&node, "*");
    let mut notices = match client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to play notices; eviction will not see plays");
            return;
        }
    };
    loop {
        let notice = tokio::select! {
            n = notices.next() => n,
            _ = shutdown.cancelled() => return,
        };
        let Some(notice) = notice else { return };
        let Some(id) = notice
            .subject
            .rsplit('.')
            .next()
            .and_then(|t| TaskId::parse(t).ok())
        else {
            continue;
        };
        if let Err(e) = tasks.store().played(&id).await {
            tracing::warn!(error = %e, task = %id, "play notice not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    fn task(n: u64, status: TaskStatus, played_secs_ago: Option<i64>, pinned: bool) -> Task {
        let now = chrono::Utc::now();
        Task {
            id: TaskId::parse(&format!("task_{n}")).expect("id"),
            magnet_url: String::new(),
            status,
            progress: 100.0,
            speed: 0,
            size: 3 * MB,
            downloaded: 3 * MB,
            files: Vec::new(),
            torrent_name: String::new(),
            m3u8_path: None,
            srts: Vec::new(),
            segments: Vec::new(),
            created_at: format!("2026-01-01T00:00:0{n}Z"),
            updated_at: String::new(),
            node_id: String::new(),
            info_hash: String::new(),
            error: None,
            detail: String::new(),
            peers: 0,
            peer_hints: Vec::new(),
            owner: String::new(),
            transcode_path: None,
            playable: true,
            transcode_progress: 100.0,
            paused: false,
            attempt: 0,
            uploaded: 0,
            seeding_stopped: None,
            pinned,
            last_played_at: played_secs_ago
                .map(|s| (now - chrono::Duration::seconds(s)).to_rfc3339()),
            payload_evicted: false,
            disk_bytes: 0,
            file_sizes: Vec::new(),
            chosen: None,
            videos: Default::default(),
            file_progress: Vec::new(),
        }
    }

    fn held() -> Held {
        Held {
            payload: 3 * MB,
            hls: MB,
        }
    }

    #[test]
    fn payloads_of_the_least_recently_played_go_first_never_pinned_or_playing() {
        let tasks = vec![
            (task(1, TaskStatus::Ready, None, true), held()),
            (task(2, TaskStatus::Ready, Some(10), false), held()),
            (task(3, TaskStatus::Ready, Some(3600), false), held()),
            (task(4, TaskStatus::Ready, None, false), held()),
        ];
        let now = chrono::Utc::now();
        // 16 MB used of 18: 4 MB more need one payload, the oldest unpinned (never played).
        let p = plan(18 * MB, 4 * MB, &tasks, now).expect("room");
        assert_eq!(
            p,
            vec![Evict::Payload(TaskId::parse("task_4").expect("id"))]
        );
        // 8 MB more: the payloads of 4 then 3 (2 is being played, 1 is pinned).
        let p = plan(18 * MB, 8 * MB, &tasks, now).expect("room");
        assert_eq!(
            p,
            vec![
                Evict::Payload(TaskId::parse("task_4").expect("id")),
                Evict::Payload(TaskId::parse("task_3").expect("id")),
            ]
        );
        // 9 MB more: both payloads and then a whole task.
        let p = plan(18 * MB, 9 * MB, &tasks, now).expect("room");
        assert_eq!(p.len(), 3);
        assert_eq!(p[2], Evict::Whole(TaskId::parse("task_4").expect("id")));
        // More than the candidates hold: refused, nothing planned.
        let refused = plan(18 * MB, 11 * MB, &tasks, now).expect_err("no room");
        assert!(
            refused.contains("pinned tasks and tasks being played are kept"),
            "{refused}"
        );
        // More than the quota itself.
        let too_big = plan(18 * MB, 19 * MB, &tasks, now).expect_err("too big");
        assert!(too_big.contains("whole quota"), "{too_big}");
    }

    #[test]
    fn working_tasks_count_at_twice_their_size_and_are_never_evicted() {
        let tasks = vec![(
            task(1, TaskStatus::Downloading, None, false),
            Held::default(),
        )];
        let now = chrono::Utc::now();
        assert!(plan(10 * MB, 4 * MB, &tasks, now).expect("room").is_empty());
        assert!(plan(10 * MB, 5 * MB, &tasks, now).is_err());
    }

    #[test]
    fn expected_bytes_are_the_payload_and_its_videos_again() {
        let files = vec![
            ("a/movie.mkv".to_owned(), 10),
            ("a/extras.bin".to_owned(), 5),
            ("a/movie.srt".to_owned(), 1),
        ];
        assert_eq!(expected_bytes(&files), 26);
    }
}
