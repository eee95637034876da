//! The node registry as the gateway sees it: the `magnet_nodes` KV bucket, watched. A node is
//! online while its last heartbeat is younger than the registry TTL (an expired KV record
//! produces no watch event, so age is checked on read). A watch quiet for a whole TTL is made
//! anew: nodes put their records every few seconds, and a clustered JetStream that lost the
//! server holding the watch's consumer leaves it silent without an error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use magnet_proto::v1 as pb;
use prost::Message as _;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

/// The nodes last read from the bucket, shared by clones; [`Registry::watch`] keeps them
/// current.
#[derive(Clone)]
pub struct Registry {
    nodes: Arc<RwLock<HashMap<String, pb::NodeRecord>>>,
    ttl: Duration,
}

impl Registry {
    /// An empty registry, in which a node is online while its record is younger than `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            nodes: Arc::default(),
            ttl,
        }
    }

    /// Heard from within the TTL, and not marked offline (an original worker whose
    /// heartbeats stopped while its socket stays open).
    fn fresh(&self, n: &pb::NodeRecord) -> bool {
        let age = chrono::Utc::now().timestamp_millis() - n.last_seen_ms;
        age <= self.ttl.as_millis() as i64 && n.status != "offline"
    }

    /// Online nodes, by id.
    pub async fn online(&self) -> Vec<pb::NodeRecord> {
        let mut v: Vec<_> = self
            .nodes
            .read()
            .await
            .values()
            .filter(|n| self.fresh(n))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Every node seen since start (online or not).
    pub async fn total(&self) -> usize {
        self.nodes.read().await.len()
    }

    /// Node `id` while it is online; `None` when it is unknown, stale or marked offline.
    pub async fn get(&self, id: &str) -> Option<pb::NodeRecord> {
        self.nodes
            .read()
            .await
            .get(id)
            .filter(|n| self.fresh(n))
            .cloned()
    }

    /// Follows the bucket until shutdown (current values first, then changes).
    pub async fn watch(self, bucket: kv::Store, shutdown: CancellationToken) {
        let mut pauses = magnet_runtime::backoff::Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(10),
        );
        loop {
            let mut watch = match bucket.watch_with_history(">").await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the node registry; retrying");
                    if !pauses.wait(&shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            pauses.reset();
            loop {
                let entry = tokio::select! {
                    e = tokio::time::timeout(self.ttl, watch.next()) => match e {
                        Ok(e) => e,
                        Err(_) => {
                            tracing::debug!("the node registry's watch was quiet for a TTL; watching anew");
                            break;
                        }
                    },
                    _ = shutdown.cancelled() => return,
                };
                match entry {
                    Some(Ok(e)) => match e.operation {
                        kv::Operation::Put => match pb::NodeRecord::decode(e.value) {
                            Ok(rec) => {
                                self.nodes.write().await.insert(e.key, rec);
                            }
                            Err(err) => {
                                tracing::warn!(key = %e.key, error = %err, "malformed node record ignored")
                            }
                        },
                        kv::Operation::Delete | kv::Operation::Purge => {
                            self.nodes.write().await.remove(&e.key);
                        }
                    },
                    Some(Err(e)) => tracing::debug!(error = %e, "registry watch hiccup"),
                    None => break,
                }
            }
        }
    }
}
