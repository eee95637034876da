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
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    pub max_downloads: u32,
    pub max_transcodes: u32,
    /// Advertised size of the node's volume.
    pub disk_space_gb: u64,
    /// New tasks are refused while free space on the volume is under this floor.
    pub min_free_disk_mb: u64,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_downloads: 5,
            max_transcodes: 1,
            disk_space_gb: 500,
            min_free_disk_mb: 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscodingSettings {
    /// Target segment length in seconds.
    pub segment_duration: u32,
    pub video_codec: String,
    pub audio_codec: String,
    pub preset: String,
    pub crf: u8,
    /// "mpegts" (the original's clients expect .ts) or "fmp4".
    pub hls_segment_type: String,
    /// Transcode every video file of a torrent instead of only the largest.
    pub all_videos: bool,
}

impl Default for TranscodingSettings {
    fn default() -> Self {
        Self {
            segment_duration: 6,
            video_codec: "libx264".into(),
            audio_codec: "aac".into(),
            preset: "veryfast".into(),
            crf: 23,
            hls_segment_type: "mpegts".into(),
            all_videos: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    pub url: String,
    /// How long a node's registry record lives without a heartbeat.
    pub registry_ttl_secs: u64,
    /// How often a node refreshes its registry record.
    pub heartbeat_secs: u64,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            registry_ttl_secs: 15,
            heartbeat_secs: 5,
        }
    }
}

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
    /// After this long without progress (no metadata or no peers), the task becomes `error`.
    pub give_up_after_secs: u64,
    /// Bandwidth caps in KiB/s; none = unlimited.
    pub download_limit_kibps: Option<u32>,
    pub upload_limit_kibps: Option<u32>,
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
            give_up_after_secs: 30 * 60,
            download_limit_kibps: None,
            upload_limit_kibps: None,
        }
    }
}

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
}

impl Default for DownloaderSettings {
    fn default() -> Self {
        Self {
            grpc_listen: ([0, 0, 0, 0], 50051).into(),
            advertise: None,
            admin_listen: ([0, 0, 0, 0], 9101).into(),
            autoscale: AutoscaleSettings::default(),
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
            admin_listen: ([0, 0, 0, 0], 9102).into(),
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
            admin_listen: ([0, 0, 0, 0], 9103).into(),
            grpc_listen: ([0, 0, 0, 0], 50052).into(),
            advertise: None,
            udp_host: "0.0.0.0".into(),
            udp_ports: None,
            public_ip: None,
            ice_servers: Vec::new(),
            max_sessions: 64,
            max_requests_in_flight: 32,
            idle_timeout_secs: 300,
            max_file_mb: 4096,
            send_buffer_kib: 1024,
        }
    }
}

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
            admin_listen: ([0, 0, 0, 0], 9104).into(),
            grpc_listen: ([0, 0, 0, 0], 50053).into(),
            answer_timeout_secs: 10,
            idle_timeout_secs: 3600,
        }
    }
}

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
    /// Origins allowed to call the API from another site (with credentials). Empty: none
    /// (the UI is served by the gateway itself). Never a wildcard.
    pub cors_origins: Vec<String>,
    /// Accounts (the original's `/api/auth/*`); off by default.
    pub auth: AuthSettings,
    /// The original's worker-side `gateway.url` (its workers dialled the gateway): accepted
    /// in a `worker.json`, unused.
    #[serde(skip_serializing)]
    pub url: Option<String>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 8080).into(),
            admin_listen: ([0, 0, 0, 0], 9100).into(),
            signaling: "http://127.0.0.1:50053".into(),
            ice_servers: Vec::new(),
            max_body_kib: 64,
            cors_origins: Vec::new(),
            auth: AuthSettings::default(),
            url: None,
        }
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
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            admin_username: "admin".into(),
            admin_password: None,
            admin_password_file: None,
            api_token: None,
            allow_register: true,
            session_hours: 24 * 7,
            secure_cookies: false,
        }
    }
}

impl Settings {
    /// Loads defaults → file → `MAGNET__…` environment → flags, then validates.
    pub fn load(service: &str, args: &CommonArgs) -> Result<Self> {
        Self::figment(service, args.config.as_deref(), args)?.extract_validated()
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
        let id = &self.node.id;
        if id.is_empty()
            || id.len() > 63
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad(
                "node.id",
                &format!("{id:?} must be 1-63 characters of a-z, 0-9 and '-'"),
            );
        }
        if self.transcoding.segment_duration == 0 || self.transcoding.segment_duration > 60 {
            return bad(
                "transcoding.segment_duration",
                "must be between 1 and 60 seconds",
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
        if self.streamer.max_sessions == 0 || self.streamer.max_requests_in_flight == 0 {
            return bad("streamer.max_sessions", "limits must be at least 1");
        }
        for origin in &self.gateway.cors_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.contains('*');
            if !ok {
                return bad(
                    "gateway.cors_origins",
                    &format!("{origin:?} must be an http(s) origin, no wildcard"),
                );
            }
        }
        if self.limits.max_downloads == 0 {
            return bad("limits.max_downloads", "must be at least 1");
        }
        if let Some(adv) = &self.downloader.advertise
            && !(adv.starts_with("http://") || adv.starts_with("https://"))
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
        if auth.session_hours == 0 {
            return bad("gateway.auth.session_hours", "must be at least 1");
        }
        Ok(())
    }
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
        ];
        for (toml, key) in cases {
            let err = load_with(Some(("m.toml", toml)), CommonArgs::default())
                .expect_err(toml)
                .to_string();
            assert!(err.contains(key), "{toml:?} gave {err:?}");
        }
    }
}
