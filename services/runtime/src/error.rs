//! Errors of the runtime crate.

use std::path::PathBuf;

/// Why the shared runtime failed: configuration, NATS, telemetry, binding a listener or file
/// I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration could not be read or failed validation; the message names the key.
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot connect to NATS at {url}: {source}")]
    NatsConnect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("NATS JetStream: {0}")]
    JetStream(String),
    #[error("telemetry: {0}")]
    Telemetry(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The runtime crate's result, with its [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
