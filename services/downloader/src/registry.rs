//! The node registry: this node's record in the NATS KV bucket, refreshed every heartbeat.
//! The bucket's max age removes a record whose node stopped beating; a clean stop deletes it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use magnet_proto::v1 as pb;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::tasks::Tasks;

/// Where the node's services are reached, for the record.
pub struct Endpoints {
    pub downloader: String,
}

/// The node's record as of now, from its settings and current figures (`disk_free` and
/// `disk_used` in bytes, `active` downloads); [`put_record`] stores it in the bucket.
pub fn record(
    settings: &magnet_runtime::Settings,
    endpoints: &Endpoints,
    disk_free: u64,
    disk_used: u64,
    active: usize,
) -> pb::NodeRecord {
    pb::NodeRecord {
        id: settings.node.id.clone(),
        name: settings.node.name.clone(),
        address: settings.node.address.clone(),
        status: "online".into(),
        capabilities: vec!["torrent".into(), "transcode".into(), "webrtc".into()],
        resources: Some(pb::NodeResources {
            max_downloads: settings.limits.max_downloads,
            max_transcodes: settings.limits.max_transcodes,
            disk_space_gb: settings.limits.disk_space_gb,
            disk_free_gb: disk_free / (1024 * 1024 * 1024),
            disk_used_bytes: disk_used,
            disk_quota_bytes: settings
                .limits
                .disk_quota_mb
                .unwrap_or(0)
                .saturating_mul(1024 * 1024),
        }),
        metadata: Some(pb::NodeMetadata {
            version: env!("CARGO_PKG_VERSION").into(),
            arch: original_arch(std::env::consts::ARCH).into(),
        }),
        downloader_endpoint: endpoints.downloader.clone(),
        streamer_endpoint: settings.streamer.advertise.clone().unwrap_or_else(|| {
            format!(
                "http://{}:{}",
                settings.node.address,
                settings.streamer.grpc_listen.port()
            )
        }),
        last_seen_ms: chrono::Utc::now().timestamp_millis(),
        active_tasks: active as u32,
        kind: pb::NodeKind::Native.into(),
        connection: String::new(),
    }
}

/// Puts the node's current record once.
pub async fn put_record(
    bucket: &kv::Store,
    tasks: &Tasks,
    settings: &magnet_runtime::Settings,
    endpoints: &Endpoints,
) {
    let rec = record(
        settings,
        endpoints,
        tasks.disk_free(),
        tasks.disk_used(),
        tasks.active_downloads().await,
    );
    if let Err(e) = bucket
        .put(&settings.node.id, rec.encode_to_vec().into())
        .await
    {
        tracing::warn!(error = %e, "node registry heartbeat failed");
    }
}

/// Puts the record every `every` until shutdown (the first put is the caller's, before the
/// node says it is ready), then deletes it.
pub async fn heartbeat(
    bucket: kv::Store,
    tasks: Arc<Tasks>,
    settings: magnet_runtime::Settings,
    endpoints: Endpoints,
    every: Duration,
    shutdown: CancellationToken,
) {
    let key = settings.node.id.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => break,
        }
        put_record(&bucket, &tasks, &settings, &endpoints).await;
        tasks.refresh_gauges().await;
    }
    match bucket.delete(&key).await {
        Ok(()) => tracing::info!(node = %key, "node record removed from the registry"),
        Err(e) => tracing::warn!(error = %e, "node record not removed; it expires with its TTL"),
    }
}

/// The machine's architecture as the original's nodes name it (Go's `GOARCH`: `amd64`,
/// `arm64`, …) rather than Rust's (`x86_64`, `aarch64`), so its pages and tools read ours
/// alike.
fn original_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn arch_is_named_as_the_original_names_it() {
        assert_eq!(super::original_arch("x86_64"), "amd64");
        assert_eq!(super::original_arch("aarch64"), "arm64");
        assert_eq!(super::original_arch("mips"), "mips");
    }
}
