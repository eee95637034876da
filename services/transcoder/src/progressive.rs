//! A progressive job: playable seconds after the torrent's metadata arrives, seekable
//! anywhere while it downloads. The video is read through the downloader's stream endpoint;
//! the whole VOD playlist is written up front from the container's keyframe index (or a grid
//! when re-encoding), and segments are made by heads (`heads.rs`): the sweep from the first
//! missing segment to the end, and one viewer head that starts where a viewer wants a segment
//! nobody is about to make. While a viewer head runs the sweep stands down, so the pieces
//! under the viewer's position have the peers to themselves. When every segment is in place,
//! subtitles and `master.m3u8` are finished and the folder is exactly what a whole-file job
//! leaves.
//!
//! The task's folder holds `.progressive` while segments are missing; streamers then ask for
//! a missing segment (`Want`) instead of answering 404. A job redelivered after a crash keeps
//! every segment in place and makes only the rest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use magnet_proto::v1 as pb;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::heads::{self, Event, Head};
use crate::job::Report;
use crate::master::{self, Variant};
use crate::plan::{Input, Plan};
use crate::segments::Segments;
use crate::untrusted::Budget;
use crate::{Error, Result, index, output, probe};

/// Marks a task folder whose segments are still being made.
pub use magnet_core::hls::PROGRESSIVE_MARKER as MARKER;
/// A viewer head near enough ahead of a wanted segment is waited for, not replaced.
const NEAR: usize = 4;
/// A viewer head stops this many segments past the last one wanted from it.
const VIEWER_AHEAD: usize = 8;
/// Failed head runs tolerated before the job fails.
const MAX_FAILURES: u32 = 3;

/// A streamer wants a segment of this job's task.
pub struct Want {
    pub file: String,
    pub wait: Duration,
    pub reply: oneshot::Sender<pb::SegmentOutcome>,
}

/// Wants waiting for their segment: answered when it is made, `Busy` past their time.
#[derive(Default)]
pub struct Waiters(Vec<(usize, Instant, oneshot::Sender<pb::SegmentOutcome>)>);

impl Waiters {
    /// `w`, for segment `n`, until its time is up.
    pub fn push(&mut self, n: usize, w: Want) {
        self.0.push((n, Instant::now() + w.wait, w.reply));
    }

    /// Answers `outcome` to those whose segment is `made`.
    pub fn answer(&mut self, made: impl Fn(usize) -> bool, outcome: pb::SegmentOutcome) {
        self.reply(|n, _| made(n), outcome);
    }

    /// Answers `Busy` to those past their time.
    pub fn expire(&mut self) {
        let now = Instant::now();
        self.reply(|_, deadline| deadline <= now, pb::SegmentOutcome::Busy);
    }

    /// Answers `outcome` to every one left.
    pub fn close(&mut self, outcome: pb::SegmentOutcome) {
        self.reply(|_, _| true, outcome);
    }

    fn reply(&mut self, pick: impl Fn(usize, Instant) -> bool, outcome: pb::SegmentOutcome) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(n, deadline, _)| pick(*n, *deadline));
        self.0 = later;
        for (_, _, reply) in now {
            let _ = reply.send(outcome);
        }
    }
}

/// What a progressive job needs from its caller.
pub struct Progressive<'a> {
    pub job: &'a crate::job::Job<'a>,
    pub task_id: &'a str,
    pub final_dir: &'a Path,
    pub video: &'a Input,
    pub info: &'a probe::MediaInfo,
    pub plan: &'a Plan,
}

impl Progressive<'_> {
    /// Plans the segments: `None` when the video has no index to cut on and is copied (the
    /// caller then runs the whole-file path over the same input).
    pub async fn segments(&self) -> Result<Option<Segments>> {
        let Some(duration) = self.info.duration.filter(|d| *d > 0.0) else {
            return Ok(None);
        };
        let target = f64::from(self.job.transcoding.progressive_segment_duration);
        if !self.plan.copy_video {
            return Ok(Some(Segments::grid(duration, target)));
        }
        let src = index::Source::new(&self.video.source, self.job.token);
        Ok(index::keyframes(&src, self.video.size, &self.video.name)
            .await?
            .map(|kf| Segments::indexed(&kf.times, duration, target).read_from(kf.container)))
    }

    /// Makes every segment of `segments`, answering `wants` meanwhile; returns when all are in
    /// place (subtitles and the master playlist are the caller's).
    pub async fn run(
        &self,
        segments: &Segments,
        reports: &UnboundedSender<Report>,
        wants: &mut UnboundedReceiver<Want>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let work = output::partial_dir(self.final_dir);
        self.prepare(segments, &work).await?;
        let mut c = Controller {
            p: self,
            segments,
            work: work.clone(),
            made: (0..segments.len())
                .map(|n| self.final_dir.join(Segments::file(n)).exists())
                .collect(),
            sweep: None,
            viewer: None,
            retiring: Vec::new(),
            next_id: 0,
            waiters: Waiters::default(),
            failures: 0,
            announced: false,
            cancel,
        };
        let outcome = c.drive(reports, wants).await;
        c.stop_all().await;
        if let Err(e) = output::remove(&work).await {
            tracing::warn!(error = %e, "work folder not removed");
        }
        outcome
    }

    /// The task's folder with the marker, the whole playlist and a first `master.m3u8`; a
    /// folder left by an earlier attempt keeps its segments when its playlist is the same.
    async fn prepare(&self, segments: &Segments, work: &Path) -> Result<()> {
        let dir = self.final_dir;
        let marker = dir.join(MARKER);
        let playlist = segments.playlist();
        let index = dir.join("index.m3u8");
        let same = tokio::fs::read_to_string(&index)
            .await
            .is_ok_and(|old| old == playlist);
        if !(marker.exists() && same) {
            output::clear(dir).await?;
        } else if output::stopped(dir).await {
            return Err(Error::TaskGone);
        }
        output::fresh(work).await?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(Error::io(dir))?;
        write_atomic(&marker, b"").await?;
        write_atomic(&index, playlist.as_bytes()).await?;
        let master = master::playlist(
            &[Variant::planned("index.m3u8", self.info, self.plan)],
            &[],
        );
        write_atomic(&dir.join("master.m3u8"), master.as_bytes()).await
    }
}

/// Writes `path` through a temporary name, so readers see the old file or the new one.
pub async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(Error::io(&tmp))?;
    tokio::fs::rename(&tmp, path).await.map_err(Error::io(path))
}

struct Running {
    id: u64,
    /// The segment it started at.
    first: usize,
    /// The next segment it will make.
    next: usize,
    /// Viewer heads stop after making this one.
    until: usize,
    stop: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

struct Controller<'a> {
    p: &'a Progressive<'a>,
    segments: &'a Segments,
    work: PathBuf,
    made: Vec<bool>,
    sweep: Option<Running>,
    viewer: Option<Running>,
    /// Heads told to stop, until their `Ended` arrives.
    retiring: Vec<Running>,
    next_id: u64,
    waiters: Waiters,
    failures: u32,
    announced: bool,
    cancel: &'a CancellationToken,
}

impl Controller<'_> {
    fn first_gap(&self) -> Option<usize> {
        self.made.iter().position(|m| !m)
    }

    async fn drive(
        &mut self,
        reports: &UnboundedSender<Report>,
        wants: &mut UnboundedReceiver<Want>,
    ) -> Result<()> {
        let (tx, mut events) = mpsc::unbounded_channel();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        // The downloader removes the task's folder when the task is deleted: then nothing
        // more is wanted, and the job gives its slot back at once.
        let mut watch = tokio::time::interval(Duration::from_secs(1));
        let marker = self.p.final_dir.join(MARKER);
        let mut wants_open = true;
        self.announce(reports);
        loop {
            if self.sweep.is_none() && self.viewer.is_none() {
                match self.first_gap() {
                    Some(gap) => self.sweep = Some(self.start(gap, usize::MAX, &tx)),
                    None => return Ok(()),
                }
            }
            tokio::select! {
                Some(ev) = events.recv() => self.on_event(ev, reports)?,
                w = wants.recv(), if wants_open => match w {
                    Some(w) => self.on_want(w, &tx),
                    None => wants_open = false,
                },
                _ = tick.tick() => self.waiters.expire(),
                _ = watch.tick() => {
                    if tokio::fs::try_exists(&marker).await.is_ok_and(|there| !there) {
                        tracing::info!("the task's folder is gone (deleted); stopping");
                        return Err(Error::TaskGone);
                    }
                    if crate::output::stopped(self.p.final_dir).await {
                        tracing::info!("its video is no longer wanted; stopping");
                        return Err(Error::TaskGone);
                    }
                }
                _ = self.cancel.cancelled() => return Err(Error::Cancelled),
            }
        }
    }

    fn announce(&mut self, reports: &UnboundedSender<Report>) {
        if self.announced || !self.made.first().copied().unwrap_or(false) {
            return;
        }
        self.announced = true;
        let _ = reports.send(Report::Playable {
            segments: self.segments.len(),
            duration: self.segments.duration,
            mode: self.segments.mode.as_str(),
        });
    }

    fn start(&mut self, n: usize, until: usize, tx: &UnboundedSender<Event>) -> Running {
        self.next_id += 1;
        let id = self.next_id;
        let job = self.p.job;
        let run_dir = heads::run_dir(&self.work, id);
        let args = self.segments.head_args(
            n,
            &self.p.video.source,
            job.token,
            self.p.plan,
            job.transcoding,
            &run_dir,
        );
        tracing::info!(head = id, from = n, "segments head started");
        let stop = self.cancel.child_token();
        let head = Head {
            id,
            first: n,
            args,
            ffmpeg: job.programs.ffmpeg.clone(),
            run_dir,
            out_dir: self.p.final_dir.to_owned(),
            budget: Budget::for_input(self.p.info.duration, self.p.video.size),
            name: self.p.video.name.clone(),
        };
        let join = head.spawn(tx.clone(), stop.clone());
        Running {
            id,
            first: n,
            next: n,
            until,
            stop,
            join,
        }
    }

    fn head_mut(&mut self, id: u64) -> Option<&mut Running> {
        if self.sweep.as_ref().is_some_and(|h| h.id == id) {
            self.sweep.as_mut()
        } else if self.viewer.as_ref().is_some_and(|h| h.id == id) {
            self.viewer.as_mut()
        } else {
            self.retiring.iter_mut().find(|h| h.id == id)
        }
    }

    /// Tells a head to stop; it is forgotten when its `Ended` arrives.
    fn retire(&mut self, head: Option<Running>) {
        if let Some(h) = head {
            h.stop.cancel();
            self.retiring.push(h);
        }
    }

    fn on_event(&mut self, ev: Event, reports: &UnboundedSender<Report>) -> Result<()> {
        match ev {
            Event::Made { head, n } => {
                tracing::debug!(head, segment = n, "segment made");
                if let Some(m) = self.made.get_mut(n) {
                    *m = true;
                }
                if let Some(h) = self.head_mut(head) {
                    h.next = n + 1;
                    if n >= h.until {
                        h.stop.cancel();
                    }
                }
                self.waiters.answer(|k| k == n, pb::SegmentOutcome::Ready);
                self.announce(reports);
                let done = self.made.iter().filter(|m| **m).count();
                let _ = reports.send(Report::Progress(
                    done as f64 * 100.0 / self.made.len().max(1) as f64,
                ));
            }
            Event::Reached { head, n } => {
                tracing::debug!(head, segment = n, "head reached a made segment");
            }
            Event::Ended { head, result } => {
                // A head that ends by itself having made nothing will not do better next time.
                let fruitless = self
                    .head_mut(head)
                    .is_some_and(|h| h.next == h.first && !h.stop.is_cancelled());
                let failed = match result {
                    Err(e) => Some(e),
                    Ok(()) if fruitless => Some(Error::IncompletePlaylist {
                        name: self.p.video.name.clone(),
                    }),
                    Ok(()) => None,
                };
                if let Some(e) = failed {
                    self.failures += 1;
                    tracing::warn!(head, error = %e, failures = self.failures, "segments head failed");
                    if self.failures >= MAX_FAILURES || e.is_permanent() {
                        return Err(e);
                    }
                }
                if self.sweep.as_ref().is_some_and(|h| h.id == head) {
                    self.sweep = None;
                } else if self.viewer.as_ref().is_some_and(|h| h.id == head) {
                    self.viewer = None;
                }
                self.retiring.retain(|h| h.id != head);
            }
        }
        Ok(())
    }

    fn on_want(&mut self, w: Want, tx: &UnboundedSender<Event>) {
        let Some(n) = Segments::number(&w.file).filter(|n| *n < self.made.len()) else {
            let _ = w.reply.send(pb::SegmentOutcome::NotInPlan);
            return;
        };
        if self.made[n] {
            let _ = w.reply.send(pb::SegmentOutcome::Ready);
            return;
        }
        self.waiters.push(n, w);
        let near = |h: &Option<Running>| {
            h.as_ref()
                .is_some_and(|h| h.next <= n && n <= h.next + NEAR)
        };
        if near(&self.sweep) {
            return;
        }
        if let Some(v) = self
            .viewer
            .as_mut()
            .filter(|v| v.next <= n && n <= v.next + NEAR)
        {
            v.until = v.until.max(n + VIEWER_AHEAD);
            return;
        }
        let (old, sweep) = (self.viewer.take(), self.sweep.take());
        self.retire(old);
        self.retire(sweep);
        tracing::info!(
            segment = n,
            "seek: a viewer wants a segment nobody is making; the sweep waits"
        );
        self.viewer = Some(self.start(n, n + VIEWER_AHEAD, tx));
    }

    async fn stop_all(&mut self) {
        let retiring = std::mem::take(&mut self.retiring);
        for h in [self.sweep.take(), self.viewer.take()]
            .into_iter()
            .flatten()
            .chain(retiring)
        {
            h.stop.cancel();
            let _ = h.join.await;
        }
        self.waiters.close(pb::SegmentOutcome::Failed);
    }
}

/// The folder is whole: the marker goes, and the result is what a whole-file job reports.
pub async fn finish(final_dir: &Path) -> Result<()> {
    let marker = final_dir.join(MARKER);
    match tokio::fs::remove_file(&marker).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&marker)(e)),
        _ => Ok(()),
    }
}
