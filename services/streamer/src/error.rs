//! Errors of the streamer.

/// Why the streamer failed to start or an offer failed: a refusal the browser is told, WebRTC,
/// NATS, file I/O, or the runtime (binding, NATS connection).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An offer that cannot be answered; the message goes back to the browser.
    #[error("{0}")]
    Refused(String),
    #[error("WebRTC: {0}")]
    WebRtc(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("I/O on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] magnet_runtime::Error),
}

/// The streamer's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn webrtc(e: impl std::fmt::Display) -> Self {
        Self::WebRtc(e.to_string())
    }
    pub(crate) fn nats(e: impl std::fmt::Display) -> Self {
        Self::Nats(e.to_string())
    }
}
