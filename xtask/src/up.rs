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

/// The services of the local stack, in start order.
const SERVICES: [&str; 5] = [
    "downloader",
    "transcoder",
    "streamer",
    "signaling",
    "gateway",
];

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
    if let Err(e) = wait_port(opts.nats_port, Duration::from_secs(10)) {
        shutdown(services);
        return Err(e.context(format!(
            "nats-server did not open its port; see {}",
            logs.join("nats.log").display()
        )));
    }
    println!(
        "  ok  nats-server   {nats_url}   (log: {})",
        logs.join("nats.log").display()
    );

    let common = |name: &str| -> anyhow::Result<Command> {
        let mut cmd = Command::new(bin_dir.join(format!("magnet-{name}")));
        cmd.arg("--data-dir")
            .arg(&data)
            .args(["--nats-url", &nats_url])
            .env("NO_COLOR", "1");
        cmd.stdout(Stdio::null()).stderr(log(&logs, name)?);
        Ok(cmd)
    };
    // (name, extra flags, port to wait for, what to print)
    let plan: [(&'static str, &[&str], u16, &str); 5] = [
        (
            "downloader",
            &[
                "--admin-listen",
                "127.0.0.1:9101",
                "--grpc-listen",
                "127.0.0.1:50051",
            ],
            50051,
            "grpc://127.0.0.1:50051",
        ),
        (
            "transcoder",
            &["--admin-listen", "127.0.0.1:9102"],
            9102,
            "admin http://127.0.0.1:9102/healthz",
        ),
        (
            "streamer",
            &[
                "--admin-listen",
                "127.0.0.1:9103",
                "--grpc-listen",
                "127.0.0.1:50052",
            ],
            50052,
            "FileService grpc://127.0.0.1:50052",
        ),
        (
            "signaling",
            &[
                "--admin-listen",
                "127.0.0.1:9104",
                "--grpc-listen",
                "127.0.0.1:50053",
            ],
            50053,
            "grpc://127.0.0.1:50053",
        ),
        (
            "gateway",
            &[
                "--admin-listen",
                "127.0.0.1:9100",
                "--listen",
                "127.0.0.1:8080",
            ],
            8080,
            "API http://127.0.0.1:8080/api/nodes",
        ),
    ];
    for (name, flags, port, what) in plan {
        let spawned = common(name).and_then(|mut cmd| {
            cmd.args(flags)
                .spawn()
                .with_context(|| format!("cannot start magnet-{name}"))
        });
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                // Leave nothing running behind a failed start.
                shutdown(services);
                return Err(e);
            }
        };
        services.push(Service { name, child });
        match wait_port(port, Duration::from_secs(30)) {
            Ok(()) => println!("  ok  {name:<12}  {what}"),
            Err(_) => println!(
                "  !!  {name:<12}  not up yet; see {}",
                logs.join(format!("{name}.log")).display()
            ),
        }
    }
    println!(
        "\nThe web UI comes with a later release; the API answers at http://127.0.0.1:8080/api/. Ctrl-C stops everything."
    );

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

/// SIGTERM in reverse start order, each waited for (SIGKILL after 12 s).
fn shutdown(mut services: Vec<Service>) {
    println!("\nstopping…");
    // One at a time, last started first, so each drains while NATS is still up.
    for s in services.iter_mut().rev() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(s.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(12);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = s.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = s.child.try_wait() {
            println!("  {} did not stop in 12 s; killing it", s.name);
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
