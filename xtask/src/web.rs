//! `cargo xtask web`: the browser UI in `web/` built with npm (`npm ci` when the lock file
//! changed, then `npm run build` into `web/dist/`, which the gateway embeds or, in debug
//! builds, reads from disk).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::system;

pub fn dir() -> anyhow::Result<PathBuf> {
    Ok(system::repository_root()?.join("web"))
}

/// Installs the npm dependencies if needed and builds `web/dist`; with `check`, also the type
/// check and the unit tests of the UI.
pub fn build(check: bool) -> anyhow::Result<()> {
    system::ensure_node()?;
    let web = dir()?;
    let lock = web.join("package-lock.json");
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (modified(&lock), modified(&installed)) {
        (Some(l), Some(i)) => l > i,
        _ => true,
    };
    if stale {
        system::run(npm(&web).args(["ci", "--no-audit", "--no-fund"]))?;
    }
    system::run(npm(&web).args(["run", "build"]))?;
    if check {
        system::run(npm(&web).args(["run", "check"]))?;
        system::run(npm(&web).arg("test"))?;
    }
    Ok(())
}

fn npm(web: &Path) -> Command {
    let mut cmd = Command::new("npm");
    cmd.current_dir(web).env("NO_UPDATE_NOTIFIER", "1");
    cmd
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}
