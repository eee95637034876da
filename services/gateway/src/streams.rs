//! Long-lived answers (`/ws/clients`, `/api/events`) each hold a connection and a task for as
//! long as the browser keeps them; one user (or, without accounts, one client address) may
//! hold at most `gateway.max_streams_per_user` at once on this gateway.

use std::net::SocketAddr;

use magnet_core::Reason;

use crate::auth::User;
use crate::counted::{Counts, Held};
use crate::error::{ApiError, ApiResult};

/// The long-lived answers open per user (per client address without accounts), up to `max`
/// each.
#[derive(Clone)]
pub struct OpenStreams {
    counts: Counts,
    max: usize,
}

impl OpenStreams {
    /// Allows `max` open streams per user (`gateway.max_streams_per_user`).
    pub fn new(max: usize) -> Self {
        Self {
            counts: Counts::default(),
            max,
        }
    }

    /// A place for one more stream of `user` (from `peer`), held while the guard lives, or
    /// 429.
    pub fn open(&self, user: &User, peer: SocketAddr) -> ApiResult<Held> {
        let key = if user.is_local() {
            format!("addr:{}", peer.ip())
        } else {
            format!("user:{}", user.id)
        };
        let (held, before) = self.counts.hold(&key);
        if before >= self.max {
            return Err(ApiError::because(
                Reason::TooManyStreams,
                format!(
                    "{} live connections (WebSockets, event streams) are open already, the most one user may have; close a tab",
                    self.max
                ),
            )
            .retry_after(10));
        }
        Ok(held)
    }
}
