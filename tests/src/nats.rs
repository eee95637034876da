//! A real `nats-server -js` on a random loopback port with its store in a temp dir; killed on
//! drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct NatsServer {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts the server and waits until it accepts clients.
    pub fn start() -> anyhow::Result<Self> {
        let store = tempfile::tempdir()?;
        let mut child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                "-1",
                "--http_port",
                "0",
                "-js",
                "-sd",
            ])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run nats-server: is it installed? (`cargo xtask test` installs it)")?;
        let stderr = child.stderr.take().context("nats-server stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut port = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                    port = rest
                        .trim()
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse::<u16>().ok());
                }
                if line.contains("Server is ready") {
                    let _ = tx.send(port);
                }
            }
        });
        let started = Instant::now();
        let port = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(port)) => break port,
                Ok(None) => bail!("nats-server started but did not say its port"),
                Err(_) if started.elapsed() > Duration::from_secs(20) => {
                    bail!("nats-server did not start in 20 s")
                }
                Err(_) => {
                    if let Some(status) = child.try_wait()? {
                        bail!("nats-server exited with {status}");
                    }
                }
            }
        };
        Ok(Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        Ok(async_nats::connect(&self.url).await?)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts a node record for `node` in the registry, so that signaling routes offers to its
/// streamer (the benchmarks run no downloader, which would put it there).
pub async fn register_node(nats: &NatsServer, node: &str) -> anyhow::Result<()> {
    use prost::Message as _;
    let js = async_nats::jetstream::new(nats.client().await?);
    let kv =
        magnet_runtime::nats::nodes_bucket(&js, std::time::Duration::from_secs(600), 1).await?;
    let record = magnet_proto::v1::NodeRecord {
        id: node.into(),
        ..Default::default()
    };
    kv.put(node, record.encode_to_vec().into()).await?;
    Ok(())
}
