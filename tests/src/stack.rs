//! The whole system as processes ([`magnet_stack`]) with the settings of an offline test node,
//! and the browser end-to-end script (`web/e2e/run.mjs`, Playwright driving Debian's chromium).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use magnet_runtime::Settings;
use magnet_stack::{Nats, Options, Stack, Worker};

use crate::services::{binary, offline_node};

/// Starts nats-server and the five services for `workers` nodes (`node-1`, `node-2`, …), each
/// node offline (no DHT, trackers, discovery, listening port), state under `dir`.
/// `tune` may change the common settings first.
pub fn start(
    dir: &Path,
    workers: usize,
    tune: impl FnOnce(&mut Settings),
) -> anyhow::Result<Stack> {
    start_with_env(dir, workers, tune, &[])
}

/// [`start`] on a NATS server the test started (no users: the test may read any subject).
pub fn start_on(
    dir: &Path,
    nats_url: &str,
    workers: usize,
    tune: impl FnOnce(&mut Settings),
) -> anyhow::Result<Stack> {
    launch(dir, Nats::External(nats_url.into()), workers, tune, &[])
}

/// [`start`] on a clustered JetStream of `servers` nats-server processes
/// (`Stack::nats_monitors` names them).
pub fn start_clustered(
    dir: &Path,
    servers: usize,
    workers: usize,
    tune: impl FnOnce(&mut Settings),
) -> anyhow::Result<Stack> {
    launch(dir, Nats::Cluster { servers }, workers, tune, &[])
}

/// [`start`] with extra environment for every service (e.g. the OTLP endpoint).
pub fn start_with_env(
    dir: &Path,
    workers: usize,
    tune: impl FnOnce(&mut Settings),
    env: &[(&str, &str)],
) -> anyhow::Result<Stack> {
    launch(dir, Nats::Spawn { port: 0 }, workers, tune, env)
}

/// [`start`] shaped further by `shape` (e.g. transcoders per node, logs to files), after the
/// defaults: `workers` nodes of one transcoder, NATS spawned, logs to stderr.
pub fn start_shaped(
    dir: &Path,
    workers: usize,
    tune: impl FnOnce(&mut Settings),
    shape: impl FnOnce(&mut Options),
) -> anyhow::Result<Stack> {
    launch_shaped(dir, Nats::Spawn { port: 0 }, workers, tune, &[], shape)
}

fn launch(
    dir: &Path,
    nats: Nats,
    workers: usize,
    tune: impl FnOnce(&mut Settings),
    env: &[(&str, &str)],
) -> anyhow::Result<Stack> {
    launch_shaped(dir, nats, workers, tune, env, |_| {})
}

fn launch_shaped(
    dir: &Path,
    nats: Nats,
    workers: usize,
    tune: impl FnOnce(&mut Settings),
    env: &[(&str, &str)],
    shape: impl FnOnce(&mut Options),
) -> anyhow::Result<Stack> {
    let mut settings = offline_node(dir, "nats://unused", "node-1");
    tune(&mut settings);
    std::fs::create_dir_all(dir)?;
    let config = dir.join("stack.json");
    std::fs::write(&config, serde_json::to_vec_pretty(&settings)?)?;
    let bin_dir = binary("magnet-gateway")?
        .parent()
        .context("binary has no folder")?
        .to_owned();
    let mut opts = Options::new(bin_dir, dir);
    opts.config = Some(config);
    opts.nats = nats;
    opts.workers = (1..=workers)
        .map(|i| Worker {
            id: format!("node-{i}"),
            transcoders: 1,
        })
        .collect();
    // The test's own RUST_LOG reaches the services too.
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,librqbit=warn,sqlx=warn".into());
    opts.env = vec![("RUST_LOG".into(), log)];
    opts.env
        .extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    shape(&mut opts);
    Stack::start(opts)
}

/// The repository's `web/` folder.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("web"))
        .unwrap_or_else(|| PathBuf::from("web"))
}

/// Where a test's browser artefacts (screenshots, result.json) go: `target/e2e/<name>/`.
pub fn artefacts(name: &str) -> anyhow::Result<PathBuf> {
    let dir = binary("magnet-gateway")?
        .parent()
        .and_then(Path::parent)
        .context("no target folder")?
        .join("e2e")
        .join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs `web/e2e/run.mjs` in `mode` against the gateway and returns its result JSON; fails
/// with the script's output if the script says the run failed.
pub fn browser(
    base_url: &str,
    magnet: &str,
    mode: &str,
    out_dir: &Path,
) -> anyhow::Result<serde_json::Value> {
    browser_as(base_url, magnet, mode, out_dir, None)
}

/// [`browser`], logged in with `login` (username, password) first.
pub fn browser_as(
    base_url: &str,
    magnet: &str,
    mode: &str,
    out_dir: &Path,
    login: Option<(&str, &str)>,
) -> anyhow::Result<serde_json::Value> {
    let env: Vec<(&str, &str)> = login
        .map(|(user, password)| vec![("USERNAME", user), ("PASSWORD", password)])
        .unwrap_or_default();
    browser_with(base_url, magnet, mode, out_dir, &env)
}

/// [`browser`] with more of the script's settings (e.g. `EPISODE` for `episodes`).
pub fn browser_with(
    base_url: &str,
    magnet: &str,
    mode: &str,
    out_dir: &Path,
    env: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    browser_script("run.mjs", base_url, magnet, mode, out_dir, env)
}

/// Runs the browser script `web/e2e/<script>` in `mode` against the gateway and returns its
/// result JSON (`OUT_DIR/result.json`); fails with the script's output unless it says `ok`.
pub fn browser_script(
    script: &str,
    base_url: &str,
    magnet: &str,
    mode: &str,
    out_dir: &Path,
    env: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let web = web_dir();
    if !web.join("node_modules/playwright-core").exists() {
        bail!("web/node_modules is missing: run `cargo xtask test` (it runs npm ci)");
    }
    let out = Command::new("node")
        .envs(env.iter().copied())
        .arg(web.join("e2e").join(script))
        .env("BASE_URL", base_url)
        .env("MAGNET", magnet)
        .env("MODE", mode)
        .env("OUT_DIR", out_dir)
        .output()
        .context("cannot run node (`cargo xtask test` installs it)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("[browser {mode}] stdout:\n{stdout}\n[browser {mode}] stderr:\n{stderr}");
    let result: serde_json::Value = std::fs::read(out_dir.join("result.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if !out.status.success() || result["ok"] != true {
        bail!("browser run {mode} failed ({}): {result}", out.status);
    }
    Ok(result)
}
