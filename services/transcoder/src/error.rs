//! Errors of a transcode job. `is_permanent` decides between reporting the job as failed and
//! letting another attempt (or replica) try again.

use std::path::PathBuf;

/// Why a job (or the replica's start) failed; a failed job's result carries the message, so
/// each names the file or program concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the torrent has no video file (files: {files})")]
    NoVideoFile { files: String },
    #[error("{name} is not a readable video (corrupt or not a media file): {detail}")]
    Unreadable { name: String, detail: String },
    #[error("{name} has no video stream")]
    NoVideoStream { name: String },
    #[error(
        "{name} is a {format} file, not a video container; refused (it could make the node read other files or loop without end)"
    )]
    FormatRefused { name: String, format: String },
    #[error("{name} took more than {secs} s to convert (the limit for its length); stopped")]
    TooSlow { name: String, secs: u64 },
    #[error("{name} made more than {mb} MB of output (the limit for its size); stopped")]
    TooLarge { name: String, mb: u64 },
    #[error("ffmpeg failed ({status}): {stderr}")]
    Ffmpeg { status: String, stderr: String },
    #[error("ffmpeg ended without finishing the playlist of {name}")]
    IncompletePlaylist { name: String },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the video's index: {0}")]
    Index(String),
    #[error("malformed job: {0}")]
    BadJob(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Runtime(#[from] magnet_runtime::Error),
    #[error("the task was deleted, or its video is no longer wanted, while it was being converted")]
    TaskGone,
    #[error("cancelled")]
    Cancelled,
}

/// The transcoder's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when trying again cannot help: the input itself is the problem.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::NoVideoFile { .. }
                | Self::Unreadable { .. }
                | Self::NoVideoStream { .. }
                | Self::FormatRefused { .. }
                | Self::TooSlow { .. }
                | Self::TooLarge { .. }
                | Self::BadJob(_)
                | Self::TaskGone
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
