//! `cargo xtask chaos [--seconds N]`: the long chaos run (issue 17) — the whole system as
//! processes, 3 nodes of 2 transcoders, 20 tasks and 10 viewers, one process after another
//! killed with SIGKILL and started again for N seconds (nats-server included). Ends with one
//! line `chaos: kills=… tasks=… ready=… lost=… duplicated=… stalls_over_10s=…
//! viewer_gaps_max_ms=…` and fails when any check did; the logs stay in
//! `target/e2e/chaos/logs`. The tests run a short variant.

use crate::system::{self, cargo};

pub fn run(seconds: u64) -> anyhow::Result<()> {
    system::ensure_programs()?;
    crate::web::build(false)?;
    system::run(cargo().args(["build", "--workspace", "--bins"]))?;
    system::run_tests_bin("chaos", false, &[seconds.to_string()])
}
