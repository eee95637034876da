//! Seeding after the download: a completed task keeps its torrent running for other peers
//! until the node's policy says it gave enough back (`torrent.seed_ratio`, default 1.0, or
//! `torrent.seed_time_secs`), or its submitter stops it ("stop and keep": files and HLS stay).
//!
//! The bytes each task uploaded are summed into the store every round, so the ratio counts
//! across restarts (librqbit's counter starts at 0 with each session and each unpause). A task
//! that stopped seeding stays stopped: after a restart its restored torrent is paused again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use magnet_core::{Task, TaskId, TaskStatus};
use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use crate::tasks::Tasks;
use crate::torrent::Handle;
use crate::{Error, Result};

/// How often the uploaded bytes are read and the policy applied.
const ROUND: Duration = Duration::from_secs(1);

/// When a completed task stops seeding.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Uploaded bytes over the task's size.
    pub ratio: f64,
    /// Time since the download completed.
    pub time: Option<Duration>,
}

impl Policy {
    /// The node's policy from `torrent.seed_ratio` and `torrent.seed_time_secs` (none: no
    /// time limit).
    pub fn from_settings(t: &magnet_runtime::config::TorrentSettings) -> Self {
        Self {
            ratio: t.seed_ratio,
            time: t.seed_time_secs.map(Duration::from_secs),
        }
    }

    /// Why a task that uploaded `uploaded` of `size` bytes and seeded for `seeded` stops now;
    /// none while it should go on.
    pub fn reached(&self, uploaded: u64, size: u64, seeded: Duration) -> Option<String> {
        let ratio = if size == 0 {
            f64::INFINITY
        } else {
            uploaded as f64 / size as f64
        };
        if ratio >= self.ratio {
            return Some(format!("seeding ratio {:.2} reached", self.ratio));
        }
        match self.time {
            Some(limit) if seeded >= limit => {
                Some(format!("seeding time of {} s reached", limit.as_secs()))
            }
            _ => None,
        }
    }
}

/// Applies the policy every `ROUND` until shutdown.
pub async fn run(
    tasks: Arc<Tasks>,
    policy: Policy,
    uploaded: Counter,
    shutdown: CancellationToken,
) {
    // librqbit's own counter of each torrent, as last read: the store gets the difference.
    let mut seen: HashMap<TaskId, u64> = HashMap::new();
    let mut round = tokio::time::interval(ROUND);
    loop {
        tokio::select! {
            _ = round.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = tasks.seeding_round(&policy, &mut seen, &uploaded).await {
            tracing::warn!(error = %e, "seeding round failed");
        }
    }
}

impl Tasks {
    async fn seeding_round(
        &self,
        policy: &Policy,
        seen: &mut HashMap<TaskId, u64>,
        uploaded_metric: &Counter,
    ) -> Result<()> {
        let seeding = self.store().seeding().await?;
        seen.retain(|id, _| seeding.iter().any(|t| &t.id == id));
        for task in seeding {
            let Some(handle) = self.engine().get(&task.info_hash) else {
                continue;
            };
            let now = handle.stats().uploaded_bytes;
            // A smaller reading is a new count (the torrent was unpaused or re-added).
            let delta = match seen.insert(task.id.clone(), now) {
                Some(before) if now >= before => now - before,
                _ => now,
            };
            let total = if delta > 0 {
                uploaded_metric.inc_by(delta);
                self.store().add_uploaded(&task.id, delta).await?
            } else {
                task.uploaded
            };
            // The store is asked when the download completed only if a time limit needs it.
            let seeded = match policy.time {
                Some(_) => (chrono::Utc::now() - self.store().completed_at(&task.id).await?)
                    .to_std()
                    .unwrap_or_default(),
                None => Duration::ZERO,
            };
            if let Some(reason) = policy.reached(total, task.size, seeded) {
                self.end_seeding(&task, &handle, &reason).await?;
                seen.remove(&task.id);
            }
        }
        Ok(())
    }

    /// Pauses the torrent of a completed task and records why; the files stay.
    async fn end_seeding(&self, task: &Task, handle: &Handle, reason: &str) -> Result<()> {
        self.engine().pause(handle).await?;
        if self.store().stop_seeding(&task.id, reason).await? {
            tracing::info!(task = %task.id, uploaded = task.uploaded, reason, "seeding stopped");
            if let Ok(now) = self.store().get(&task.id).await {
                self.publish_progress(&now).await;
            }
        }
        Ok(())
    }

    /// Stop and keep: a completed task stops seeding now, its payload and HLS kept.
    #[tracing::instrument(skip(self))]
    pub async fn stop_seeding(&self, id: &str) -> Result<Task> {
        let id = TaskId::parse(id)?;
        let task = self.store().get(&id).await?;
        if task.seeding_stopped.is_some() {
            return Ok(task);
        }
        let completed = matches!(
            task.status,
            TaskStatus::Downloaded | TaskStatus::Transcoding | TaskStatus::Ready
        );
        if !completed {
            return Err(Error::Unsupported(
                "only a completed download seeds; pause a task that still downloads",
            ));
        }
        match self.engine().get(&task.info_hash) {
            Some(handle) => {
                self.end_seeding(&task, &handle, "stopped by its submitter")
                    .await?
            }
            None => {
                self.store()
                    .stop_seeding(&id, "stopped by its submitter")
                    .await?;
            }
        }
        self.store().get(&id).await
    }

    /// After a restart: torrents of tasks that stopped seeding were restored running by
    /// librqbit's persistence; they are paused again.
    pub(crate) async fn hold_stopped_seeds(&self, tasks: &[Task]) -> Result<()> {
        for task in tasks.iter().filter(|t| t.seeding_stopped.is_some()) {
            if let Some(handle) = self.engine().get(&task.info_hash) {
                self.engine().pause(&handle).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn the_ratio_or_the_time_whichever_comes_first() {
        let p = Policy {
            ratio: 1.0,
            time: Some(Duration::from_secs(3600)),
        };
        assert_eq!(p.reached(MB / 2, MB, Duration::from_secs(10)), None);
        let by_ratio = p.reached(MB, MB, Duration::from_secs(10)).expect("ratio");
        assert!(by_ratio.contains("ratio 1.00"), "{by_ratio}");
        let by_time = p.reached(0, MB, Duration::from_secs(3600)).expect("time");
        assert!(by_time.contains("3600 s"), "{by_time}");
        let none = Policy {
            ratio: 0.0,
            time: None,
        };
        assert!(
            none.reached(0, MB, Duration::ZERO).is_some(),
            "ratio 0: no seeding"
        );
        let forever = Policy {
            ratio: 1000.0,
            time: None,
        };
        assert_eq!(
            forever.reached(10 * MB, MB, Duration::from_secs(1 << 30)),
            None
        );
    }
}
