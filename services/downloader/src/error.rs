//! Errors of the downloader, each naming a cause and mapping to one error code.

use std::path::PathBuf;

use magnet_core::task::InvalidTaskId;
use magnet_core::{ErrorCode, MagnetError, Reason, TaskId};

/// Everything that can go wrong in the downloader; its message is what the caller is told,
/// and [`Error::reason`] picks the code it is sent with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid magnet link: {0}")]
    BadMagnet(#[from] MagnetError),
    #[error("{0}")]
    BadTaskId(#[from] InvalidTaskId),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("{0}")]
    InternalAddress(String),
    #[error("task {0} not found")]
    TaskNotFound(TaskId),
    #[error(
        "not enough free disk space on the node: {free_mb} MB free, the floor for new tasks is {floor_mb} MB"
    )]
    DiskFull { free_mb: u64, floor_mb: u64 },
    #[error("{0}")]
    NoRoom(String),
    #[error(
        "no metadata for the torrent after {0} s: no peer sent it (check the magnet's peers or trackers)"
    )]
    NoMetadata(u64),
    #[error("download stalled: no progress for {0} s (no peers with the missing pieces)")]
    Stalled(u64),
    #[error("BitTorrent: {0}")]
    Torrent(String),
    #[error("refused: {0}")]
    TorrentTooLarge(String),
    #[error("{0}")]
    BadTorrent(String),
    #[error("transcoder autoscaler: {0}")]
    Autoscale(String),
    #[error("task store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("task store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("task store holds a bad value: {0}")]
    Corrupt(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] magnet_runtime::Error),
    #[error("internal: {0}")]
    Internal(&'static str),
    #[error("cancelled")]
    Cancelled,
}

/// The downloader's result, with its [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error's class (HTTP and gRPC status); [`Error::reason`] falls back to it for
    /// errors without a more precise reason.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadMagnet(_)
            | Self::BadTaskId(_)
            | Self::Unsupported(_)
            | Self::BadTorrent(_)
            | Self::TorrentTooLarge(_)
            | Self::InternalAddress(_) => ErrorCode::InvalidArgument,
            Self::TaskNotFound(_) => ErrorCode::NotFound,
            Self::DiskFull { .. } | Self::NoRoom(_) => ErrorCode::ResourceExhausted,
            Self::Nats(_) | Self::Autoscale(_) => ErrorCode::Unavailable,
            Self::NoMetadata(_) | Self::Stalled(_) | Self::Torrent(_) | Self::Cancelled => {
                ErrorCode::Conflict
            }
            Self::Store(_)
            | Self::Migrate(_)
            | Self::Corrupt(_)
            | Self::Io { .. }
            | Self::Runtime(_)
            | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What a client is told the cause is (`code` in the gateway's answer).
    pub fn reason(&self) -> Reason {
        match self {
            Self::BadMagnet(_) | Self::InternalAddress(_) => Reason::MagnetInvalid,
            Self::BadTaskId(_) => Reason::TaskIdInvalid,
            Self::TaskNotFound(_) => Reason::TaskNotFound,
            Self::DiskFull { .. } | Self::NoRoom(_) => Reason::DiskFull,
            Self::BadTorrent(_) => Reason::TorrentInvalid,
            Self::TorrentTooLarge(_) => Reason::TorrentTooLarge,
            _ => self.code().reason(),
        }
    }

    pub(crate) fn torrent(e: impl std::fmt::Display) -> Self {
        Self::Torrent(format!("{e:#}"))
    }

    pub(crate) fn nats(e: impl std::fmt::Display) -> Self {
        Self::Nats(e.to_string())
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        magnet_runtime::grpc::status_because(e.reason(), e.to_string())
    }
}
