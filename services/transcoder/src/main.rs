//! magnet-transcoder binary: parse flags, load config, init telemetry, run until SIGTERM.

use clap::Parser;
use magnet_runtime::config::CommonArgs;
use magnet_runtime::{Settings, shutdown, telemetry};

/// A transcoder replica of a worker node: job queue to HLS with ffmpeg.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Name of this replica in events and logs.
    #[arg(long)]
    replica_id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = Settings::load("transcoder", &args.common)?;
    if args.common.check_config {
        println!("configuration ok");
        return Ok(());
    }
    if args.replica_id.is_some() {
        settings.transcoder.replica_id = args.replica_id;
    }
    let _telemetry = telemetry::init(env!("CARGO_PKG_NAME"), &settings.node.id)?;
    let running = magnet_transcoder::start(settings, shutdown::on_signal()).await?;
    running.wait().await?;
    Ok(())
}
