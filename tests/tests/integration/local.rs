//! The smoke test of the local stack: `cargo xtask up` (its built binary, with the binaries
//! already built) in the background, everything healthy, the generated admin logs in, a
//! seeded magnet reaches `ready`, Ctrl-C stops everything with exit code 0 and no process left.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use magnet_tests::seeder::Seeder;
use magnet_tests::services::binary;
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn xtask_up_runs_a_task_to_ready_and_stops_cleanly() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let repo = magnet_tests::stack::web_dir()
        .parent()
        .map(std::path::Path::to_owned)
        .unwrap_or_default();
    let torrent_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let (mut up, rx) = start_up(dir.path(), &repo, torrent_port)?;
    // Its report: the admin's password, a line per process, the URL.
    let (url, lines) = report(&rx)?;
    let password = lines
        .iter()
        .find_map(|l| l.strip_prefix("Admin account: user \"admin\", password \""))
        .and_then(|r| r.split('"').next())
        .ok_or_else(|| anyhow::anyhow!("no admin password printed: {lines:?}"))?
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("admin-password"))?.trim(),
        password
    );
    let pids: Vec<i32> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("ok "))
        .filter_map(|l| l.rsplit("pid ").next()?.trim().parse().ok())
        .collect();
    assert_eq!(
        pids.len(),
        6,
        "nats, signaling, streamer, downloader, transcoder, gateway: {lines:?}"
    );

    // Accounts are on: nothing but the public reads without the admin's session.
    let http = reqwest::Client::new();
    let r = http.get(format!("{url}/api/events")).send().await?;
    assert_eq!(r.status(), 401);
    let r = http.get(format!("{url}/api/nodes")).send().await?;
    assert_eq!(r.status(), 200, "the original's public reads");
    let (login, token) = login_admin(&http, &url, &password).await?;
    assert_eq!(login["data"]["role"], "admin", "{login}");
    let get = |path: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let v: Value = http
                .get(path)
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some(v)
        }
    };
    eventually(Duration::from_secs(15), "node online", || async {
        let v = get(format!("{url}/api/status")).await?;
        (v["data"]["online_nodes"] == 1).then_some(())
    })
    .await?;

    let src = tempfile::tempdir()?;
    let video = src.path().join("smoke.mp4");
    generate(&video, 4, Codec::H264Aac)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&video).await?;
    let sub: Value = http
        .post(format!("{url}/api/tasks/submit"))
        .bearer_auth(&token)
        .json(&json!({ "magnet_url": seeded.magnet }))
        .send()
        .await?
        .json()
        .await?;
    let id = sub["data"]["id"].as_str().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "{sub}");
    eventually(Duration::from_secs(120), "task ready", || async {
        let v = get(format!("{url}/api/tasks/{id}")).await?;
        assert_ne!(v["data"]["status"], "error", "{v}");
        (v["data"]["status"] == "ready").then_some(())
    })
    .await?;

    // Ctrl-C: everything stops, exit code 0, no process left behind.
    let mut up = up.0.take().ok_or_else(|| anyhow::anyhow!("no child"))?;
    interrupt(&up)?;
    let status = tokio::task::spawn_blocking(move || up.wait()).await??;
    assert!(status.success(), "xtask up exited with {status}");
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l == "stopped cleanly"), "{rest:?}");
    for pid in pids {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        assert!(!alive, "process {pid} outlived xtask up");
    }

    // A second `up` on the same data folder: same admin (not printed again), the task is
    // still there and ready.
    let (mut again, rx) = start_up(dir.path(), &repo, torrent_port)?;
    let (url, lines) = report(&rx)?;
    assert!(!lines.iter().any(|l| l.contains("password")), "{lines:?}");
    let (_, token) = login_admin(&http, &url, &password).await?;
    let task: Value = eventually(Duration::from_secs(15), "task listed again", || async {
        let v: Value = http
            .get(format!("{url}/api/tasks/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["success"] == true).then_some(v)
    })
    .await?;
    assert_eq!(task["data"]["status"], "ready", "{task}");
    let mut child = again.0.take().ok_or_else(|| anyhow::anyhow!("no child"))?;
    interrupt(&child)?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    assert!(status.success(), "second xtask up exited with {status}");
    Ok(())
}

/// Logs in as the stack's admin: the answer and its bearer token.
async fn login_admin(
    http: &reqwest::Client,
    url: &str,
    password: &str,
) -> anyhow::Result<(Value, String)> {
    let login: Value = http
        .post(format!("{url}/api/auth/login"))
        .json(&json!({ "username": "admin", "password": password }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().unwrap_or_default().to_owned();
    Ok((login, token))
}

/// What `xtask up` printed up to its URL, and the URL.
fn report(rx: &std::sync::mpsc::Receiver<String>) -> anyhow::Result<(String, Vec<String>)> {
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| anyhow::anyhow!("xtask up did not say its URL: {lines:?}"))?;
        if let Some(rest) = line.strip_prefix("Open ") {
            let url = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            return Ok((url, lines));
        }
        lines.push(line);
    }
}

/// Starts `xtask up` on `data` and returns it with its stdout lines.
fn start_up(
    data: &std::path::Path,
    repo: &std::path::Path,
    torrent_port: u16,
) -> anyhow::Result<(StopOnDrop, std::sync::mpsc::Receiver<String>)> {
    let child = Command::new(binary("xtask")?)
        .args(["up", "--debug", "--no-build", "--port", "0"])
        .arg("--torrent-port")
        .arg(torrent_port.to_string())
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(repo.join("magnetm3u8.toml"))
        // Nothing leaves loopback.
        .env("MAGNET__TORRENT__DHT", "false")
        .env("MAGNET__TORRENT__TRACKERS", "false")
        .env("MAGNET__TORRENT__LISTEN_HOST", "127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // If the test fails half-way, Ctrl-C still reaches xtask, which stops its stack (whose
    // processes are in their own process groups, out of the test runner's reach).
    let mut up = StopOnDrop(Some(child));
    let stdout = up
        .child()
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[xtask up] {line}");
            let _ = tx.send(line);
        }
    });
    Ok((up, rx))
}

fn interrupt(child: &std::process::Child) -> nix::Result<()> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
}

struct StopOnDrop(Option<std::process::Child>);

impl StopOnDrop {
    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("child present until taken")
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = interrupt(&c);
            let _ = c.wait();
        }
    }
}
