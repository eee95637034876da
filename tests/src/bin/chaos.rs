//! `chaos [seconds]`: what `cargo xtask chaos` runs — [`magnet_tests::chaos::Plan::full`]
//! killing processes for `seconds` (default 180), state under a fresh folder of the target
//! dir (kept for reading the logs); ends with one line `chaos: kills=… lost=… …` and fails
//! when any check did.

use std::time::Duration;

use anyhow::Context;
use magnet_tests::chaos::{Plan, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        magnet_tests::init_logging();
    }
    let seconds: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().context("usage: chaos [seconds]")?,
        None => 180,
    };
    let dir = magnet_tests::stack::artefacts("chaos")?;
    // A fresh run: the last run's state and logs go.
    for sub in ["stack", "logs", "src", "clips"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    let report = run(&Plan::full(Duration::from_secs(seconds)), &dir).await?;
    for p in &report.problems {
        eprintln!("chaos: PROBLEM {p}");
    }
    println!("{}", report.line());
    anyhow::ensure!(
        report.problems.is_empty(),
        "{} problems (logs in {})",
        report.problems.len(),
        dir.join("logs").display()
    );
    Ok(())
}
