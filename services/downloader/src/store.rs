//! The node's task store: SQLite (WAL) at `data/config/worker.db`, migrated on open.
//!
//! Invariant: the downloader is its only writer. Every status change is a compare-and-set
//! (`… WHERE status IN (allowed predecessors)`), so a change that would go backwards, or
//! arrives after a final status, changes nothing and reports so.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use magnet_core::{Task, TaskId, TaskStatus};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqlitePool};

use crate::{Error, Result};

/// The task store, shared by clones (one pool of SQLite connections); see the module's
/// invariant on writers.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// What a new task starts with.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub magnet_url: String,
    pub node_id: String,
    pub info_hash: String,
    pub torrent_name: String,
    pub peer_hints: Vec<String>,
    /// The submitting user's id.
    pub owner: String,
}

/// Live download figures, written about once a second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DownloadProgress {
    pub progress: f64,
    pub downloaded: u64,
    pub size: u64,
    pub speed: u64,
    pub peers: u32,
    pub detail: String,
}

/// A finished transcode, as the transcoder reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadyOutput {
    pub m3u8_path: String,
    pub segments: Vec<String>,
    pub srts: Vec<String>,
    pub transcode_path: String,
}

const COLUMNS: &str = "task_id, magnet_url, status, progress, speed, size, downloaded, torrent_name, torrent_files, \
     m3u8_file_path, srts, segments, metadata, created_at, updated_at, node_id, info_hash, error, detail, peers, peer_hints, owner, \
     playable, hls_ready, transcode_progress, paused, attempt, uploaded, seeding_stopped, \
     pinned, last_played_at, payload_evicted, disk_bytes, file_sizes, chosen, video_states";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

// Dynamic SQL below only ever splices the constant COLUMNS and `?` placeholders; every value
// is a bind parameter.

/// `?, ?, …` for an IN list of the statuses from which `to` may be reached.
fn predecessors(to: TaskStatus) -> (String, Vec<&'static str>) {
    let from: Vec<&'static str> = TaskStatus::predecessors(to)
        .into_iter()
        .map(TaskStatus::as_str)
        .collect();
    (vec!["?"; from.len()].join(", "), from)
}

impl Store {
    /// Opens (creating if needed) the store at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| Error::Io {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Inserts a new task. If the node already has a task for the info hash (also when a
    /// concurrent submit won the race), returns that one as `Err(existing)`.
    pub async fn insert(&self, new: &NewTask) -> Result<Result<Task, Task>> {
        let ts = now();
        let inserted = sqlx::query(
            "INSERT INTO tasks (task_id, magnet_url, status, created_at, updated_at, node_id, info_hash, torrent_name, peer_hints, owner) \
             VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (node_id, info_hash) DO NOTHING",
        )
        .bind(new.id.as_str())
        .bind(&new.magnet_url)
        .bind(&ts)
        .bind(&ts)
        .bind(&new.node_id)
        .bind(&new.info_hash)
        .bind(&new.torrent_name)
        .bind(json(&new.peer_hints))
        .bind(&new.owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Ok(self.get(&new.id).await?));
        }
        let existing = self
            .by_info_hash(&new.node_id, &new.info_hash)
            .await?
            .ok_or(Error::Internal("task vanished during insert"))?;
        Ok(Err(existing))
    }

    /// One task by id; `TaskNotFound` when the store has none.
    pub async fn get(&self, id: &TaskId) -> Result<Task> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tasks WHERE task_id = ?"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::TaskNotFound(id.clone()))
    }

    /// The node's task for a torrent, if any: a node has at most one task per info hash, which
    /// is how a repeated submit finds the existing task.
    pub async fn by_info_hash(&self, node_id: &str, info_hash: &str) -> Result<Option<Task>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tasks WHERE node_id = ? AND info_hash = ?"
        )))
        .bind(node_id)
        .bind(info_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// Every task, newest first.
    pub async fn list(&self) -> Result<Vec<Task>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tasks ORDER BY created_at DESC, task_id DESC"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The highest task number in the store, so ids stay increasing across restarts.
    pub async fn last_task_number(&self) -> Result<u64> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT task_id FROM tasks")
            .fetch_all(&self.pool)
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| TaskId::parse(id).ok())
            .map(|id| id.number())
            .max()
            .unwrap_or(0))
    }

    /// Tasks whose transcode job is still to be published.
    pub async fn awaiting_job(&self) -> Result<Vec<Task>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tasks WHERE status = 'downloaded' AND job_published_at IS NULL"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Compare-and-set of the status (with an error message for `error`). Returns whether it
    /// applied; `false` means the task was already past `to` (or is gone).
    pub async fn set_status(
        &self,
        id: &TaskId,
        to: TaskStatus,
        error: Option<&str>,
    ) -> Result<bool> {
        let (marks, from) = predecessors(to);
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE tasks SET status = ?, error = COALESCE(?, error), detail = CASE WHEN ? = status THEN detail ELSE '' END, \
             updated_at = ? WHERE task_id = ? AND status IN ({marks})"
        )))
        .bind(to.as_str())
        .bind(error)
        .bind(to.as_str())
        .bind(now())
        .bind(id.as_str());
        for f in from {
            q = q.bind(f);
        }
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    /// Records the torrent's name and files once its metadata is known.
    pub async fn set_metadata(
        &self,
        id: &TaskId,
        name: &str,
        files: &[(String, u64)],
    ) -> Result<()> {
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        let sizes: Vec<u64> = files.iter().map(|(_, len)| *len).collect();
        let size: u64 = sizes.iter().sum();
        sqlx::query(
            "UPDATE tasks SET torrent_name = ?, torrent_files = ?, file_sizes = ?, size = ?, \
             updated_at = ? WHERE task_id = ?",
        )
        .bind(name)
        .bind(json(&paths))
        .bind(json(&sizes))
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the video chosen to fetch and play.
    pub async fn set_chosen(&self, id: &TaskId, index: u32) -> Result<bool> {
        let done = sqlx::query("UPDATE tasks SET chosen = ?, updated_at = ? WHERE task_id = ?")
            .bind(i64::from(index))
            .bind(now())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records where one video's own transcode is (read, changed and written in one statement
    /// per video, so two videos' events do not overwrite each other).
    pub async fn set_video_state(
        &self,
        id: &TaskId,
        index: u32,
        state: &magnet_core::task::VideoState,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET video_states = json_set(video_states, ?, json(?)) WHERE task_id = ?",
        )
        .bind(format!("$.\"{index}\""))
        .bind(json(state))
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes live download figures and moves `pending` to `downloading`; ignored once the
    /// task has left the download phase.
    pub async fn update_download(&self, id: &TaskId, p: &DownloadProgress) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET status = 'downloading', progress = ?, downloaded = ?, size = ?, speed = ?, peers = ?, detail = ?, \
             updated_at = ? WHERE task_id = ? AND status IN ('pending', 'downloading')",
        )
        .bind(p.progress)
        .bind(p.downloaded as i64)
        .bind(p.size as i64)
        .bind(p.speed as i64)
        .bind(p.peers as i64)
        .bind(&p.detail)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets the detail line only (e.g. "waiting for metadata") while downloading.
    pub async fn set_detail(&self, id: &TaskId, detail: &str) -> Result<()> {
        sqlx::query("UPDATE tasks SET detail = ?, updated_at = ? WHERE task_id = ? AND status IN ('pending', 'downloading')")
            .bind(detail)
            .bind(now())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `downloading → downloaded` with final figures; straight to `ready` when a progressive
    /// transcode already made every segment (`hold_ready`).
    pub async fn mark_downloaded(&self, id: &TaskId, size: u64) -> Result<bool> {
        let (marks, from) = predecessors(TaskStatus::Downloaded);
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE tasks SET status = CASE WHEN hls_ready = 1 THEN 'ready' ELSE 'downloaded' END, \
             progress = 100, downloaded = ?, size = ?, speed = 0, detail = '', \
             completed_at = COALESCE(completed_at, ?), updated_at = ? \
             WHERE task_id = ? AND status IN ({marks})"
        )))
        .bind(size as i64)
        .bind(size as i64)
        .bind(now())
        .bind(now())
        .bind(id.as_str());
        for f in from {
            q = q.bind(f);
        }
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    /// Whether the task's transcode job went out (progressively, or after the download).
    pub async fn job_published(&self, id: &TaskId) -> Result<bool> {
        let row =
            sqlx::query("SELECT job_published_at IS NOT NULL AS out FROM tasks WHERE task_id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(r) => Ok(r.try_get::<bool, _>("out")?),
            None => Err(Error::TaskNotFound(id.clone())),
        }
    }

    /// Records that the task's transcode job went out (`job_published_at`, now), so that
    /// neither completion nor a restart's `resume` publishes it again.
    pub async fn mark_job_published(&self, id: &TaskId) -> Result<()> {
        sqlx::query("UPDATE tasks SET job_published_at = ? WHERE task_id = ?")
            .bind(now())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `→ transcoding`, recording which path (remux/transcode) the transcoder took, in one
    /// statement so that readers never see the status without the path.
    pub async fn mark_transcoding(&self, id: &TaskId, path_taken: &str) -> Result<bool> {
        // Not from pending or downloading: a progressive transcode runs while the download's
        // driver owns the status.
        let done = sqlx::query(
            "UPDATE tasks SET \
               status = 'transcoding', detail = '', speed = 0, \
               metadata = CASE WHEN ? = '' THEN metadata ELSE json_set(metadata, '$.transcode_path', ?) END, \
               updated_at = ? WHERE task_id = ? AND status IN ('downloaded', 'transcoding')",
        )
        .bind(path_taken)
        .bind(path_taken)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A task in error back to `pending` for another attempt: its error, its transcode's
    /// state and its job's record cleared (the payload on disk is kept). The one move out of
    /// `error`, and only by this explicit call; false when the task is not in error.
    pub async fn retry(&self, id: &TaskId) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET status = 'pending', error = NULL, detail = '', paused = 0, \
               speed = 0, peers = 0, job_published_at = NULL, hls_ready = 0, playable = 0, \
               transcode_progress = 0, m3u8_file_path = NULL, segments = '[]', \
               srts = '[]', video_states = '{}', attempt = attempt + 1, updated_at = ? \
             WHERE task_id = ? AND status = 'error'",
        )
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Pauses or resumes a task that still downloads (pending or downloading); false when it
    /// is past that.
    pub async fn set_paused(&self, id: &TaskId, paused: bool) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET paused = ?, speed = 0, peers = 0, \
               detail = CASE WHEN ? THEN 'paused' ELSE '' END, updated_at = ? \
             WHERE task_id = ? AND status IN ('pending', 'downloading')",
        )
        .bind(paused)
        .bind(paused)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Tasks whose download completed and that still seed (the seeding policy's round).
    pub async fn seeding(&self) -> Result<Vec<Task>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM tasks WHERE seeding_stopped IS NULL \
             AND status IN ('downloaded', 'transcoding', 'ready') ORDER BY task_id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Adds bytes uploaded to peers; the total after it.
    pub async fn add_uploaded(&self, id: &TaskId, bytes: u64) -> Result<u64> {
        let total: Option<i64> = sqlx::query_scalar(
            "UPDATE tasks SET uploaded = uploaded + ? WHERE task_id = ? RETURNING uploaded",
        )
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(total.unwrap_or(0).max(0) as u64)
    }

    /// When the task's download completed (its seeding started): recorded then, or now for a
    /// task completed before the time was kept.
    pub async fn completed_at(&self, id: &TaskId) -> Result<chrono::DateTime<chrono::Utc>> {
        let at: Option<String> = sqlx::query_scalar(
            "UPDATE tasks SET completed_at = COALESCE(completed_at, ?) WHERE task_id = ? \
             RETURNING completed_at",
        )
        .bind(now())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        let at = at.ok_or_else(|| Error::TaskNotFound(id.clone()))?;
        chrono::DateTime::parse_from_rfc3339(&at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| Error::Corrupt(format!("completed_at {at:?}: {e}")))
    }

    /// Records why a completed task stopped seeding; false if it was not seeding (not
    /// completed, or stopped already).
    pub async fn stop_seeding(&self, id: &TaskId, reason: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET seeding_stopped = ?, updated_at = ? WHERE task_id = ? \
             AND seeding_stopped IS NULL AND status IN ('downloaded', 'transcoding', 'ready')",
        )
        .bind(reason)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Pins or unpins a task (a pinned task is never evicted).
    pub async fn set_pinned(&self, id: &TaskId, pinned: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE tasks SET pinned = ?, updated_at = ? WHERE task_id = ?")
            .bind(pinned)
            .bind(now())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that a viewer fetched one of the task's files now.
    pub async fn played(&self, id: &TaskId) -> Result<bool> {
        let done = sqlx::query("UPDATE tasks SET last_played_at = ? WHERE task_id = ?")
            .bind(now())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the task's payload was evicted: it no longer seeds either.
    pub async fn payload_evicted(&self, id: &TaskId, why: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET payload_evicted = 1, seeding_stopped = COALESCE(seeding_stopped, ?), \
               updated_at = ? WHERE task_id = ?",
        )
        .bind(why)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// What the task's folders hold now (measured by the disk module).
    pub async fn set_disk_bytes(&self, id: &TaskId, bytes: u64) -> Result<()> {
        sqlx::query("UPDATE tasks SET disk_bytes = ? WHERE task_id = ? AND disk_bytes != ?")
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .bind(id.as_str())
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Transcode progress, apart from the download's `progress` (which stays 100 once the
    /// download is done, as the original shows it).
    pub async fn set_transcode_progress(&self, id: &TaskId, progress: f64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET transcode_progress = ?, \
               updated_at = ? WHERE task_id = ? AND status NOT IN ('ready', 'error', 'cancelled')",
        )
        .bind(progress)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A progressive transcode chose its path while the torrent still downloads: recorded
    /// without moving the status (the download's driver owns it until `mark_downloaded`).
    pub async fn set_transcode_path(&self, id: &TaskId, path_taken: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET metadata = CASE WHEN ? = '' THEN metadata ELSE json_set(metadata, '$.transcode_path', ?) END, \
               updated_at = ? WHERE task_id = ? AND status IN ('pending', 'downloading')",
        )
        .bind(path_taken)
        .bind(path_taken)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The task's playlist plays already (progressive playback).
    pub async fn mark_playable(
        &self,
        id: &TaskId,
        m3u8_path: &str,
        path_taken: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET playable = 1, m3u8_file_path = COALESCE(m3u8_file_path, ?), \
               metadata = CASE WHEN ? = '' THEN metadata ELSE json_set(metadata, '$.transcode_path', ?) END, \
               updated_at = ? WHERE task_id = ? AND playable = 0 AND status NOT IN ('error', 'cancelled')",
        )
        .bind(m3u8_path)
        .bind(path_taken)
        .bind(path_taken)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every segment of a progressive transcode is made while the torrent still downloads:
    /// the output is kept, and `mark_downloaded` makes the task `ready`.
    pub async fn hold_ready(&self, id: &TaskId, out: &ReadyOutput) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tasks SET hls_ready = 1, playable = 1, transcode_progress = 100, \
               m3u8_file_path = ?, segments = ?, srts = ?, \
               metadata = CASE WHEN ? = '' THEN metadata ELSE json_set(metadata, '$.transcode_path', ?) END, \
               updated_at = ? WHERE task_id = ? AND status IN ('pending', 'downloading') AND hls_ready = 0",
        )
        .bind(&out.m3u8_path)
        .bind(json(&out.segments))
        .bind(json(&out.srts))
        .bind(&out.transcode_path)
        .bind(&out.transcode_path)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `→ ready` with the HLS output.
    pub async fn mark_ready(&self, id: &TaskId, out: &ReadyOutput) -> Result<bool> {
        // Not from pending or downloading: a progressive transcode that finishes first is
        // kept by `hold_ready` until the download ends.
        let done = sqlx::query(
            "UPDATE tasks SET status = 'ready', progress = 100, transcode_progress = 100, playable = 1, \
             m3u8_file_path = ?, segments = ?, srts = ?, detail = '', \
             metadata = CASE WHEN ? = '' THEN metadata ELSE json_set(metadata, '$.transcode_path', ?) END, \
             updated_at = ? WHERE task_id = ? AND status IN ('downloaded', 'transcoding', 'ready')",
        )
        .bind(&out.m3u8_path)
        .bind(json(&out.segments))
        .bind(json(&out.srts))
        .bind(&out.transcode_path)
        .bind(&out.transcode_path)
        .bind(now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes the task's row; false when there was none. Its files are the caller's
    /// (`Tasks::delete`).
    pub async fn delete(&self, id: &TaskId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tasks WHERE task_id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Closes the pool, waiting for its connections; the downloader's shutdown calls it once
    /// the services using the store have stopped.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn json_list(row: &SqliteRow, col: &str) -> Result<Vec<String>> {
    let raw: String = row.try_get(col)?;
    serde_json::from_str(&raw).map_err(|e| Error::Corrupt(format!("column {col}: {e}")))
}

fn from_row(row: &SqliteRow) -> Result<Task> {
    let id: String = row.try_get("task_id")?;
    let status: String = row.try_get("status")?;
    let metadata: String = row.try_get("metadata")?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap_or_default();
    Ok(Task {
        id: TaskId::parse(&id).map_err(|e| Error::Corrupt(e.to_string()))?,
        magnet_url: row.try_get("magnet_url")?,
        status: TaskStatus::from_str(&status).map_err(|e| Error::Corrupt(e.to_string()))?,
        progress: row.try_get("progress")?,
        speed: row.try_get::<i64, _>("speed")?.max(0) as u64,
        size: row.try_get::<i64, _>("size")?.max(0) as u64,
        downloaded: row.try_get::<i64, _>("downloaded")?.max(0) as u64,
        files: json_list(row, "torrent_files")?,
        torrent_name: row
            .try_get::<Option<String>, _>("torrent_name")?
            .unwrap_or_default(),
        m3u8_path: row.try_get("m3u8_file_path")?,
        srts: json_list(row, "srts")?,
        segments: json_list(row, "segments")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        node_id: row.try_get("node_id")?,
        info_hash: row.try_get("info_hash")?,
        error: row.try_get("error")?,
        detail: row.try_get("detail")?,
        peers: row.try_get::<i64, _>("peers")?.max(0) as u32,
        peer_hints: json_list(row, "peer_hints")?,
        owner: row.try_get("owner")?,
        transcode_path: metadata
            .get("transcode_path")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        playable: row.try_get::<bool, _>("playable")?,
        transcode_progress: row.try_get("transcode_progress")?,
        paused: row.try_get::<bool, _>("paused")?,
        attempt: u32::try_from(row.try_get::<i64, _>("attempt")?.max(0)).unwrap_or(u32::MAX),
        uploaded: row.try_get::<i64, _>("uploaded")?.max(0) as u64,
        seeding_stopped: row.try_get("seeding_stopped")?,
        pinned: row.try_get::<bool, _>("pinned")?,
        last_played_at: row.try_get("last_played_at")?,
        payload_evicted: row.try_get::<bool, _>("payload_evicted")?,
        disk_bytes: row.try_get::<i64, _>("disk_bytes")?.max(0) as u64,
        file_sizes: {
            let raw: String = row.try_get("file_sizes")?;
            serde_json::from_str(&raw).map_err(|e| Error::Corrupt(format!("file_sizes: {e}")))?
        },
        chosen: row
            .try_get::<Option<i64>, _>("chosen")?
            .and_then(|i| u32::try_from(i).ok()),
        videos: {
            let raw: String = row.try_get("video_states")?;
            serde_json::from_str(&raw).map_err(|e| Error::Corrupt(format!("video_states: {e}")))?
        },
        file_progress: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("config/worker.db"))
            .await
            .expect("open");
        (dir, store)
    }

    fn new_task(n: u64, hash: &str) -> NewTask {
        NewTask {
            id: TaskId::next_after(0, n).0,
            magnet_url: format!("magnet:?xt=urn:btih:{hash}"),
            node_id: "worker-a".into(),
            info_hash: hash.into(),
            torrent_name: String::new(),
            peer_hints: vec!["127.0.0.1:6881".into()],
            owner: "alice".into(),
        }
    }

    #[tokio::test]
    async fn same_info_hash_gives_the_existing_task() {
        let (_d, s) = store().await;
        let first = s
            .insert(&new_task(1, &"a".repeat(40)))
            .await
            .expect("insert")
            .expect("new");
        let again = s
            .insert(&new_task(2, &"a".repeat(40)))
            .await
            .expect("insert");
        assert_eq!(again.expect_err("existing").id, first.id);
        assert_eq!(s.list().await.expect("list").len(), 1);
        assert_eq!(first.peer_hints, vec!["127.0.0.1:6881"]);
        assert_eq!(first.status, TaskStatus::Pending);
    }

    #[tokio::test]
    async fn transitions_never_go_backwards() {
        let (_d, s) = store().await;
        let t = s
            .insert(&new_task(1, &"b".repeat(40)))
            .await
            .expect("insert")
            .expect("new");
        assert!(
            s.update_download(
                &t.id,
                &DownloadProgress {
                    progress: 50.0,
                    ..Default::default()
                }
            )
            .await
            .expect("progress")
        );
        assert!(s.mark_downloaded(&t.id, 10).await.expect("downloaded"));
        assert!(
            !s.update_download(&t.id, &DownloadProgress::default())
                .await
                .expect("late progress")
        );
        assert_eq!(
            s.get(&t.id).await.expect("get").status,
            TaskStatus::Downloaded
        );
        assert!(
            s.mark_transcoding(&t.id, "remux")
                .await
                .expect("transcoding")
        );
        let out = ReadyOutput {
            m3u8_path: "m3u8/x/index.m3u8".into(),
            segments: vec!["index0.ts".into()],
            ..Default::default()
        };
        assert!(s.mark_ready(&t.id, &out).await.expect("ready"));
        assert!(
            !s.mark_transcoding(&t.id, "remux")
                .await
                .expect("late started"),
            "ready is final"
        );
        assert!(
            !s.set_status(&t.id, TaskStatus::Error, Some("late"))
                .await
                .expect("late error")
        );
        let t = s.get(&t.id).await.expect("get");
        assert_eq!(t.status, TaskStatus::Ready);
        assert_eq!(t.transcode_path.as_deref(), Some("remux"));
        assert_eq!(t.segments, vec!["index0.ts"]);
        assert_eq!(t.error, None);
    }

    #[tokio::test]
    async fn unknown_id_is_not_found() {
        let (_d, s) = store().await;
        let id = TaskId::parse("task_42").expect("id");
        assert!(matches!(s.get(&id).await, Err(Error::TaskNotFound(_))));
        assert!(!s.delete(&id).await.expect("delete"));
    }
}
