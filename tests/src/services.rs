//! Launchers for our services in tests: settings for an offline worker node, the downloader
//! in-process (fast, inspectable) or as a child process (so a test can `kill -9` it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use magnet_proto::v1::task_service_client::TaskServiceClient;
use magnet_runtime::Settings;
use magnet_runtime::config::InternalSettings;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Settings of a worker node that never leaves loopback: no DHT, trackers, discovery, UPnP or
/// listening port; ephemeral gRPC/admin ports; short registry TTL.
pub fn offline_node(data_dir: &Path, nats_url: &str, node_id: &str) -> Settings {
    let mut s = Settings::default();
    s.node.id = node_id.into();
    s.node.name = format!("Test node {node_id}");
    s.storage.data_dir = data_dir.to_owned();
    s.nats.url = nats_url.into();
    s.nats.registry_ttl_secs = 3;
    s.nats.heartbeat_secs = 1;
    s.torrent.listen_port = None;
    s.torrent.dht = false;
    s.torrent.trackers = false;
    s.torrent.local_discovery = false;
    s.torrent.upnp = false;
    s.torrent.no_peers_after_secs = 2;
    s.torrent.give_up_after_secs = 60;
    s.torrent.metadata_timeout_secs = 60;
    // Seeders in tests are on loopback.
    s.torrent.allow_internal_peers = true;
    s.limits.min_free_disk_mb = 1;
    s.downloader.grpc_listen = ([127, 0, 0, 1], 0).into();
    s.downloader.admin_listen = ([127, 0, 0, 1], 0).into();
    s.downloader.stream_listen = ([127, 0, 0, 1], 0).into();
    s.transcoder.admin_listen = ([127, 0, 0, 1], 0).into();
    s.transcoding.preset = "ultrafast".into();
    s.streamer.admin_listen = ([127, 0, 0, 1], 0).into();
    s.streamer.grpc_listen = ([127, 0, 0, 1], 0).into();
    s.streamer.udp_host = "127.0.0.1".into();
    s.signaling.admin_listen = ([127, 0, 0, 1], 0).into();
    s.signaling.grpc_listen = ([127, 0, 0, 1], 0).into();
    // Accounts are on by default; the tests about accounts turn them on again.
    s.gateway.auth.enabled = false;
    s
}

/// The same node's settings for a transcoder replica named `replica`.
pub fn transcoder_of(node: &Settings, replica: &str) -> Settings {
    let mut s = node.clone();
    s.transcoder.replica_id = Some(replica.into());
    s
}

/// A downloader's gRPC client as our services make them (trace context, and the service
/// token when one is given).
pub type TaskClient = TaskServiceClient<magnet_runtime::grpc::Client>;

/// A client without the service token.
pub async fn task_client(addr: SocketAddr) -> anyhow::Result<TaskClient> {
    task_client_as(addr, &InternalSettings::default()).await
}

/// A client presenting `internal`'s token, if it has one.
pub async fn task_client_as(
    addr: SocketAddr,
    internal: &InternalSettings,
) -> anyhow::Result<TaskClient> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    Ok(TaskServiceClient::with_interceptor(
        channel,
        magnet_runtime::grpc::Outgoing::new(internal),
    ))
}

/// Submits `magnet` straight to a downloader; the task it answers with.
pub async fn submit(
    client: &mut TaskClient,
    magnet: &str,
) -> anyhow::Result<magnet_proto::v1::Task> {
    client
        .submit(magnet_proto::v1::SubmitRequest {
            magnet_url: magnet.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .task
        .context("submit answered no task")
}

/// The downloader running inside the test process.
pub struct InProcess {
    pub running: Option<magnet_downloader::Running>,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub stream_addr: SocketAddr,
    /// The node's service credential, which its clients present.
    internal: InternalSettings,
    shutdown: CancellationToken,
}

impl InProcess {
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let internal = settings.internal.clone();
        let running = magnet_downloader::start(settings, shutdown.clone()).await?;
        Ok(Self {
            grpc_addr: running.grpc_addr,
            admin_addr: running.admin_addr,
            stream_addr: running.stream_addr,
            running: Some(running),
            internal,
            shutdown,
        })
    }

    pub async fn client(&self) -> anyhow::Result<TaskClient> {
        task_client_as(self.grpc_addr, &self.internal).await
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(20), r.wait())
                .await
                .context("downloader did not stop in 20 s")??;
        }
        Ok(())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Path of one of our binaries, built next to the test executable.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    // Tests run from `target/<profile>/deps/`, the bench binary from `target/<profile>/`.
    let exe = std::env::current_exe()?;
    let here = exe.parent().context("executable has no folder")?;
    let path = [Some(here), here.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| here.join(name));
    if !path.exists() {
        bail!(
            "{} is missing: build it first (`cargo build -p {name}`; `cargo xtask test` does)",
            path.display()
        );
    }
    Ok(path)
}

/// One of our service binaries as a child process; killed (SIGKILL) on drop.
pub struct Process {
    child: Child,
    /// The service's "… ready" log line (it names the bound addresses).
    ready_line: String,
    pub grpc_addr: SocketAddr,
}

impl Process {
    /// Starts `magnet-downloader` and waits until it is ready.
    pub fn spawn_downloader(settings: &Settings, dir: &Path) -> anyhow::Result<Self> {
        Self::spawn("magnet-downloader", "downloader ready", settings, dir)
    }

    /// Starts a `magnet-transcoder` replica and waits until it pulls jobs.
    pub fn spawn_transcoder(settings: &Settings, dir: &Path) -> anyhow::Result<Self> {
        Self::spawn("magnet-transcoder", "transcoder ready", settings, dir)
    }

    /// Starts `binary` with `settings` (written to a JSON config file in `dir`) and waits for
    /// the log line containing `ready`.
    pub fn spawn(
        binary_name: &str,
        ready: &str,
        settings: &Settings,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        Self::spawn_with_env(binary_name, ready, settings, dir, &[])
    }

    /// [`Process::spawn`] with more environment (e.g. `KUBECONFIG`).
    pub fn spawn_with_env(
        binary_name: &str,
        ready: &str,
        settings: &Settings,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let config = dir.join(format!("{binary_name}-{}.json", std::process::id()));
        std::fs::write(&config, serde_json::to_vec_pretty(settings)?)?;
        let mut child = Command::new(binary(binary_name)?)
            .arg("--config")
            .arg(&config)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,librqbit=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("child stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let tag = binary_name.trim_start_matches("magnet-").to_owned();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                if line.contains(&ready) {
                    let _ = tx.send(line.clone());
                }
            }
        });
        let ready_line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                bail!("{binary_name} did not become ready in 60 s")
            }
        };
        let grpc_addr = field(&ready_line, "grpc_addr")
            .and_then(|a| a.parse().ok())
            .unwrap_or(([0, 0, 0, 0], 0).into());
        Ok(Self {
            child,
            ready_line,
            grpc_addr,
        })
    }

    /// A `key=value` field of the ready line.
    pub fn ready_field(&self, key: &str) -> Option<String> {
        field(&self.ready_line, key)
    }

    pub async fn client(&self) -> anyhow::Result<TaskClient> {
        task_client(self.grpc_addr).await
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        Ok(self.child.wait()?)
    }
}

fn field(line: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix))
        .map(|v| v.trim_matches('"').to_owned())
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A transcoder replica running inside the test process.
pub struct Transcoder {
    running: Option<magnet_transcoder::Running>,
    pub replica: String,
    shutdown: CancellationToken,
}

impl Transcoder {
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let running = magnet_transcoder::start(settings, shutdown.clone()).await?;
        Ok(Self {
            replica: running.replica.clone(),
            running: Some(running),
            shutdown,
        })
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(20), r.wait())
                .await
                .context("transcoder did not stop in 20 s")??;
        }
        Ok(())
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A whole worker node in this process (streamer, downloader, one transcoder) behind
/// signaling and a gateway, all on ephemeral loopback ports; ready once the gateway lists the
/// node.
pub struct Served {
    /// `http://127.0.0.1:<port>` of the gateway.
    pub base: String,
    pub node: InProcess,
    pub transcoder: Transcoder,
    gateway: magnet_gateway::Running,
    shutdown: CancellationToken,
}

impl Served {
    pub async fn start(mut settings: Settings) -> anyhow::Result<Self> {
        settings.gateway.listen = ([127, 0, 0, 1], 0).into();
        settings.gateway.admin_listen = ([127, 0, 0, 1], 0).into();
        let shutdown = CancellationToken::new();
        let streamer = magnet_streamer::start(settings.clone(), shutdown.clone()).await?;
        settings.streamer.advertise = Some(format!("http://{}", streamer.grpc_addr));
        let node = InProcess::start(settings.clone()).await?;
        let transcoder = Transcoder::start(transcoder_of(&settings, "r1")).await?;
        // Signaling too, so that peers reach the streamer as browsers do.
        let signaling = magnet_signaling::start(settings.clone(), shutdown.clone()).await?;
        settings.gateway.signaling = format!("http://{}", signaling.grpc_addr);
        let gateway = magnet_gateway::start(settings.clone(), shutdown.clone()).await?;
        let base = format!("http://{}", gateway.addr);
        let http = reqwest::Client::new();
        let id = settings.node.id.clone();
        crate::eventually(Duration::from_secs(15), "node listed", || {
            let req = http.get(format!("{base}/api/nodes"));
            let id = id.clone();
            async move {
                let v: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
                v["data"]
                    .as_array()
                    .filter(|a| a.iter().any(|n| n["id"] == id.as_str()))
                    .map(|_| ())
            }
        })
        .await?;
        Ok(Self {
            base,
            node,
            transcoder,
            gateway,
            shutdown,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.transcoder.stop().await?;
        self.node.stop().await?;
        self.gateway.wait().await?;
        Ok(())
    }
}
