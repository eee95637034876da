//! The task model: its id shape and its status state machine.
//!
//! `pending → downloading → downloaded → transcoding → ready`, or `error` from any step, or
//! `cancelled`. A transition never goes backwards; repeating the current status is allowed (so
//! that updates are idempotent) and `error`/`ready`/`cancelled` are final.

use std::fmt;
use std::str::FromStr;

/// A task's status. The names are the original's API strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Downloading,
    Downloaded,
    Transcoding,
    Ready,
    Error,
    Cancelled,
}

/// A refused status change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task cannot go from {from} to {to}")]
pub struct TransitionError {
    pub from: TaskStatus,
    pub to: TaskStatus,
}

impl TaskStatus {
    /// Every status in happy-path order, then the failure ones; used to parse names and to
    /// report a gauge per status.
    pub const ALL: [TaskStatus; 7] = [
        Self::Pending,
        Self::Downloading,
        Self::Downloaded,
        Self::Transcoding,
        Self::Ready,
        Self::Error,
        Self::Cancelled,
    ];

    /// The status's name in the original's API and in the store's `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Downloading => "downloading",
            Self::Downloaded => "downloaded",
            Self::Transcoding => "transcoding",
            Self::Ready => "ready",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }

    /// Position on the happy path; final states rank above every working state.
    fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Downloading => 1,
            Self::Downloaded => 2,
            Self::Transcoding => 3,
            Self::Ready | Self::Error | Self::Cancelled => 4,
        }
    }

    /// True once nothing more will happen to the task.
    pub fn is_final(self) -> bool {
        self.rank() == 4
    }

    /// True while the downloader still has torrent work to do for the task.
    pub fn is_downloading(self) -> bool {
        matches!(self, Self::Pending | Self::Downloading)
    }

    /// Whether `self → to` is allowed: forwards only, the same status again is a no-op.
    pub fn can_become(self, to: TaskStatus) -> bool {
        self == to || (!self.is_final() && to.rank() > self.rank())
    }

    /// The statuses from which `to` may be reached (including `to` itself), for
    /// compare-and-set updates in a store: `UPDATE … WHERE status IN (…)`.
    pub fn predecessors(to: TaskStatus) -> Vec<TaskStatus> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_become(to))
            .collect()
    }

    /// [`TaskStatus::can_become`] as a `Result`, so a refused change can be returned as an error.
    pub fn check(self, to: TaskStatus) -> Result<(), TransitionError> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that parsing a [`TaskStatus`] did not recognise (names are lowercase).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown task status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for TaskStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// A task id in the original's shape: `task_` followed by decimal digits.
///
/// Ids are made from a millisecond clock reading by [`TaskId::next_after`], which keeps them
/// strictly increasing (and therefore unique) even when many are made in one millisecond.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

/// A task id refused by [`TaskId::parse`], holding the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task id {0:?}: expected task_<digits>")]
pub struct InvalidTaskId(pub String);

impl TaskId {
    /// What every id starts with; the digits follow it.
    pub const PREFIX: &'static str = "task_";

    /// Parses and validates an id given by a caller; nothing but `task_<1..=24 digits>` passes,
    /// so an id is always safe as a path component.
    pub fn parse(s: &str) -> Result<Self, InvalidTaskId> {
        let digits = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| InvalidTaskId(s.to_owned()))?;
        if digits.is_empty() || digits.len() > 24 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidTaskId(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id for `now_ms`, or the one after `last` when the clock has not moved past it.
    /// Returns the id and the number it carries (to pass as `last` next time).
    pub fn next_after(last: u64, now_ms: u64) -> (Self, u64) {
        let n = now_ms.max(last.saturating_add(1));
        (Self(format!("{}{n}", Self::PREFIX)), n)
    }

    /// The number of an id (for resuming the sequence after a restart).
    pub fn number(&self) -> u64 {
        self.0[Self::PREFIX.len()..].parse().unwrap_or(0)
    }

    /// The id as text, e.g. the name of the task's folders on disk.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn happy_path_goes_forwards_only() {
        let path = [Pending, Downloading, Downloaded, Transcoding, Ready];
        for w in path.windows(2) {
            assert!(w[0].can_become(w[1]), "{} -> {}", w[0], w[1]);
            assert!(
                !w[1].can_become(w[0]),
                "{} -> {} must be refused",
                w[1],
                w[0]
            );
        }
        assert!(
            Pending.can_become(Downloaded),
            "skipping forward is allowed"
        );
    }

    #[test]
    fn final_states_stay_final() {
        for fin in [Ready, Error, Cancelled] {
            for to in TaskStatus::ALL {
                assert_eq!(fin.can_become(to), fin == to, "{fin} -> {to}");
            }
        }
        for from in [Pending, Downloading, Downloaded, Transcoding] {
            assert!(from.can_become(Error));
            assert!(from.can_become(Cancelled));
        }
    }

    #[test]
    fn predecessors_of_transcoding() {
        assert_eq!(
            TaskStatus::predecessors(Transcoding),
            vec![Pending, Downloading, Downloaded, Transcoding]
        );
        assert_eq!(TaskStatus::predecessors(Pending), vec![Pending]);
    }

    #[test]
    fn status_names_round_trip() {
        for st in TaskStatus::ALL {
            assert_eq!(st.as_str().parse::<TaskStatus>(), Ok(st));
        }
        assert!("Ready".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn ids_increase_within_one_millisecond() {
        let (a, n) = TaskId::next_after(0, 1_640_995_200_123);
        let (b, m) = TaskId::next_after(n, 1_640_995_200_123);
        let (c, _) = TaskId::next_after(m, 1_640_995_200_100);
        assert_eq!(a.as_str(), "task_1640995200123");
        assert_eq!(b.as_str(), "task_1640995200124");
        assert_eq!(c.as_str(), "task_1640995200125");
        assert_eq!(
            TaskId::parse(b.as_str()).map(|t| t.number()),
            Ok(1_640_995_200_124)
        );
    }

    #[test]
    fn hostile_ids_are_refused() {
        for bad in [
            "",
            "task_",
            "task_12a",
            "../task_1",
            "task_1/..",
            "TASK_1",
            "task_1 ",
            "task_１",
        ] {
            assert!(TaskId::parse(bad).is_err(), "{bad:?}");
        }
    }
}

/// A task as a node's store holds it (wire formats convert to and from this).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub magnet_url: String,
    pub status: TaskStatus,
    /// Percent 0..=100 of the current phase (download, then transcode).
    pub progress: f64,
    /// Bytes per second.
    pub speed: u64,
    pub size: u64,
    pub downloaded: u64,
    /// Paths inside the torrent.
    pub files: Vec<String>,
    pub torrent_name: String,
    /// Relative to the node's data folder, e.g. `m3u8/task_1/index.m3u8`.
    pub m3u8_path: Option<String>,
    pub srts: Vec<String>,
    pub segments: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    pub node_id: String,
    pub info_hash: String,
    pub error: Option<String>,
    /// What the task waits for right now ("no peers", "waiting for metadata"), for the UI.
    pub detail: String,
    pub peers: u32,
    /// `x.pe` peers of the magnet, kept so that a restarted downloader finds them again.
    pub peer_hints: Vec<String>,
    /// The id of the user who submitted it (empty for tasks from before owners were kept).
    pub owner: String,
    /// "remux" or "transcode", once the transcoder chose.
    pub transcode_path: Option<String>,
    /// Its playlist plays already while the torrent downloads (progressive playback).
    pub playable: bool,
    /// Percent 0..=100 of the transcode, apart from the download's `progress`.
    pub transcode_progress: f64,
    /// Paused by its submitter: no transfers until resumed (status stays as it was).
    pub paused: bool,
    /// How many times it was retried after an error (0: never).
    pub attempt: u32,
    /// Bytes uploaded to peers, summed across restarts of the node.
    pub uploaded: u64,
    /// Why seeding stopped (a ratio or time limit reached, or "stop and keep"); none while it
    /// seeds or before the download completes.
    pub seeding_stopped: Option<String>,
    /// Pinned by its submitter: never evicted to make room.
    pub pinned: bool,
    /// When a viewer last fetched one of its files (RFC 3339); none if never.
    pub last_played_at: Option<String>,
    /// Its payload was evicted to make room (its HLS still plays; it no longer seeds).
    pub payload_evicted: bool,
    /// Bytes its payload and HLS folders hold, as last measured.
    pub disk_bytes: u64,
    /// Sizes of `files`, in the same order (empty for tasks from before sizes were kept).
    pub file_sizes: Vec<u64>,
    /// The video its submitter chose to fetch and play (a file index); none: the largest.
    pub chosen: Option<u32>,
    /// What each video's transcode did, by file index (the task's own status follows the
    /// chosen one's).
    pub videos: std::collections::BTreeMap<u32, VideoState>,
    /// Bytes of each file on the node now (a live figure from the torrent, not stored; empty
    /// when the torrent is not loaded).
    pub file_progress: Vec<u64>,
}

/// Where one video's own transcode is.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VideoState {
    /// `queued`, `transcoding`, `playable`, `ready`, `stopped` or `error`.
    pub state: String,
    #[serde(default)]
    pub progress: f64,
    #[serde(default)]
    pub error: String,
}
