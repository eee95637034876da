//! `sim` (b): the gateway in front of 10 nodes holding 1,000 tasks (each node's store filled
//! before it starts, as a node that has been running a while), with one gateway and with two:
//! `GET /api/tasks` under 50 keep-alive connections (the gateway asks every node and merges
//! the lists), and live events — how many `/api/events` clients get each of a burst of
//! progress messages, published on NATS as a node publishes them, within a second.

use std::time::{Duration, Instant};

use futures::StreamExt;
use magnet_core::TaskId;
use magnet_downloader::store::{NewTask, ReadyOutput, Store};
use magnet_proto::v1 as pb;
use magnet_runtime::Settings;
use magnet_tests::load::{self, Load};
use magnet_tests::nats::NatsServer;
use magnet_tests::services::{InProcess, offline_node};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

pub const NODES: usize = 10;
pub const TASKS_PER_NODE: usize = 100;
/// Event clients tried, growing, until one count misses the second.
const CLIENTS: &[usize] = &[100, 500, 1000, 2000, 4000];
/// Progress messages of one burst.
const BURST: u64 = 5;

/// What the gateway part measured, for 1 and 2 gateways.
pub struct Gateways {
    pub tasks: Vec<(usize, Load)>,
    /// Gateways, the most event clients served within a second, and the p99 delivery then.
    pub events: Vec<(usize, usize, f64)>,
}

pub async fn gateways() -> anyhow::Result<Gateways> {
    let nats = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let mut nodes = Vec::new();
    for n in 1..=NODES {
        let settings = offline_node(
            &dir.path().join(format!("node-{n}")),
            nats.url(),
            &format!("node-{n}"),
        );
        prefill(&settings, n).await?;
        nodes.push(InProcess::start(settings).await?);
    }
    let shutdown = CancellationToken::new();
    let mut bases = Vec::new();
    for g in 1..=2 {
        let mut s = offline_node(
            &dir.path().join(format!("gateway-{g}")),
            nats.url(),
            "gateway",
        );
        s.gateway.listen = ([127, 0, 0, 1], 0).into();
        s.gateway.admin_listen = ([127, 0, 0, 1], 0).into();
        s.gateway.max_streams_per_user = 100_000;
        let running = magnet_gateway::start(s, shutdown.clone()).await?;
        bases.push(format!("http://{}", running.addr));
    }
    for base in &bases {
        listed_all(base).await?;
    }
    let body = reqwest::get(format!("{}/api/tasks", bases[0]))
        .await?
        .bytes()
        .await?;
    eprintln!(
        "sim: one /api/tasks answer with {} tasks is {} kB of JSON",
        NODES * TASKS_PER_NODE,
        body.len() / 1000
    );

    let mut tasks = Vec::new();
    let mut events = Vec::new();
    for g in [1, 2] {
        let urls: Vec<String> = bases[..g]
            .iter()
            .map(|b| format!("{b}/api/tasks"))
            .collect();
        let l = load::get(&urls, 50, 5).await?;
        eprintln!(
            "sim: /api/tasks ({} tasks on {NODES} nodes), {g} gateway(s): {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms",
            NODES * TASKS_PER_NODE,
            l.rps,
            l.p50_ms,
            l.p99_ms
        );
        tasks.push((g, l));
        let mut best = (0, 0.0);
        for &clients in CLIENTS {
            let (delivered, p99) = burst(&nats, &bases[..g], clients).await?;
            eprintln!(
                "sim: /api/events, {g} gateway(s), {clients} clients: {:.1} % of events within 1 s, p99 {p99:.0} ms",
                delivered * 100.0
            );
            if delivered < 1.0 {
                break;
            }
            best = (clients, p99);
        }
        events.push((g, best.0, best.1));
    }
    shutdown.cancel();
    for n in nodes {
        n.stop().await?;
    }
    Ok(Gateways { tasks, events })
}

/// Fills node `n`'s store with [`TASKS_PER_NODE`] finished tasks.
async fn prefill(settings: &Settings, n: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(settings.storage.database_dir())?;
    let store = Store::open(&settings.storage.database_file()).await?;
    for i in 0..TASKS_PER_NODE {
        let number = 1_000_000 + n * 10_000 + i;
        let id = TaskId::parse(&format!("task_{number}"))?;
        let hash = format!("{number:040x}");
        let name = format!("Sim {n} {i}");
        store
            .insert(&NewTask {
                id: id.clone(),
                magnet_url: format!("magnet:?xt=urn:btih:{hash}&dn=Sim+{n}+{i}"),
                node_id: settings.node.id.clone(),
                info_hash: hash,
                torrent_name: name.clone(),
                peer_hints: Vec::new(),
                owner: "local".into(),
            })
            .await?
            .map_err(|_| anyhow::anyhow!("{id} twice"))?;
        let files = vec![
            ("movie.mkv".to_owned(), 700_000_000),
            ("movie.en.srt".to_owned(), 40_000),
        ];
        store.set_metadata(&id, &name, &files).await?;
        store.mark_downloaded(&id, 700_040_000).await?;
        store
            .mark_ready(
                &id,
                &ReadyOutput {
                    m3u8_path: format!("m3u8/{id}/index.m3u8"),
                    segments: (0..300).map(|k| format!("index{k}.ts")).collect(),
                    srts: vec!["movie.en.vtt".into()],
                    transcode_path: "remux".into(),
                },
            )
            .await?;
    }
    store.close().await;
    Ok(())
}

/// Waits until the gateway at `base` lists every task.
async fn listed_all(base: &str) -> anyhow::Result<()> {
    let every = NODES * TASKS_PER_NODE;
    magnet_tests::json_until(
        &format!("{base}/api/tasks"),
        Duration::from_secs(60),
        "every task listed",
        |v| {
            v["data"]["tasks"]
                .as_array()
                .is_some_and(|t| t.len() == every)
        },
    )
    .await?;
    Ok(())
}

/// `clients` event streams spread over the gateways at `bases`, then a burst of progress
/// messages: the share of (client, message) pairs delivered within a second, and the p99
/// delivery time in milliseconds.
async fn burst(nats: &NatsServer, bases: &[String], clients: usize) -> anyhow::Result<(f64, f64)> {
    let stop = CancellationToken::new();
    let published: std::sync::Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        std::sync::Arc::new(std::sync::Mutex::new(vec![None; BURST as usize]));
    let (opened, mut open) = tokio::sync::mpsc::unbounded_channel();
    let mut readers = tokio::task::JoinSet::new();
    for c in 0..clients {
        let url = format!("{}/api/events", bases[c % bases.len()]);
        let (stop, published, opened) = (stop.clone(), published.clone(), opened.clone());
        readers.spawn(async move {
            let mut delays = Vec::new();
            let Ok(r) = reqwest::get(&url).await else {
                let _ = opened.send(false);
                return delays;
            };
            let _ = opened.send(r.status().is_success());
            let mut events = Box::pin(magnet_tests::sse_json(r));
            loop {
                let e = tokio::select! {
                    e = events.next() => e,
                    _ = stop.cancelled() => break,
                };
                let Some(Ok(e)) = e else { break };
                if e["id"] != "task_999999999" {
                    continue;
                }
                let k = e["downloaded"].as_u64().unwrap_or(u64::MAX);
                let sent = published
                    .lock()
                    .ok()
                    .and_then(|p| p.get(k as usize).copied().flatten());
                if let Some(sent) = sent {
                    delays.push(sent.elapsed());
                }
            }
            delays
        });
    }
    drop(opened);
    let mut ok = 0;
    for _ in 0..clients {
        if open.recv().await == Some(true) {
            ok += 1;
        }
    }
    anyhow::ensure!(
        ok == clients,
        "{} of {clients} event streams refused",
        clients - ok
    );
    let client = nats.client().await?;
    for k in 0..BURST {
        let p = pb::TaskProgress {
            task_id: "task_999999999".into(),
            node_id: "node-1".into(),
            status: pb::TaskStatus::Downloading.into(),
            downloaded: k,
            ..Default::default()
        };
        if let Ok(mut slots) = published.lock() {
            slots[k as usize] = Some(Instant::now());
        }
        client
            .publish(
                magnet_runtime::subjects::task_progress("node-1", "task_999999999"),
                p.encode_to_vec().into(),
            )
            .await?;
        client.flush().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut delays = Vec::new();
    while let Some(d) = readers.join_next().await {
        delays.extend(d?);
    }
    let expected = clients as f64 * BURST as f64;
    let within = delays
        .iter()
        .filter(|d| **d <= Duration::from_secs(1))
        .count() as f64;
    let p99 = load::percentile_ms(&delays, 99).unwrap_or(f64::INFINITY);
    Ok((within / expected, p99))
}
