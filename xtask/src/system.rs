//! System programs the project needs (nats-server, ffmpeg, ffprobe; node and npm for the web
//! UI; chromium for the browser tests; opentracker and coturn for the tracker and TURN tests) and cargo-nextest:
//! found on PATH, else installed (apt-get as root on Debian/Ubuntu, `cargo install`), else a
//! message saying exactly what to install.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// (program, Debian package)
const PROGRAMS: &[(&str, &str)] = &[
    ("nats-server", "nats-server"),
    ("ffmpeg", "ffmpeg"),
    ("ffprobe", "ffmpeg"),
];

pub fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Command::new(program)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

/// Makes sure nats-server, ffmpeg and ffprobe are installed.
pub fn ensure_programs() -> anyhow::Result<()> {
    ensure(PROGRAMS)
}

/// Node.js and npm, to build the web UI (Debian 12's Node 18 suffices).
pub fn ensure_node() -> anyhow::Result<()> {
    ensure(&[("node", "nodejs"), ("npm", "npm")])
}

/// Python 3 with venv and pip, for the chart tools (Debian splits venv off).
pub fn ensure_python_venv() -> anyhow::Result<()> {
    ensure(&[("python3", "python3")])?;
    let ok = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        install(&["python3-venv"])?;
    }
    Ok(())
}

/// Chromium, for the browser tests.
pub fn ensure_chromium() -> anyhow::Result<()> {
    ensure(&[("chromium", "chromium")])?;
    // A font with Chinese glyphs, so the screenshots of the UI in Chinese show its text.
    if !std::path::Path::new(CJK_FONT).exists() {
        install(&["fonts-wqy-microhei"])?;
    }
    Ok(())
}

/// The file of Debian's `fonts-wqy-microhei` (5 MB, the smallest font with CJK glyphs).
const CJK_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

/// A BitTorrent tracker (Debian's opentracker), for the tests of trackers and `.torrent` files.
pub fn ensure_tracker() -> anyhow::Result<()> {
    ensure(&[("opentracker", "opentracker")])
}

/// A TURN server (Debian's coturn), for the tests of TURN.
pub fn ensure_turn() -> anyhow::Result<()> {
    ensure(&[("turnserver", "coturn")])
}

/// buildah (images without a daemon) and debootstrap (a Debian base image without a
/// registry), for `cargo xtask images --build`.
pub fn ensure_buildah() -> anyhow::Result<()> {
    ensure(&[("buildah", "buildah"), ("debootstrap", "debootstrap")])
}

/// Installs the Debian packages of the `(program, package)` pairs whose program is missing.
fn ensure(programs: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = programs
        .iter()
        .filter(|(p, _)| !on_path(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    install(&missing)
}

/// Installs Debian packages with apt-get as root, else says exactly what to run.
fn install(missing: &[&str]) -> anyhow::Result<()> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    let has_apt = on_path("apt-get") || std::path::Path::new("/usr/bin/apt-get").exists();
    let install = format!("apt-get install -y {}", missing.join(" "));
    if !(is_root && has_apt) {
        bail!(
            "missing programs: {}. Install them, e.g. `sudo apt-get update && sudo {install}`",
            missing.join(", ")
        );
    }
    eprintln!("xtask: installing {} with apt-get", missing.join(", "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// Makes sure `cargo nextest` works.
pub fn ensure_nextest() -> anyhow::Result<()> {
    let ok = cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("xtask: installing cargo-nextest");
        run(cargo().args(["install", "cargo-nextest", "--locked"]))?;
    }
    Ok(())
}

/// Cargo, without the variables that `cargo run` set for xtask itself: build scripts that
/// watch them (ring watches `CARGO_MANIFEST_DIR`) would otherwise rebuild, and then rebuild
/// again on the next plain `cargo build`.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// Runs a command to completion, failing with its name if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let what = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed with {status}");
    }
    Ok(())
}

/// `cargo run [--release] -p magnet-tests --bin <bin> -- <args>`: the benchmarks, the chaos
/// run and the sim.
pub fn run_tests_bin(bin: &str, release: bool, args: &[String]) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.arg("run");
    if release {
        cmd.arg("--release");
    }
    cmd.args(["--quiet", "-p", "magnet-tests", "--bin", bin, "--"])
        .args(args);
    run(&mut cmd)
}

/// The repository's root (xtask's parent folder).
pub fn repository_root() -> anyhow::Result<std::path::PathBuf> {
    Ok(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent folder")?
        .to_owned())
}
