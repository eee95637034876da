//! The BitTorrent engine: one librqbit session per node, and what the rest of the downloader
//! needs from it (add with explicit peers, figures, files, removal) in our own types.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use librqbit::api::TorrentIdOrHash;
use librqbit::dht::Id20;
use librqbit::limits::LimitsConfig;
use librqbit::{
    AddTorrent, AddTorrentOptions, ConnectionOptions, ListenerMode, ListenerOptions,
    ManagedTorrent, PeerConnectionOptions, Session, SessionOptions, SessionPersistenceConfig,
};
use magnet_runtime::config::TorrentSettings;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// A torrent in the session, shared with librqbit: what drivers hold while they download and
/// [`snapshot`] and [`describe`] read.
pub type Handle = Arc<ManagedTorrent>;

/// What to add: a magnet (metadata comes from peers) or a .torrent we saved earlier.
#[derive(Clone)]
pub enum Source {
    Magnet(String),
    TorrentFile(Bytes),
}

/// One reading of a torrent's figures.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Still checking what is on disk: the byte counts are hashing progress, not data held.
    pub checking: bool,
    pub finished: bool,
    /// Bytes of whole, checked pieces.
    pub progress_bytes: u64,
    /// Bytes received from peers this session, pieces not yet whole included: a large piece
    /// from a slow peer moves this long before `progress_bytes`.
    pub fetched_bytes: u64,
    pub total_bytes: u64,
    /// Bytes per second.
    pub speed: u64,
    pub live_peers: u32,
    pub error: Option<String>,
}

/// Name, files (path inside the torrent, length) and .torrent bytes of a torrent.
pub struct Description {
    pub name: String,
    pub files: Vec<(String, u64)>,
    pub torrent_bytes: Bytes,
}

/// The node's one librqbit session, owned by [`Tasks`]: the downloader adds, pauses and removes
/// torrents only through it.
///
/// [`Tasks`]: crate::tasks::Tasks
pub struct Engine {
    session: Arc<Session>,
    /// The id of the next torrent added. librqbit's JSON persistence hands out "the largest
    /// stored id + 1", read before the new torrent is stored, so two magnets whose metadata
    /// arrive together got the same id, and the second was answered with the FIRST one's
    /// torrent (`AlreadyManaged`): two tasks downloading one torrent, the other never
    /// fetched. Ids from this counter are unique.
    next_id: AtomicUsize,
}

impl Engine {
    /// Starts the session: listener, DHT, trackers and discovery as configured; persistence in
    /// `state` so that a restart resumes without re-checking.
    pub async fn start(
        settings: &TorrentSettings,
        downloads: &Path,
        state: &Path,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        let listen = match settings.listen_port {
            Some(port) => {
                let host: std::net::IpAddr = settings.listen_host.parse().map_err(|_| {
                    Error::Torrent(format!(
                        "torrent.listen_host {:?} is not an IP address",
                        settings.listen_host
                    ))
                })?;
                Some(ListenerOptions {
                    mode: ListenerMode::TcpOnly,
                    listen_addr: SocketAddr::new(host, port),
                    enable_upnp_port_forwarding: settings.upnp,
                    ..Default::default()
                })
            }
            None => None,
        };
        // Unless allowed, no peer connection to or from internal addresses, whoever named
        // the peer (reach.rs checks the magnet's own trackers and peers at submit).
        let blocklist_url = if settings.allow_internal_peers {
            None
        } else {
            let path =
                std::path::absolute(state.join("internal-ranges.p2p")).map_err(|source| {
                    Error::Io {
                        path: state.join("internal-ranges.p2p"),
                        source,
                    }
                })?;
            tokio::fs::create_dir_all(state)
                .await
                .map_err(|source| Error::Io {
                    path: state.to_owned(),
                    source,
                })?;
            tokio::fs::write(&path, crate::reach::BLOCKLIST)
                .await
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            Some(format!("file://{}", path.display()))
        };
        let options = SessionOptions {
            blocklist_url,
            dht: if settings.dht {
                Some(Default::default())
            } else {
                None
            },
            disable_trackers: !settings.trackers,
            disable_local_service_discovery: !settings.local_discovery,
            persistence: settings
                .persistence
                .then(|| SessionPersistenceConfig::Json {
                    folder: Some(state.join("session")),
                }),
            fastresume: settings.persistence,
            listen,
            cancellation_token: Some(shutdown),
            // Each open file stream holds one of these permits for its whole life, and so do
            // chunk writes and the hash check: librqbit's default of 8 would let 8 streams
            // waiting for pieces stop the pieces from being written.
            runtime_worker_threads: Some(settings.blocking_threads),
            connect: Some(ConnectionOptions {
                peer_opts: Some(PeerConnectionOptions {
                    max_request_window: Some(settings.peer_request_window),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ratelimits: LimitsConfig {
                upload_bps: kibps(settings.upload_limit_kibps),
                download_bps: kibps(settings.download_limit_kibps),
            },
            ..Default::default()
        };
        let session = Session::new_with_opts(downloads.to_owned(), options)
            .await
            .map_err(Error::torrent)?;
        let next_id = session.with_torrents(|it| it.map(|(id, _)| id + 1).max().unwrap_or(0));
        Ok(Self {
            session,
            next_id: AtomicUsize::new(next_id),
        })
    }

    /// Where peers can reach this session, if it listens.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.session.listen_addr()
    }

    /// The session's torrent of an info hash as the store keeps it (lowercase hex); none when
    /// the session does not hold it.
    pub fn get(&self, info_hash: &str) -> Option<Handle> {
        let id = Id20::from_str(info_hash).ok()?;
        self.session.get(TorrentIdOrHash::Hash(id))
    }

    /// Info hashes of every torrent in the session (e.g. restored from persistence).
    pub fn info_hashes(&self) -> Vec<String> {
        self.session
            .with_torrents(|it| it.map(|(_, h)| h.info_hash().as_string()).collect())
    }

    /// Adds a torrent writing into `out` (existing data there is checked and kept), paused:
    /// it downloads once [`Engine::resume`] is called. For a magnet this waits until a peer
    /// sent the metadata; callers bound the wait.
    pub async fn add(&self, source: Source, out: &Path, peers: Vec<SocketAddr>) -> Result<Handle> {
        let add = match source {
            Source::Magnet(uri) => AddTorrent::from_url(uri),
            Source::TorrentFile(bytes) => AddTorrent::from_bytes(bytes),
        };
        let options = AddTorrentOptions {
            output_folder: Some(out.to_string_lossy().into_owned()),
            overwrite: true,
            initial_peers: (!peers.is_empty()).then_some(peers),
            paused: true,
            preferred_id: Some(self.next_id.fetch_add(1, Ordering::Relaxed)),
            ..Default::default()
        };
        let response = self
            .session
            .add_torrent(add, Some(options))
            .await
            .map_err(Error::torrent)?;
        response
            .into_handle()
            .ok_or(Error::Internal("librqbit answered list-only"))
    }

    /// Stops a torrent's transfers (a torrent restored by persistence starts running).
    pub async fn pause(&self, handle: &Handle) -> Result<()> {
        if handle.is_paused() {
            return Ok(());
        }
        self.session.pause(handle).await.map_err(Error::torrent)
    }

    /// Lets a paused torrent download (with its initial peers, DHT and trackers as set).
    pub async fn resume(&self, handle: &Handle) -> Result<()> {
        if !handle.is_paused() {
            return Ok(());
        }
        self.session.unpause(handle).await.map_err(Error::torrent)
    }

    /// Downloads only these files of the torrent from now on (what is on disk stays). A
    /// torrent that had everything it wanted is paused around the change and started again:
    /// librqbit left running after it finished keeps its peers in a state it then ignores
    /// ("peer was in a wrong state Queued, ignoring it forever") and never fetches the new file.
    pub async fn set_only_files(
        &self,
        handle: &Handle,
        files: &std::collections::HashSet<usize>,
    ) -> Result<()> {
        let restart = !handle.is_paused() && handle.stats().finished;
        if restart {
            self.session.pause(handle).await.map_err(Error::torrent)?;
        }
        self.session
            .update_only_files(handle, files)
            .await
            .map_err(Error::torrent)?;
        if restart {
            self.session.unpause(handle).await.map_err(Error::torrent)?;
        }
        Ok(())
    }

    /// Removes a torrent from the session, deleting its files if asked. Unknown: no-op.
    pub async fn remove(&self, info_hash: &str, delete_files: bool) -> Result<()> {
        let Ok(id) = Id20::from_str(info_hash) else {
            return Ok(());
        };
        if self.session.get(TorrentIdOrHash::Hash(id)).is_none() {
            return Ok(());
        }
        self.session
            .delete(TorrentIdOrHash::Hash(id), delete_files)
            .await
            .map_err(Error::torrent)
    }

    /// Stops the session and all its torrents; the downloader's shutdown calls it after the
    /// task drivers have stopped.
    pub async fn stop(&self) {
        self.session.stop().await;
    }
}

fn kibps(limit: Option<u32>) -> Option<NonZeroU32> {
    limit.and_then(|k| NonZeroU32::new(k.saturating_mul(1024)))
}

/// Reads the torrent's figures now; a driver does it each tick for the task's progress and
/// stall check.
pub fn snapshot(handle: &Handle) -> Snapshot {
    let stats = handle.stats();
    let (speed, live_peers, fetched_bytes) = stats
        .live
        .as_ref()
        .map(|l| {
            (
                l.download_speed.as_bytes(),
                l.snapshot.peer_stats.live,
                l.snapshot.fetched_bytes,
            )
        })
        .unwrap_or((0, 0, 0));
    let checking = matches!(
        stats.state,
        librqbit::TorrentStatsState::Initializing { .. }
    );
    Snapshot {
        checking,
        finished: stats.finished && !checking,
        progress_bytes: stats.progress_bytes,
        fetched_bytes,
        total_bytes: stats.total_bytes,
        speed,
        live_peers,
        error: stats.error,
    }
}

/// Largest `.torrent` file accepted (a 100 GiB torrent of 256 KiB pieces has 8 MiB of piece
/// hashes; the gateway's own limit, `gateway.max_torrent_kib`, is usually lower).
pub const MAX_TORRENT_FILE: usize = 16 * 1024 * 1024;

/// A `.torrent` file as uploaded, read without adding it anywhere.
pub struct TorrentFile {
    /// The v1 info hash, 40 lowercase hex characters.
    pub info_hash: String,
    pub description: Description,
    /// Its trackers (`announce-list`, else `announce`).
    pub trackers: Vec<String>,
}

/// Reads a `.torrent` file: bencode, a v1 info dictionary (BitTorrent v2-only torrents are not
/// supported), files with safe names. Every refusal says what is wrong with the file.
pub fn read_torrent_file(bytes: Bytes) -> Result<TorrentFile> {
    if bytes.len() > MAX_TORRENT_FILE {
        return Err(Error::BadTorrent(format!(
            "the .torrent file has {} bytes; at most {} are accepted",
            bytes.len(),
            MAX_TORRENT_FILE
        )));
    }
    let meta = librqbit::torrent_from_bytes(&bytes).map_err(|e| {
        // A v2-only torrent has a file tree and no v1 piece hashes.
        let v2_only = contains(&bytes, b"12:meta versioni2e") && !contains(&bytes, b"6:pieces");
        Error::BadTorrent(if v2_only {
            "BitTorrent v2-only torrents are not supported (a hybrid v1+v2 torrent is)".into()
        } else {
            format!("not a .torrent file: {e}")
        })
    })?;
    let info = meta
        .info
        .data
        .clone()
        .validate()
        .map_err(|e| Error::BadTorrent(format!("the torrent's file list is unusable: {e}")))?;
    let files = info
        .iter_file_details()
        .filter(|f| !f.attrs().padding)
        .map(|f| (f.filename.to_string(), f.len))
        .collect();
    let trackers = meta
        .iter_announce()
        .filter_map(|t| std::str::from_utf8(t.as_ref()).ok())
        .map(str::to_owned)
        .collect();
    Ok(TorrentFile {
        info_hash: meta.info_hash.as_string(),
        description: Description {
            name: info.name().map(|n| n.into_owned()).unwrap_or_default(),
            files,
            torrent_bytes: bytes.clone(),
        },
        trackers,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The torrent's name, files and metainfo; an error while its metadata has not arrived.
pub fn describe(handle: &Handle) -> Result<Description> {
    handle
        .with_metadata(|m| Description {
            name: m.info.name().map(|c| c.into_owned()).unwrap_or_default(),
            files: m
                .file_infos
                .iter()
                .map(|f| (f.relative_filename.to_string_lossy().into_owned(), f.len))
                .collect(),
            torrent_bytes: m.torrent_bytes.clone(),
        })
        .map_err(Error::torrent)
}

/// A file of a torrent as it downloads: reads wait for missing pieces (and give them
/// priority), seeks move the priority window. librqbit's `FileStream`, which cannot be named.
pub struct FileReader {
    inner: Pin<Box<dyn ReadSeek>>,
    len: u64,
}

trait ReadSeek: AsyncRead + AsyncSeek + Send {}
impl<T: AsyncRead + AsyncSeek + Send> ReadSeek for T {}

impl FileReader {
    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

impl AsyncSeek for FileReader {
    fn start_seek(mut self: Pin<&mut Self>, position: std::io::SeekFrom) -> std::io::Result<()> {
        self.inner.as_mut().start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        self.inner.as_mut().poll_complete(cx)
    }
}

/// Opens file `index` of the torrent for reading while it downloads (waits while librqbit
/// still checks the files on disk).
pub async fn open_file(handle: &Handle, index: usize) -> Result<FileReader> {
    let stream = handle.clone().stream(index).await.map_err(Error::torrent)?;
    let len = stream.len();
    Ok(FileReader {
        inner: Box::pin(stream),
        len,
    })
}

/// Where a task's payload lands: `downloads/<task_id>/`.
pub fn output_dir(downloads: &Path, task_id: &str) -> PathBuf {
    downloads.join(task_id)
}
