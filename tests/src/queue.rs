//! The test side of a node's transcode queue, for tests and benchmarks without a downloader:
//! publishes jobs and reads the transcoders' events.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use magnet_proto::v1 as pb;
use magnet_runtime::{nats, subjects};
use prost::Message as _;

use crate::nats::NatsServer;

pub struct JobQueue {
    node: String,
    js: jetstream::Context,
    events: jetstream::consumer::PullConsumer,
}

impl JobQueue {
    /// Declares the streams and a consumer of `node`'s events (none may exist yet: the events
    /// stream is a work queue).
    pub async fn new(nats: &NatsServer, node: &str) -> anyhow::Result<Self> {
        let js = jetstream::new(nats.client().await?);
        nats::jobs_stream(&js, 1).await?;
        let stream = nats::events_stream(&js, 1).await?;
        let events = stream
            .get_or_create_consumer(
                "test-events",
                pull::Config {
                    durable_name: Some("test-events".into()),
                    filter_subject: subjects::node_events(node),
                    ..Default::default()
                },
            )
            .await?;
        Ok(Self {
            node: node.into(),
            js,
            events,
        })
    }

    /// Publishes a job for `task_id` with `inputs` (path, name in the torrent), output under `m3u8`.
    pub async fn submit(
        &self,
        task_id: &str,
        inputs: &[(&Path, &str)],
        m3u8: &Path,
    ) -> anyhow::Result<()> {
        let inputs = inputs
            .iter()
            .map(|(path, name)| pb::TranscodeInput {
                source: Some(pb::transcode_input::Source::Path(
                    path.to_string_lossy().into_owned(),
                )),
                name: (*name).into(),
                size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            })
            .collect();
        self.submit_inputs(task_id, inputs, m3u8).await
    }

    /// Publishes a job for `task_id` with `inputs` as they are (paths or URLs).
    pub async fn submit_inputs(
        &self,
        task_id: &str,
        inputs: Vec<pb::TranscodeInput>,
        m3u8: &Path,
    ) -> anyhow::Result<()> {
        self.publish(task_id, inputs, m3u8, false).await
    }

    /// Publishes a progressive job (as a downloader does when metadata arrives).
    pub async fn submit_progressive(
        &self,
        task_id: &str,
        inputs: Vec<pb::TranscodeInput>,
        m3u8: &Path,
    ) -> anyhow::Result<()> {
        self.publish(task_id, inputs, m3u8, true).await
    }

    async fn publish(
        &self,
        task_id: &str,
        inputs: Vec<pb::TranscodeInput>,
        m3u8: &Path,
        progressive: bool,
    ) -> anyhow::Result<()> {
        let job = pb::TranscodeJob {
            task_id: task_id.into(),
            node_id: self.node.clone(),
            inputs,
            output_dir: m3u8.join(task_id).to_string_lossy().into_owned(),
            progressive,
            variant: String::new(),
        };
        self.js
            .publish(
                subjects::transcode_jobs(&self.node),
                job.encode_to_vec().into(),
            )
            .await?
            .await?;
        Ok(())
    }

    /// Collects events until `done` says the collection is complete, or `limit` passes.
    pub async fn collect(
        &self,
        limit: Duration,
        done: impl Fn(&[pb::TranscodeEvent]) -> bool,
    ) -> anyhow::Result<Vec<pb::TranscodeEvent>> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while !done(&got) {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "timed out; events so far: {got:#?}"
            );
            let mut batch = self
                .events
                .fetch()
                .max_messages(10)
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut any = false;
            while let Some(m) = batch.next().await {
                let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
                got.push(pb::TranscodeEvent::decode(m.payload.clone())?);
                m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                any = true;
            }
            if !any {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(got)
    }
}

/// How many events are final (ready or failed).
pub fn finals(events: &[pb::TranscodeEvent]) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                Some(pb::transcode_event::Kind::Ready(_) | pb::transcode_event::Kind::Failed(_))
            )
        })
        .count()
}

/// The ready result of `task`, if any.
pub fn ready_of<'a>(
    events: &'a [pb::TranscodeEvent],
    task: &str,
) -> Option<&'a pb::TranscodeReady> {
    events
        .iter()
        .filter(|e| e.task_id == task)
        .find_map(|e| match &e.kind {
            Some(pb::transcode_event::Kind::Ready(r)) => Some(r),
            _ => None,
        })
}
