//! magnet-core: the domain of magnetm3u8 that every service shares — the task model and its
//! status state machine, magnet-link parsing, and the error codes that the gateway maps to HTTP
//! statuses and gRPC servers map to `tonic::Status`. Pure: no I/O, no clock, no wire format.

pub mod error;
pub mod hls;
pub mod magnet;
pub mod media;
pub mod node;
pub mod range;
pub mod redact;
pub mod session;
pub mod turn;
pub mod task;

pub use error::{ErrorCode, Reason};
pub use magnet::{InfoHash, Magnet, MagnetError};
pub use node::NodeId;
pub use session::SessionId;
pub use task::{Task, TaskId, TaskStatus, TransitionError};
