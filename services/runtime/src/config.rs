//! Configuration: typed, layered, validated, loaded once.
//!
//! Layers, later wins: compiled defaults → a file (`--config`, TOML, or JSON such as the
//! original's `worker.json`, whose `node`, `storage`, `limits` and `transcoding` keys map onto
//! the same sections) → environment (`MAGNET__SECTION__KEY`, e.g. `MAGNET__NODE__ID`) → flags.
//! Invalid configuration stops the process before any port is bound, with a message naming
//! the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Json, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The flags every service accepts; a service's own flags flatten this in.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct CommonArgs {
    /// Configuration file (TOML, or JSON such as the original's worker.json).
    #[arg(long, env = "MAGNET_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Worker node id (lowercase letters, digits, '-').
    #[arg(long)]
    #[serde(skip)]
    pub node_id: Option<String>,
    /// The worker node's data folder (task store, downloads, m3u8, state).
    #[arg(long)]
    #[serde(skip)]
    pub data_dir: Option<PathBuf>,
    /// NATS server URL.
    #[arg(long)]
    #[serde(skip)]
    pub nats_url: Option<String>,
    /// Address of the admin HTTP server (/healthz, /readyz, /metrics).
    #[arg(long)]
    #[serde(skip)]
    pub admin_listen: Option<SocketAddr>,
    /// Load and check the configuration (file, environment, flags), say so, and exit.
    #[arg(long)]
    #[serde(skip)]
    pub check_config: bool,
}

impl CommonArgs {
    /// The flags as a figment layer (only the ones given).
    fn overrides(&self, service: &str) -> Figment {
        let mut f = Figment::new();
        if let Some(id) = &self.node_id {
            f = f.merge(Serialized::default("node.id", id));
        }
        if let Some(d) = &self.data_dir {
            f = f.merge(Serialized::default("storage.data_dir", d));
        }
        if let Some(u) = &self.nats_url {
            f = f.merge(Serialized::default("nats.url", u));
        }
        if let Some(a) = &self.admin_listen {
            f = f.merge(Serialized::default(&format!("{service}.admin_listen"), a));
        }
        f
    }
}

/// Everything configurable, one section per concern. Each service reads its sections.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub node: NodeSettings,
    pub storage: StorageSettings,
    pub limits: LimitsSettings,
    pub transcoding: TranscodingSettings,
    pub nats: NatsSettings,
    pub torrent: TorrentSettings,
    pub downloader: DownloaderSettings,
    pub transcoder: TranscoderSettings,
    pub streamer: StreamerSettings,
    pub signaling: SignalingSettings,
    pub gateway: GatewaySettings,
    pub internal: InternalSettings,
    pub turn: TurnSettings,
}

/// A TURN service for viewers and nodes behind NATs, with the TURN REST scheme (coturn's
/// `use-auth-secret`): the gateway hands browsers credentials that expire, and streamers
/// make their own from the same secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnSettings {
    /// e.g. `turn:turn.example.org:3478?transport=udp`; none: no TURN.
    pub urls: Vec<String>,
    /// The shared secret (coturn's `static-auth-secret`).
    pub secret: Option<String>,
    /// A file holding the secret (a mounted Secret), read when `secret` is not set.
    pub secret_file: Option<PathBuf>,
    /// How long the credentials handed out stay valid.
    pub ttl_secs: u64,
    /// Cloudflare's TURN service (what the original used) as a second source: credentials
    /// minted by its API with a TURN key, after ours.
    pub cloudflare: Option<CloudflareTurnSettings>,
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: None,
            secret_file: None,
            ttl_secs: 3600,
            cloudflare: None,
        }
    }
}

/// A Cloudflare TURN key: its id and API token mint short-lived credentials
/// (`POST <api_url>/turn/keys/<key_id>/credentials/generate-ice-servers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareTurnSettings {
    /// The TURN key's id (it appears in the API's URL; not a secret).
    pub key_id: String,
    /// The TURN key's API token (a secret).
    #[serde(default)]
    pub api_token: Option<String>,
    /// A file holding the API token (a mounted Secret), read when `api_token` is not set.
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
    /// The API's base URL; https, or http on loopback (a test's stand-in).
    #[serde(default = "CloudflareTurnSettings::default_api_url")]
    pub api_url: String,
}

impl CloudflareTurnSettings {
    /// The default `api_url`: Cloudflare's Realtime API.
    pub const API_URL: &'static str = "https://rtc.live.cloudflare.com/v1";

    fn default_api_url() -> String {
        Self::API_URL.into()
    }
}

impl TurnSettings {
    /// The TURN server with a fresh credential for `user`, if TURN is configured.
    pub fn server_for(&self, user: &str) -> Option<IceServerSettings> {
        let secret = self.secret.as_deref()?;
        if self.urls.is_empty() {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let c = magnet_core::turn::credential(secret, user, now, self.ttl_secs);
        Some(IceServerSettings {
            urls: self.urls.clone(),
            username: c.username,
            credential: c.password,
        })
    }
}

/// The credential our services present to each other's gRPC servers (a shared secret, from a
/// Kubernetes Secret in the chart, generated by `cargo xtask up` locally). Without one, the
/// internal gRPC listeners must be on loopback.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct InternalSettings {
    pub token: Option<String>,
    /// A file holding the token (a mounted Secret), read when `token` is not set.
    pub token_file: Option<PathBuf>,
}

/// `[node]`: the worker node a service runs for (the original's `worker.json` has it too);
/// `id` must be a valid [`magnet_core::NodeId`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    pub id: String,
    pub name: String,
    /// Address the node advertises (shown in the UI; used in endpoints when no advertise is set).
    pub address: String,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            id: "worker-a".into(),
            name: "Worker A".into(),
            address: "127.0.0.1".into(),
        }
    }
}

/// `[storage]`: where the node keeps payloads, HLS output, the task store and torrent state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// The node's volume; the paths below default to folders inside it.
    pub data_dir: PathBuf,
    pub download_path: Option<PathBuf>,
    pub m3u8_path: Option<PathBuf>,
    /// Folder of `worker.db` (the original's name for it).
    pub database_path: Option<PathBuf>,
    pub state_path: Option<PathBuf>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: "data".into(),
            download_path: None,
            m3u8_path: None,
            database_path: None,
            state_path: None,
        }
    }
}

impl StorageSettings {
    fn under(&self, explicit: &Option<PathBuf>, name: &str) -> PathBuf {
        explicit.clone().unwrap_or_else(|| self.data_dir.join(name))
    }
    /// `downloads/`: torrent payloads, one folder per task.
    pub fn downloads(&self) -> PathBuf {
        self.under(&self.download_path, "downloads")
    }
    /// `m3u8/`: HLS output, one folder per task.
    pub fn m3u8(&self) -> PathBuf {
        self.under(&self.m3u8_path, "m3u8")
    }
    /// `config/`: the folder of the task store.
    pub fn database_dir(&self) -> PathBuf {
        self.under(&self.database_path, "config")
    }
    /// `config/worker.db`: the task store.
    pub fn database_file(&self) -> PathBuf {
        self.database_dir().join("worker.db")
    }
    /// `state/`: BitTorrent session persistence.
    pub fn state(&self) -> PathBuf {
        self.under(&self.state_path, "state")
    }
}

/// `[limits]`: downloads and transcodes the node runs at once, and its disk floor and quota.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    pub max_downloads: u32,
    pub max_transcodes: u32,
    /// Advertised size of the node's volume.
    pub disk_space_gb: u64,
    /// New tasks are refused while free space on the volume is under this floor.
    pub min_free_disk_mb: u64,
    /// The node's quota for payloads and HLS together; none = bounded by the volume only.
    /// A task that would exceed it evicts the least recently played finished tasks (payload
    /// first, then HLS), never a pinned or playing one; with nothing to evict it is refused.
    pub disk_quota_mb: Option<u64>,
    /// Delete a task's payload once its HLS is complete (HLS is what is served): about half
    /// the disk per task, but it no longer seeds.
    pub drop_payload_when_ready: bool,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_downloads: 5,
            max_transcodes: 1,
            disk_space_gb: 500,
            min_free_disk_mb: 1024,
            disk_quota_mb: None,
            drop_payload_when_ready: false,
        }
    }
}

/// `[transcoding]`: how videos become HLS, i.e. segment lengths, ffmpeg codecs and quality, and
/// progressive playback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscodingSettings {
    /// Target segment length in seconds.
    pub segment_duration: u32,
    /// Target segment length of progressive jobs. A seek waits for the whole segment under
    /// the new position to download, so shorter segments answer sooner (copied video is cut
    /// on its own keyframes, so a segment is never shorter than the source's keyframe gap).
    pub progressive_segment_duration: u32,
    pub video_codec: String,
    pub audio_codec: String,
    pub preset: String,
    pub crf: u8,
    /// "mpegts" (the original's clients expect .ts) or "fmp4".
    pub hls_segment_type: String,
    /// Transcode every video file of a torrent instead of only the largest.
    pub all_videos: bool,
    /// Playable seconds after metadata arrives: the job goes out at once, reads the files
    /// through the downloader's stream endpoint, and segments are made as they are wanted
    /// (MPEG-TS segments, main video only; otherwise the job waits for the download).
    pub progressive: bool,
    /// How long a streamer waits for a segment that is being made before answering 503.
    pub segment_wait_ms: u32,
}

impl TranscodingSettings {
    /// Whether jobs go out progressively (see `progressive`).
    pub fn progressive_playback(&self) -> bool {
        self.progressive && self.hls_segment_type == "mpegts" && !self.all_videos
    }
}

impl Default for TranscodingSettings {
    fn default() -> Self {
        Self {
            segment_duration: 6,
            progressive_segment_duration: 2,
            video_codec: "libx264".into(),
            audio_codec: "aac".into(),
            preset: "veryfast".into(),
            crf: 23,
            hls_segment_type: "mpegts".into(),
            all_videos: false,
            progressive: true,
            segment_wait_ms: 8000,
        }
    }
}

/// `[nats]`: the NATS servers, the node registry's timing and JetStream's replica count.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// One server's URL, or several separated by commas (a cluster's members); credentials
    /// in the first one hold for all.
    pub url: String,
    /// How long a node's registry record lives without a heartbeat.
    pub registry_ttl_secs: u64,
    /// How often a node refreshes its registry record.
    pub heartbeat_secs: u64,
    /// Copies JetStream keeps of every stream and KV bucket: 1 on one server, 3 (or 5) on a
    /// clustered JetStream, which then survives losing one (or two) of its servers.
    pub replicas: usize,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            registry_ttl_secs: 15,
            heartbeat_secs: 5,
            replicas: 1,
        }
    }
}

/// `[torrent]`: the downloader's BitTorrent session (peer discovery, timeouts, bandwidth,
/// seeding, and the limits on which torrents are accepted).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TorrentSettings {
    /// TCP port for incoming peers; none = do not listen.
    pub listen_port: Option<u16>,
    /// Address to listen on when `listen_port` is set.
    pub listen_host: String,
    pub dht: bool,
    pub trackers: bool,
    pub local_discovery: bool,
    pub upnp: bool,
    /// Keep session state under `storage.state` so a restart resumes without re-checking.
    pub persistence: bool,
    /// After this long with no peer, the task shows "no peers".
    pub no_peers_after_secs: u64,
    /// After this long without metadata (fetched outside the download slots), the task
    /// becomes `error`.
    pub metadata_timeout_secs: u64,
    /// After this long downloading without progress (no peers), the task becomes `error`.
    pub give_up_after_secs: u64,
    /// Bandwidth caps in KiB/s; none = unlimited.
    pub download_limit_kibps: Option<u32>,
    pub upload_limit_kibps: Option<u32>,
    /// A completed task stops seeding once it uploaded this many times its size (0: it does
    /// not seed at all; a large value seeds practically for ever).
    pub seed_ratio: f64,
    /// ... or once it seeded this long, whichever comes first; none = no time limit.
    pub seed_time_secs: Option<u64>,
    /// librqbit's blocking permits: each open file stream holds one for its life, and chunk
    /// writes need one too (keep well above `downloader.max_open_streams`).
    pub blocking_threads: usize,
    /// Chunk requests (16 KiB each) kept outstanding per peer. A piece a stream needs after a
    /// seek is requested behind these, so fewer make seeks answer sooner from slow peers;
    /// more keep distant fast peers busy (librqbit's own default is 128).
    pub peer_request_window: usize,
    /// Let magnets make the node dial trackers and peers on loopback, private and link-local
    /// addresses (the local stack seeds on loopback). Off: such magnets are refused.
    pub allow_internal_peers: bool,
    /// A torrent with more files than this is refused when its metadata arrives.
    pub max_files: u32,
    /// A torrent whose file paths add up to more bytes than this is refused likewise.
    pub max_path_bytes: u64,
}

impl Default for TorrentSettings {
    fn default() -> Self {
        Self {
            listen_port: Some(4240),
            listen_host: "0.0.0.0".into(),
            dht: true,
            trackers: true,
            local_discovery: false,
            upnp: false,
            persistence: true,
            no_peers_after_secs: 30,
            metadata_timeout_secs: 5 * 60,
            give_up_after_secs: 30 * 60,
            download_limit_kibps: None,
            upload_limit_kibps: None,
            seed_ratio: 1.0,
            seed_time_secs: None,
            blocking_threads: 64,
            peer_request_window: 32,
            allow_internal_peers: false,
            max_files: 10_000,
            max_path_bytes: 1024 * 1024,
        }
    }
}

/// `[downloader]`: its gRPC, admin and file-stream listeners, and the autoscaling of the
/// node's transcoders.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownloaderSettings {
    pub grpc_listen: SocketAddr,
    /// The endpoint others use to reach this downloader (`http://host:port`); by default made
    /// from `node.address` and the bound gRPC port.
    pub advertise: Option<String>,
    pub admin_listen: SocketAddr,
    /// Scaling of the node's transcoder Deployment by its queue (Kubernetes only).
    pub autoscale: AutoscaleSettings,
    /// The node's files while they download (`GET /stream/<task>/<file>`), for its own
    /// services; off loopback only with `internal.token`.
    pub stream_listen: SocketAddr,
    /// How the node's transcoders reach it; by default from `node.address` and the port.
    pub stream_advertise: Option<String>,
    /// File streams open at once; more get 503.
    pub max_open_streams: usize,
    /// A stream body that has not moved for this long is ended (its reader reconnects).
    pub stream_idle_secs: u64,
}

impl Default for DownloaderSettings {
    fn default() -> Self {
        Self {
            grpc_listen: ([127, 0, 0, 1], 50051).into(),
            advertise: None,
            admin_listen: ([127, 0, 0, 1], 9101).into(),
            autoscale: AutoscaleSettings::default(),
            stream_listen: ([127, 0, 0, 1], 50054).into(),
            stream_advertise: None,
            max_open_streams: 32,
            stream_idle_secs: 60,
        }
    }
}

/// The downloader sets the replicas of its node's transcoder Deployment (the scale
/// subresource) from the node's pending transcode jobs, within bounds, with a cooldown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscaleSettings {
    pub enabled: bool,
    /// The transcoder Deployment's name.
    pub deployment: String,
    /// Its namespace; default: the pod's own (from the service account).
    pub namespace: Option<String>,
    pub min: u32,
    pub max: u32,
    /// Jobs (queued and running) one replica is meant to take.
    pub jobs_per_replica: u32,
    /// Time after a change before the next one.
    pub cooldown_secs: u64,
    /// How often the queue is looked at.
    pub interval_secs: u64,
}

impl Default for AutoscaleSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            deployment: String::new(),
            namespace: None,
            min: 1,
            max: 4,
            jobs_per_replica: 1,
            cooldown_secs: 60,
            interval_secs: 10,
        }
    }
}

/// `[transcoder]`: its admin listener, the ffmpeg and ffprobe to run, and how JetStream
/// redelivers a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscoderSettings {
    pub admin_listen: SocketAddr,
    /// Name of this replica in events and logs; default: host name and process id.
    pub replica_id: Option<String>,
    pub ffmpeg: String,
    pub ffprobe: String,
    /// A job not acked (nor marked in progress) for this long goes to another replica.
    pub ack_wait_secs: u64,
    /// Attempts per job before it is reported as failed.
    pub max_deliver: i64,
}

impl Default for TranscoderSettings {
    fn default() -> Self {
        Self {
            admin_listen: ([127, 0, 0, 1], 9102).into(),
            replica_id: None,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            ack_wait_secs: 30,
            max_deliver: 3,
        }
    }
}

/// A STUN or TURN server handed to WebRTC peers.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IceServerSettings {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// `[streamer]`: its listeners, its WebRTC transport and the limits on the sessions over which
/// it serves a node's files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamerSettings {
    pub admin_listen: SocketAddr,
    /// gRPC FileService (the gateway's relay reads through it).
    pub grpc_listen: SocketAddr,
    /// Endpoint others use to reach the FileService; default from `node.address` and the port.
    pub advertise: Option<String>,
    /// Address WebRTC binds its UDP sockets to ("0.0.0.0": every interface but loopback).
    pub udp_host: String,
    /// UDP ports for peer connections, e.g. [50000, 50100]; none = ephemeral ports.
    pub udp_ports: Option<[u16; 2]>,
    /// Public IP to advertise in candidates instead of the bound one (NAT 1:1).
    pub public_ip: Option<String>,
    pub ice_servers: Vec<IceServerSettings>,
    pub max_sessions: usize,
    /// Sessions one user may hold on this node (the gateway tags session ids with their user).
    pub max_sessions_per_user: usize,
    /// A session whose peer connection has not connected after this long is closed.
    pub connect_timeout_secs: u64,
    pub max_requests_in_flight: usize,
    /// A session with no request for this long is closed.
    pub idle_timeout_secs: u64,
    /// Files larger than this are not served.
    pub max_file_mb: u64,
    /// Bytes queued on a data channel before sending waits.
    pub send_buffer_kib: usize,
}

impl Default for StreamerSettings {
    fn default() -> Self {
        Self {
            admin_listen: ([127, 0, 0, 1], 9103).into(),
            grpc_listen: ([127, 0, 0, 1], 50052).into(),
            advertise: None,
            udp_host: "0.0.0.0".into(),
            udp_ports: None,
            public_ip: None,
            ice_servers: Vec::new(),
            max_sessions: 64,
            max_sessions_per_user: 8,
            connect_timeout_secs: 15,
            max_requests_in_flight: 32,
            idle_timeout_secs: 300,
            max_file_mb: 4096,
            send_buffer_kib: 1024,
        }
    }
}

/// `[signaling]`: the service that relays browsers' WebRTC offers to the nodes' streamers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalingSettings {
    pub admin_listen: SocketAddr,
    pub grpc_listen: SocketAddr,
    /// How long the streamer may take to answer an offer.
    pub answer_timeout_secs: u64,
    /// A session stream that has set up no session after this long is closed (established
    /// sessions last until the browser's end closes).
    pub idle_timeout_secs: u64,
}

impl Default for SignalingSettings {
    fn default() -> Self {
        Self {
            admin_listen: ([127, 0, 0, 1], 9104).into(),
            grpc_listen: ([127, 0, 0, 1], 50053).into(),
            answer_timeout_secs: 10,
            idle_timeout_secs: 3600,
        }
    }
}

/// `[gateway]`: the public HTTP entry: its listeners, request and per-user limits, accounts,
/// and the original's workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// The public HTTP address (UI, API, WebSocket, relay).
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// The signaling service's gRPC endpoint.
    pub signaling: String,
    /// STUN/TURN servers handed to browsers (`GET /api/webrtc/ice-servers`).
    pub ice_servers: Vec<IceServerSettings>,
    /// Largest request body accepted.
    pub max_body_kib: usize,
    /// Largest `.torrent` file a submit may carry.
    pub max_torrent_kib: usize,
    /// Origins allowed to call the API from another site (with credentials). Empty: none
    /// (the UI is served by the gateway itself). Never a wildcard.
    pub cors_origins: Vec<String>,
    /// Tasks not yet finished one user may have over all nodes (admins are not limited).
    pub max_active_tasks_per_user: u32,
    /// WebSockets and event streams one user (without accounts: one address) may hold open.
    pub max_streams_per_user: usize,
    /// A client must send a request's headers within this many seconds.
    pub header_timeout_secs: u64,
    /// Accounts (the original's `/api/auth/*`); on by default.
    pub auth: AuthSettings,
    /// The original's Go workers, joining through `/ws/nodes`.
    pub original_workers: OriginalWorkerSettings,
    /// The original's worker-side `gateway.url` (its workers dialled the gateway): accepted
    /// in a `worker.json`, unused.
    #[serde(skip_serializing)]
    pub url: Option<String>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            admin_listen: ([127, 0, 0, 1], 9100).into(),
            signaling: "http://127.0.0.1:50053".into(),
            ice_servers: Vec::new(),
            max_body_kib: 64,
            max_torrent_kib: 4096,
            cors_origins: Vec::new(),
            max_active_tasks_per_user: 5,
            max_streams_per_user: 16,
            header_timeout_secs: 10,
            auth: AuthSettings::default(),
            original_workers: OriginalWorkerSettings::default(),
            url: None,
        }
    }
}

/// The original's worker nodes (its Go `worker`), joining through the gateway's `/ws/nodes`
/// WebSocket as they dial the original's gateway. The original had no authentication; here a
/// worker presents `token` (`--gateway=ws://host/ws/nodes?token=<token>`, or a bearer token)
/// or connects from a network of `allow_tokenless_from`. Neither set: no worker may join.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginalWorkerSettings {
    /// The token workers present (at least 16 characters).
    pub token: Option<String>,
    /// A file holding the token (a mounted Secret), read when `token` is not set.
    pub token_file: Option<PathBuf>,
    /// Networks (CIDR, e.g. `10.0.0.0/8`) whose workers may join without a token.
    pub allow_tokenless_from: Vec<ipnet::IpNet>,
    /// Original workers joined at once, over all gateway replicas.
    pub max_workers: u32,
    /// A worker without a heartbeat for this long is offline (the original's 2 minutes)…
    pub offline_after_secs: u64,
    /// …and is dropped (its socket closed) after this long (the original's 10 minutes).
    pub forget_after_secs: u64,
    /// How long a worker may take to answer a call (tasks, a task, a submit, an offer).
    pub answer_timeout_secs: u64,
    /// Largest message accepted from a worker (its task list comes in one).
    pub max_message_kib: usize,
    /// Messages a second a worker may send (bursts of twice as many); past it, the socket
    /// is closed.
    pub messages_per_second: u32,
}

impl Default for OriginalWorkerSettings {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            allow_tokenless_from: Vec::new(),
            max_workers: 16,
            offline_after_secs: 120,
            forget_after_secs: 600,
            answer_timeout_secs: 5,
            max_message_kib: 1024,
            messages_per_second: 50,
        }
    }
}

impl OriginalWorkerSettings {
    /// Whether any worker may join at all.
    pub fn enabled(&self) -> bool {
        self.token.is_some() || !self.allow_tokenless_from.is_empty()
    }
}

/// Accounts: when enabled, the API, WebSockets and the relay need a logged-in user (session
/// cookie) or a bearer token, and submitting needs one that is not banned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub enabled: bool,
    /// The first admin, created (or its password reset) at start when a password is given.
    /// There is no default password.
    pub admin_username: String,
    pub admin_password: Option<String>,
    /// A file holding the admin password (a mounted Secret), read when `admin_password` is
    /// not set.
    pub admin_password_file: Option<PathBuf>,
    /// A static bearer token for API clients, acting as the admin.
    pub api_token: Option<String>,
    /// Whether anyone may register (`POST /api/auth/register`).
    pub allow_register: bool,
    /// How long a login lasts.
    pub session_hours: u64,
    /// Mark cookies `Secure` (also done for requests with `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Login and registration attempts a minute from one client address, and logins a
    /// minute for one username; past them the answer is 429 with `Retry-After`.
    pub attempts_per_minute_per_ip: u32,
    pub attempts_per_minute_per_user: u32,
    /// The original's public reads: `/api/status`, `/api/nodes` and `/api/tasks` answer
    /// without a session (tasks without their magnets), as its page expects before a login.
    /// Off for a closed instance.
    pub public_reads: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            admin_username: "admin".into(),
            admin_password: None,
            admin_password_file: None,
            api_token: None,
            allow_register: true,
            session_hours: 24 * 7,
            secure_cookies: false,
            attempts_per_minute_per_ip: 20,
            attempts_per_minute_per_user: 10,
            public_reads: true,
        }
    }
}

impl Settings {
    /// Loads defaults → file → `MAGNET__…` environment → flags, then validates.
    pub fn load(service: &str, args: &CommonArgs) -> Result<Self> {
        let mut settings =
            Self::figment(service, args.config.as_deref(), args)?.extract_validated()?;
        settings.internal.resolve_file()?;
        if let (None, Some(path)) = (&settings.turn.secret, &settings.turn.secret_file) {
            settings.turn.secret = Some(read_token("turn.secret_file", path)?);
        }
        if let Some(cf) = &mut settings.turn.cloudflare
            && let (None, Some(path)) = (&cf.api_token, &cf.api_token_file)
        {
            cf.api_token = Some(read_token("turn.cloudflare.api_token_file", path)?);
        }
        // The services that make TURN credentials need the secrets; the others ignore TURN.
        if matches!(service, "gateway" | "streamer") {
            if !settings.turn.urls.is_empty() && settings.turn.secret.is_none() {
                return Err(Error::Config(
                    "turn.secret: TURN urls need the shared secret (or turn.secret_file)".into(),
                ));
            }
            if settings
                .turn
                .cloudflare
                .as_ref()
                .is_some_and(|cf| cf.api_token.is_none())
            {
                return Err(Error::Config(
                    "turn.cloudflare.api_token: a Cloudflare TURN key needs its API token (or api_token_file)".into(),
                ));
            }
        }
        let originals = &mut settings.gateway.original_workers;
        if let (None, Some(path)) = (&originals.token, &originals.token_file) {
            originals.token = Some(read_token("gateway.original_workers.token_file", path)?);
        }
        Ok(settings)
    }

    fn figment(service: &str, file: Option<&Path>, args: &CommonArgs) -> Result<Figment> {
        let mut f = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(Error::Config(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            f = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => f.merge(Json::file(path)),
                _ => f.merge(Toml::file(path)),
            };
        }
        Ok(f.merge(Env::prefixed("MAGNET__").split("__"))
            .merge(args.overrides(service)))
    }

    /// Checks what types alone cannot; the message names the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("{key}: {why}")));
        if let Err(e) = magnet_core::NodeId::parse(&self.node.id) {
            return bad("node.id", &e.to_string());
        }
        if self.transcoding.segment_duration == 0 || self.transcoding.segment_duration > 60 {
            return bad(
                "transcoding.segment_duration",
                "must be between 1 and 60 seconds",
            );
        }
        if !(1..=60).contains(&self.transcoding.progressive_segment_duration) {
            return bad(
                "transcoding.progressive_segment_duration",
                "must be between 1 and 60 seconds",
            );
        }
        if !(100..=60_000).contains(&self.transcoding.segment_wait_ms) {
            return bad(
                "transcoding.segment_wait_ms",
                "must be between 100 and 60000 milliseconds",
            );
        }
        if !matches!(
            self.transcoding.hls_segment_type.as_str(),
            "mpegts" | "fmp4"
        ) {
            return bad(
                "transcoding.hls_segment_type",
                "must be \"mpegts\" or \"fmp4\"",
            );
        }
        if self.transcoding.crf > 51 {
            return bad("transcoding.crf", "must be between 0 and 51");
        }
        if self.nats.heartbeat_secs == 0 || self.nats.heartbeat_secs >= self.nats.registry_ttl_secs
        {
            return bad(
                "nats.heartbeat_secs",
                "must be at least 1 and less than nats.registry_ttl_secs",
            );
        }
        if self.limits.max_transcodes == 0 {
            return bad("limits.max_transcodes", "must be at least 1");
        }
        if self.transcoder.ack_wait_secs < 2 {
            return bad("transcoder.ack_wait_secs", "must be at least 2");
        }
        if self.transcoder.max_deliver < 1 {
            return bad("transcoder.max_deliver", "must be at least 1");
        }
        if self.streamer.udp_host.parse::<std::net::IpAddr>().is_err() {
            return bad("streamer.udp_host", "must be an IP address");
        }
        if let Some([lo, hi]) = self.streamer.udp_ports
            && (lo == 0 || lo > hi)
        {
            return bad(
                "streamer.udp_ports",
                "must be [first, last] with 0 < first <= last",
            );
        }
        if let Some(ip) = &self.streamer.public_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return bad("streamer.public_ip", "must be an IP address");
        }
        if self.streamer.max_sessions == 0
            || self.streamer.max_sessions_per_user == 0
            || self.streamer.connect_timeout_secs == 0
            || self.streamer.max_requests_in_flight == 0
        {
            return bad("streamer.max_sessions", "limits must be at least 1");
        }
        for origin in &self.gateway.cors_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| is_http(&u)) && !origin.contains('*');
            if !ok {
                return bad(
                    "gateway.cors_origins",
                    &format!("{origin:?} must be an http(s) origin, no wildcard"),
                );
            }
        }
        if !(1..=5).contains(&self.nats.replicas) {
            return bad("nats.replicas", "must be 1 to 5 (3 on a cluster of three)");
        }
        if let Some(u) = self
            .turn
            .urls
            .iter()
            .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
        {
            return bad("turn.urls", &format!("{u:?} is not a turn: or turns: URL"));
        }
        if (!self.turn.urls.is_empty() || self.turn.cloudflare.is_some()) && self.turn.ttl_secs == 0
        {
            return bad("turn.ttl_secs", "must be at least 1");
        }
        if let Some(cf) = &self.turn.cloudflare {
            if cf.key_id.is_empty()
                || !cf
                    .key_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return bad(
                    "turn.cloudflare.key_id",
                    "must be the TURN key's id (letters, digits, - and _)",
                );
            }
            if let Err(e) = crate::turn::api_url(&cf.api_url) {
                return bad("turn.cloudflare.api_url", &e);
            }
        }
        if self.limits.disk_quota_mb == Some(0) {
            return bad(
                "limits.disk_quota_mb",
                "must be at least 1 (leave it out for no quota)",
            );
        }
        if !(self.torrent.seed_ratio.is_finite() && self.torrent.seed_ratio >= 0.0) {
            return bad("torrent.seed_ratio", "must be a number of at least 0");
        }
        if self.torrent.max_files == 0 || self.torrent.max_path_bytes == 0 {
            return bad(
                "torrent.max_files",
                "max_files and max_path_bytes must be at least 1",
            );
        }
        if self.gateway.max_streams_per_user == 0 || self.gateway.header_timeout_secs == 0 {
            return bad(
                "gateway.max_streams_per_user",
                "max_streams_per_user and header_timeout_secs must be at least 1",
            );
        }
        if self.gateway.max_active_tasks_per_user == 0 {
            return bad("gateway.max_active_tasks_per_user", "must be at least 1");
        }
        if self.limits.max_downloads == 0 {
            return bad("limits.max_downloads", "must be at least 1");
        }
        if let Some(adv) = &self.downloader.advertise
            && !url::Url::parse(adv).is_ok_and(|u| is_http(&u))
        {
            return bad("downloader.advertise", "must be an http:// or https:// URL");
        }
        let scale = &self.downloader.autoscale;
        if scale.enabled {
            if scale.deployment.is_empty() {
                return bad(
                    "downloader.autoscale.deployment",
                    "must name the transcoder Deployment",
                );
            }
            if scale.min > scale.max || scale.max == 0 {
                return bad(
                    "downloader.autoscale.max",
                    "must be at least 1 and at least min",
                );
            }
            if scale.jobs_per_replica == 0 || scale.interval_secs == 0 {
                return bad(
                    "downloader.autoscale.jobs_per_replica",
                    "jobs_per_replica and interval_secs must be at least 1",
                );
            }
        }
        if self.downloader.max_open_streams == 0
            || self.downloader.stream_idle_secs == 0
            || self.torrent.blocking_threads <= self.downloader.max_open_streams
        {
            return bad(
                "torrent.blocking_threads",
                "downloader.max_open_streams and stream_idle_secs must be at least 1, and \
                 torrent.blocking_threads more than max_open_streams",
            );
        }
        if !(1..=1024).contains(&self.torrent.peer_request_window) {
            return bad("torrent.peer_request_window", "must be between 1 and 1024");
        }
        self.internal.validate(&[
            ("downloader.grpc_listen", self.downloader.grpc_listen),
            ("downloader.stream_listen", self.downloader.stream_listen),
            ("streamer.grpc_listen", self.streamer.grpc_listen),
            ("signaling.grpc_listen", self.signaling.grpc_listen),
        ])?;
        let auth = &self.gateway.auth;
        if auth.admin_password.as_deref().is_some_and(|p| p.len() < 8) {
            return bad(
                "gateway.auth.admin_password",
                "must be at least 8 characters",
            );
        }
        if auth.api_token.as_deref().is_some_and(|t| t.len() < 16) {
            return bad("gateway.auth.api_token", "must be at least 16 characters");
        }
        if auth.attempts_per_minute_per_ip == 0 || auth.attempts_per_minute_per_user == 0 {
            return bad(
                "gateway.auth.attempts_per_minute_per_ip",
                "attempts_per_minute_per_ip and attempts_per_minute_per_user must be at least 1",
            );
        }
        if auth.session_hours == 0 {
            return bad("gateway.auth.session_hours", "must be at least 1");
        }
        let originals = &self.gateway.original_workers;
        if originals
            .token
            .as_deref()
            .is_some_and(|t| t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return bad(
                "gateway.original_workers.token",
                "must be at least 16 printable ASCII characters (it travels in a URL: letters, digits, '-' and '_' are safest)",
            );
        }
        if originals.offline_after_secs == 0
            || originals.forget_after_secs < originals.offline_after_secs
        {
            return bad(
                "gateway.original_workers.forget_after_secs",
                "offline_after_secs must be at least 1, and forget_after_secs at least offline_after_secs",
            );
        }
        if originals.answer_timeout_secs == 0
            || originals.max_message_kib == 0
            || originals.messages_per_second == 0
        {
            return bad(
                "gateway.original_workers.answer_timeout_secs",
                "answer_timeout_secs, max_message_kib and messages_per_second must be at least 1",
            );
        }
        Ok(())
    }
}

impl InternalSettings {
    /// Reads `token_file` into `token` when only the file is given.
    fn resolve_file(&mut self) -> Result<()> {
        if let (None, Some(path)) = (&self.token, &self.token_file) {
            self.token = Some(read_token("internal.token_file", path)?);
        }
        Ok(())
    }

    /// A token, when given, is long enough; without one every internal gRPC listener is on
    /// loopback, so that nothing else on the network can call it.
    fn validate(&self, listeners: &[(&str, SocketAddr)]) -> Result<()> {
        if let Some(t) = &self.token {
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::Config(
                    "internal.token: must be at least 16 printable ASCII characters".into(),
                ));
            }
            return Ok(());
        }
        if self.token_file.is_some() {
            return Ok(());
        }
        for (key, addr) in listeners {
            if !addr.ip().is_loopback() {
                return Err(Error::Config(format!(
                    "{key}: {addr} is reachable from other hosts but internal.token is not set; \
                     set internal.token (or internal.token_file) or listen on 127.0.0.1"
                )));
            }
        }
        Ok(())
    }
}

/// A token from a file (a mounted Secret), trimmed; at least 16 characters.
fn read_token(key: &str, path: &Path) -> Result<String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{key}: {}: {e}", path.display())))?;
    let token = token.trim().to_owned();
    if token.len() < 16 {
        return Err(Error::Config(format!(
            "{key}: the token must be at least 16 characters"
        )));
    }
    Ok(token)
}

trait ExtractValidated {
    fn extract_validated(self) -> Result<Settings>;
}

impl ExtractValidated for Figment {
    fn extract_validated(self) -> Result<Settings> {
        let settings: Settings = self.extract().map_err(|e| Error::Config(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }
}

/// An `http://` or `https://` URL with a host.
fn is_http(u: &url::Url) -> bool {
    matches!(u.scheme(), "http" | "https") && u.host().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(file: Option<(&str, &str)>, args: CommonArgs) -> Result<Settings> {
        let dir = tempfile::tempdir().map_err(|e| Error::Config(e.to_string()))?;
        let path = file.map(|(name, body)| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).map(|_| p)
        });
        let path = path.transpose().map_err(|e| Error::Config(e.to_string()))?;
        Settings::figment("downloader", path.as_deref(), &args)?.extract_validated()
    }

    #[test]
    fn turn_needs_its_secret_where_credentials_are_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[turn]\nurls = [\"turn:127.0.0.1:3478\"]\n").expect("write");
        let args = CommonArgs {
            config: Some(path.clone()),
            ..CommonArgs::default()
        };
        for service in ["gateway", "streamer"] {
            let err = Settings::load(service, &args)
                .expect_err(service)
                .to_string();
            assert!(err.contains("turn.secret"), "{service}: {err}");
        }
        assert!(
            Settings::load("downloader", &args).is_ok(),
            "the downloader ignores TURN"
        );
        std::fs::write(
            &path,
            "[turn]\nurls = [\"stun:127.0.0.1\"]\nsecret = \"s\"\n",
        )
        .expect("write");
        let err = Settings::load("gateway", &args)
            .expect_err("stun")
            .to_string();
        assert!(err.contains("turn.urls"), "{err}");
    }

    #[test]
    fn defaults_load_and_validate() {
        let s = load_with(None, CommonArgs::default()).expect("defaults are valid");
        assert_eq!(s.node.id, "worker-a");
        assert_eq!(
            s.storage.database_file(),
            PathBuf::from("data/config/worker.db")
        );
        assert_eq!(s.transcoding.segment_duration, 6);
    }

    #[test]
    fn the_originals_worker_json_maps_onto_settings() {
        let json = r#"{
          "gateway": {"url": "ws://localhost:8080/ws/nodes"},
          "node": {"id": "worker-001", "name": "Main Worker Node", "address": "192.168.1.100"},
          "storage": {"download_path": "data/downloads", "m3u8_path": "data/m3u8", "database_path": "data/config"},
          "limits": {"max_downloads": 5, "max_transcodes": 2, "disk_space_gb": 500},
          "transcoding": {"segment_duration": 10, "video_codec": "libx264", "audio_codec": "aac"}
        }"#;
        let s = load_with(Some(("worker.json", json)), CommonArgs::default())
            .expect("worker.json loads");
        assert_eq!(s.node.name, "Main Worker Node");
        assert_eq!(s.limits.max_transcodes, 2);
        assert_eq!(s.transcoding.segment_duration, 10);
        assert_eq!(s.storage.m3u8(), PathBuf::from("data/m3u8"));
    }

    #[test]
    fn flags_win_over_file() {
        let toml = "[node]\nid = \"from-file\"\n";
        let args = CommonArgs {
            node_id: Some("from-flag".into()),
            ..Default::default()
        };
        let s = load_with(Some(("m.toml", toml)), args).expect("loads");
        assert_eq!(s.node.id, "from-flag");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[node]\nid = \"Bad Id\"\n", "node.id"),
            (
                "[transcoding]\nsegment_duration = 0\n",
                "transcoding.segment_duration",
            ),
            (
                "[transcoding]\nhls_segment_type = \"webm\"\n",
                "transcoding.hls_segment_type",
            ),
            ("[limits]\nmax_downloads = \"five\"\n", "max_downloads"),
            (
                "[gateway]\ncors_origins = [\"*\"]\n",
                "gateway.cors_origins",
            ),
            ("[nodes]\nid = \"typo\"\n", "nodes"),
            ("[torrent]\nseed_ratio = -1.0\n", "torrent.seed_ratio"),
        ];
        for (toml, key) in cases {
            let err = load_with(Some(("m.toml", toml)), CommonArgs::default())
                .expect_err(toml)
                .to_string();
            assert!(err.contains(key), "{toml:?} gave {err:?}");
        }
    }
}
