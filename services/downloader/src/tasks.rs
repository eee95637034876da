//! The node's tasks: submit, list, get, delete, and one driver per downloading task that takes
//! it from magnet to files on disk, reporting progress, then hands it to the transcoders.
//!
//! The store is the source of truth: a driver can die at any point (crash, `kill -9`) and a
//! restarted downloader picks every unfinished task up again from it (`resume`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use magnet_core::{Magnet, Task, TaskId, TaskStatus, media};
use magnet_proto::v1 as pb;
use magnet_runtime::Settings;
use prost::Message as _;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::open_streams::OpenStreams;
use crate::store::{DownloadProgress, NewTask, ReadyOutput, Store};
use crate::torrent::{self, Engine, Handle, Source};
use crate::{Error, Result, convert, jobs, reach};

/// Largest transcode job published: under NATS's default 1 MiB message limit.
const MAX_JOB_BYTES: usize = 768 * 1024;

/// The magnet that stands for an uploaded `.torrent`: its info hash, name and trackers (those
/// a magnet may name; the others are left out).
fn torrent_magnet(file: &torrent::TorrentFile) -> String {
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    params.append_pair("xt", &format!("urn:btih:{}", file.info_hash));
    if !file.description.name.is_empty() {
        params.append_pair("dn", &file.description.name);
    }
    for t in file.trackers.iter().take(32) {
        let scheme_ok = ["http://", "https://", "udp://", "ws://", "wss://"]
            .iter()
            .any(|s| t.starts_with(s));
        if scheme_ok
            && Magnet::parse(&format!("magnet:?xt=urn:btih:{}&tr={t}", file.info_hash)).is_ok()
        {
            params.append_pair("tr", t);
        }
    }
    format!("magnet:?{}", params.finish().replace("%3A", ":"))
}

/// How often a driver reads figures and publishes progress.
const TICK: Duration = Duration::from_secs(1);

/// The node's tasks and their drivers: one per node, shared by the gRPC API, the stream
/// endpoint and the background loops (seeding, disk, registry).
pub struct Tasks {
    settings: Settings,
    node_id: String,
    downloads: PathBuf,
    m3u8: PathBuf,
    torrents: PathBuf,
    store: Store,
    engine: Engine,
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
    slots: Arc<Semaphore>,
    last_id: std::sync::Mutex<u64>,
    drivers: Mutex<HashMap<TaskId, (CancellationToken, JoinHandle<()>)>>,
    /// The open file streams: ended when their task is deleted, so that bodies waiting for
    /// pieces of a removed torrent end at once instead of after their idle time, or when
    /// their file is no longer wanted.
    streams: OpenStreams,
    /// One choice applied to a torrent at a time (choice.rs).
    choosing: Mutex<()>,
    shutdown: CancellationToken,
    metrics: crate::Metrics,
    /// `http://host:port` of this node's stream endpoint, for progressive jobs' inputs.
    stream_base: String,
    /// One quota check and its evictions at a time (disk.rs).
    room: Mutex<()>,
    /// Bytes the tasks' folders held at the last measurement (disk.rs).
    disk_used: std::sync::atomic::AtomicU64,
}

impl Tasks {
    /// Creates `state/torrents` (saved metainfo) and continues task ids after the store's last;
    /// drives no task until [`Tasks::resume`].
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        settings: Settings,
        downloads: PathBuf,
        state: &Path,
        store: Store,
        engine: Engine,
        nats: async_nats::Client,
        shutdown: CancellationToken,
        metrics: crate::Metrics,
        stream_base: String,
    ) -> Result<Arc<Self>> {
        let torrents = state.join("torrents");
        tokio::fs::create_dir_all(&torrents)
            .await
            .map_err(|source| Error::Io {
                path: torrents.clone(),
                source,
            })?;
        let last = store.last_task_number().await?;
        Ok(Arc::new(Self {
            node_id: settings.node.id.clone(),
            m3u8: settings.storage.m3u8(),
            slots: Arc::new(Semaphore::new(settings.limits.max_downloads as usize)),
            downloads,
            torrents,
            js: async_nats::jetstream::new(nats.clone()),
            nats,
            store,
            engine,
            settings,
            last_id: std::sync::Mutex::new(last),
            drivers: Mutex::new(HashMap::new()),
            streams: OpenStreams::default(),
            choosing: Mutex::new(()),
            shutdown,
            metrics,
            stream_base,
            room: Mutex::new(()),
            disk_used: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// The node's torrent session, for the seeding and disk code and the shutdown's stop.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The task store, for the seeding and disk code and the shutdown's close.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn downloads(&self) -> &Path {
        &self.downloads
    }

    pub(crate) fn m3u8(&self) -> &Path {
        &self.m3u8
    }

    pub(crate) fn room(&self) -> &Mutex<()> {
        &self.room
    }

    pub(crate) fn streams(&self) -> &OpenStreams {
        &self.streams
    }

    pub(crate) fn choosing(&self) -> &Mutex<()> {
        &self.choosing
    }

    /// Bytes the tasks' folders held at the last measurement.
    pub fn disk_used(&self) -> u64 {
        self.disk_used.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_disk_used(&self, bytes: u64) {
        self.disk_used
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .disk_used
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    fn next_id(&self) -> TaskId {
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let mut last = self.last_id.lock().unwrap_or_else(|p| p.into_inner());
        let (id, n) = TaskId::next_after(*last, now);
        *last = n;
        id
    }

    /// Submits a magnet. The same info hash twice gives the existing task (`true`).
    #[tracing::instrument(skip(self, magnet_url), fields(node = %self.node_id))]
    pub async fn submit(self: &Arc<Self>, magnet_url: &str, owner: &str) -> Result<(Task, bool)> {
        let magnet = Magnet::parse(magnet_url)?;
        if magnet.info_hash.v1().is_none() {
            return Err(Error::Unsupported(
                "BitTorrent v2-only magnet links (btmh without btih) are not supported; add the v1 btih hash",
            ));
        }
        self.create(&magnet, magnet_url.trim(), owner, None).await
    }

    /// A task from a `.torrent` file's bytes: checked as a torrent whose metadata arrived
    /// (file list limits, a video to play) before anything is stored. Its magnet (info hash,
    /// name, trackers) stands for it in the original's API; the file is saved as the task's
    /// metainfo, so the download needs no metadata exchange.
    pub async fn submit_torrent(
        self: &Arc<Self>,
        bytes: Bytes,
        owner: &str,
    ) -> Result<(Task, bool)> {
        let file = torrent::read_torrent_file(bytes)?;
        self.check_file_list(&file.description)?;
        if !file
            .description
            .files
            .iter()
            .any(|(p, _)| media::is_video(p))
        {
            return Err(Error::BadTorrent(format!(
                "the torrent has no video file ({} files, none with a video extension)",
                file.description.files.len()
            )));
        }
        let magnet_url = torrent_magnet(&file);
        let magnet = Magnet::parse(&magnet_url)?;
        let need = crate::disk::expected_bytes(&file.description.files);
        self.create(
            &magnet,
            &magnet_url,
            owner,
            Some((&file.description.torrent_bytes, need)),
        )
        .await
    }

    /// Stores a new task (or finds the one with the same info hash) and starts its driver;
    /// `torrent` is its metainfo when known already.
    async fn create(
        self: &Arc<Self>,
        magnet: &Magnet,
        magnet_url: &str,
        owner: &str,
        torrent: Option<(&Bytes, u64)>,
    ) -> Result<(Task, bool)> {
        if !self.settings.torrent.allow_internal_peers {
            reach::check(magnet).await?;
        }
        let info_hash = magnet.info_hash.key();
        if let Some(existing) = self.store.by_info_hash(&self.node_id, &info_hash).await? {
            return Ok((existing, true));
        }
        self.check_disk()?;
        if let Some((_, need)) = torrent {
            self.make_room(None, need).await?;
        }
        let new = NewTask {
            id: self.next_id(),
            magnet_url: magnet_url.to_owned(),
            node_id: self.node_id.clone(),
            info_hash,
            torrent_name: magnet.display_name.clone().unwrap_or_default(),
            peer_hints: magnet.peers.clone(),
            owner: owner.to_owned(),
        };
        match self.store.insert(&new).await? {
            Ok(task) => {
                if let Some((bytes, _)) = torrent {
                    self.save_torrent_file(&task.id, bytes).await?;
                }
                tracing::info!(task = %task.id, info_hash = %task.info_hash, peers = ?task.peer_hints, from_file = torrent.is_some(), "task submitted");
                self.metrics.submitted.inc();
                self.spawn_driver(task.clone()).await;
                Ok((task, false))
            }
            Err(existing) => Ok((existing, true)),
        }
    }

    /// File `index` of a task's torrent, readable while it downloads (the stream endpoint),
    /// and a token cancelled when the task is deleted or the file is no longer wanted. Only
    /// a wanted file opens: whatever a stream reads, the torrent fetches.
    pub async fn open_file(
        &self,
        id: &TaskId,
        index: usize,
    ) -> Result<(torrent::FileReader, CancellationToken)> {
        let ended = self.streams.token(id, index);
        let task = self.store.get(id).await?;
        if index >= task.files.len() {
            return Err(Error::Unsupported(
                "no such file in the torrent (or its metadata is not in yet)",
            ));
        }
        if crate::choice::wanted(&task, self.settings.transcoding.all_videos)
            .is_some_and(|wanted| !wanted.contains(&index))
        {
            return Err(Error::Unsupported(
                "that file is not the chosen video or one of its subtitles",
            ));
        }
        let handle = self
            .engine
            .get(&task.info_hash)
            .ok_or_else(|| Error::Torrent("the torrent is not loaded on this node yet".into()))?;
        let reader = torrent::open_file(&handle, index).await?;
        Ok((reader, ended))
    }

    /// Every task, with what is on the node of each file of a torrent of several videos.
    pub async fn list(&self) -> Result<Vec<Task>> {
        let mut tasks = self.store.list().await?;
        for t in &mut tasks {
            self.live_files(t);
        }
        Ok(tasks)
    }

    /// One task by its id as a caller spelled it (checked first), with the bytes on the node of
    /// each file of a torrent of several videos, as in [`Tasks::list`].
    pub async fn get(&self, id: &str) -> Result<Task> {
        let mut task = self.store.get(&TaskId::parse(id)?).await?;
        self.live_files(&mut task);
        Ok(task)
    }

    /// Fills in the bytes of each file on the node now, for a torrent of several videos (the
    /// episode list shows them).
    fn live_files(&self, task: &mut Task) {
        let videos = task.files.iter().filter(|f| media::is_video(f)).count();
        if videos > 1
            && let Some(handle) = self.engine.get(&task.info_hash)
        {
            task.file_progress = handle.stats().file_progress;
        }
    }

    /// Pauses (`true`) or resumes a task that still downloads. Paused: its driver stops and
    /// its torrent moves no bytes, also after a restart; resumed: its driver starts again and
    /// the download continues from what is on disk.
    #[tracing::instrument(skip(self), fields(node = %self.node_id))]
    pub async fn set_paused(self: &Arc<Self>, id: &str, paused: bool) -> Result<Task> {
        let id = TaskId::parse(id)?;
        let task = self.store.get(&id).await?;
        if task.paused == paused {
            return Ok(task);
        }
        if !self.store.set_paused(&id, paused).await? {
            return Err(Error::Unsupported(
                "only a task that is still downloading can be paused or resumed",
            ));
        }
        if paused {
            self.stop_driver(&id).await;
            if let Some(handle) = self.engine.get(&task.info_hash) {
                self.engine.pause(&handle).await?;
            }
            tracing::info!(task = %id, "paused");
        } else {
            let task = self.store.get(&id).await?;
            self.spawn_driver(task).await;
            tracing::info!(task = %id, "resumed");
        }
        let task = self.store.get(&id).await?;
        self.publish_progress(&task).await;
        Ok(task)
    }

    /// Another attempt at a task in error: back to `pending` with its error and transcode
    /// state cleared and its HLS output removed; the payload on disk is kept, so the download
    /// checks it and fetches only the rest, and the transcode job goes out anew.
    #[tracing::instrument(skip(self), fields(node = %self.node_id))]
    pub async fn retry(self: &Arc<Self>, id: &str) -> Result<Task> {
        let id = TaskId::parse(id)?;
        let not_in_error = Error::Unsupported("only a task in error can be retried");
        if self.store.get(&id).await?.status != TaskStatus::Error {
            return Err(not_in_error);
        }
        // A driver ending after its failure may still be on its way out.
        self.stop_driver(&id).await;
        if !self.store.retry(&id).await? {
            return Err(not_in_error);
        }
        remove_dir(&self.m3u8.join(id.as_str())).await?;
        let task = self.store.get(&id).await?;
        tracing::info!(task = %id, attempt = task.attempt, "retrying");
        self.spawn_driver(task.clone()).await;
        self.publish_progress(&task).await;
        Ok(task)
    }

    /// Stops a task's driver and waits for it to end (it takes the drivers' lock on its way
    /// out, so the entry is taken out first).
    async fn stop_driver(&self, id: &TaskId) {
        let driver = self.drivers.lock().await.remove(id);
        if let Some((cancel, join)) = driver {
            cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), join).await;
        }
    }

    /// Deletes a task: stops its download, removes the torrent, its payload and its HLS output.
    #[tracing::instrument(skip(self), fields(node = %self.node_id))]
    pub async fn delete(&self, id: &str) -> Result<()> {
        let id = TaskId::parse(id)?;
        let mut task = self.store.get(&id).await?;
        // Holding the drivers' lock while waiting for the driver made every delete of a
        // running download wait out the timeout (10 s), and every submit with it.
        self.stop_driver(&id).await;
        self.streams.end_task(&id);
        self.engine.remove(&task.info_hash, true).await?;
        for path in [
            torrent::output_dir(&self.downloads, id.as_str()),
            self.m3u8.join(id.as_str()),
        ] {
            remove_dir(&path).await?;
        }
        let saved = self.torrent_file(&id);
        if let Err(e) = tokio::fs::remove_file(&saved).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Error::Io {
                path: saved,
                source: e,
            });
        }
        self.store.delete(&id).await?;
        task.status = TaskStatus::Cancelled;
        self.publish_progress(&task).await;
        tracing::info!(task = %id, "task deleted");
        Ok(())
    }

    /// After a restart: drive every unfinished download again and publish jobs that did not
    /// go out; drop torrents the store does not know.
    pub async fn resume(self: &Arc<Self>) -> Result<()> {
        let tasks = self.store.list().await?;
        let known: std::collections::HashSet<&str> =
            tasks.iter().map(|t| t.info_hash.as_str()).collect();
        for hash in self.engine.info_hashes() {
            if !known.contains(hash.as_str()) {
                tracing::warn!(%hash, "torrent in session state has no task; removing it (files kept)");
                self.engine.remove(&hash, false).await?;
            }
        }
        self.hold_stopped_seeds(&tasks).await?;
        for task in tasks.iter().filter(|t| t.status.is_downloading()) {
            if task.paused {
                // Persistence may have restored it running: it stays paused.
                if let Some(handle) = self.engine.get(&task.info_hash) {
                    self.engine.pause(&handle).await?;
                }
                tracing::info!(task = %task.id, "paused; not resumed");
                continue;
            }
            tracing::info!(task = %task.id, status = %task.status, "resuming download");
            self.spawn_driver(task.clone()).await;
        }
        for task in self.store.awaiting_job().await? {
            tracing::info!(task = %task.id, "publishing transcode job that did not go out before the restart");
            self.publish_job(&task, false).await?;
        }
        Ok(())
    }

    /// Stops every driver (shutdown).
    pub async fn stop(&self) {
        let drivers: Vec<_> = self.drivers.lock().await.drain().collect();
        for (_, (cancel, _)) in &drivers {
            cancel.cancel();
        }
        for (_, (_, join)) in drivers {
            let _ = tokio::time::timeout(Duration::from_secs(5), join).await;
        }
    }

    fn check_disk(&self) -> Result<()> {
        let floor_mb = self.settings.limits.min_free_disk_mb;
        let free_mb = free_bytes(&self.downloads) / (1024 * 1024);
        if free_mb < floor_mb {
            return Err(Error::DiskFull { free_mb, floor_mb });
        }
        Ok(())
    }

    /// Sets the node's gauges: tasks by status, speed, peers, transcode jobs in the queue.
    pub async fn refresh_gauges(&self) {
        if let Ok(tasks) = self.store.list().await {
            for status in TaskStatus::ALL {
                let n = tasks.iter().filter(|t| t.status == status).count();
                self.metrics
                    .tasks
                    .get_or_create(&crate::StatusLabel {
                        status: status.as_str().to_owned(),
                    })
                    .set(n as i64);
            }
            let live = tasks.iter().filter(|t| t.status == TaskStatus::Downloading);
            let (speed, peers) = live.fold((0u64, 0u64), |(s, p), t| {
                (s + t.speed, p + u64::from(t.peers))
            });
            self.metrics.speed.set(speed as i64);
            self.metrics.peers.set(peers as i64);
        }
        if let Err(e) = self.refresh_disk().await {
            tracing::warn!(error = %e, "disk use not measured");
        }
        let js = async_nats::jetstream::new(self.nats.clone());
        if let Ok(n) = crate::autoscale::jobs_in_queue(&js, &self.node_id).await {
            self.metrics.jobs.set(n as i64);
        }
    }

    /// Free bytes on the node's volume.
    pub fn disk_free(&self) -> u64 {
        free_bytes(&self.downloads)
    }

    /// Tasks with a running driver (waiting for metadata or a slot, or downloading); the node's
    /// registry record reports it as `active_tasks`.
    pub async fn active_downloads(&self) -> usize {
        self.drivers.lock().await.len()
    }

    async fn spawn_driver(self: &Arc<Self>, task: Task) {
        let cancel = self.shutdown.child_token();
        let this = Arc::clone(self);
        let id = task.id.clone();
        let span = tracing::info_span!("download", task = %id, node = %self.node_id);
        let token = cancel.clone();
        let join = tokio::spawn(
            async move {
                this.metrics.active.inc();
                let outcome = this.drive(&task, &token).await;
                this.metrics.active.dec();
                match outcome {
                    Ok(()) => {}
                    Err(_) if token.is_cancelled() => tracing::info!("download stopped"),
                    Err(e) => {
                        tracing::warn!(error = %e, "download failed");
                        this.fail(&task.id, &e.to_string()).await;
                    }
                }
                this.drivers.lock().await.remove(&task.id);
            }
            .instrument(span),
        );
        self.drivers.lock().await.insert(id, (cancel, join));
    }

    async fn fail(&self, id: &TaskId, message: &str) {
        // Users read task errors: the node's own folders stay out of them.
        let downloads = format!("{}/", absolute(&self.downloads).display());
        let data = format!("{}/", absolute(&self.settings.storage.data_dir).display());
        let message = &magnet_core::redact::paths(message, &[(&downloads, ""), (&data, "")]);
        match self
            .store
            .set_status(id, TaskStatus::Error, Some(message))
            .await
        {
            Ok(_) => {
                if let Ok(task) = self.store.get(id).await {
                    self.publish_progress(&task).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot record the task's error"),
        }
    }

    /// One task from magnet to `downloaded` and a published job. The metadata comes first,
    /// outside the download slots (with its own time limit): magnets that never resolve must
    /// not hold the slots that real downloads wait for.
    async fn drive(&self, task: &Task, cancel: &CancellationToken) -> Result<()> {
        let peers = reach::dialable(
            resolve_peers(&task.peer_hints).await,
            self.settings.torrent.allow_internal_peers,
        );
        let handle = self.obtain_handle(task, peers, cancel).await?;
        let description = torrent::describe(&handle)?;
        if let Err(refused) = self.check_file_list(&description) {
            // Nothing of it stays: no payload, no saved metainfo, no files in the store.
            self.engine.remove(&task.info_hash, true).await?;
            self.store
                .set_metadata(&task.id, &description.name, &[])
                .await?;
            return Err(refused);
        }
        if task.files.is_empty()
            && let Err(no_room) = self
                .make_room(
                    Some(&task.id),
                    crate::disk::expected_bytes(&description.files),
                )
                .await
        {
            self.engine.remove(&task.info_hash, true).await?;
            return Err(no_room);
        }
        self.save_torrent_file(&task.id, &description.torrent_bytes)
            .await?;
        self.store
            .set_metadata(&task.id, &description.name, &description.files)
            .await?;
        let _slot = self.download_slot(task, &handle, cancel).await?;
        // The torrent was added paused; a torrent still checking its files cannot be resumed,
        // so it starts once that is done.
        let initialized = handle.wait_until_initialized();
        tokio::pin!(initialized);
        let mut started = false;

        let give_up = Duration::from_secs(self.settings.torrent.give_up_after_secs);
        let no_peers_after = Duration::from_secs(self.settings.torrent.no_peers_after_secs);
        // Stalled means no byte came: neither a whole piece nor part of one.
        let mut last_bytes = (0, 0);
        let mut last_change = Instant::now();
        let mut peerless_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(TICK);
        // Completion ends the loop at once, not at the next tick.
        let completed = handle.wait_until_completed();
        tokio::pin!(completed);
        let mut complete = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = &mut initialized, if !started => {
                    r.map_err(Error::torrent)?;
                    // A torrent of several videos fetches only the chosen one (or the largest).
                    self.apply_choice(&task.id, &handle).await?;
                    self.engine.resume(&handle).await?;
                    started = true;
                    // Progressive playback: the transcoders read the files while they come.
                    if self.settings.transcoding.progressive_playback()
                        && !self.store.job_published(&task.id).await?
                    {
                        let task = self.store.get(&task.id).await?;
                        self.publish_job(&task, true).await?;
                    }
                }
                r = &mut completed, if !complete => {
                    r.map_err(Error::torrent)?;
                    complete = true;
                }
                _ = cancel.cancelled() => return Err(Error::Cancelled),
            }
            let snap = torrent::snapshot(&handle);
            if let Some(error) = snap.error {
                return Err(Error::Torrent(error));
            }
            if snap.finished || complete {
                break;
            }
            if snap.checking {
                // Hashing what is on disk (a resumed task); the counts are not data held yet.
                self.store.set_detail(&task.id, "checking files").await?;
                self.publish_current(&task.id).await;
                last_change = Instant::now();
                continue;
            }
            let bytes = (snap.progress_bytes, snap.fetched_bytes);
            if bytes != last_bytes {
                last_bytes = bytes;
                last_change = Instant::now();
            } else if last_change.elapsed() > give_up {
                return Err(Error::Stalled(give_up.as_secs()));
            }
            peerless_since = if snap.live_peers == 0 {
                peerless_since.or(Some(Instant::now()))
            } else {
                None
            };
            let detail = match peerless_since {
                Some(since) if since.elapsed() >= no_peers_after => "no peers",
                _ => "",
            };
            let progress = DownloadProgress {
                progress: percent(snap.progress_bytes, snap.total_bytes),
                downloaded: snap.progress_bytes,
                size: snap.total_bytes,
                speed: snap.speed,
                peers: snap.live_peers,
                detail: detail.to_owned(),
            };
            if !self.store.update_download(&task.id, &progress).await? {
                // The task ended elsewhere (its progressive transcode failed): stop fetching.
                let now = self.store.get(&task.id).await?;
                tracing::info!(status = %now.status, "task ended while downloading; torrent paused");
                self.engine.pause(&handle).await?;
                return Ok(());
            }
            self.publish_current(&task.id).await;
        }

        let total = torrent::snapshot(&handle).total_bytes;
        self.store.mark_downloaded(&task.id, total).await?;
        tracing::info!(bytes = total, "download complete");
        self.metrics.completed.inc();
        self.metrics.downloaded_bytes.inc_by(total);
        let task = self.store.get(&task.id).await?;
        self.publish_progress(&task).await;
        if self.store.job_published(&task.id).await? {
            return Ok(());
        }
        self.publish_job(&task, false).await
    }

    /// Waits for one of the node's download slots (`limits.max_downloads`), the torrent
    /// paused meanwhile and the wait shown in the task's detail.
    async fn download_slot(
        &self,
        task: &Task,
        handle: &Handle,
        cancel: &CancellationToken,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        self.engine.pause(handle).await?;
        self.store
            .set_detail(&task.id, "queued: waiting for a download slot")
            .await?;
        self.publish_current(&task.id).await;
        tokio::select! {
            slot = self.slots.clone().acquire_owned() => slot.map_err(|_| Error::Internal("download slots closed")),
            _ = cancel.cancelled() => Err(Error::Cancelled),
        }
    }

    /// Refuses a torrent whose file list is over the node's limits (`torrent.max_files`,
    /// `torrent.max_path_bytes`): thousands of long paths would make every answer about the
    /// task huge.
    fn check_file_list(&self, d: &torrent::Description) -> Result<()> {
        let limits = &self.settings.torrent;
        let count = d.files.len();
        if count > limits.max_files as usize {
            return Err(Error::TorrentTooLarge(format!(
                "the torrent has {count} files; this node accepts at most {} (torrent.max_files)",
                limits.max_files
            )));
        }
        let bytes: u64 = d.files.iter().map(|(p, _)| p.len() as u64).sum();
        if bytes > limits.max_path_bytes {
            return Err(Error::TorrentTooLarge(format!(
                "the torrent's file paths add up to {bytes} bytes; this node accepts at most {} \
                 (torrent.max_path_bytes)",
                limits.max_path_bytes
            )));
        }
        Ok(())
    }

    /// Gets the task's torrent into the session: re-adding it with the task's peers when the
    /// session restored it without them, waiting for metadata with a visible detail, giving up
    /// after the configured time.
    async fn obtain_handle(
        &self,
        task: &Task,
        peers: Vec<SocketAddr>,
        cancel: &CancellationToken,
    ) -> Result<Handle> {
        let mut source = match tokio::fs::read(self.torrent_file(&task.id)).await {
            Ok(bytes) => Source::TorrentFile(Bytes::from(bytes)),
            Err(_) => Source::Magnet(Magnet::parse(&task.magnet_url)?.to_uri()),
        };
        if let Some(restored) = self.engine.get(&task.info_hash) {
            if peers.is_empty() {
                return Ok(restored);
            }
            // librqbit does not persist initial peers: re-add so that the magnet's peers are used.
            if let (Source::Magnet(_), Ok(d)) = (&source, torrent::describe(&restored)) {
                source = Source::TorrentFile(d.torrent_bytes);
            }
            self.engine.remove(&task.info_hash, false).await?;
        }
        let waiting = match source {
            Source::Magnet(_) => "waiting for metadata",
            Source::TorrentFile(_) => "checking files",
        };
        self.store
            .update_download(
                &task.id,
                &DownloadProgress {
                    progress: task.progress,
                    downloaded: task.downloaded,
                    size: task.size,
                    detail: waiting.into(),
                    ..Default::default()
                },
            )
            .await?;
        self.publish_current(&task.id).await;

        let out = torrent::output_dir(&self.downloads, task.id.as_str());
        let give_up = Duration::from_secs(self.settings.torrent.metadata_timeout_secs);
        let no_peers_after = Duration::from_secs(self.settings.torrent.no_peers_after_secs);
        let started = Instant::now();
        let mut pauses =
            magnet_runtime::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            let add = self.engine.add(source.clone(), &out, peers.clone());
            tokio::pin!(add);
            let mut tick = tokio::time::interval(TICK);
            let outcome = loop {
                tokio::select! {
                    r = &mut add => break r,
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                    _ = tick.tick() => {
                        if started.elapsed() > give_up {
                            return Err(Error::NoMetadata(give_up.as_secs()));
                        }
                        if started.elapsed() >= no_peers_after {
                            self.store.set_detail(&task.id, &format!("{waiting} (no peers)")).await?;
                            self.publish_current(&task.id).await;
                        }
                    }
                }
            };
            let retry = pauses.next_pause();
            match outcome {
                Ok(handle) => return Ok(handle),
                Err(e) if started.elapsed() + retry > give_up => {
                    tracing::warn!(error = %e, "giving up on the torrent");
                    return Err(Error::NoMetadata(give_up.as_secs()));
                }
                Err(e) => {
                    tracing::info!(error = %e, ?retry, "no peer answered yet; retrying");
                    self.store
                        .set_detail(&task.id, &format!("{waiting} (no peers)"))
                        .await?;
                    self.publish_current(&task.id).await;
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = cancel.cancelled() => return Err(Error::Cancelled),
                    }
                }
            }
        }
    }

    fn torrent_file(&self, id: &TaskId) -> PathBuf {
        self.torrents.join(format!("{id}.torrent"))
    }

    async fn save_torrent_file(&self, id: &TaskId, bytes: &Bytes) -> Result<()> {
        let path = self.torrent_file(id);
        let tmp = path.with_extension("torrent.tmp");
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }

    /// Publishes the task's transcode job (deduplicated by task id) and records that it went out.
    /// The job names the torrent's videos and subtitles only (a torrent of thousands of other
    /// files must not make a job too large for NATS); with no video at all, the first few
    /// other files, so that the transcoder's error lists what the torrent holds.
    /// A `progressive` job's inputs are URLs of the stream endpoint (the files are still
    /// coming), with their sizes from the metadata.
    async fn publish_job(&self, task: &Task, progressive: bool) -> Result<()> {
        let files = crate::choice::job_files(task, self.settings.transcoding.all_videos);
        self.send_job(task, &files, progressive, None).await?;
        self.store.mark_job_published(&task.id).await?;
        Ok(())
    }

    /// Builds and publishes one transcode job of `files` (a progressive one reads them through
    /// the stream endpoint). `nonce` tells a job apart from an earlier one of the same task
    /// and folder, which JetStream would drop as its duplicate.
    pub(crate) async fn send_job(
        &self,
        task: &Task,
        files: &crate::choice::JobFiles,
        progressive: bool,
        nonce: Option<u64>,
    ) -> Result<()> {
        let out = torrent::output_dir(&self.downloads, task.id.as_str());
        let described = if progressive && task.file_sizes.len() != task.files.len() {
            self.engine
                .get(&task.info_hash)
                .and_then(|h| torrent::describe(&h).ok())
                .map(|d| d.files.into_iter().map(|(_, len)| len).collect())
                .unwrap_or_default()
        } else {
            task.file_sizes.clone()
        };
        let inputs = files
            .indexes
            .iter()
            .filter_map(|&index| Some((index, task.files.get(index)?)))
            .map(|(index, name)| {
                if progressive {
                    pb::TranscodeInput {
                        source: Some(pb::transcode_input::Source::Url(format!(
                            "{}/stream/{}/{index}",
                            self.stream_base, task.id
                        ))),
                        name: name.clone(),
                        size: described.get(index).copied().unwrap_or(0),
                    }
                } else {
                    pb::TranscodeInput {
                        source: Some(pb::transcode_input::Source::Path(
                            absolute(&out.join(name)).to_string_lossy().into_owned(),
                        )),
                        name: name.clone(),
                        size: std::fs::metadata(out.join(name))
                            .map(|m| m.len())
                            .unwrap_or(0),
                    }
                }
            })
            .collect();
        let mut output_dir = self.m3u8.join(task.id.as_str());
        if !files.variant.is_empty() {
            output_dir.push(&files.variant);
        }
        let job = pb::TranscodeJob {
            task_id: task.id.to_string(),
            node_id: self.node_id.clone(),
            inputs,
            output_dir: absolute(&output_dir).to_string_lossy().into_owned(),
            progressive,
            variant: files.variant.clone(),
        };
        if job.encoded_len() > MAX_JOB_BYTES {
            return Err(Error::TorrentTooLarge(format!(
                "the torrent has too many video and subtitle files to transcode ({} bytes of \
                 job, the most is {MAX_JOB_BYTES})",
                job.encoded_len()
            )));
        }
        jobs::publish_job(&self.js, &job, task.attempt, nonce).await?;
        tracing::info!(task = %task.id, inputs = job.inputs.len(), progressive, variant = %job.variant, "transcode job published");
        Ok(())
    }

    /// Applies one transcode event to the store; events that would go backwards change nothing.
    #[tracing::instrument(skip(self, event), fields(task = %event.task_id))]
    pub async fn apply_event(&self, event: &pb::TranscodeEvent) -> Result<()> {
        let id = TaskId::parse(&event.task_id)?;
        let task = match self.store.get(&id).await {
            Ok(task) => task,
            Err(Error::TaskNotFound(_)) => {
                tracing::debug!("event of a deleted task");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // Every video keeps its own state; only the one being played moves the task.
        if let Some(kind) = &event.kind
            && !self.record_video_event(&task, &event.variant, kind).await?
        {
            tracing::debug!(variant = %event.variant, "event of a video not played now: recorded for it only");
            self.publish_progress(&task).await;
            return Ok(());
        }
        let applied = match &event.kind {
            // While the torrent downloads (a progressive job) the download's driver owns the
            // status: the transcode's events record what they say without moving it.
            Some(pb::transcode_event::Kind::Started(s)) => {
                self.store.mark_transcoding(&id, &s.path_taken).await?
                    || self.store.set_transcode_path(&id, &s.path_taken).await?
            }
            Some(pb::transcode_event::Kind::Progress(p)) => {
                self.store.mark_transcoding(&id, "").await?;
                self.store
                    .set_transcode_progress(&id, p.progress.clamp(0.0, 100.0))
                    .await?
            }
            Some(pb::transcode_event::Kind::Playable(p)) => {
                self.store
                    .mark_playable(&id, &p.m3u8_path, &p.path_taken)
                    .await?
            }
            Some(pb::transcode_event::Kind::Ready(r)) => {
                let out = ReadyOutput {
                    m3u8_path: r.m3u8_path.clone(),
                    segments: r.segments.clone(),
                    srts: r.srts.clone(),
                    transcode_path: r.path_taken.clone(),
                };
                self.store.hold_ready(&id, &out).await? || self.store.mark_ready(&id, &out).await?
            }
            Some(pb::transcode_event::Kind::Failed(f)) => {
                self.store
                    .set_status(&id, TaskStatus::Error, Some(&f.error))
                    .await?
            }
            None => false,
        };
        if !applied {
            tracing::debug!("event changed nothing (task gone or already past it)");
            return Ok(());
        }
        if !matches!(event.kind, Some(pb::transcode_event::Kind::Progress(_)))
            && let Ok(task) = self.store.get(&id).await
        {
            tracing::info!(status = %task.status, "transcode event applied");
            self.publish_progress(&task).await;
        }
        Ok(())
    }

    async fn publish_current(&self, id: &TaskId) {
        if let Ok(task) = self.store.get(id).await {
            self.publish_progress(&task).await;
        }
    }

    /// Live progress on core NATS; losing one is harmless (the next comes within a second).
    pub(crate) async fn publish_progress(&self, task: &Task) {
        let event = convert::progress(task);
        let subject = magnet_runtime::subjects::task_progress(&self.node_id, task.id.as_str());
        let headers = magnet_runtime::telemetry::nats_headers();
        if let Err(e) = self
            .nats
            .publish_with_headers(subject, headers, event.encode_to_vec().into())
            .await
        {
            tracing::debug!(error = %e, "progress not published");
        }
    }
}

fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (done as f64 * 100.0 / total as f64).clamp(0.0, 100.0)
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

async fn remove_dir(path: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Free bytes for unprivileged users on the filesystem holding `path` (0 if unknown).
fn free_bytes(path: &Path) -> u64 {
    let probe = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    nix::sys::statvfs::statvfs(probe)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0)
}

/// Resolves `host:port` peer hints; ones that do not resolve are logged and skipped.
async fn resolve_peers(hints: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for hint in hints {
        match tokio::net::lookup_host(hint.as_str()).await {
            Ok(addrs) => out.extend(addrs),
            Err(e) => tracing::warn!(peer = %hint, error = %e, "peer hint does not resolve"),
        }
    }
    out
}
