//! The downloader's side of the transcode queue: publishing jobs to the node's JetStream work
//! queue, and applying the transcoders' events from the node's durable events consumer, so no
//! result is lost while the downloader is down.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use magnet_proto::v1 as pb;
use magnet_runtime::{subjects, telemetry};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::tasks::Tasks;
use crate::{Error, Result};

/// Publishes a job; JetStream drops a second copy of the same task's job (message id, one
/// per `attempt`: a retried task's job is a new one; per chosen video's folder; and per
/// `nonce` for a job published again on purpose).
pub async fn publish_job(
    js: &jetstream::Context,
    job: &pb::TranscodeJob,
    attempt: u32,
    nonce: Option<u64>,
) -> Result<()> {
    let mut id = match attempt {
        0 => format!("job-{}", job.task_id),
        n => format!("job-{}-{n}", job.task_id),
    };
    if !job.variant.is_empty() {
        id = format!("{id}-{}", job.variant);
    }
    if let Some(n) = nonce {
        id = format!("{id}-{n}");
    }
    let message = PublishMessage::build()
        .message_id(id)
        .headers(telemetry::nats_headers())
        .payload(job.encode_to_vec().into());
    magnet_runtime::nats::publish_durable(js, subjects::transcode_jobs(&job.node_id), message)
        .await
        .map_err(Error::nats)
}

/// Applies the node's transcode events until shutdown.
pub async fn apply_events(
    tasks: Arc<Tasks>,
    js: jetstream::Context,
    node: String,
    shutdown: CancellationToken,
) -> Result<()> {
    // Declared with the node's replicas when the downloader started.
    let stream = js
        .get_stream(subjects::EVENTS_STREAM)
        .await
        .map_err(Error::nats)?;
    let name = subjects::downloader_events_consumer(&node);
    let consumer: pull::Stream = stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subjects::node_events(&node),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_deliver: 20,
                ..Default::default()
            },
        )
        .await
        .map_err(Error::nats)?
        .messages()
        .await
        .map_err(Error::nats)?;
    let mut messages = consumer;
    loop {
        let next = tokio::select! {
            m = messages.next() => m,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "events consumer hiccup");
                continue;
            }
            None => return Err(Error::Nats("events consumer ended".into())),
        };
        let event = match pb::TranscodeEvent::decode(message.payload.clone()) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(subject = %message.subject, error = %e, "malformed transcode event dropped");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            }
        };
        let span = tracing::info_span!("apply_event", task = %event.task_id);
        telemetry::extract_nats(&span, message.headers.as_ref());
        let applied = tasks.apply_event(&event).instrument(span).await;
        let ack = match applied {
            Ok(()) => message.ack().await,
            Err(e @ (Error::BadTaskId(_) | Error::TaskNotFound(_))) => {
                tracing::warn!(error = %e, "event for no task of this node dropped");
                message.ack_with(AckKind::Term).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "event not applied; will be redelivered");
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                    .await
            }
        };
        if let Err(e) = ack {
            tracing::warn!(error = %e, "ack failed; the event may come again (applying is idempotent)");
        }
    }
}
