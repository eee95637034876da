//! A real BitTorrent tracker: Debian's `opentracker` on a free loopback port (HTTP and UDP),
//! serving only the info hashes it is told to (its whitelist, reloaded on SIGHUP); killed on
//! drop. It answers announces and never connects anywhere itself.

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub struct Tracker {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// A port free for both TCP and UDP on loopback (opentracker takes no port 0).
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both TCP and UDP")
}

impl Tracker {
    /// Starts the tracker and waits until it answers.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // It drops to `nobody` and chroots into `dir`: both must be readable by it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let whitelist = dir.path().join("whitelist");
        std::fs::write(&whitelist, "")?;
        std::fs::set_permissions(&whitelist, std::fs::Permissions::from_mode(0o644))?;
        let port = free_port()?;
        let child = Command::new("opentracker")
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-P",
                &port.to_string(),
            ])
            .arg("-d")
            .arg(dir.path())
            .args(["-u", "nobody", "-w", "/whitelist"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run opentracker: is it installed? (`cargo xtask test` installs it)")?;
        let mut tracker = Self { child, port, dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = tracker.child.try_wait()? {
                bail!("opentracker exited with {status}");
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("opentracker did not listen in 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(tracker)
    }

    /// `http://127.0.0.1:<port>/announce`
    pub fn announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// Serves `info_hash` (40 hex characters) from now on.
    pub fn allow(&self, info_hash: &str) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("whitelist"))?;
        writeln!(f, "{info_hash}")?;
        let pid = i32::try_from(self.child.id())?;
        kill(Pid::from_raw(pid), Signal::SIGHUP)?;
        // The reload is asynchronous; a moment is plenty.
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
