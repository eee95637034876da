//! `cargo xtask <command>`: the repository's chores. This file only dispatches; each command
//! is a module.

mod bench;
mod chaos;
mod chart;
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
    /// Prints the commands that build and push the container images.
    Images {
        /// Registry to tag for.
        #[arg(long, default_value = "ghcr.io/magnetm3u8")]
        registry: String,
        /// Image tag (default: the workspace version).
        #[arg(long)]
        tag: Option<String>,
    },
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
        Command::Images { registry, tag } => {
            images(
                &registry,
                tag.as_deref().unwrap_or(env!("CARGO_PKG_VERSION")),
            );
            Ok(())
        }
        Command::Up(opts) => up::run(opts, false),
        Command::Demo(opts) => up::run(opts, true),
    }
}

/// The docker commands for the five images (one Dockerfile, a target per service).
fn images(registry: &str, tag: &str) {
    for service in [
        "gateway",
        "signaling",
        "downloader",
        "transcoder",
        "streamer",
    ] {
        let image = format!("{registry}/magnetm3u8-{service}:{tag}");
        println!("docker build -f deploy/Dockerfile --target {service} -t {image} .");
        println!("docker push {image}");
    }
}
