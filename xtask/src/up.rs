//! `cargo xtask up`: the local stack on one machine — nats-server with JetStream under
//! `./data/nats` and, through the same launcher as the browser tests (magnet-stack), the
//! services of `--workers` nodes, configured by `magnetm3u8.toml`, logs under `./data/logs/`.
//! Accounts are on, with an admin whose generated password is kept in `./data/admin-password`.
//! Ctrl-C stops everything (SIGTERM in reverse start order, SIGKILL after a grace period); no
//! process is left behind.
//!
//! `cargo xtask demo`: the same, plus a sample video seeded from a local BitTorrent session
//! (`demo-seed`), its magnet submitted through the API, a progress bar until it is ready, and
//! the player's URL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use magnet_stack::{Logs, Nats, Stack, Worker};
use serde_json::{Value, json};

use crate::system::{self, cargo};

#[derive(clap::Args)]
pub struct Options {
    /// Folder of the local stack's state.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// The settings every service reads.
    #[arg(long, default_value = "magnetm3u8.toml")]
    config: PathBuf,
    /// Port of the web UI and API.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Worker nodes (each: downloader, transcoders, streamer).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Transcoder replicas per worker node.
    #[arg(long, default_value_t = 1)]
    transcoders: usize,
    /// BitTorrent listening port of the first node (the next nodes take the next ports).
    #[arg(long, default_value_t = 4240)]
    torrent_port: u16,
    /// NATS client port (0: a free one).
    #[arg(long, default_value_t = 0)]
    nats_port: u16,
    /// Three nats-server processes on loopback, JetStream clustered (streams and buckets in 3
    /// replicas), instead of one: the stack then survives losing any one of them.
    #[arg(long, conflicts_with = "nats_port")]
    nats_cluster: bool,
    /// Run without accounts (anyone who reaches the port may submit).
    #[arg(long)]
    no_auth: bool,
    /// Print the admin's password again.
    #[arg(long)]
    show_admin: bool,
    /// Build and run debug binaries (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
    /// Send traces to an OTLP/gRPC collector (default http://127.0.0.1:4317) when one answers
    /// there.
    #[arg(long, value_name = "ENDPOINT", num_args = 0..=1, default_missing_value = "http://127.0.0.1:4317")]
    otel: Option<String>,
    /// Use the binaries already built (no npm, no cargo build).
    #[arg(long)]
    no_build: bool,
}

/// Where the admin's generated password is kept, under the data folder.
const ADMIN_PASSWORD_FILE: &str = "admin-password";
const ADMIN: &str = "admin";

pub fn run(opts: Options, demo: bool) -> anyhow::Result<()> {
    if opts.workers == 0 || opts.transcoders == 0 {
        bail!("--workers and --transcoders must be at least 1");
    }
    system::ensure_programs()?;
    let config = std::path::absolute(&opts.config)?;
    if !config.exists() {
        bail!(
            "{} does not exist (the repository's magnetm3u8.toml is the template)",
            config.display()
        );
    }
    let profile = if opts.debug { "debug" } else { "release" };
    if !opts.no_build {
        // The UI is embedded in release binaries, so it is built first. The same cargo
        // command as `cargo xtask test` (the whole workspace), so no feature set differs.
        crate::web::build(false)?;
        let mut build = cargo();
        build.args(["build", "--workspace", "--bins"]);
        if !opts.debug {
            build.arg("--release");
        }
        system::run(&mut build)?;
    }
    let bin_dir = target_dir()?.join(profile);

    let data = std::path::absolute(&opts.data_dir)?;
    std::fs::create_dir_all(&data)?;
    let logs = data.join("logs");
    let password = if opts.no_auth {
        None
    } else {
        let (password, created) = admin_password(&data)?;
        if created || opts.show_admin {
            println!(
                "Admin account: user {ADMIN:?}, password {password:?}{}",
                if created {
                    format!(
                        " (shown once; kept in {}; `cargo xtask up --show-admin` shows it again)",
                        data.join(ADMIN_PASSWORD_FILE).display()
                    )
                } else {
                    String::new()
                }
            );
        }
        Some(password)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot catch Ctrl-C")?;

    let mut stack_opts = magnet_stack::Options::new(&bin_dir, &data);
    stack_opts.config = Some(config);
    stack_opts.nats = if opts.nats_cluster {
        Nats::Cluster { servers: 3 }
    } else {
        Nats::Spawn {
            port: opts.nats_port,
        }
    };
    stack_opts.workers = (1..=opts.workers)
        .map(|i| Worker {
            id: format!("node-{i}"),
            transcoders: opts.transcoders,
        })
        .collect();
    stack_opts.gateway_listen = ([127, 0, 0, 1], opts.port).into();
    stack_opts.logs = Logs::Dir(logs.clone());
    stack_opts.own_process_group = true;
    stack_opts.torrent_port_base = Some(opts.torrent_port);
    stack_opts.env = vec![("RUST_LOG".into(), "info,librqbit=warn,sqlx=warn".into())];
    if password.is_some() {
        stack_opts.env.extend([
            ("MAGNET__GATEWAY__AUTH__ENABLED".into(), "true".into()),
            ("MAGNET__GATEWAY__AUTH__ADMIN_USERNAME".into(), ADMIN.into()),
            (
                "MAGNET__GATEWAY__AUTH__ADMIN_PASSWORD_FILE".into(),
                data.join(ADMIN_PASSWORD_FILE).display().to_string(),
            ),
        ]);
    } else {
        stack_opts
            .env
            .push(("MAGNET__GATEWAY__AUTH__ENABLED".into(), "false".into()));
    }
    if let Some(endpoint) = &opts.otel {
        if collector_answers(endpoint) {
            println!("traces go to {endpoint}");
            stack_opts
                .env
                .push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.clone()));
        } else {
            println!("no OTLP collector answers at {endpoint}; running without traces");
        }
    }
    println!("starting (logs: {})", logs.display());
    let mut stack = Stack::start(stack_opts).with_context(|| {
        format!(
            "the stack did not start; see the logs in {}",
            logs.display()
        )
    })?;
    for (name, pid) in stack.processes() {
        println!("  ok  {name:<24} pid {pid}");
    }
    println!("  nats {}", stack.nats_url);
    let url = stack.gateway_url();
    println!(
        "\nOpen {url}{}  (API: {url}/api/nodes). Ctrl-C stops everything.",
        if password.is_some() {
            format!(" and log in as {ADMIN:?}")
        } else {
            String::new()
        }
    );

    let mut seeder = None;
    if demo {
        match run_demo(&bin_dir, &data, &url, password.as_deref(), &stop) {
            Ok(child) => seeder = Some(child),
            Err(e) => {
                println!("\ndemo failed: {e:#}");
                stop.store(true, Ordering::Relaxed);
            }
        }
    }

    while !stop.load(Ordering::Relaxed) {
        if let Some((name, status)) = stack.exited() {
            println!(
                "  !!  {name} exited with {status}; stopping the stack (see {})",
                logs.join(format!("{name}.log")).display()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nstopping…");
    if let Some(mut s) = seeder {
        let _ = s.kill();
        let _ = s.wait();
        println!("  stopped the demo seeder");
    }
    let killed = stack.stop();
    if killed.is_empty() {
        println!("stopped cleanly");
    } else {
        println!("had to kill: {}", killed.join(", "));
    }
    Ok(())
}

/// Whether something accepts TCP connections at the endpoint's host and port.
fn collector_answers(endpoint: &str) -> bool {
    let authority = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    use std::net::ToSocketAddrs;
    authority
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// The admin's password from the data folder, or a new random one stored there (mode 0600).
/// Also says whether it was just created.
fn admin_password(data: &Path) -> anyhow::Result<(String, bool)> {
    let path = data.join(ADMIN_PASSWORD_FILE);
    if let Ok(p) = std::fs::read_to_string(&path) {
        let p = p.trim().to_owned();
        if p.len() >= 8 {
            return Ok((p, false));
        }
    }
    let mut bytes = [0u8; 15];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let password: String = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, password.as_bytes())?;
    Ok((password, true))
}

/// Seeds the sample, submits its magnet, shows progress until it is ready and prints the
/// player's URL. Returns the seeder process, which must keep running.
fn run_demo(
    bin_dir: &Path,
    data: &Path,
    url: &str,
    password: Option<&str>,
    stop: &AtomicBool,
) -> anyhow::Result<Child> {
    println!("\ndemo: preparing the sample video and seeding it on loopback…");
    let mut seeder = Command::new(bin_dir.join("demo-seed"))
        .arg(data.join("demo"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start demo-seed")?;
    let stdout = seeder.stdout.take().context("demo-seed stdout")?;
    // Killed if anything below fails; handed back to the caller otherwise.
    let mut guard = KillOnDrop(Some(seeder));
    let magnet = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("magnet: ").map(str::to_owned));
    let Some(magnet) = magnet else {
        bail!("demo-seed ended without a magnet link");
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut auth = String::new();
    if let Some(password) = password {
        let v = call(
            agent
                .post(format!("{url}/api/auth/login"))
                .send_json(json!({ "username": ADMIN, "password": password })),
        )?;
        auth = format!("Bearer {}", v["token"].as_str().unwrap_or_default());
    }
    let v = call(
        agent
            .post(format!("{url}/api/tasks/submit"))
            .header("authorization", &auth)
            .send_json(json!({ "magnet_url": magnet })),
    )?;
    let id = v["data"]["id"].as_str().unwrap_or_default().to_owned();
    println!("demo: submitted {id}");
    let bar = indicatif::ProgressBar::new(100).with_style(
        indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos:>3}%  {msg}")?
            .progress_chars("=> "),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut phase = String::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            bar.abandon();
            return guard.0.take().context("demo-seed");
        }
        if Instant::now() > deadline {
            bar.abandon();
            bail!("{id} not ready after 10 minutes; see the logs");
        }
        let t = call(
            agent
                .get(format!("{url}/api/tasks/{id}"))
                .header("authorization", &auth)
                .call(),
        )?;
        let t = &t["data"];
        let status = t["status"].as_str().unwrap_or_default().to_owned();
        if status != phase {
            if !phase.is_empty() && status != "ready" {
                bar.set_position(0);
            }
            bar.set_prefix(status.clone());
            phase = status.clone();
        }
        bar.set_position(t["progress"].as_u64().unwrap_or(0));
        let speed = t["speed"].as_u64().unwrap_or(0);
        bar.set_message(match t["detail"].as_str() {
            Some(d) if !d.is_empty() => d.to_owned(),
            _ if speed > 0 => format!("{:.1} MB/s", speed as f64 / 1e6),
            _ => String::new(),
        });
        match status.as_str() {
            "ready" => {
                bar.finish();
                println!("\ndemo: ready. Play it: {url}/player?taskId={id}");
                return guard.0.take().context("demo-seed");
            }
            "error" => {
                bar.abandon();
                bail!("{id} failed: {}", t["error"].as_str().unwrap_or_default());
            }
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// A child process killed (and waited for) when dropped.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The JSON of a successful API answer, else the API's error text.
fn call(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> anyhow::Result<Value> {
    let mut r = r?;
    let status = r.status();
    let v: Value = r.body_mut().read_json()?;
    if !status.is_success() || v["success"] != true {
        bail!(
            "{status}: {}",
            v["error"].as_str().unwrap_or("unexpected answer")
        );
    }
    Ok(v)
}

pub fn target_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    Ok(system::repository_root()?.join("target"))
}
