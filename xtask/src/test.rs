//! `cargo xtask test`: everything the tests need (programs, the web UI), the chart checks
//! (`cargo xtask chart`), the container images (`images::for_tests`), then every test of the workspace with nextest (a process per test suits tests that spawn servers).

use crate::system::{self, cargo};

pub fn run(extra: &[String]) -> anyhow::Result<()> {
    system::ensure_programs()?;
    system::ensure_chromium()?;
    system::ensure_tracker()?;
    system::ensure_turn()?;
    system::ensure_nextest()?;
    // The UI first: the gateway serves web/dist, and the browser tests need playwright-core.
    crate::web::build(true)?;
    // Tests that run our services as child processes need the binaries built.
    system::run(cargo().args(["build", "--workspace", "--bins"]))?;
    // The Helm chart and the Dockerfile, and the images the chart runs, built for the image
    // tests (skipped when only some tests are asked for, unless those are the image tests).
    let mut cmd = cargo();
    if extra.is_empty() || extra.iter().any(|a| a.contains("images")) {
        crate::chart::run()?;
        for (name, value) in crate::images::for_tests()? {
            cmd.env(name, value);
        }
    }
    cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    if std::env::var_os("CI").is_some() {
        cmd.args(["--profile", "ci"]);
    }
    cmd.args(extra);
    system::run(&mut cmd)
}
