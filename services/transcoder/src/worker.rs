//! A replica's side of the node's job queue: one durable pull consumer shared by every replica
//! (so each job goes to exactly one), at most `limits.max_transcodes` jobs at a time
//! (progressive jobs beside them, at most `limits.max_downloads`), pulled one by one (no
//! replica hoards jobs it cannot start). While a job runs the replica marks it in
//! progress; it publishes the result event and only then acks. Permanent failures (and the
//! last allowed attempt) become an `error` result; transient ones are naked with backoff; on
//! shutdown the running job is stopped and naked so another replica takes it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use magnet_proto::v1 as pb;
use magnet_runtime::{Settings, nats, subjects, telemetry};
use prost::Message as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::job::{Done, Job, Report};
use crate::{Error, Metrics, Result};

/// One replica's side of the job queue and what its jobs need; `start` builds it, and
/// [`Worker::run`] pulls and runs jobs until shutdown.
pub struct Worker {
    pub settings: Settings,
    pub replica: String,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub metrics: Metrics,
}

impl Worker {
    /// The node's job consumer (created by whichever replica comes first).
    pub async fn consumer(&self) -> Result<PullConsumer> {
        let stream = nats::jobs_stream(&self.js, self.settings.nats.replicas).await?;
        let node = &self.settings.node.id;
        let name = subjects::transcoder_consumer(node);
        stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: subjects::transcode_jobs(node),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(self.settings.transcoder.ack_wait_secs),
                    // Attempts are counted by us (see `handle`), so a job is never left undelivered.
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::Nats(e.to_string()))
    }

    /// Pulls and runs jobs until shutdown; then waits for running jobs to stop.
    pub async fn run(
        self: Arc<Self>,
        consumer: PullConsumer,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let slots = Arc::new(Semaphore::new(self.settings.limits.max_transcodes as usize));
        // Progressive jobs run for as long as their torrents download, mostly waiting for
        // pieces: they run beside the node's transcodes (at most one per download), so one
        // slow torrent never holds the transcode slot the next task needs to become playable.
        let progressive_slots = Arc::new(Semaphore::new(
            self.settings.limits.max_downloads.max(1) as usize
        ));
        let mut running = tokio::task::JoinSet::new();
        // Pauses while JetStream cannot hand out jobs (a server lost, a leader elected).
        let mut pauses = magnet_runtime::backoff::Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(5),
        );
        loop {
            let slot = tokio::select! {
                s = slots.clone().acquire_owned() => s.map_err(|_| Error::Cancelled)?,
                _ = shutdown.cancelled() => break,
            };
            let batch = consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_secs(5))
                .messages();
            let mut batch = tokio::select! {
                b = batch => match b {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot pull jobs; retrying");
                        if !pauses.wait(&shutdown).await {
                            break;
                        }
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            };
            pauses.reset();
            let next = tokio::select! {
                m = batch.next() => m,
                _ = shutdown.cancelled() => break,
            };
            match next {
                Some(Ok(message)) => {
                    let progressive = pb::TranscodeJob::decode(message.payload.clone())
                        .is_ok_and(|j| j.progressive);
                    let slot = match progressive_slots.clone().try_acquire_owned() {
                        Ok(own) if progressive => {
                            drop(slot);
                            own
                        }
                        _ => slot,
                    };
                    let this = self.clone();
                    let token = shutdown.child_token();
                    running.spawn(async move {
                        this.handle(message, &token).await;
                        drop(slot);
                    });
                }
                Some(Err(e)) => tracing::debug!(error = %e, "pull ended"),
                None => {}
            }
            while running.try_join_next().is_some() {}
        }
        tracing::info!(
            jobs = running.len(),
            "stopping: no new jobs; stopping running ones"
        );
        while running.join_next().await.is_some() {}
        Ok(())
    }

    async fn handle(&self, message: jetstream::Message, cancel: &CancellationToken) {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let job = match pb::TranscodeJob::decode(message.payload.clone()) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(error = %e, "malformed job dropped");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let span = tracing::info_span!("transcode", task = %job.task_id, node = %job.node_id, attempt = delivered, replica = %self.replica);
        telemetry::extract_nats(&span, message.headers.as_ref());
        self.handle_job(&message, &job, delivered, cancel)
            .instrument(span)
            .await;
    }

    async fn handle_job(
        &self,
        message: &jetstream::Message,
        job: &pb::TranscodeJob,
        delivered: i64,
        cancel: &CancellationToken,
    ) {
        let max = self.settings.transcoder.max_deliver;
        if delivered > max {
            self.finish_failed(
                message,
                job,
                &format!("gave up after {max} attempts (the transcoder kept stopping mid-job)"),
            )
            .await;
            return;
        }
        self.metrics.running.inc();
        let started = std::time::Instant::now();
        let outcome = self.transcode(message, job, cancel).await;
        self.metrics.running.dec();
        if let Ok(done) = &outcome {
            let wall = started.elapsed().as_secs_f64();
            if wall > 0.0 {
                self.metrics.speed.observe(done.duration / wall);
            }
        }
        match outcome {
            Ok(done) => {
                let event = kind_ready(&done, &self.replica);
                match self.publish_event(job, event).await {
                    Ok(()) => {
                        self.metrics.done.inc();
                        tracing::info!(segments = done.segments.len(), duration = done.duration, path = %done.path_taken, "job done");
                        if let Err(e) = message.double_ack().await {
                            tracing::warn!(error = %e, "job ack failed; it may run again (results are idempotent)");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "result not published; the job will run again");
                        let _ = message
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                            .await;
                    }
                }
            }
            Err(Error::Cancelled) => {
                tracing::info!("job stopped by shutdown; handing it back");
                let _ = message.ack_with(AckKind::Nak(None)).await;
            }
            Err(Error::TaskGone) => {
                tracing::info!("the task was deleted or its video unchosen; job dropped");
                let _ = message.ack_with(AckKind::Term).await;
            }
            Err(e) if e.is_permanent() || delivered >= max => {
                self.finish_failed(message, job, &self.user_facing(job, &e.to_string()))
                    .await;
            }
            Err(e) => {
                let wait = Duration::from_secs(5 * delivered.max(1) as u64);
                tracing::warn!(error = %e, ?wait, "job failed; will retry");
                let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
            }
        }
    }

    /// `message` without the node's paths: each input's path becomes its name in the
    /// torrent, the output folders and the data folder go (users read task errors).
    fn user_facing(&self, job: &pb::TranscodeJob, message: &str) -> String {
        let data = std::path::absolute(&self.settings.storage.data_dir)
            .map(|p| format!("{}/", p.display()))
            .unwrap_or_default();
        let partial = crate::output::partial_dir(std::path::Path::new(&job.output_dir))
            .display()
            .to_string();
        let mut known: Vec<(&str, &str)> = job
            .inputs
            .iter()
            .filter_map(|i| match &i.source {
                Some(pb::transcode_input::Source::Path(p)) => Some((p.as_str(), i.name.as_str())),
                _ => None,
            })
            .collect();
        known.extend([
            (partial.as_str(), "the output folder"),
            (job.output_dir.as_str(), "the output folder"),
            (data.as_str(), ""),
        ]);
        magnet_core::redact::paths(message, &known)
    }

    async fn finish_failed(
        &self,
        message: &jetstream::Message,
        job: &pb::TranscodeJob,
        error: &str,
    ) {
        tracing::warn!(%error, "job failed for good");
        self.metrics.failed.inc();
        let event = pb::transcode_event::Kind::Failed(pb::TranscodeFailed {
            error: error.into(),
        });
        match self.publish_event(job, event).await {
            Ok(()) => {
                let _ = message.double_ack().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "failure not published; retrying later");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                    .await;
            }
        }
    }

    /// Runs the job, forwarding its reports as events and progress, keeping the job ours with
    /// in-progress acks.
    async fn transcode(
        &self,
        message: &jetstream::Message,
        job: &pb::TranscodeJob,
        cancel: &CancellationToken,
    ) -> Result<Done> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (want_tx, mut wants) = tokio::sync::mpsc::unbounded_channel();
        // Streamers' requests for segments of this task, while the job runs here.
        let _answering = if job.progressive {
            let subject = subjects::hls_want(&job.node_id, &job.task_id, &job.variant);
            let subscriber = self
                .client
                .subscribe(subject)
                .await
                .map_err(|e| Error::Nats(e.to_string()))?;
            Some(AbortOnDrop(tokio::spawn(answer_wants(
                self.client.clone(),
                subscriber,
                want_tx,
            ))))
        } else {
            drop(want_tx);
            None
        };
        let runner = Job {
            job,
            transcoding: &self.settings.transcoding,
            programs: &self.settings.transcoder,
            token: self.settings.internal.token.as_deref(),
        };
        let work = runner.run(tx, &mut wants, cancel);
        tokio::pin!(work);
        let keepalive_every =
            Duration::from_secs((self.settings.transcoder.ack_wait_secs / 3).max(1));
        let mut keepalive = tokio::time::interval(keepalive_every);
        let mut last_progress = tokio::time::Instant::now() - Duration::from_secs(10);
        let mut last_event = last_progress;
        loop {
            tokio::select! {
                done = &mut work => {
                    // Forward what is still queued (e.g. Started of a very short job).
                    while let Ok(r) = rx.try_recv() {
                        self.forward(job, r, &mut last_progress, &mut last_event).await;
                    }
                    return done;
                }
                Some(r) = rx.recv() => self.forward(job, r, &mut last_progress, &mut last_event).await,
                _ = keepalive.tick() => {
                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                        tracing::debug!(error = %e, "in-progress ack failed");
                    }
                }
            }
        }
    }

    async fn forward(
        &self,
        job: &pb::TranscodeJob,
        report: Report,
        last_progress: &mut tokio::time::Instant,
        last_event: &mut tokio::time::Instant,
    ) {
        match report {
            Report::Started { path_taken, input } => {
                let kind = pb::transcode_event::Kind::Started(pb::TranscodeStarted {
                    path_taken,
                    replica: self.replica.clone(),
                    input,
                });
                if let Err(e) = self.publish_event(job, kind).await {
                    tracing::warn!(error = %e, "started event not published");
                }
                if !job.progressive {
                    self.publish_progress(job, 0.0).await;
                }
            }
            Report::Playable {
                segments,
                duration,
                mode,
            } => {
                let kind = pb::transcode_event::Kind::Playable(pb::TranscodePlayable {
                    m3u8_path: crate::job::playlist_path(&job.task_id, &job.variant),
                    duration,
                    segments: u32::try_from(segments).unwrap_or(u32::MAX),
                    mode: mode.into(),
                    path_taken: String::new(),
                });
                tracing::info!(segments, duration, "playable");
                if let Err(e) = self.publish_event(job, kind).await {
                    tracing::warn!(error = %e, "playable event not published");
                }
            }
            Report::Progress(p) => {
                // UI progress each second on core NATS (the downloader's own while a
                // progressive job's torrent downloads); a durable event every 5 s for the store.
                if !job.progressive && last_progress.elapsed() >= Duration::from_secs(1) {
                    *last_progress = tokio::time::Instant::now();
                    self.publish_progress(job, p).await;
                }
                if last_event.elapsed() >= Duration::from_secs(5) {
                    *last_event = tokio::time::Instant::now();
                    let kind = pb::transcode_event::Kind::Progress(pb::TranscodeProgressed {
                        progress: p,
                    });
                    if let Err(e) = self.publish_event(job, kind).await {
                        tracing::debug!(error = %e, "progress event not published");
                    }
                }
            }
        }
    }

    /// A durable event for the node's downloader (awaits the stream's ack, through a failover).
    async fn publish_event(
        &self,
        job: &pb::TranscodeJob,
        kind: pb::transcode_event::Kind,
    ) -> Result<()> {
        let event = pb::TranscodeEvent {
            task_id: job.task_id.clone(),
            node_id: job.node_id.clone(),
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            variant: job.variant.clone(),
            kind: Some(kind),
        };
        let subject = subjects::task_events(&job.node_id, &job.task_id);
        // A repeated event is harmless: the downloader applies events as compare-and-sets.
        let message = async_nats::jetstream::message::PublishMessage::build()
            .headers(telemetry::nats_headers())
            .payload(event.encode_to_vec().into());
        nats::publish_durable(&self.js, subject, message)
            .await
            .map_err(Error::Nats)
    }

    /// Live progress for UIs on core NATS (may be lost; the next one follows).
    async fn publish_progress(&self, job: &pb::TranscodeJob, progress: f64) {
        if !job.variant.is_empty() {
            // A chosen video's own folder: its state is the task's per-video record (events),
            // not the task's status.
            return;
        }
        let event = pb::TaskProgress {
            task_id: job.task_id.clone(),
            node_id: job.node_id.clone(),
            status: pb::TaskStatus::Transcoding.into(),
            // The download is done; the transcode's share has its own field.
            progress: 100.0,
            transcode_progress: progress,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            ..Default::default()
        };
        let subject = subjects::task_progress(&job.node_id, &job.task_id);
        let _ = self
            .client
            .publish_with_headers(
                subject,
                telemetry::nats_headers(),
                event.encode_to_vec().into(),
            )
            .await;
    }
}

/// Aborts a spawned task when dropped (the job's want answering ends with the job).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Most segment requests answered at once per job; more wait for a turn.
const MAX_WANTS_IN_FLIGHT: usize = 64;

/// Hands each `SegmentWanted` to the job and replies with its outcome.
async fn answer_wants(
    client: async_nats::Client,
    mut subscriber: async_nats::Subscriber,
    wants: tokio::sync::mpsc::UnboundedSender<crate::progressive::Want>,
) {
    let mut pending = tokio::task::JoinSet::new();
    while let Some(msg) = subscriber.next().await {
        while pending.len() >= MAX_WANTS_IN_FLIGHT {
            pending.join_next().await;
        }
        while pending.try_join_next().is_some() {}
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        let outcome = match pb::SegmentWanted::decode(msg.payload.clone()) {
            Ok(w) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let wait = Duration::from_millis(u64::from(w.wait_ms.clamp(1, 60_000)));
                let want = crate::progressive::Want {
                    file: w.file,
                    wait,
                    reply: tx,
                };
                if wants.send(want).is_err() {
                    return;
                }
                Some(rx)
            }
            Err(e) => {
                tracing::debug!(error = %e, "malformed segment request");
                None
            }
        };
        let client = client.clone();
        pending.spawn(async move {
            let (outcome, message) = match outcome {
                Some(rx) => (
                    rx.await.unwrap_or(pb::SegmentOutcome::Failed),
                    String::new(),
                ),
                None => (
                    pb::SegmentOutcome::NotInPlan,
                    "malformed request".to_owned(),
                ),
            };
            let reply = pb::SegmentReply {
                outcome: outcome.into(),
                message,
            };
            let _ = client.publish(reply_to, reply.encode_to_vec().into()).await;
        });
    }
}

fn kind_ready(done: &Done, replica: &str) -> pb::transcode_event::Kind {
    pb::transcode_event::Kind::Ready(pb::TranscodeReady {
        m3u8_path: done.m3u8_path.clone(),
        segments: done.segments.clone(),
        srts: done.srts.clone(),
        path_taken: done.path_taken.clone(),
        replica: replica.into(),
        duration: done.duration,
    })
}
