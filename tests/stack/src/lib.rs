//! magnet-stack: the whole system as real processes on one machine — `nats-server` with
//! JetStream (or an existing NATS) and, for each worker node, a downloader, its transcoder
//! replicas and a streamer, plus one signaling service and one gateway. Ports are free ones
//! unless asked otherwise; every service is started with the common config file plus a few
//! `MAGNET__…` variables of its own, its log lines go to a file (or to stderr with a prefix),
//! and it counts as up when it logged its "ready" line and its admin `/readyz` answers 200.
//!
//! Dependency-light on purpose (std, anyhow, nix): xtask uses it too.
//!
//! ```no_run
//! let stack = magnet_stack::Stack::start(magnet_stack::Options::new("target/debug", "/tmp/s"))?;
//! println!("open {}", stack.gateway_url());
//! stack.stop();
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod nats_auth;

/// The five services, as the binaries (`magnet-<service>`) and the images
/// (`magnetm3u8-<service>`) name them.
pub const SERVICES: [&str; 5] = [
    "gateway",
    "signaling",
    "downloader",
    "transcoder",
    "streamer",
];

/// How long a service may take to become ready.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a service may take to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(12);

/// Where NATS comes from.
#[derive(Debug, Clone)]
pub enum Nats {
    /// Start `nats-server -js` with its store under the data dir; port 0 = a free one.
    Spawn { port: u16 },
    /// Start a clustered JetStream of `servers` nats-server processes on loopback (`nats-1`,
    /// `nats-2`, …, each with its store and monitoring port); the services get every member's
    /// URL and keep streams and buckets in `servers` replicas (at most 5).
    Cluster { servers: usize },
    /// Use this server.
    External(String),
}

/// Where the services' log lines go.
#[derive(Debug, Clone)]
pub enum Logs {
    /// `<dir>/<service>.log`, appended.
    Dir(PathBuf),
    /// This process's stderr, each line prefixed with the service's name (tests).
    Stderr,
}

/// One worker node to start: a downloader, a streamer and `transcoders` transcoder replicas.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Node id (`a-z0-9-`).
    pub id: String,
    /// Transcoder replicas of this node.
    pub transcoders: usize,
}

/// What [`Stack::start`] starts and where; [`Options::new`] gives a one-node stack for tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folder holding `magnet-<service>` binaries.
    pub bin_dir: PathBuf,
    /// State: `nats/` and one folder per worker node.
    pub data_dir: PathBuf,
    /// Common config file (TOML or JSON) given to every service with `--config`.
    pub config: Option<PathBuf>,
    pub nats: Nats,
    pub workers: Vec<Worker>,
    /// The gateway's public address (port 0 = a free one).
    pub gateway_listen: SocketAddr,
    /// Extra environment for every service (e.g. `RUST_LOG`, `MAGNET__…`).
    pub env: Vec<(String, String)>,
    pub logs: Logs,
    /// Start each process in its own process group, so that Ctrl-C in a terminal reaches only
    /// the launcher, which then stops the services in order (xtask). Off for tests, whose
    /// runner stops a test's whole process group.
    pub own_process_group: bool,
    /// BitTorrent listening port of the first worker node; the next nodes get the next ports.
    /// None: as the config says (tests: not listening).
    pub torrent_port_base: Option<u16>,
    /// Runs each service some other way than its binary in `bin_dir` (the image tests run
    /// the container images so).
    pub wrap: Option<Wrap>,
}

/// Given a service (`gateway`, …) and the command the stack would run for it, the command to
/// run instead. The process it starts must be the service itself (exec, no fork), so that
/// the stack's signals reach it.
#[derive(Clone)]
pub struct Wrap(pub Arc<WrapFn>);

/// What a [`Wrap`] calls: the service and the stack's command; the command to run.
pub type WrapFn = dyn Fn(&str, Command) -> anyhow::Result<Command> + Send + Sync;

impl std::fmt::Debug for Wrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wrap")
    }
}

impl Options {
    /// One worker node `node-1` with one transcoder, NATS spawned on a free port, gateway on a
    /// free loopback port, logs to stderr.
    pub fn new(bin_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bin_dir: bin_dir.into(),
            data_dir: data_dir.into(),
            config: None,
            nats: Nats::Spawn { port: 0 },
            workers: vec![Worker {
                id: "node-1".into(),
                transcoders: 1,
            }],
            gateway_listen: ([127, 0, 0, 1], 0).into(),
            env: Vec::new(),
            logs: Logs::Stderr,
            own_process_group: false,
            torrent_port_base: None,
            wrap: None,
        }
    }
}

/// A started process and what it said when ready.
struct Proc {
    name: String,
    child: Child,
    /// Started as the leader of its own process group.
    own_group: bool,
    /// How to start it again, and the addresses it had (services only).
    respawn: Option<Respawn>,
    /// The config a nats-server was started with (on the same ports and store again).
    nats_conf: Option<PathBuf>,
}

/// What [`Stack::restart`] needs: the service's binary, ready line and environment as first
/// started, and what it bound.
struct Respawn {
    binary: String,
    ready: String,
    env: Vec<(String, String)>,
    ready_line: String,
    admin: SocketAddr,
}

impl Respawn {
    /// The environment for a restart: listeners first given port 0 get the addresses they
    /// bound, as a pod restarts on its fixed ports, so that whoever knew them reaches it again.
    fn pinned_env(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| {
                let bound = if !v.ends_with(":0") {
                    None
                } else if k.ends_with("ADMIN_LISTEN") {
                    Some(self.admin.to_string())
                } else if k.ends_with("GRPC_LISTEN") {
                    field(&self.ready_line, "grpc_addr")
                } else if k.ends_with("STREAM_LISTEN") {
                    field(&self.ready_line, "stream_addr")
                } else if k == "GATEWAY__LISTEN" {
                    field(&self.ready_line, "addr")
                } else {
                    None
                };
                (k.clone(), bound.unwrap_or_else(|| v.clone()))
            })
            .collect()
    }
}

/// Addresses of one worker node's services.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub downloader_grpc: SocketAddr,
    pub streamer_grpc: SocketAddr,
    /// Admin (`/healthz`, `/readyz`, `/metrics`) of the downloader, transcoders, streamer.
    pub downloader_admin: SocketAddr,
    pub transcoder_admins: Vec<SocketAddr>,
    pub streamer_admin: SocketAddr,
}

/// The running system; stopped (gracefully, last started first) by [`Stack::stop`] or on drop.
pub struct Stack {
    procs: Vec<Proc>,
    pub nats_url: String,
    pub gateway: SocketAddr,
    pub gateway_admin: SocketAddr,
    pub signaling_grpc: SocketAddr,
    pub signaling_admin: SocketAddr,
    pub nodes: Vec<Node>,
    /// The credential every service's gRPC server wants (`internal.token`), new per start.
    pub service_token: String,
    /// The monitoring address (`/jsz`, `/healthz`) of each nats-server this stack started, by
    /// process name (`nats`, or `nats-1` … of a cluster).
    pub nats_monitors: Vec<(String, SocketAddr)>,
    /// NATS users of the services when this stack started nats-server (none for an
    /// external NATS, whose URL is used as given).
    nats_users: Option<nats_auth::Users>,
    /// JetStream replicas the services declare (`nats.replicas`).
    nats_replicas: usize,
    /// As started, for restarts.
    opts: Options,
}

/// What a service's start gave: its ready line's fields and its admin address.
struct Ready {
    line: String,
    admin: SocketAddr,
}

impl Ready {
    fn addr(&self, key: &str) -> anyhow::Result<SocketAddr> {
        field(&self.line, key)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {key}= in {:?}", self.line))
    }
}

impl Stack {
    /// Starts NATS (unless external), signaling, each worker node's streamer, downloader and
    /// transcoders, then the gateway, each waited for until ready; on failure what started is
    /// stopped.
    pub fn start(opts: Options) -> anyhow::Result<Self> {
        let mut stack = Self {
            procs: Vec::new(),
            nats_url: String::new(),
            gateway: ([127, 0, 0, 1], 0).into(),
            gateway_admin: ([127, 0, 0, 1], 0).into(),
            signaling_grpc: ([127, 0, 0, 1], 0).into(),
            signaling_admin: ([127, 0, 0, 1], 0).into(),
            nodes: Vec::new(),
            service_token: random_token()?,
            nats_monitors: Vec::new(),
            nats_users: None,
            nats_replicas: 1,
            opts: opts.clone(),
        };
        // On any failure the partial stack is dropped, which stops what did start.
        stack.start_all(&opts)?;
        Ok(stack)
    }

    fn start_all(&mut self, opts: &Options) -> anyhow::Result<()> {
        std::fs::create_dir_all(&opts.data_dir)?;
        if let Logs::Dir(dir) = &opts.logs {
            std::fs::create_dir_all(dir)?;
        }
        self.nats_url = match &opts.nats {
            Nats::External(url) => url.clone(),
            Nats::Spawn { port } => self.spawn_nats(opts, *port)?,
            Nats::Cluster { servers } => self.spawn_nats_cluster(opts, *servers)?,
        };
        let loopback0 = "127.0.0.1:0".to_owned();
        let signaling = self.spawn_service(
            opts,
            "signaling",
            "signaling",
            "signaling ready",
            &[
                ("SIGNALING__GRPC_LISTEN", loopback0.clone()),
                ("SIGNALING__ADMIN_LISTEN", loopback0.clone()),
            ],
        )?;
        self.signaling_grpc = signaling.addr("grpc_addr")?;
        self.signaling_admin = signaling.admin;
        for (i, w) in opts.workers.iter().enumerate() {
            let data = opts.data_dir.join(&w.id).display().to_string();
            let node = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
                let mut v = vec![
                    ("NODE__ID", w.id.clone()),
                    ("NODE__NAME", w.id.clone()),
                    ("STORAGE__DATA_DIR", data.clone()),
                ];
                if let Some(base) = opts.torrent_port_base {
                    v.push(("TORRENT__LISTEN_PORT", (base as usize + i).to_string()));
                }
                v.extend_from_slice(extra);
                v
            };
            let streamer = self.spawn_service(
                opts,
                &format!("{}-streamer", w.id),
                "streamer",
                "streamer ready",
                &node(&[
                    ("STREAMER__GRPC_LISTEN", loopback0.clone()),
                    ("STREAMER__ADMIN_LISTEN", loopback0.clone()),
                ]),
            )?;
            let streamer_grpc = streamer.addr("grpc_addr")?;
            let downloader = self.spawn_service(
                opts,
                &format!("{}-downloader", w.id),
                "downloader",
                "downloader ready",
                &node(&[
                    ("DOWNLOADER__GRPC_LISTEN", loopback0.clone()),
                    ("DOWNLOADER__ADMIN_LISTEN", loopback0.clone()),
                    ("DOWNLOADER__STREAM_LISTEN", loopback0.clone()),
                    ("STREAMER__ADVERTISE", format!("http://{streamer_grpc}")),
                ]),
            )?;
            let mut transcoder_admins = Vec::new();
            for i in 1..=w.transcoders {
                let t = self.spawn_service(
                    opts,
                    &format!("{}-transcoder-{i}", w.id),
                    "transcoder",
                    "transcoder ready",
                    &node(&[
                        ("TRANSCODER__ADMIN_LISTEN", loopback0.clone()),
                        ("TRANSCODER__REPLICA_ID", format!("{}-t{i}", w.id)),
                    ]),
                )?;
                transcoder_admins.push(t.admin);
            }
            self.nodes.push(Node {
                id: w.id.clone(),
                downloader_grpc: downloader.addr("grpc_addr")?,
                streamer_grpc,
                downloader_admin: downloader.admin,
                transcoder_admins,
                streamer_admin: streamer.admin,
            });
        }
        let gateway = self.spawn_service(
            opts,
            "gateway",
            "gateway",
            "gateway ready",
            &[
                ("GATEWAY__LISTEN", opts.gateway_listen.to_string()),
                ("GATEWAY__ADMIN_LISTEN", loopback0),
                (
                    "GATEWAY__SIGNALING",
                    format!("http://{}", self.signaling_grpc),
                ),
            ],
        )?;
        self.gateway = gateway.addr("addr")?;
        self.gateway_admin = gateway.admin;
        Ok(())
    }

    /// The gateway's base URL, with the port it actually bound (`gateway_listen` may ask for 0).
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway)
    }

    /// The admin address (`/healthz`, `/readyz`, `/metrics`) of every service.
    pub fn admins(&self) -> Vec<SocketAddr> {
        let mut admins = vec![self.gateway_admin, self.signaling_admin];
        for n in &self.nodes {
            admins.extend([n.downloader_admin, n.streamer_admin]);
            admins.extend(n.transcoder_admins.iter().copied());
        }
        admins
    }

    /// Names and process ids of the running processes, in start order.
    pub fn processes(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.child.id()))
            .collect()
    }

    /// The first process that has exited, if any (name and status).
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.procs.iter_mut().find_map(|p| {
            p.child
                .try_wait()
                .ok()
                .flatten()
                .map(|s| (p.name.clone(), s))
        })
    }

    /// Process id of the process `name` (e.g. `node-1-transcoder-1`).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.child.id())
    }

    /// `kill -9` of the process `name` alone (not its children: they are left as a crash
    /// leaves them), waited for.
    pub fn kill9(&mut self, name: &str) -> anyhow::Result<()> {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == name)
            .with_context(|| format!("no process {name}"))?;
        let pid = nix::unistd::Pid::from_raw(p.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)?;
        p.child.wait()?;
        Ok(())
    }

    /// Starts the service or nats-server `name` again after it ended (see [`Stack::kill9`]),
    /// as it was started and on the addresses it had (a nats-server on its store); waits until
    /// it is ready.
    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self
            .procs
            .iter()
            .position(|p| p.name == name)
            .with_context(|| format!("no process {name}"))?;
        if self.procs[i].child.try_wait()?.is_none() {
            bail!("{name} is still running");
        }
        let old = self.procs.remove(i);
        let opts = self.opts.clone();
        if let Some(conf) = old.nats_conf {
            self.start_nats_process(&opts, name, &conf)?;
        } else {
            let respawn = old
                .respawn
                .with_context(|| format!("{name} cannot be restarted"))?;
            let env = respawn.pinned_env();
            let env: Vec<(&str, String)> =
                env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            self.spawn_service(&opts, name, &respawn.binary, &respawn.ready, &env)?;
        }
        // Back in its place, so that the stop order stays the start order reversed.
        if let Some(new) = self.procs.pop() {
            self.procs.insert(i, new);
        }
        Ok(())
    }

    /// SIGTERM to each process, last started first, each waited for (SIGKILL after 12 s), so
    /// each service drains while NATS and the services it calls are still up. Returns the
    /// names of those that had to be killed.
    pub fn stop(mut self) -> Vec<String> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Vec<String> {
        let mut killed = Vec::new();
        while let Some(mut p) = self.procs.pop() {
            if p.child.try_wait().ok().flatten().is_some() {
                continue;
            }
            let pid = nix::unistd::Pid::from_raw(p.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + STOP_LIMIT;
            while Instant::now() < deadline && p.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if p.child.try_wait().ok().flatten().is_none() {
                // The whole group when it has its own (a transcoder's ffmpeg too).
                if p.own_group {
                    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                }
                let _ = p.child.kill();
                killed.push(p.name.clone());
            }
            let _ = p.child.wait();
        }
        killed
    }

    /// The services' NATS users (a user per service and node, least privilege:
    /// nats-permissions.json), written as `nats-auth.conf` for the servers to include.
    fn nats_auth(&mut self, opts: &Options) -> anyhow::Result<PathBuf> {
        let nodes: Vec<String> = opts.workers.iter().map(|w| w.id.clone()).collect();
        let users = nats_auth::Users::new(&nodes)?;
        let conf = opts.data_dir.join("nats-auth.conf");
        users.write_conf(&conf)?;
        self.nats_users = Some(users);
        Ok(conf)
    }

    fn spawn_nats(&mut self, opts: &Options, port: u16) -> anyhow::Result<String> {
        let store = opts.data_dir.join("nats");
        let auth = self.nats_auth(opts)?;
        let port = if port == 0 { free_port()? } else { port };
        let monitor = free_port()?;
        let conf = format!(
            "listen: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor}\"\njetstream {{ store_dir: {store:?} }}\ninclude {auth:?}\n",
            store = store.display().to_string(),
            auth = file_name(&auth)?,
        );
        self.start_nats_server(opts, "nats", &conf, monitor)?;
        Ok(format!("nats://127.0.0.1:{port}"))
    }

    /// `servers` nats-server processes routed to each other on loopback, JetStream clustered;
    /// returns their client URLs, comma-separated.
    fn spawn_nats_cluster(&mut self, opts: &Options, servers: usize) -> anyhow::Result<String> {
        if !(1..=5).contains(&servers) {
            bail!("a NATS cluster of {servers} servers: 1 to 5");
        }
        let auth = self.nats_auth(opts)?;
        let ports = (0..servers)
            .map(|_| Ok((free_port()?, free_port()?, free_port()?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("\"nats-route://127.0.0.1:{route}\""))
            .collect();
        let mut urls = Vec::new();
        let mut started = Vec::new();
        for (i, (client, route, monitor)) in ports.iter().enumerate() {
            let name = format!("nats-{}", i + 1);
            let store = opts.data_dir.join(&name);
            let conf = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{client}\"\nhttp: \"127.0.0.1:{monitor}\"\n\
                 jetstream {{ store_dir: {store:?} }}\n\
                 cluster {{ name: magnet, listen: \"127.0.0.1:{route}\", routes: [{}] }}\ninclude {auth:?}\n",
                routes.join(", "),
                store = store.display().to_string(),
                auth = file_name(&auth)?,
            );
            // Each announces itself ready alone; JetStream needs the quorum (below).
            self.start_nats_server(opts, &name, &conf, *monitor)?;
            started.push(*monitor);
            urls.push(format!("nats://127.0.0.1:{client}"));
        }
        // Clustered JetStream answers once its members elected a meta leader.
        let deadline = Instant::now() + START_LIMIT;
        for monitor in started {
            let addr: SocketAddr = ([127, 0, 0, 1], monitor).into();
            while http_status(addr, "/healthz").ok() != Some(200) {
                if Instant::now() > deadline {
                    bail!("the NATS cluster did not become healthy in {START_LIMIT:?}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.nats_replicas = servers;
        Ok(urls.join(","))
    }

    /// Writes `<name>.conf` and starts nats-server on it; returns once it says it is ready.
    fn start_nats_server(
        &mut self,
        opts: &Options,
        name: &str,
        conf: &str,
        monitor: u16,
    ) -> anyhow::Result<()> {
        let path = opts.data_dir.join(format!("{name}.conf"));
        std::fs::write(&path, conf)?;
        self.start_nats_process(opts, name, &path)?;
        self.nats_monitors
            .push((name.to_owned(), ([127, 0, 0, 1], monitor).into()));
        Ok(())
    }

    /// Runs nats-server on `conf`; returns once it says it is ready.
    fn start_nats_process(
        &mut self,
        opts: &Options,
        name: &str,
        conf: &Path,
    ) -> anyhow::Result<()> {
        let mut cmd = Command::new("nats-server");
        cmd.arg("-c").arg(conf);
        let (rx, mut proc) = spawn_logged(cmd, name, opts, |line| line.contains("Server is ready"))
            .context("cannot run nats-server: is it installed? (`cargo xtask` installs it)")?;
        proc.nats_conf = Some(conf.to_owned());
        self.procs.push(proc);
        rx.recv_timeout(START_LIMIT).map_err(|_| {
            anyhow::anyhow!("{name} did not start in {START_LIMIT:?} (see its log)")
        })?;
        Ok(())
    }

    /// Starts `magnet-<binary>` with the common config and `MAGNET__<key>=<value>` for each
    /// of `env`, and waits for its ready line and its `/readyz`.
    fn spawn_service(
        &mut self,
        opts: &Options,
        name: &str,
        binary: &str,
        ready: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Ready> {
        let path = opts.bin_dir.join(format!("magnet-{binary}"));
        if !path.exists() {
            bail!("{} is missing: build it first", path.display());
        }
        let mut cmd = Command::new(&path);
        if let Some(config) = &opts.config {
            cmd.arg("--config").arg(config);
        }
        let nats_url = match &self.nats_users {
            Some(users) => {
                let node = env
                    .iter()
                    .find(|(k, _)| *k == "NODE__ID")
                    .map(|(_, v)| v.as_str());
                users.url_for(&self.nats_url, &nats_auth::user_of(binary, node))?
            }
            None => self.nats_url.clone(),
        };
        cmd.env("NO_COLOR", "1")
            .env("MAGNET__NATS__URL", nats_url)
            .env("MAGNET__NATS__REPLICAS", self.nats_replicas.to_string())
            .env("MAGNET__INTERNAL__TOKEN", &self.service_token);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(format!("MAGNET__{k}"), v);
        }
        if let Some(Wrap(wrap)) = &opts.wrap {
            cmd = wrap(binary, cmd)?;
        }
        let wanted = ready.to_owned();
        let (rx, proc) = spawn_logged(cmd, name, opts, move |line| {
            line.contains("admin server listening") || line.contains(&wanted)
        })?;
        self.procs.push(proc);
        let started = Instant::now();
        let mut admin = None;
        loop {
            let Some(left) = START_LIMIT.checked_sub(started.elapsed()) else {
                bail!("{name} did not become ready in {START_LIMIT:?}");
            };
            let Ok(line) = rx.recv_timeout(left) else {
                bail!("{name} exited or did not become ready in {START_LIMIT:?} (see its log)");
            };
            if line.contains("admin server listening") {
                admin = field(&line, "local").and_then(|a| a.parse().ok());
                continue;
            }
            let admin: SocketAddr = admin.with_context(|| format!("{name}: no admin address"))?;
            wait_ready(admin, START_LIMIT.saturating_sub(started.elapsed()))
                .with_context(|| format!("{name} did not answer /readyz"))?;
            if let Some(p) = self.procs.last_mut() {
                p.respawn = Some(Respawn {
                    binary: binary.to_owned(),
                    ready: ready.to_owned(),
                    env: env
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect(),
                    ready_line: line.clone(),
                    admin,
                });
            }
            return Ok(Ready { line, admin });
        }
    }
}

/// 32 hex characters from the kernel's random source.
pub(crate) fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Spawns `cmd` (in its own process group if asked); each stderr line goes to the log, and
/// those `wanted` are sent on the returned channel.
fn spawn_logged(
    mut cmd: Command,
    name: &str,
    opts: &Options,
    wanted: impl Fn(&str) -> bool + Send + 'static,
) -> anyhow::Result<(mpsc::Receiver<String>, Proc)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if opts.own_process_group {
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let stderr = child.stderr.take().context("child stderr")?;
    let mut sink: Box<dyn Write + Send> = match &opts.logs {
        Logs::Dir(dir) => Box::new(
            File::options()
                .create(true)
                .append(true)
                .open(dir.join(format!("{name}.log")))?,
        ),
        Logs::Stderr => Box::new(Prefixed(format!("[{name}] "))),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(sink, "{line}");
            if wanted(&line) {
                let _ = tx.send(line);
            }
        }
    });
    Ok((
        rx,
        Proc {
            name: name.to_owned(),
            child,
            own_group: opts.own_process_group,
            respawn: None,
            nats_conf: None,
        },
    ))
}

/// Writes each line to stderr with a prefix.
struct Prefixed(String);

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.lines() {
            eprintln!("{}{line}", self.0);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Polls `GET /readyz` on an admin address until it answers 200.
fn wait_ready(admin: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if http_status(admin, "/readyz").ok() == Some(200) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{admin}/readyz not 200 after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status code of a plain HTTP/1.0 GET.
pub fn http_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP answer: {text:?}"))
}

/// A `key=value` field of a log line.
fn field(line: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix))
        .map(|v| v.trim_matches('"').to_owned())
}

/// A free TCP port on loopback (bound and released: another process may take it first, which
/// the caller sees as its start failing).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The file name of `path` (configs include each other by name, from the same folder).
fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name", path.display()))
}
