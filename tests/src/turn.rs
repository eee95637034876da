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

/// A stand-in for Cloudflare's TURN credentials API (which cannot be reached from here), on
/// loopback: `POST /v1/turn/keys/<key>/credentials/generate-ice-servers` with the key's
/// bearer token answers 201 and a STUN-less server list, as the real API does, whose one TURN
/// server is a local coturn and whose credential is minted from coturn's secret (as
/// Cloudflare's are from theirs). Other keys or tokens get 401; [`CloudflareApi::refuse`]
/// makes every call fail with 503.
pub struct CloudflareApi {
    pub url: String,
    state: std::sync::Arc<CfState>,
    _server: tokio::task::JoinHandle<()>,
}

struct CfState {
    key: String,
    token: String,
    secret: String,
    turn_url: String,
    calls: std::sync::atomic::AtomicUsize,
    refusing: std::sync::atomic::AtomicBool,
}

impl CloudflareApi {
    /// Serves credentials for `key`/`token` that `turn` (started with `secret`) accepts.
    pub async fn start(key: &str, token: &str, secret: &str, turn: &Turn) -> anyhow::Result<Self> {
        use axum::routing::post;
        let state = std::sync::Arc::new(CfState {
            key: key.into(),
            token: token.into(),
            secret: secret.into(),
            turn_url: turn.url(),
            calls: Default::default(),
            refusing: Default::default(),
        });
        let app = axum::Router::new()
            .route(
                "/v1/turn/keys/{key}/credentials/generate-ice-servers",
                post(generate),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v1", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            state,
            _server: server,
        })
    }

    /// Calls answered or refused so far.
    pub fn calls(&self) -> usize {
        self.state.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// From now on every call fails (an outage).
    pub fn refuse(&self) {
        self.state
            .refusing
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CloudflareApi {
    fn drop(&mut self) {
        self._server.abort();
    }
}

async fn generate(
    axum::extract::State(s): axum::extract::State<std::sync::Arc<CfState>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    use axum::http::StatusCode;
    s.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let bearer = format!("Bearer {}", s.token);
    let authorized = key == s.key
        && headers
            .get(axum::http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == bearer.as_bytes());
    if !authorized {
        let errors = serde_json::json!({ "success": false, "errors": [{ "code": 10000, "message": "Authentication error" }] });
        return (StatusCode::UNAUTHORIZED, axum::Json(errors));
    }
    if s.refusing.load(std::sync::atomic::Ordering::SeqCst) {
        let errors = serde_json::json!({ "success": false, "errors": [{ "code": 10001, "message": "service unavailable" }] });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(errors));
    }
    let ttl = body["ttl"].as_u64().unwrap_or(86_400);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let c = magnet_core::turn::credential(&s.secret, "cloudflare", now, ttl);
    let answer = serde_json::json!({ "iceServers": [
        { "urls": [s.turn_url], "username": c.username, "credential": c.password },
    ]});
    (StatusCode::CREATED, axum::Json(answer))
}
