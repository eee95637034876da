//! One head of a progressive transcode: an ffmpeg run that makes segments from number N on
//! into its own run folder. As the segment muxer lists each finished segment, the head (never
//! ffmpeg) renames it into the task's folder as `index<n>.ts`, so a file under its final name
//! is always whole. A segment before N (pre-roll) is thrown away; a segment that is already in
//! place means the head has reached what another head made, and it stops.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::segments::Segments;
use crate::untrusted::Budget;
use crate::{Error, Result, ffmpeg, output};

/// What a head tells its controller.
#[derive(Debug)]
pub enum Event {
    /// Segment `n` is in place.
    Made { head: u64, n: usize },
    /// The head reached segment `n`, already in place, and stops.
    Reached { head: u64, n: usize },
    /// The head's ffmpeg ended (`Ok` also when it was stopped).
    Ended { head: u64, result: Result<()> },
}

/// What a head needs to run.
pub struct Head {
    pub id: u64,
    /// Segments from this number on are kept.
    pub first: usize,
    pub args: Vec<String>,
    pub ffmpeg: String,
    /// The head's own folder (inside the job's work folder).
    pub run_dir: PathBuf,
    /// The task's HLS folder.
    pub out_dir: PathBuf,
    pub budget: Budget,
    pub name: String,
}

impl Head {
    /// Starts the head; `stop` ends it early (its ffmpeg is killed, what it made stays).
    pub fn spawn(self, events: UnboundedSender<Event>, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let id = self.id;
            let result = self.run(&events, &stop).await;
            let result = match result {
                Err(Error::Cancelled) if stop.is_cancelled() => Ok(()),
                other => other,
            };
            let _ = events.send(Event::Ended { head: id, result });
        })
    }

    async fn run(&self, events: &UnboundedSender<Event>, stop: &CancellationToken) -> Result<()> {
        output::fresh(&self.run_dir).await?;
        let on_line = |line: &str| {
            let Some(k) = line
                .trim()
                .strip_prefix("seg")
                .and_then(|l| l.strip_suffix(".ts"))
                .and_then(|k| k.parse::<usize>().ok())
            else {
                return;
            };
            let made = self.run_dir.join(format!("seg{k}.ts"));
            if k < self.first {
                let _ = std::fs::remove_file(&made);
                return;
            }
            let target = self.out_dir.join(Segments::file(k));
            if target.exists() {
                let _ = std::fs::remove_file(&made);
                let _ = events.send(Event::Reached {
                    head: self.id,
                    n: k,
                });
                stop.cancel();
                return;
            }
            match std::fs::rename(&made, &target) {
                Ok(()) => {
                    let _ = events.send(Event::Made {
                        head: self.id,
                        n: k,
                    });
                }
                Err(e) => {
                    tracing::warn!(segment = k, error = %e, "segment not moved into place");
                    stop.cancel();
                }
            }
        };
        let guard = ffmpeg::Guard {
            budget: self.budget,
            out: &self.run_dir,
            name: &self.name,
        };
        let outcome = ffmpeg::run_lines(&self.ffmpeg, &self.args, on_line, &guard, stop).await;
        if let Err(e) = output::remove(&self.run_dir).await {
            tracing::warn!(error = %e, "head folder not removed");
        }
        outcome
    }
}

/// The run folder of head `id` inside `work`.
pub fn run_dir(work: &Path, id: u64) -> PathBuf {
    work.join(format!("run-{id}"))
}
