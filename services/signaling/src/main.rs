//! magnet-signaling binary: parse flags, load config, init telemetry, run until SIGTERM.

use clap::Parser;
use magnet_runtime::config::CommonArgs;
use magnet_runtime::{Settings, shutdown, telemetry};

/// WebRTC signaling between browsers (via the gateway) and streamers.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Address of the gRPC Signaling service.
    #[arg(long)]
    grpc_listen: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = Settings::load("signaling", &args.common)?;
    if let Some(addr) = args.grpc_listen {
        settings.signaling.grpc_listen = addr;
    }
    // The flag is checked too (an open listener needs internal.token).
    settings.validate()?;
    if args.common.check_config {
        println!("configuration ok");
        return Ok(());
    }
    let _telemetry = telemetry::init(env!("CARGO_PKG_NAME"), &settings.node.id)?;
    let running = magnet_signaling::start(settings, shutdown::on_signal()).await?;
    running.wait().await?;
    Ok(())
}
