//! Chaos (issue 17): the whole system as processes ([`magnet_stack`]) while one process after
//! another is killed with SIGKILL and started again — every kind, nats-server included — with
//! tasks downloading and transcoding (remux, re-encode, torrents of several files; progressive
//! while they download) and viewers playing over P2P and the relay. Then what must hold:
//! every task `ready` exactly once, every payload byte-equal to its seed, every HLS folder read
//! by ffmpeg without a word, no job run to completion twice, no ffmpeg left without its
//! transcoder, no partial folder or `.progressive` mark left, every viewer playing again.
//!
//! `cargo xtask chaos` runs [`Plan::full`]; the tests run [`Plan::short`].

pub mod checks;
mod viewers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use magnet_stack::{Logs, Stack, Worker};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::seeder::Seeder;
use crate::video::{Codec, generate};
use viewers::{Shelf, Via, Watchable};

/// What a chaos run is made of.
#[derive(Debug, Clone)]
pub struct Plan {
    pub nodes: usize,
    pub transcoders: usize,
    pub tasks: usize,
    pub viewers: usize,
    /// How long the killing goes on; it goes on past this until every kind of process was
    /// killed `rounds` times.
    pub duration: Duration,
    pub rounds: usize,
    /// Between a process coming back and the next kill.
    pub kill_every: Duration,
    /// Between two submissions: tasks arrive while processes die, so that every stage of a
    /// task (metadata, download, progressive and whole transcodes, playback) meets kills.
    pub submit_every: Duration,
    /// The seeder's upload rate (bytes/s), which sets how long the downloads take.
    pub upload_limit: u32,
    /// Length of each task's video.
    pub clip_seconds: u32,
    /// How long the tasks may take to settle after the last kill.
    pub settle: Duration,
}

impl Plan {
    /// The run: 3 nodes of 2 transcoders, 20 tasks, 10 viewers, kills for `duration`.
    pub fn full(duration: Duration) -> Self {
        Self {
            nodes: 3,
            transcoders: 2,
            tasks: 20,
            viewers: 10,
            duration,
            rounds: 2,
            kill_every: Duration::from_secs(3),
            submit_every: duration / 25,
            upload_limit: 2_000_000,
            clip_seconds: 20,
            settle: Duration::from_secs(300),
        }
    }

    /// The tests' run: 2 nodes of 2 transcoders, 6 tasks, 4 viewers, every kind killed twice.
    pub fn short() -> Self {
        Self {
            nodes: 2,
            transcoders: 2,
            tasks: 6,
            viewers: 4,
            duration: Duration::ZERO,
            rounds: 2,
            kill_every: Duration::from_secs(2),
            submit_every: Duration::from_secs(5),
            upload_limit: 1_000_000,
            clip_seconds: 10,
            settle: Duration::from_secs(180),
        }
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub kills: usize,
    pub tasks: usize,
    pub ready: usize,
    /// Tasks that did not end `ready`.
    pub lost: usize,
    /// Tasks whose job ran to completion more than once, or that became `ready` more than once.
    pub duplicated: usize,
    /// Waits of a viewer between two segments longer than 10 s.
    pub stalls_over_10s: usize,
    pub viewer_gaps_max_ms: u128,
    /// Every check that failed, in words.
    pub problems: Vec<String>,
}

impl Report {
    /// The one line `cargo xtask chaos` ends with.
    pub fn line(&self) -> String {
        format!(
            "chaos: kills={} tasks={} ready={} lost={} duplicated={} stalls_over_10s={} viewer_gaps_max_ms={}",
            self.kills,
            self.tasks,
            self.ready,
            self.lost,
            self.duplicated,
            self.stalls_over_10s,
            self.viewer_gaps_max_ms
        )
    }
}

/// The kinds of process, killed in this order, round after round.
const KINDS: [&str; 6] = [
    "transcoder",
    "downloader",
    "nats",
    "streamer",
    "gateway",
    "signaling",
];

/// What kind of torrent a task is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// One H.264/AAC MP4: the remux path.
    Remux,
    /// One MPEG-4/AC3 Matroska: re-encoded.
    Transcode,
    /// A video with subtitles and a text file.
    Pack,
}

/// A seeded task source.
struct Source {
    folder: PathBuf,
    magnet: String,
    seconds: f64,
}

/// Runs `plan` with its state (the stack's data and logs, the seeds) under `dir`.
pub async fn run(plan: &Plan, dir: &Path) -> anyhow::Result<Report> {
    let seeder = Seeder::with_upload_limit(Some(plan.upload_limit)).await?;
    let sources = sources(plan, dir, &seeder).await?;
    let logs = dir.join("logs");
    let stack_dir = dir.join("stack");
    let (nodes, transcoders) = (plan.nodes, plan.transcoders);
    let stack = crate::stack::start_shaped(
        &stack_dir,
        nodes,
        |s| {
            s.gateway.max_active_tasks_per_user = 1000;
            s.streamer.max_sessions_per_user = 1000;
            // A killed replica's job goes to another sooner than a pod's 30 s.
            s.transcoder.ack_wait_secs = 10;
        },
        |o| {
            o.logs = Logs::Dir(logs.clone());
            for w in &mut o.workers {
                *w = Worker {
                    id: w.id.clone(),
                    transcoders,
                };
            }
        },
    )?;
    eprintln!(
        "chaos: {} processes up; logs in {}",
        stack.processes().len(),
        logs.display()
    );
    let gateway = stack.gateway;
    let base = stack.gateway_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let submitter = {
        let (http, base, every) = (http.clone(), base.clone(), plan.submit_every);
        let magnets: Vec<String> = sources.iter().map(|s| s.magnet.clone()).collect();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for (i, magnet) in magnets.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(every).await;
                }
                let node = format!("node-{}", i % nodes + 1);
                let patience = Duration::from_secs(60);
                let id =
                    crate::submit_retrying(&http, &base, Some(&node), magnet, patience).await?;
                ids.push((id, node));
            }
            anyhow::Ok(ids)
        })
    };

    // The monitor: every task's statuses as the gateway shows them, and the shelf of ready
    // ones for the viewers.
    let shelf: Shelf = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let monitor = tokio::spawn(monitor(
        http.clone(),
        base.clone(),
        shelf.clone(),
        stop.clone(),
    ));
    let t0 = Instant::now();
    let beats: Vec<Arc<AtomicU64>> = (0..plan.viewers).map(|_| Arc::default()).collect();
    let mut viewers = tokio::task::JoinSet::new();
    for (n, beat) in beats.iter().enumerate() {
        let via = if n % 2 == 0 { Via::P2p } else { Via::Relay };
        let (shelf, stop, beat) = (shelf.clone(), stop.clone(), beat.clone());
        viewers.spawn(viewers::watch(n, via, gateway, shelf, stop, t0, beat));
    }

    let (stack, kills, mut problems) = {
        let plan = plan.clone();
        let dir = stack_dir.clone();
        tokio::task::spawn_blocking(move || kill_loop(stack, &plan, &dir, t0)).await?
    };
    let last_kill = viewers::millis_since(t0);
    eprintln!("chaos: {kills} kills done; waiting for the tasks to settle");
    let ids = submitter.await??;

    // Every task settles: ready, or a final status that is a loss.
    let deadline = Instant::now() + plan.settle;
    let finals = loop {
        let statuses = statuses(&http, &base).await.unwrap_or_default();
        let settled = ids.iter().all(|(id, _)| {
            statuses
                .get(id)
                .is_some_and(|s| matches!(s.as_str(), "ready" | "error" | "cancelled"))
        });
        if settled || Instant::now() > deadline {
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Every viewer plays again (at most 30 s more), then they stop.
    let resumed = || beats.iter().all(|b| b.load(Ordering::Relaxed) > last_kill);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !resumed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    let history = monitor.await?;
    let mut seen = Vec::new();
    while let Some(v) = viewers.join_next().await {
        seen.push(v?);
    }

    let mut report = Report {
        kills,
        tasks: ids.len(),
        ..Report::default()
    };
    for ((id, node), source) in ids.iter().zip(&sources) {
        let status = finals.get(id).map_or("unknown", String::as_str);
        if status != "ready" {
            report.lost += 1;
            let task = match crate::task_of(&http, &base, id).await {
                Ok(t) => format!("{} {}", t["error"], t["detail"]),
                Err(e) => format!("{e:#}"),
            };
            problems.push(format!("{id} on {node} ended {status}: {task}"));
            continue;
        }
        report.ready += 1;
        let data = stack_dir.join(node);
        problems.extend(checks::payload(&source.folder, &data, id));
        problems.extend(checks::hls(&data, id, source.seconds));
    }
    for n in 1..=nodes {
        problems.extend(checks::leftovers(&stack_dir.join(format!("node-{n}"))));
    }
    problems.extend(checks::orphaned_ffmpeg(
        &stack_dir,
        &transcoder_pids(&stack),
    ));

    // Exactly once: one completed job and one move to `ready` per task.
    let completions = checks::completions(&logs);
    for (id, _) in &ids {
        let done = completions.get(id).copied().unwrap_or(0);
        let readied = history
            .get(id)
            .map_or(0, |h| h.iter().filter(|s| *s == "ready").count());
        if done > 1 || readied > 1 {
            report.duplicated += 1;
            problems.push(format!(
                "{id}: its job ran to completion {done} times, it became ready {readied} times ({:?})",
                history.get(id)
            ));
        }
    }

    for v in &seen {
        report.stalls_over_10s += v
            .gaps
            .iter()
            .filter(|(_, g)| *g > Duration::from_secs(10))
            .count();
        report.viewer_gaps_max_ms = report.viewer_gaps_max_ms.max(v.longest_gap.as_millis());
        if beats[v.n].load(Ordering::Relaxed) <= last_kill {
            problems.push(format!(
                "{} did not play again after the last kill ({} segments, {} errors: {:?})",
                v.name, v.segments, v.error_count, v.errors
            ));
        }
        let gaps: Vec<String> = v
            .gaps
            .iter()
            .map(|(at, g)| format!("{:.1} s at {:.1} s", g.as_secs_f64(), at.as_secs_f64()))
            .collect();
        eprintln!(
            "chaos: {}: {} segments ({} visits over the relay after P2P failed, {} P2P connections timed out), longest wait {} ms, waits over 5 s: {gaps:?}; {} errors, first {:?}",
            v.name,
            v.segments,
            v.fallbacks,
            v.connect_timeouts,
            v.longest_gap.as_millis(),
            v.error_count,
            v.errors.first()
        );
    }
    let killed = stack.stop();
    if !killed.is_empty() {
        problems.push(format!("did not stop on SIGTERM: {killed:?}"));
    }
    problems.extend(checks::orphaned_ffmpeg(&stack_dir, &[]));
    report.problems = problems;
    Ok(report)
}

/// Generates one clip per kind and seeds `plan.tasks` folders made of them, each under its
/// own name (so each is its own torrent).
async fn sources(plan: &Plan, dir: &Path, seeder: &Seeder) -> anyhow::Result<Vec<Source>> {
    let clips = dir.join("clips");
    std::fs::create_dir_all(&clips)?;
    let seconds = plan.clip_seconds;
    let remux = clips.join("clip.mp4");
    let transcode = clips.join("clip.mkv");
    generate(&remux, seconds, Codec::H264Aac)?;
    generate(&transcode, seconds, Codec::Mpeg4Ac3)?;
    let mut sources = Vec::new();
    for i in 0..plan.tasks {
        let kind = [Kind::Remux, Kind::Transcode, Kind::Pack][i % 3];
        let folder = dir.join("src").join(format!("Chaos {i:02} {kind:?}"));
        std::fs::create_dir_all(&folder)?;
        match kind {
            Kind::Remux => {
                std::fs::copy(&remux, folder.join("clip.mp4"))?;
            }
            Kind::Transcode => {
                std::fs::copy(&transcode, folder.join("clip.mkv"))?;
            }
            Kind::Pack => {
                std::fs::copy(&remux, folder.join("episode.mp4"))?;
                std::fs::write(
                    folder.join("episode.en.srt"),
                    "1\n00:00:00,500 --> 00:00:03,000\nChaos\n\n",
                )?;
                std::fs::write(folder.join("notes.txt"), format!("task {i}\n"))?;
            }
        }
        // Pieces of a real torrent's size (librqbit's own choice is 2 MiB: one piece here).
        let magnet = seeder.seed_pieces(&folder, 256 * 1024).await?.magnet;
        sources.push(Source {
            folder,
            magnet,
            seconds: f64::from(seconds),
        });
    }
    Ok(sources)
}

/// Every task's status and node as the gateway lists them.
async fn tasks(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Value>> {
    let (status, body) =
        crate::json_of(http.get(format!("{base}/api/tasks")).send().await?).await?;
    anyhow::ensure!(status == 200, "tasks: {status} {body}");
    Ok(body["data"]["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

async fn statuses(http: &reqwest::Client, base: &str) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(tasks(http, base)
        .await?
        .iter()
        .filter_map(|t| {
            Some((
                t["id"].as_str()?.to_owned(),
                t["status"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// Polls the task list until `stop`: each task's statuses in the order seen (repeats folded),
/// and the ready ones on the shelf.
async fn monitor(
    http: reqwest::Client,
    base: String,
    shelf: Shelf,
    stop: CancellationToken,
) -> BTreeMap<String, Vec<String>> {
    let mut history: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while !stop.is_cancelled() {
        if let Ok(list) = tasks(&http, &base).await {
            let mut ready = Vec::new();
            for t in &list {
                let (Some(id), Some(status), Some(node)) = (
                    t["id"].as_str(),
                    t["status"].as_str(),
                    t["worker_id"].as_str(),
                ) else {
                    continue;
                };
                let seen = history.entry(id.to_owned()).or_default();
                if seen.last().is_none_or(|s| s != status) {
                    seen.push(status.to_owned());
                }
                // Progressive: playable while it downloads.
                if status == "ready" || t["playable"] == true {
                    ready.push(Watchable {
                        id: id.to_owned(),
                        node: node.to_owned(),
                    });
                }
            }
            if let Ok(mut s) = shelf.lock() {
                if s.len() != ready.len() {
                    eprintln!("chaos: {} of {} tasks playable", ready.len(), list.len());
                }
                *s = ready;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    history
}

/// The process of `kind` that kill number `k` takes: kinds in turn, instances in turn.
fn victim(plan: &Plan, k: usize) -> String {
    let kind = KINDS[k % KINDS.len()];
    let turn = k / KINDS.len();
    let node = turn % plan.nodes + 1;
    match kind {
        "nats" | "gateway" | "signaling" => kind.to_owned(),
        "transcoder" => format!(
            "node-{node}-transcoder-{}",
            (turn / plan.nodes) % plan.transcoders + 1
        ),
        other => format!("node-{node}-{other}"),
    }
}

/// Kills and restarts processes until the plan's time is up and every kind had its rounds;
/// returns the stack, the number of kills and the problems seen on the way.
fn kill_loop(
    mut stack: Stack,
    plan: &Plan,
    dir: &Path,
    t0: Instant,
) -> (Stack, usize, Vec<String>) {
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut k = 0;
    while k < plan.rounds * KINDS.len() || started.elapsed() < plan.duration {
        std::thread::sleep(plan.kill_every);
        let name = victim(plan, k);
        k += 1;
        let pid = stack.pid(&name);
        eprintln!(
            "chaos: {:.1} s: kill -9 {name} ({pid:?})",
            t0.elapsed().as_secs_f64()
        );
        if let Err(e) = stack.kill9(&name) {
            problems.push(format!("cannot kill {name}: {e:#}"));
            break;
        }
        // Down for a moment, as a pod is between its crash and its restart.
        std::thread::sleep(Duration::from_millis(300 + 200 * (k as u64 % 4)));
        if let Err(e) = stack.restart(&name) {
            problems.push(format!("{name} did not come back: {e:#}"));
            break;
        }
        // A transcoder's ffmpeg dies with it.
        if name.contains("transcoder") {
            std::thread::sleep(Duration::from_millis(500));
            problems.extend(checks::orphaned_ffmpeg(dir, &transcoder_pids(&stack)));
        }
    }
    (stack, k, problems)
}

fn transcoder_pids(stack: &Stack) -> Vec<u32> {
    stack
        .processes()
        .into_iter()
        .filter(|(name, _)| name.contains("transcoder"))
        .map(|(_, pid)| pid)
        .collect()
}
