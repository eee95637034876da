//! Play notices: when a viewer fetches a file of a task (over a data channel or the relay),
//! the node's downloader hears of it (`subjects::task_played`), at most once per task every
//! [`EVERY`], so that its disk quota never evicts a task someone is playing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one notice per task this often.
pub const EVERY: Duration = Duration::from_secs(10);

/// Tasks remembered at most (a flood of distinct ids cannot grow the map beyond this).
const MAX_TASKS: usize = 4096;

/// The node's play notices, sent by the file root (`Root::with_plays`) when a file is fetched.
pub struct Plays {
    client: async_nats::Client,
    node: String,
    last: Mutex<HashMap<String, Instant>>,
}

impl Plays {
    /// Notices go to `node`'s downloader over `client`; none is remembered yet.
    pub fn new(client: async_nats::Client, node: String) -> Self {
        Self {
            client,
            node,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Tells the downloader that `task` is being played, unless it was told within [`EVERY`].
    pub async fn notice(&self, task: &str) {
        let due = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if last.len() >= MAX_TASKS {
                last.retain(|_, at| now.duration_since(*at) < EVERY);
            }
            match last.get(task) {
                Some(at) if now.duration_since(*at) < EVERY => false,
                _ if last.len() >= MAX_TASKS => false,
                _ => {
                    last.insert(task.to_owned(), now);
                    true
                }
            }
        };
        if !due {
            return;
        }
        let subject = magnet_runtime::subjects::task_played(&self.node, task);
        if let Err(e) = self.client.publish(subject, bytes::Bytes::new()).await {
            tracing::debug!(error = %e, task, "play notice not sent");
        }
    }
}
