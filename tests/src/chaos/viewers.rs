//! The chaos run's viewers: each plays ready tasks segment after segment, over P2P (a
//! webrtc-rs peer signaled through the gateway's HTTP signaling, as the player is) or through
//! the gateway's relay (`GET /video/…`), and reconnects whenever a request fails. What counts
//! is the longest wait between two segments received: how long its player would have stalled.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::peer::Client;

/// How long one request may take before the viewer gives up on its connection.
const REQUEST_LIMIT: Duration = Duration::from_secs(5);
/// Between two segments: a player paced by playback, faster than realtime.
const PACE: Duration = Duration::from_millis(250);
/// Segments fetched from one task before the viewer moves to the next ready one.
const SEGMENTS_PER_VISIT: usize = 4;

/// A task that can be watched: its id and the node that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watchable {
    pub id: String,
    pub node: String,
}

/// The ready tasks, kept up to date by the run's monitor.
pub type Shelf = Arc<Mutex<Vec<Watchable>>>;

/// How a viewer gets its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    P2p,
    Relay,
}

/// What one viewer saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// The viewer's number.
    pub n: usize,
    pub name: String,
    pub segments: u64,
    /// Waits between two segments received longer than [`REQUEST_LIMIT`] (the usual one is
    /// [`PACE`] plus a request): when each ended, from the run's start, and how long it was.
    pub gaps: Vec<(Duration, Duration)>,
    /// Visits a P2P viewer made over the relay because P2P failed (as the player does).
    pub fallbacks: u64,
    /// P2P connections not made within [`REQUEST_LIMIT`].
    pub connect_timeouts: u64,
    pub longest_gap: Duration,
    /// When its last segment arrived.
    pub last_segment: Option<Instant>,
    /// The first few errors, for the report.
    pub errors: Vec<String>,
    pub error_count: u64,
}

impl Seen {
    /// A request that failed (counted; the first few kept).
    fn failed(&mut self, e: &anyhow::Error) {
        self.error_count += 1;
        if self.errors.len() < 5 {
            self.errors.push(format!("{e:#}"));
        }
    }

    /// A segment (or playlist) arrived: the wait since the last one, and the viewer's `beat`
    /// (milliseconds from `t0`, read by the run while the viewer plays).
    fn received(&mut self, t0: Instant, beat: &AtomicU64) {
        let now = Instant::now();
        if let Some(last) = self.last_segment {
            let gap = now - last;
            self.longest_gap = self.longest_gap.max(gap);
            if gap > REQUEST_LIMIT {
                self.gaps.push((now - t0, gap));
            }
        }
        self.last_segment = Some(now);
        self.segments += 1;
        beat.store(millis_since(t0), Ordering::Relaxed);
    }
}

/// One viewer, until `stop`; `t0` is the run's start.
pub async fn watch(
    n: usize,
    via: Via,
    gateway: SocketAddr,
    shelf: Shelf,
    stop: CancellationToken,
    t0: Instant,
    beat: Arc<AtomicU64>,
) -> Seen {
    let mut seen = Seen {
        n,
        name: format!("viewer-{n} ({via:?})"),
        ..Seen::default()
    };
    let http = match reqwest::Client::builder().timeout(REQUEST_LIMIT).build() {
        Ok(h) => h,
        Err(e) => {
            seen.failed(&e.into());
            return seen;
        }
    };
    let mut peer: Option<(String, Client)> = None;
    let mut visit = n;
    let mut sessions = 0u32;
    while !stop.is_cancelled() {
        let task = {
            let ready = shelf.lock().map(|s| s.clone()).unwrap_or_default();
            if ready.is_empty() {
                None
            } else {
                Some(ready[visit % ready.len()].clone())
            }
        };
        let Some(task) = task else {
            pause(&stop, PACE).await;
            continue;
        };
        visit += 1;
        if via == Via::P2p && peer.as_ref().is_none_or(|(node, _)| *node != task.node) {
            if let Some((_, old)) = peer.take() {
                old.close().await;
            }
            sessions += 1;
            let session = format!("chaos-{n}-{sessions}");
            // A connection that fails leaves this visit to the relay, as the player plays
            // over the relay until P2P is back.
            let connect = Client::connect_http(gateway, &task.node, &session);
            match tokio::time::timeout(REQUEST_LIMIT, connect).await {
                Ok(Ok(client)) => peer = Some((task.node.clone(), client)),
                Ok(Err(e)) => seen.failed(&e),
                Err(_) => {
                    seen.connect_timeouts += 1;
                    seen.failed(&anyhow::anyhow!("no P2P connection in {REQUEST_LIMIT:?}"));
                }
            }
        }
        // Over P2P while it works; a request P2P fails goes to the relay at once, as the
        // player's does, and the viewer connects anew on its next visit.
        let mut p2p_lost = None;
        let mut fetch = async |file: String| -> anyhow::Result<Vec<u8>> {
            let path = format!("/video/{}/{file}", task.id);
            if via == Via::P2p && peer.is_none() && p2p_lost.is_none() {
                p2p_lost = Some(anyhow::anyhow!("not connected"));
            }
            if let (Some((_, client)), None) = (&peer, &p2p_lost) {
                let got = tokio::time::timeout(REQUEST_LIMIT, client.get(&path, 0, None))
                    .await
                    .map_err(|_| anyhow::anyhow!("{path}: nothing in {REQUEST_LIMIT:?}"))
                    .and_then(|r| r)
                    .and_then(|r| {
                        r.map(|(bytes, _)| bytes)
                            .map_err(|(status, m)| anyhow::anyhow!("{path}: {status} {m}"))
                    });
                match got {
                    Ok(bytes) => return Ok(bytes),
                    Err(e) => p2p_lost = Some(e),
                }
            }
            let r = http.get(format!("http://{gateway}{path}")).send().await?;
            anyhow::ensure!(r.status() == 200, "{path}: {}", r.status());
            Ok(r.bytes().await?.to_vec())
        };
        let outcome: anyhow::Result<()> = async {
            let playlist = fetch("index.m3u8".into()).await?;
            let playlist = String::from_utf8_lossy(&playlist).into_owned();
            let segments: Vec<&str> = playlist
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            anyhow::ensure!(
                !segments.is_empty(),
                "{}: a playlist without segments",
                task.id
            );
            seen.received(t0, &beat);
            // A different place each visit: the start, the middle, a seek.
            let from = visit % segments.len();
            for file in segments.iter().cycle().skip(from).take(SEGMENTS_PER_VISIT) {
                if stop.is_cancelled() {
                    break;
                }
                let bytes = fetch((*file).to_owned()).await?;
                anyhow::ensure!(
                    bytes.first() == Some(&0x47),
                    "{}/{file}: not MPEG-TS ({} bytes)",
                    task.id,
                    bytes.len()
                );
                seen.received(t0, &beat);
                beat.store(millis_since(t0), Ordering::Relaxed);
                pause(&stop, PACE).await;
            }
            Ok(())
        }
        .await;
        if let Some(e) = p2p_lost.take() {
            seen.fallbacks += 1;
            if peer.is_some() {
                seen.failed(&e);
            }
            if let Some((_, old)) = peer.take() {
                old.close().await;
            }
        }
        if let Err(e) = outcome {
            seen.failed(&e);
            // A new connection next time (the streamer, signaling or gateway may be back).
            if let Some((_, old)) = peer.take() {
                old.close().await;
            }
            pause(&stop, PACE).await;
        }
    }
    if let Some((_, client)) = peer.take() {
        client.close().await;
    }
    seen
}

async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Milliseconds from `t0` to now (at least 1: 0 means "never").
pub fn millis_since(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
