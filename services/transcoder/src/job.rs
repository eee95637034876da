//! One transcode job, from inputs on the node's volume to a finished HLS folder. Knows nothing
//! of NATS: it reports through a channel and returns what the result event carries.

use std::path::{Path, PathBuf};

use magnet_core::TaskId;
use magnet_proto::v1 as pb;
use magnet_runtime::config::{TranscoderSettings, TranscodingSettings};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::event::EventPass;
use crate::master::{self, Variant};
use crate::output::{self, Track};
use crate::plan::{self, Input};
use crate::progressive::{Progressive, Want};
use crate::segments::Segments;
use crate::untrusted::{self, Budget};
use crate::{Error, Result, ffmpeg, probe};

/// What a running job tells the outside.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Started {
        path_taken: String,
        input: String,
    },
    Progress(f64),
    /// A progressive job's playlist is whole and its first segment made.
    /// `segments` is 0 for an EVENT pass, whose playlist grows; `mode` is `indexed`,
    /// `grid` or `event`.
    Playable {
        segments: usize,
        duration: f64,
        mode: &'static str,
    },
}

/// What a finished job produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// e.g. `m3u8/task_1/index.m3u8`
    pub m3u8_path: String,
    pub segments: Vec<String>,
    pub srts: Vec<String>,
    pub path_taken: String,
    pub duration: f64,
}

/// A job as the worker runs it: the job message and the settings it runs with, borrowed from
/// the worker.
pub struct Job<'a> {
    pub job: &'a pb::TranscodeJob,
    pub transcoding: &'a TranscodingSettings,
    pub programs: &'a TranscoderSettings,
    /// The service credential, for inputs on the downloader's stream endpoint.
    pub token: Option<&'a str>,
}

impl Job<'_> {
    /// Runs the job; on any failure the partial folder is removed and the final one untouched
    /// (a progressive job keeps the segments it made for its next attempt). `wants` are the
    /// segments streamers ask a progressive job for.
    pub async fn run(
        &self,
        reports: UnboundedSender<Report>,
        wants: &mut UnboundedReceiver<Want>,
        cancel: &CancellationToken,
    ) -> Result<Done> {
        let (task_id, final_dir) = validate(self.job)?;
        if output::stopped(&final_dir).await {
            tracing::info!("its video is no longer wanted; dropped");
            return Err(Error::TaskGone);
        }
        let outcome = self
            .progressive_or_whole(&task_id, &final_dir, &reports, wants, cancel)
            .await;
        match outcome {
            // Its video was unchosen while it ran (its inputs then end short): no failure.
            Err(e)
                if !matches!(e, Error::TaskGone | Error::Cancelled)
                    && output::stopped(&final_dir).await =>
            {
                tracing::info!(error = %e, "its video is no longer wanted; dropped");
                Err(Error::TaskGone)
            }
            outcome => outcome,
        }
    }

    async fn progressive_or_whole(
        &self,
        task_id: &TaskId,
        final_dir: &Path,
        reports: &UnboundedSender<Report>,
        wants: &mut UnboundedReceiver<Want>,
        cancel: &CancellationToken,
    ) -> Result<Done> {
        if self.job.progressive && self.transcoding.progressive_playback() {
            if let Some(done) = self
                .progressive(task_id, final_dir, reports, wants, cancel)
                .await?
            {
                return Ok(done);
            }
            tracing::info!("no video for the progressive path; trying the whole-file path");
        }
        let partial = output::partial_dir(final_dir);
        output::fresh(&partial).await?;
        let outcome = self.build(task_id, &partial, reports, cancel).await;
        match outcome {
            Ok(done) => {
                output::publish(&partial, final_dir).await?;
                Ok(done)
            }
            Err(e) => {
                if let Err(clean) = output::remove(&partial).await {
                    tracing::warn!(error = %clean, "partial output not removed");
                }
                Err(e)
            }
        }
    }

    /// The progressive path; `None` when the video cannot be cut before it is whole.
    async fn progressive(
        &self,
        task_id: &TaskId,
        final_dir: &Path,
        reports: &UnboundedSender<Report>,
        wants: &mut UnboundedReceiver<Want>,
        cancel: &CancellationToken,
    ) -> Result<Option<Done>> {
        let inputs: Vec<Input> = self.job.inputs.iter().filter_map(input).collect();
        let (videos, subtitle_files) = plan::pick(&inputs, false)?;
        let Some(video) = videos.first() else {
            return Ok(None);
        };
        let info = self.probe(video).await?;
        let plan = plan::plan(&info, &video.name)?;
        let p = Progressive {
            job: self,
            task_id: task_id.as_str(),
            final_dir,
            video,
            info: &info,
            plan: &plan,
        };
        let started = Report::Started {
            path_taken: plan.path_taken().into(),
            input: video.name.clone(),
        };
        let (files, duration) = match p.segments().await? {
            Some(segments) => {
                tracing::info!(input = %video.name, path = plan.path_taken(), mode = segments.mode.as_str(), segments = segments.len(), "transcoding progressively");
                let _ = reports.send(started);
                p.run(&segments, reports, wants, cancel).await?;
                let files: Vec<String> = (0..segments.len()).map(Segments::file).collect();
                (files, segments.duration)
            }
            None => {
                tracing::info!(input = %video.name, path = plan.path_taken(), "no keyframe index to cut on: one EVENT pass as the video arrives");
                let _ = reports.send(started);
                let pass = EventPass {
                    job: self,
                    final_dir,
                    video,
                    info: &info,
                    plan: &plan,
                };
                pass.run(reports, wants, cancel).await?
            }
        };
        let tracks = self
            .subtitles(video, &info, &subtitle_files, final_dir, duration, cancel)
            .await?;
        let variants = [self
            .variant("index.m3u8", final_dir, &files, duration)
            .await];
        crate::progressive::write_atomic(
            &final_dir.join("master.m3u8"),
            master::playlist(&variants, &tracks).as_bytes(),
        )
        .await?;
        crate::progressive::finish(final_dir).await?;
        let _ = reports.send(Report::Progress(100.0));
        Ok(Some(Done {
            m3u8_path: playlist_path(task_id.as_str(), &self.job.variant),
            segments: files,
            srts: tracks.into_iter().map(|t| t.file).collect(),
            path_taken: plan.path_taken().into(),
            duration,
        }))
    }

    async fn build(
        &self,
        task_id: &TaskId,
        out: &Path,
        reports: &UnboundedSender<Report>,
        cancel: &CancellationToken,
    ) -> Result<Done> {
        let inputs: Vec<Input> = self.job.inputs.iter().filter_map(input).collect();
        let (videos, subtitle_files) = plan::pick(&inputs, self.transcoding.all_videos)?;
        let count = videos.len() as f64;
        let mut main = None;
        let mut variants = Vec::new();
        for (k, video) in videos.iter().enumerate() {
            let info = self.probe(video).await?;
            let plan = plan::plan(&info, &video.name)?;
            let dir = if k == 0 {
                out.to_owned()
            } else {
                out.join(format!("v{k}"))
            };
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(Error::io(&dir))?;
            if k == 0 {
                tracing::info!(input = %video.name, path = plan.path_taken(), "transcoding");
                let _ = reports.send(Report::Started {
                    path_taken: plan.path_taken().into(),
                    input: video.name.clone(),
                });
            }
            let args = plan::ffmpeg_args(&video.source, self.token, &plan, self.transcoding, &dir);
            let base = k as f64;
            let guard = ffmpeg::Guard {
                budget: Budget::for_input(info.duration, video.size),
                out: &dir,
                name: &video.name,
            };
            ffmpeg::run(
                &self.programs.ffmpeg,
                &args,
                info.duration,
                |p| {
                    let _ = reports.send(Report::Progress((base * 100.0 + p) / count));
                },
                &guard,
                cancel,
            )
            .await?;
            let (segments, duration) =
                output::segments(&dir.join("index.m3u8"), &video.name).await?;
            let uri = if k == 0 {
                "index.m3u8".to_owned()
            } else {
                format!("v{k}/index.m3u8")
            };
            variants.push(self.variant(uri, &dir, &segments, duration).await);
            if k == 0 {
                main = Some((plan, info, segments, duration, video.clone()));
            }
        }
        let Some((plan, info, segments, duration, video)) = main else {
            return Err(Error::NoVideoFile {
                files: "none".into(),
            });
        };

        let tracks = self
            .subtitles(&video, &info, &subtitle_files, out, duration, cancel)
            .await?;
        let master = out.join("master.m3u8");
        tokio::fs::write(&master, master::playlist(&variants, &tracks))
            .await
            .map_err(Error::io(&master))?;
        let _ = reports.send(Report::Progress(100.0));
        Ok(Done {
            m3u8_path: playlist_path(task_id.as_str(), &self.job.variant),
            segments,
            srts: tracks.into_iter().map(|t| t.file).collect(),
            path_taken: plan.path_taken().into(),
            duration,
        })
    }

    async fn probe(&self, video: &Input) -> Result<probe::MediaInfo> {
        probe::probe(
            &self.programs.ffprobe,
            &video.source,
            &video.name,
            self.token,
        )
        .await
    }

    /// Subtitle files of the torrent and text subtitle streams of the video, as WebVTT, each
    /// with a one-segment playlist of `duration`. A track that fails to convert is logged and
    /// skipped: it must not cost the user the video.
    async fn subtitles(
        &self,
        video: &Input,
        info: &probe::MediaInfo,
        files: &[Input],
        out: &Path,
        duration: f64,
        cancel: &CancellationToken,
    ) -> Result<Vec<Track>> {
        let mut jobs: Vec<(Vec<String>, String, Option<String>)> = Vec::new();
        for f in files {
            let stem = Path::new(&f.name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut input =
                untrusted::input_options(&f.source, untrusted::SUBTITLE_FORMATS, self.token);
            input.extend(["-i".into(), f.source.clone()]);
            let language = language_of(&stem);
            jobs.push((input, stem, language));
        }
        for s in info.text_subtitles() {
            let name = match &s.language {
                Some(lang) => format!("track{}.{lang}", s.index),
                None => format!("track{}", s.index),
            };
            let mut input =
                untrusted::input_options(&video.source, untrusted::VIDEO_FORMATS, self.token);
            input.extend([
                "-i".into(),
                video.source.clone(),
                "-map".into(),
                format!("0:{}", s.index),
            ]);
            jobs.push((input, name, s.language.clone()));
        }
        let mut tracks: Vec<Track> = Vec::new();
        for (input_args, name, language) in jobs {
            let mut file = format!("{}.vtt", output::safe_name(&name));
            let mut n = 1;
            while tracks.iter().any(|t| t.file == file) {
                n += 1;
                file = format!("{}_{n}.vtt", output::safe_name(&name));
            }
            let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
                .map(String::from)
                .to_vec();
            args.extend(input_args);
            args.extend(["-c:s", "webvtt"].map(String::from));
            let path = out.join(&file);
            args.push(path.to_string_lossy().into_owned());
            let guard = ffmpeg::Guard {
                budget: Budget::SUBTITLE,
                out: &path,
                name: &name,
            };
            match ffmpeg::run(&self.programs.ffmpeg, &args, None, |_| {}, &guard, cancel).await {
                Ok(()) => tracks.push(Track {
                    file,
                    name,
                    language,
                }),
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e) => tracing::warn!(subtitle = %name, error = %e, "subtitle skipped"),
            }
        }
        // Each track as a one-segment playlist of its own, for the master playlist.
        for t in &tracks {
            let path = out.join(t.file.trim_end_matches(".vtt").to_owned() + ".m3u8");
            tokio::fs::write(&path, output::subtitle_playlist(t, duration))
                .await
                .map_err(Error::io(&path))?;
        }
        Ok(tracks)
    }
}

/// The language a subtitle file's name ends with, as players name them: `movie.en` → `en`,
/// `movie.pt-BR` → `pt-BR` (2–3 letters, an optional region). `None` for any other ending.
fn language_of(stem: &str) -> Option<String> {
    let (_, tag) = stem.rsplit_once('.')?;
    let (lang, region) = match tag.split_once('-') {
        Some((l, r)) => (l, Some(r)),
        None => (tag, None),
    };
    let letters = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
    };
    (letters(lang, 2..=3) && region.is_none_or(|r| letters(r, 2..=2))).then(|| tag.to_owned())
}

fn input(i: &pb::TranscodeInput) -> Option<Input> {
    let source = match i.source.as_ref()? {
        pb::transcode_input::Source::Path(p) => p.clone(),
        pb::transcode_input::Source::Url(u) => u.clone(),
    };
    Some(Input {
        source,
        name: i.name.clone(),
        size: i.size,
    })
}

/// The job's task id and final folder, refusing jobs that would write anywhere but
/// `…/<task_id>` given as an absolute path.
/// The playlist a job makes, relative to the node's data folder: `m3u8/<task>/index.m3u8`, or
/// `m3u8/<task>/v<k>/index.m3u8` for a chosen video's job.
pub fn playlist_path(task_id: &str, variant: &str) -> String {
    if variant.is_empty() {
        format!("m3u8/{task_id}/index.m3u8")
    } else {
        format!("m3u8/{task_id}/{variant}/index.m3u8")
    }
}

fn validate(job: &pb::TranscodeJob) -> Result<(TaskId, PathBuf)> {
    let id = TaskId::parse(&job.task_id).map_err(|e| Error::BadJob(e.to_string()))?;
    let dir = PathBuf::from(&job.output_dir);
    let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_owned);
    let shape_ok = if job.variant.is_empty() {
        name(&dir).as_deref() == Some(id.as_str())
    } else {
        output::is_variant(&job.variant)
            && name(&dir).as_deref() == Some(job.variant.as_str())
            && dir.parent().and_then(name).as_deref() == Some(id.as_str())
    };
    if !dir.is_absolute() || !shape_ok {
        return Err(Error::BadJob(format!(
            "output folder {:?} is not an absolute …/{id} (or …/{id}/v<index> of a chosen video)",
            job.output_dir
        )));
    }
    if dir
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::BadJob(format!(
            "output folder {:?} contains ..",
            job.output_dir
        )));
    }
    Ok((id, dir))
}

impl Job<'_> {
    /// The variant of the playlist `uri` in `dir`: its bandwidth from its segments, its codecs
    /// and size from ffprobe of what it holds (`init.mp4` for fMP4, else its first segment).
    async fn variant(
        &self,
        uri: impl Into<String>,
        dir: &Path,
        segments: &[String],
        duration: f64,
    ) -> Variant {
        let v = Variant::new(uri, bandwidth(dir, segments, duration).await);
        let init = dir.join("init.mp4");
        let first = if init.exists() {
            init
        } else {
            match segments.first() {
                Some(s) => dir.join(s),
                None => return v,
            }
        };
        let path = first.to_string_lossy();
        match probe::probe(&self.programs.ffprobe, &path, "the output", None).await {
            Ok(info) => v.described(&info),
            Err(e) => {
                tracing::warn!(error = %e, "output not probed: master.m3u8 without CODECS");
                v
            }
        }
    }
}

/// Bits per second of a playlist's segments (for `BANDWIDTH` in the master playlist).
async fn bandwidth(dir: &Path, segments: &[String], duration: f64) -> u64 {
    let mut bytes = 0u64;
    for s in segments {
        bytes += tokio::fs::metadata(dir.join(s))
            .await
            .map(|m| m.len())
            .unwrap_or(0);
    }
    if duration > 0.0 {
        (bytes as f64 * 8.0 / duration) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtitle_files_name_gives_its_language() {
        assert_eq!(language_of("sample.en").as_deref(), Some("en"));
        assert_eq!(language_of("Movie.2019.fre").as_deref(), Some("fre"));
        assert_eq!(language_of("movie.pt-BR").as_deref(), Some("pt-BR"));
        for none in [
            "sample",
            "movie.2019",
            "movie.forced",
            "movie.e",
            "movie.pt-",
            ".en.",
        ] {
            assert_eq!(language_of(none), None, "{none}");
        }
    }

    #[test]
    fn jobs_that_would_write_elsewhere_are_refused() {
        let job = |id: &str, dir: &str| pb::TranscodeJob {
            task_id: id.into(),
            output_dir: dir.into(),
            ..Default::default()
        };
        assert!(validate(&job("task_1", "/data/m3u8/task_1")).is_ok());
        for (id, dir) in [
            ("task_1", "m3u8/task_1"),
            ("task_1", "/data/m3u8/task_2"),
            ("../x", "/data/../x"),
            ("task_1", "/data/../task_1"),
        ] {
            assert!(
                matches!(validate(&job(id, dir)), Err(Error::BadJob(_))),
                "{id} {dir}"
            );
        }
        let chosen = |variant: &str, dir: &str| pb::TranscodeJob {
            variant: variant.into(),
            ..job("task_1", dir)
        };
        assert!(validate(&chosen("v3", "/data/m3u8/task_1/v3")).is_ok());
        for (variant, dir) in [
            ("v3", "/data/m3u8/task_1"),
            ("v3", "/data/m3u8/task_2/v3"),
            ("v3", "/data/m3u8/task_1/v4"),
            ("x3", "/data/m3u8/task_1/x3"),
            ("v", "/data/m3u8/task_1/v"),
            ("v3", "/data/m3u8/task_1/v3/../../task_2/v3"),
        ] {
            assert!(
                matches!(validate(&chosen(variant, dir)), Err(Error::BadJob(_))),
                "{variant} {dir}"
            );
        }
        assert_eq!(playlist_path("task_1", "v3"), "m3u8/task_1/v3/index.m3u8");
    }
}
