//! `cargo xtask up`: the local stack on one machine — nats-server with JetStream under
//! `./data/nats` and, through the same launcher as the browser tests (magnet-stack), the
//! services of `--workers` nodes, logs under `./data/logs/`. Ctrl-C stops everything (SIGTERM
//! in reverse start order, SIGKILL after a grace period); no process is left behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use magnet_stack::{Logs, Nats, Stack, Worker};

use crate::system::{self, cargo};

#[derive(clap::Args)]
pub struct Options {
    /// Folder of the local stack's state.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
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
    /// Build and run debug binaries (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
}

/// The services' binaries.
const SERVICES: [&str; 5] = [
    "downloader",
    "transcoder",
    "streamer",
    "signaling",
    "gateway",
];

pub fn run(opts: Options, demo: bool) -> anyhow::Result<()> {
    if demo {
        bail!("`cargo xtask demo` is not there yet; `cargo xtask up` runs the system");
    }
    if opts.workers == 0 || opts.transcoders == 0 {
        bail!("--workers and --transcoders must be at least 1");
    }
    system::ensure_programs()?;
    // The UI is embedded in release binaries, so it is built first.
    crate::web::build(false)?;
    let mut build = cargo();
    build.args(["build", "--bins"]);
    for service in SERVICES {
        build.args(["-p", &format!("magnet-{service}")]);
    }
    if !opts.debug {
        build.arg("--release");
    }
    system::run(&mut build)?;
    let bin_dir = target_dir()?.join(if opts.debug { "debug" } else { "release" });

    let data = std::path::absolute(&opts.data_dir)?;
    let logs = data.join("logs");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot catch Ctrl-C")?;

    let mut stack_opts = magnet_stack::Options::new(bin_dir, &data);
    stack_opts.nats = Nats::Spawn {
        port: opts.nats_port,
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
    println!(
        "\nOpen {}  (API: {}/api/nodes). Ctrl-C stops everything.",
        stack.gateway_url(),
        stack.gateway_url()
    );

    while !stop.load(Ordering::Relaxed) {
        if let Some((name, status)) = stack.exited() {
            println!(
                "  !!  {name} exited with {status}; stopping the stack (see {})",
                log_of(&logs, &name).display()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nstopping…");
    let killed = stack.stop();
    if killed.is_empty() {
        println!("stopped cleanly");
    } else {
        println!("had to kill: {}", killed.join(", "));
    }
    Ok(())
}

fn log_of(logs: &Path, name: &str) -> PathBuf {
    logs.join(format!("{name}.log"))
}

fn target_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent folder")?;
    Ok(root.join("target"))
}
