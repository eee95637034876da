//! magnet-streamer binary: parse flags, load config, init telemetry, run until SIGTERM.

use clap::Parser;
use magnet_runtime::config::CommonArgs;
use magnet_runtime::{Settings, shutdown, telemetry};

/// A worker node's streamer: HLS files over WebRTC data channels and gRPC.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Address of the gRPC FileService.
    #[arg(long)]
    grpc_listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = Settings::load("streamer", &args.common)?;
    if let Some(addr) = args.grpc_listen {
        settings.streamer.grpc_listen = addr;
    }
    // The flag is checked too (an open listener needs internal.token).
    settings.validate()?;
    if args.common.check_config {
        println!("configuration ok");
        return Ok(());
    }
    let _telemetry = telemetry::init(env!("CARGO_PKG_NAME"), &settings.node.id)?;
    let running = magnet_streamer::start(settings, shutdown::on_signal()).await?;
    running.wait().await?;
    Ok(())
}
