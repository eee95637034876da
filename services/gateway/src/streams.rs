//! Long-lived answers (`/ws/clients`, `/api/events`) each hold a connection and a task for as
//! long as the browser keeps them; one user (or, without accounts, one client address) may
//! hold at most `gateway.max_streams_per_user` at once on this gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use magnet_core::ErrorCode;

use crate::auth::User;
use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct OpenStreams {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    max: usize,
}

/// One open stream; dropping it (the stream ended) frees its place.
pub struct StreamGuard {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl OpenStreams {
    pub fn new(max: usize) -> Self {
        Self {
            counts: Arc::default(),
            max,
        }
    }

    /// A place for one more stream of `user` (from `peer`), or 429.
    pub fn open(&self, user: &User, peer: SocketAddr) -> ApiResult<StreamGuard> {
        let key = if user.is_local() {
            format!("addr:{}", peer.ip())
        } else {
            format!("user:{}", user.id)
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_default();
        if *n >= self.max {
            return Err(ApiError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "{} live connections (WebSockets, event streams) are open already, the most one user may have; close a tab",
                    self.max
                ),
            )
            .retry_after(10));
        }
        *n += 1;
        Ok(StreamGuard {
            counts: self.counts.clone(),
            key,
        })
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}
