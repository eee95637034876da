//! A real TURN server: Debian's coturn (`turnserver`) on loopback, checking credentials with
//! the TURN REST scheme (`use-auth-secret`) and relaying to loopback peers only. It listens and
//! relays on 127.0.0.1 alone and contacts nobody by itself.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Turn {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Turn {
    /// Starts coturn with `secret` on a free loopback port; returns once it listens.
    pub fn start(secret: &str) -> anyhow::Result<Self> {
        let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        Self::start_on(secret, port)
    }

    /// [`Turn::start`] on `port` (e.g. another TURN server's, after it stopped).
    pub fn start_on(secret: &str, port: u16) -> anyhow::Result<Self> {
        // Relay ports: a window of 40 above a free port (ports are handed out upwards).
        let relay = UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
            .clamp(1024, 65000);
        let dir = tempfile::tempdir()?;
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip",
                "127.0.0.1",
                "--relay-ip",
                "127.0.0.1",
            ])
            .args(["--listening-port", &port.to_string()])
            .args(["--use-auth-secret", "--static-auth-secret", secret])
            .args(["--realm", "magnetm3u8", "--no-tls", "--no-dtls", "--no-cli"])
            .args([
                "--allow-loopback-peers",
                "--simple-log",
                "--log-file",
                "stdout",
            ])
            .args([
                "--min-port",
                &relay.to_string(),
                "--max-port",
                &(relay + 40).to_string(),
            ])
            .arg("--pidfile")
            .arg(dir.path().join("turn.pid"))
            .arg("--db")
            .arg(dir.path().join("turndb"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run turnserver (Debian's coturn; `cargo xtask test` installs it)")?;
        let mut turn = Self {
            child,
            port,
            _dir: dir,
        };
        // Listening: the port can no longer be bound.
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if let Some(status) = turn.child.try_wait()? {
                bail!("turnserver exited: {status}");
            }
            if Instant::now() > deadline {
                bail!("turnserver does not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(turn)
    }

    /// `turn:127.0.0.1:<port>?transport=udp`
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
