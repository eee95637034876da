//! The progressive fallback for a video with no index to cut on (MPEG-TS, Matroska without
//! Cues): one ffmpeg pass over the stream writes an EVENT playlist straight into the task's
//! folder, each segment and each playlist renamed into place when whole (`temp_file`). The
//! task is playable as soon as the first segment is listed; a viewer can seek within what is
//! made, and a segment further on is waited for until the pass reaches it. At the end the
//! playlist says `VOD`, so the folder is what a whole-file job leaves.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use magnet_proto::v1 as pb;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::job::Report;
use crate::master::{self, Variant};
use crate::plan::{self, Input, Plan};
use crate::progressive::{MARKER, Waiters, Want, write_atomic};
use crate::segments::Segments;
use crate::untrusted::Budget;
use crate::{Error, Result, ffmpeg, output, probe};

/// One EVENT pass.
pub struct EventPass<'a> {
    pub job: &'a crate::job::Job<'a>,
    pub final_dir: &'a Path,
    pub video: &'a Input,
    pub info: &'a probe::MediaInfo,
    pub plan: &'a Plan,
}

impl EventPass<'_> {
    /// Runs the pass, answering `wants` meanwhile; returns the segments and the duration of
    /// the finished playlist.
    pub async fn run(
        &self,
        reports: &UnboundedSender<Report>,
        wants: &mut UnboundedReceiver<Want>,
        cancel: &CancellationToken,
    ) -> Result<(Vec<String>, f64)> {
        let dir = self.final_dir;
        // Without a plan, nothing of an earlier attempt can be trusted to join this one.
        output::clear(dir).await?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(Error::io(dir))?;
        write_atomic(&dir.join(MARKER), b"").await?;
        let master = master::playlist(
            &[Variant::planned("index.m3u8", self.info, self.plan)],
            &[],
        );
        write_atomic(&dir.join("master.m3u8"), master.as_bytes()).await?;

        let t = self.job.transcoding;
        let args = event_args(plan::ffmpeg_args(
            &self.video.source,
            self.job.token,
            self.plan,
            t,
            dir,
        ));
        let guard = ffmpeg::Guard {
            budget: Budget::for_input(self.info.duration, self.video.size),
            out: dir,
            name: &self.video.name,
        };
        let progress = |p: f64| {
            let _ = reports.send(Report::Progress(p));
        };
        let pass = ffmpeg::run(
            &self.job.programs.ffmpeg,
            &args,
            self.info.duration,
            progress,
            &guard,
            cancel,
        );
        tokio::pin!(pass);
        let mut waiters = Waiters::default();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let (mut announced, mut wants_open) = (false, true);
        let outcome = loop {
            tokio::select! {
                r = &mut pass => break r,
                w = wants.recv(), if wants_open => match w {
                    Some(w) => match Segments::number(&w.file) {
                        Some(n) if listed(dir).await.contains(&n) => {
                            let _ = w.reply.send(pb::SegmentOutcome::Ready);
                        }
                        Some(n) => waiters.push(n, w),
                        None => {
                            let _ = w.reply.send(pb::SegmentOutcome::NotInPlan);
                        }
                    },
                    None => wants_open = false,
                },
                _ = tick.tick() => {
                    let made = listed(dir).await;
                    if !announced && made.contains(&0) {
                        announced = true;
                        let _ = reports.send(Report::Playable {
                            segments: 0,
                            duration: self.info.duration.unwrap_or(0.0),
                            mode: "event",
                        });
                    }
                    waiters.answer(|n| made.contains(&n), pb::SegmentOutcome::Ready);
                    waiters.expire();
                }
            }
        };
        if let Err(e) = outcome {
            waiters.close(pb::SegmentOutcome::Failed);
            return Err(e);
        }
        let index = dir.join("index.m3u8");
        let (segments, duration) = output::segments(&index, &self.video.name).await?;
        let text = tokio::fs::read_to_string(&index)
            .await
            .map_err(Error::io(&index))?;
        write_atomic(&index, as_vod(&text).as_bytes()).await?;
        // A segment not listed at the end is not in the video.
        let made = listed(dir).await;
        waiters.answer(|n| made.contains(&n), pb::SegmentOutcome::Ready);
        waiters.close(pb::SegmentOutcome::NotInPlan);
        Ok((segments, duration))
    }
}

/// The whole-file arguments turned into an EVENT pass: the playlist grows as segments are
/// made, and every file appears under its name only when whole.
fn event_args(mut args: Vec<String>) -> Vec<String> {
    if let Some(i) = args.iter().position(|a| a == "-hls_playlist_type")
        && let Some(v) = args.get_mut(i + 1)
    {
        *v = "event".into();
    }
    let output = args.pop().unwrap_or_default();
    args.extend(["-hls_flags".into(), "temp_file".into(), output]);
    args
}

/// The finished EVENT playlist as a VOD one.
fn as_vod(playlist: &str) -> String {
    playlist.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD")
}

/// The segments the playlist lists, each whole (`temp_file`).
async fn listed(dir: &Path) -> HashSet<usize> {
    tokio::fs::read_to_string(dir.join("index.m3u8"))
        .await
        .map(|p| {
            p.lines()
                .filter_map(|l| Segments::number(l.trim()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_args_grow_the_playlist_and_rename_whole_files() {
        let args: Vec<String> = ["-i", "in", "-hls_playlist_type", "vod", "/out/index.m3u8"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            event_args(args),
            [
                "-i",
                "in",
                "-hls_playlist_type",
                "event",
                "-hls_flags",
                "temp_file",
                "/out/index.m3u8"
            ]
        );
    }

    #[test]
    fn the_finished_playlist_says_vod() {
        let p = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:6.0,\nindex0.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(
            as_vod(p),
            "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:6.0,\nindex0.ts\n#EXT-X-ENDLIST\n"
        );
    }
}
