//! `cargo xtask <command>`: the repository's chores. This file only dispatches; each command
//! is a module.

mod bench;
mod system;
mod test;
mod up;
mod web;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "magnetm3u8 chores: test, bench, up, demo")]
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
        /// Which benchmarks (default: all). Known: download, transcode, datachannel, gateway.
        names: Vec<String>,
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
        Command::Web => web::build(true),
        Command::Up(opts) => up::run(opts, false),
        Command::Demo(opts) => up::run(opts, true),
    }
}
