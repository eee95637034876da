//! A librqbit session that seeds local files over loopback with DHT, trackers, local discovery
//! and UPnP off, and hands out magnets whose `x.pe` names it as the peer.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use librqbit::limits::LimitsConfig;
use librqbit::spawn_utils::BlockingSpawner;
use librqbit::{
    AddTorrent, AddTorrentOptions, CreateTorrentOptions, ListenerMode, ListenerOptions,
    ManagedTorrent, Session, SessionOptions, create_torrent,
};

pub struct Seeder {
    session: Arc<Session>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// One seeded torrent.
pub struct Seeded {
    /// `magnet:?xt=urn:btih:…&dn=…&x.pe=127.0.0.1:<port>`
    pub magnet: String,
    pub info_hash: String,
    pub handle: Arc<ManagedTorrent>,
    /// The `.torrent` file.
    pub torrent: bytes::Bytes,
}

impl Seeder {
    /// A seeder with no upload limit.
    pub async fn start() -> anyhow::Result<Self> {
        Self::with_upload_limit(None).await
    }

    /// A seeder whose uploads are capped (bytes/s), to make downloads take a while.
    pub async fn with_upload_limit(bps: Option<u32>) -> anyhow::Result<Self> {
        Self::new(bps, false).await
    }

    /// A seeder that announces itself to the trackers its torrents name ([`Seeder::seed_via`]).
    pub async fn with_trackers() -> anyhow::Result<Self> {
        Self::new(None, true).await
    }

    async fn new(bps: Option<u32>, trackers: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // A session on loopback announces no port unless told which (only trackers need it).
        let port = if trackers {
            std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port()
        } else {
            0
        };
        let session = Session::new_with_opts(
            dir.path().to_owned(),
            SessionOptions {
                dht: None,
                disable_trackers: !trackers,
                disable_local_service_discovery: true,
                persistence: None,
                listen: Some(ListenerOptions {
                    mode: ListenerMode::TcpOnly,
                    listen_addr: (Ipv4Addr::LOCALHOST, port).into(),
                    enable_upnp_port_forwarding: false,
                    announce_port: trackers.then_some(port),
                    ..Default::default()
                }),
                ratelimits: LimitsConfig {
                    upload_bps: bps.and_then(NonZeroU32::new),
                    download_bps: None,
                },
                ..Default::default()
            },
        )
        .await?;
        let addr = session
            .listen_addr()
            .context("seeder session does not listen")?;
        Ok(Self {
            session,
            addr,
            _dir: dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Seeds a file or a folder (multi-file torrent) in place.
    pub async fn seed(&self, path: &Path) -> anyhow::Result<Seeded> {
        self.seed_with(path, CreateTorrentOptions::default()).await
    }

    /// [`Seeder::seed`] with small pieces (16 KiB), so that a small file downloads in many
    /// steps and progress has values between 0 and 100 to show.
    pub async fn seed_small_pieces(&self, path: &Path) -> anyhow::Result<Seeded> {
        let options = CreateTorrentOptions {
            piece_length: Some(16 * 1024),
            ..Default::default()
        };
        self.seed_with(path, options).await
    }

    /// [`Seeder::seed`] with pieces of `piece_length` bytes. librqbit makes 2 MiB pieces
    /// whatever the size, and only whole, checked pieces can be read: tools pick about
    /// 256 KiB for a file of tens of MB, which is what a seek over a slow peer waits for.
    pub async fn seed_pieces(&self, path: &Path, piece_length: u32) -> anyhow::Result<Seeded> {
        let options = CreateTorrentOptions {
            piece_length: Some(piece_length),
            ..Default::default()
        };
        self.seed_with(path, options).await
    }

    async fn seed_with(
        &self,
        path: &Path,
        options: CreateTorrentOptions<'_>,
    ) -> anyhow::Result<Seeded> {
        self.seed_announcing(path, options, None).await
    }

    /// Seeds `path` in a torrent that names `tracker`, whitelisted there first, so that peers
    /// find this seeder through the tracker (the magnet has its `tr`, and no `x.pe`).
    pub async fn seed_via(
        &self,
        path: &Path,
        tracker: &crate::tracker::Tracker,
    ) -> anyhow::Result<Seeded> {
        let options = CreateTorrentOptions {
            trackers: vec![tracker.announce_url()],
            piece_length: Some(64 * 1024),
            ..Default::default()
        };
        self.seed_announcing(path, options, Some(tracker)).await
    }

    async fn seed_announcing(
        &self,
        path: &Path,
        options: CreateTorrentOptions<'_>,
        tracker: Option<&crate::tracker::Tracker>,
    ) -> anyhow::Result<Seeded> {
        let spawner = BlockingSpawner::new(2);
        let created = create_torrent(path, options, &spawner).await?;
        let bytes = created.as_bytes()?;
        let info_hash = created.info_hash().as_string();
        if let Some(t) = tracker {
            t.allow(&info_hash)?;
        }
        let handle = self
            .session
            .add_torrent(
                AddTorrent::from_bytes(bytes.clone()),
                Some(AddTorrentOptions {
                    overwrite: true,
                    output_folder: Some(created.output_folder.to_string_lossy().into_owned()),
                    ..Default::default()
                }),
            )
            .await?
            .into_handle()
            .context("seeder add gave no handle")?;
        handle.wait_until_initialized().await?;
        // The "finished" flag can trail initialization by a moment on large files.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !handle.stats().finished {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "seeder does not have the whole torrent"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dn = url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>();
        let magnet = match tracker {
            Some(t) => format!(
                "magnet:?xt=urn:btih:{info_hash}&dn={dn}&tr={}",
                url::form_urlencoded::byte_serialize(t.announce_url().as_bytes())
                    .collect::<String>()
            ),
            None => format!("magnet:?xt=urn:btih:{info_hash}&dn={dn}&x.pe={}", self.addr),
        };
        Ok(Seeded {
            magnet,
            info_hash,
            handle,
            torrent: bytes,
        })
    }

    /// Changes the upload cap (bytes/s; none = unlimited) while seeding.
    pub fn set_upload_limit(&self, bps: Option<u32>) {
        self.session
            .ratelimits
            .set_upload_bps(bps.and_then(NonZeroU32::new));
    }

    /// Stops (`true`) or restarts serving one torrent: a paused torrent answers no peer.
    pub async fn set_paused(&self, seeded: &Seeded, paused: bool) -> anyhow::Result<()> {
        if paused {
            self.session.pause(&seeded.handle).await?;
        } else {
            self.session.unpause(&seeded.handle).await?;
        }
        Ok(())
    }

    /// Downloads a torrent from `peer` only (a leeching peer, e.g. of a node that seeds it);
    /// its figures are the handle's stats.
    pub async fn leech(
        &self,
        torrent: bytes::Bytes,
        peer: SocketAddr,
    ) -> anyhow::Result<Arc<ManagedTorrent>> {
        self.session
            .add_torrent(
                AddTorrent::from_bytes(torrent),
                Some(AddTorrentOptions {
                    overwrite: true,
                    initial_peers: Some(vec![peer]),
                    ..Default::default()
                }),
            )
            .await?
            .into_handle()
            .context("leech add gave no handle")
    }

    /// Bytes this seeder uploaded for a torrent so far.
    pub fn uploaded(seeded: &Seeded) -> u64 {
        seeded.handle.stats().uploaded_bytes
    }
}

/// Writes `len` bytes of incompressible data to `path` (fast, deterministic per seed).
pub fn random_file(path: &Path, len: usize, seed: u64) -> anyhow::Result<()> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        std::io::Write::write_all(&mut file, &buf[..n])?;
        left -= n;
    }
    std::io::Write::flush(&mut file)?;
    Ok(())
}
