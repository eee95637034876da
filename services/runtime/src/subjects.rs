//! Every NATS subject, KV bucket, stream and durable consumer name of magnetm3u8, and nowhere
//! else. Node ids are validated by config (`[a-z0-9-]`), task ids by `magnet_core::TaskId`
//! (`task_<digits>`), so both are always safe subject tokens.

/// KV bucket of the node registry: key = node id, value = `NodeRecord` protobuf.
/// Writer: each node's downloader (heartbeat). Readers: gateway (watch), signaling.
pub const NODES_BUCKET: &str = "magnet_nodes";

/// KV bucket of accounts: key = `u.<user id>` (the lowercase username), value = the user as
/// JSON with its password hash. Writer and reader: gateways.
pub const USERS_BUCKET: &str = "magnet_users";

/// KV bucket of login sessions: key = `s.<sha-256 of the token, hex>`, value = JSON
/// `{user_id, created_at}`; entries expire with the bucket's max age (the session lifetime).
/// Writer and reader: gateways.
pub const SESSIONS_BUCKET: &str = "magnet_sessions";

/// JetStream stream of transcode jobs (work queue: each job to exactly one transcoder).
pub const JOBS_STREAM: &str = "MAGNET_JOBS";
/// JetStream stream of transcode events (results and status transitions).
pub const EVENTS_STREAM: &str = "MAGNET_EVENTS";

/// Subject of a node's transcode jobs. Publisher: the node's downloader.
/// Consumer: the node's transcoders, through [`transcoder_consumer`].
pub fn transcode_jobs(node: &str) -> String {
    format!("magnet.jobs.{node}")
}

/// Wildcard covering every node's jobs: the subjects of [`JOBS_STREAM`].
pub const JOBS_WILDCARD: &str = "magnet.jobs.>";

/// Subject of one task's transcode events. Publisher: the transcoder that runs the job.
/// Consumer: the node's downloader, through [`downloader_events_consumer`].
pub fn task_events(node: &str, task: &str) -> String {
    format!("magnet.events.{node}.{task}")
}

/// Every event of one node (filter of the downloader's durable consumer).
pub fn node_events(node: &str) -> String {
    format!("magnet.events.{node}.>")
}

/// Wildcard covering every node's events: the subjects of [`EVENTS_STREAM`].
pub const EVENTS_WILDCARD: &str = "magnet.events.>";

/// Core-NATS subject of a task's live progress (`TaskProgress`). Publishers: the downloader
/// while downloading, the transcoder while transcoding. Subscribers: gateways (live UI).
pub fn task_progress(node: &str, task: &str) -> String {
    format!("magnet.progress.{node}.{task}")
}

/// Every task's progress on every node.
pub const PROGRESS_WILDCARD: &str = "magnet.progress.>";

/// Request/reply subject where a node's streamer answers WebRTC offers (`StreamerOffer` →
/// `StreamerAnswer`). Requester: signaling. Subscriber: the node's streamer.
pub fn signal_offer(node: &str) -> String {
    format!("magnet.signal.{node}.offer")
}

/// ICE candidates of one browser session, towards the node's streamer (`SessionIce`).
/// Publisher: signaling. Subscriber: the node's streamer.
pub fn signal_ice_to_streamer(node: &str, session: &str) -> String {
    format!("magnet.signal.{node}.session.{session}.ice")
}

/// End of one browser session, towards the node's streamer (`SessionBye`).
/// Publisher: signaling. Subscriber: the node's streamer.
pub fn signal_bye(node: &str, session: &str) -> String {
    format!("magnet.signal.{node}.session.{session}.bye")
}

/// Every session subject of a node's streamer (its subscription).
pub fn signal_sessions(node: &str) -> String {
    format!("magnet.signal.{node}.session.*.*")
}

/// ICE candidates of one browser session, towards the signaling replica that holds the
/// session's stream (`SessionIce`). Publisher: the streamer. Subscriber: that replica.
pub fn signal_to_client(session: &str) -> String {
    format!("magnet.signal.client.{session}")
}

/// Request/reply subject of one original worker's connection (`OriginalCall` →
/// `OriginalReply`): the tasks, a task, a submit. Requester: any gateway replica.
/// Subscriber: the replica holding that worker's WebSocket (`connection` is in its
/// `NodeRecord`), so calls never reach a connection a newer one replaced.
pub fn original_calls(node: &str, connection: &str) -> String {
    format!("magnet.original.{node}.{connection}.calls")
}

/// Request/reply subject where the transcoder working on a progressive task makes the
/// segments asked for (`SegmentWanted` → `SegmentReply`). Requester: the node's streamer.
/// Subscriber: the transcoder replica that holds the job of the task's `variant` ("" for its
/// main folder, "v<index>" for a video its submitter chose; one token either way).
pub fn hls_want(node: &str, task: &str, variant: &str) -> String {
    if variant.is_empty() {
        format!("magnet.hls.{node}.{task}.want")
    } else {
        format!("magnet.hls.{node}.{task}-{variant}.want")
    }
}

/// A viewer fetched a file of the task (at most one notice per task every few seconds).
/// Publisher: the node's streamer. Subscriber: its downloader (eviction keeps tasks being
/// played). `task` may be `*` to subscribe to all.
pub fn task_played(node: &str, task: &str) -> String {
    format!("magnet.played.{node}.{task}")
}

/// Durable pull consumer shared by all transcoder replicas of a node.
pub fn transcoder_consumer(node: &str) -> String {
    format!("transcoder-{node}")
}

/// Durable pull consumer through which a node's downloader applies transcode events.
pub fn downloader_events_consumer(node: &str) -> String {
    format!("downloader-{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_nest_under_their_wildcards() {
        assert!(transcode_jobs("worker-a").starts_with(JOBS_WILDCARD.trim_end_matches('>')));
        assert!(
            task_events("worker-a", "task_1")
                .starts_with(node_events("worker-a").trim_end_matches('>'))
        );
        assert!(
            task_events("worker-a", "task_1").starts_with(EVENTS_WILDCARD.trim_end_matches('>'))
        );
        assert!(task_progress("w", "task_1").starts_with(PROGRESS_WILDCARD.trim_end_matches('>')));
    }
}
