//! `cargo xtask sim [part…]`: how the system scales, measured on one machine in release mode
//! (`tests/src/bin/sim/`): a node's 200 queued transcode jobs drained by 1, 2 and 4 replicas
//! and by the autoscaler (`drain`), the gateway with 10 nodes and 1,000 tasks behind one and
//! two replicas (`gateway`), 100 signaling sessions at once (`signaling`). Ends with one
//! `sim: …` line; `docs/scaling.md` reads it.

use crate::system::{self, cargo};

pub fn run(parts: &[String]) -> anyhow::Result<()> {
    system::ensure_programs()?;
    // The replicas and the streamer run as processes of the release build.
    crate::web::build(false)?;
    system::run(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    system::run_tests_bin("sim", true, parts)
}
