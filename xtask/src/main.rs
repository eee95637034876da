//! `cargo xtask <command>`: the repository's chores. This file only dispatches; each command
//! is a module.

mod bench;
mod chaos;
mod chart;
mod images;
mod sim;
mod system;
mod test;
mod up;
mod web;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "magnetm3u8 chores: test, bench, chaos, sim, up, demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Installs what is missing (nats-server, ffmpeg, node, chromium, cargo-nextest), builds the
    /// web UI and the workspace, runs every test.
    Test {
        /// Extra arguments for `cargo nextest run` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Runs benchmarks in release mode; each prints one `bench <name>: …` line.
    Bench {
        /// Which benchmarks (default: all). Known: download, transcode, datachannel, gateway, progressive,
        /// seek, viewers, browser.
        names: Vec<String>,
    },
    /// Kills and restarts every kind of process of a 3-node system under load, then checks
    /// that nothing was lost; ends with one `chaos: …` line.
    Chaos {
        /// How long processes are killed for.
        #[arg(long, default_value_t = 180)]
        seconds: u64,
    },
    /// Measures how the system scales on this machine (queue drain by replicas and the
    /// autoscaler, the gateway with 10 nodes, signaling sessions); ends with one `sim: …` line.
    Sim {
        /// Which parts (default: all). Known: drain, gateway, signaling.
        parts: Vec<String>,
    },
    /// Checks the Helm chart (lint, render, validate, assertions) and lints the Dockerfile.
    Chart,
    /// Builds the five container images with buildah (`--build`, `--push`), or prints the
    /// docker commands that do.
    Images(images::Options),
    /// Builds the web UI (`web/` with npm) into `web/dist`, which the gateway serves.
    Web,
    /// Runs the system locally: nats-server and the services of one worker node.
    Up(up::Options),
    /// `up`, plus a generated sample video seeded locally and submitted.
    Demo(up::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test { args } => test::run(&args),
        Command::Bench { names } => bench::run(&names),
        Command::Chaos { seconds } => chaos::run(seconds),
        Command::Sim { parts } => sim::run(&parts),
        Command::Web => web::build(true),
        Command::Chart => chart::run(),
        Command::Images(opts) => images::run(&opts),
        Command::Up(opts) => up::run(opts, false),
        Command::Demo(opts) => up::run(opts, true),
    }
}
