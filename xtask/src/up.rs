//! `cargo xtask up`: the local stack on one machine — nats-server with JetStream under
//! `./data/nats` and the services of one worker node, logs under `./data/logs/`. Ctrl-C
//! stops everything (SIGTERM, then SIGKILL after a grace period); no process is left behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::system::{self, cargo};

#[derive(clap::Args)]
pub struct Options {
    /// Folder of the local stack's state.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// NATS client port.
    #[arg(long, default_value_t = 4222)]
    nats_port: u16,
    /// Build and run debug binaries (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
}

struct Service {
    name: &'static str,
    child: Child,
}

pub fn run(opts: Options, demo: bool) -> anyhow::Result<()> {
    if demo {
        bail!("`cargo xtask demo` is not there yet; `cargo xtask up` runs what exists so far");
    }
    system::ensure_programs()?;
    let mut build = cargo();
    build.args([
        "build",
        "--bins",
        "-p",
        "magnet-downloader",
        "-p",
        "magnet-transcoder",
    ]);
    if !opts.debug {
        build.arg("--release");
    }
    system::run(&mut build)?;
    let bin_dir = target_dir()?.join(if opts.debug { "debug" } else { "release" });

    let data = std::path::absolute(&opts.data_dir)?;
    let logs = data.join("logs");
    std::fs::create_dir_all(&logs)?;
    let nats_url = format!("nats://127.0.0.1:{}", opts.nats_port);

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc_flag(flag)?;

    let mut services = Vec::new();
    let nats = Command::new("nats-server")
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &opts.nats_port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(data.join("nats"))
        .stdout(Stdio::null())
        .stderr(log(&logs, "nats")?)
        .spawn()
        .context("cannot start nats-server")?;
    services.push(Service {
        name: "nats-server",
        child: nats,
    });
    wait_port(opts.nats_port, Duration::from_secs(10))
        .context("nats-server did not open its port")?;
    println!(
        "  ok  nats-server   {nats_url}   (log: {})",
        logs.join("nats.log").display()
    );

    let downloader = Command::new(bin_dir.join("magnet-downloader"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--nats-url",
            &nats_url,
            "--admin-listen",
            "127.0.0.1:9101",
            "--grpc-listen",
            "127.0.0.1:50051",
        ])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log(&logs, "downloader")?)
        .spawn()
        .context("cannot start magnet-downloader")?;
    services.push(Service {
        name: "downloader",
        child: downloader,
    });
    match wait_port(50051, Duration::from_secs(30)) {
        Ok(()) => println!(
            "  ok  downloader    grpc://127.0.0.1:50051   admin http://127.0.0.1:9101/healthz"
        ),
        Err(_) => println!(
            "  !!  downloader    not listening yet; see {}",
            logs.join("downloader.log").display()
        ),
    }

    let transcoder = Command::new(bin_dir.join("magnet-transcoder"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--nats-url", &nats_url, "--admin-listen", "127.0.0.1:9102"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log(&logs, "transcoder")?)
        .spawn()
        .context("cannot start magnet-transcoder")?;
    services.push(Service {
        name: "transcoder",
        child: transcoder,
    });
    match wait_port(9102, Duration::from_secs(30)) {
        Ok(()) => println!("  ok  transcoder    admin http://127.0.0.1:9102/healthz"),
        Err(_) => println!(
            "  !!  transcoder    not up yet; see {}",
            logs.join("transcoder.log").display()
        ),
    }
    println!("\nThe gateway and web UI come with a later release; Ctrl-C stops everything.");

    while !stop.load(Ordering::Relaxed) {
        for s in &mut services {
            if let Some(status) = s.child.try_wait()? {
                println!("  !!  {} exited with {status}; stopping the stack", s.name);
                stop.store(true, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    shutdown(services);
    Ok(())
}

/// SIGTERM in reverse start order, then SIGKILL what is left after 15 s.
fn shutdown(mut services: Vec<Service>) {
    println!("\nstopping…");
    for s in services.iter().rev() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(s.child.id().to_string())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for s in services.iter_mut().rev() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = s.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(None) = s.child.try_wait() {
            let _ = s.child.kill();
        }
        let _ = s.child.wait();
        println!("  stopped {}", s.name);
    }
}

fn log(dir: &Path, name: &str) -> anyhow::Result<File> {
    Ok(File::options()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))?)
}

fn wait_port(port: u16, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("port {port} not open after {limit:?}")
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

/// Sets `flag` on Ctrl-C/SIGTERM (the stack then stops its children itself).
fn ctrlc_flag(flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)).context("cannot catch Ctrl-C")
}
