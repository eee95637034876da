//! NATS that survives a server (issue 17): the whole system on a clustered JetStream of three
//! nats-server processes (streams and buckets in 3 replicas). The JetStream meta leader is
//! killed in the middle of a run of 10 tasks: every task still reaches `ready`, and every
//! service that was connected to the dead server is connected to a survivor, ready, without a
//! restart. And a single nats-server killed and started again on its store: a task submitted
//! while it is down reaches `ready`, and the services carry on without a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use magnet_tests::seeder::Seeder;
use magnet_tests::video::{Codec, generate};
use magnet_tests::{init_logging, stack, submit_magnet, submit_retrying, task_reaches};
use serde_json::Value;

const TASKS: usize = 10;

/// A clip of `seconds` per name, seeded; their magnets.
async fn clips(
    seeder: &Seeder,
    dir: &std::path::Path,
    clips: &[(String, u32)],
) -> anyhow::Result<Vec<String>> {
    let mut magnets = Vec::new();
    for (name, seconds) in clips {
        let folder = dir.join("src").join(name);
        std::fs::create_dir_all(&folder)?;
        generate(&folder.join("clip.mp4"), *seconds, Codec::H264Aac)?;
        magnets.push(seeder.seed(&folder).await?.magnet);
    }
    Ok(magnets)
}

async fn monitor(http: &reqwest::Client, addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    Ok(http
        .get(format!("http://{addr}{path}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Client connections by name (`magnet-gateway`, …) on the servers at `monitors`.
async fn connections(
    http: &reqwest::Client,
    monitors: &[SocketAddr],
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut names = BTreeMap::new();
    for m in monitors {
        let connz = monitor(http, *m, "/connz?limit=1000").await?;
        for c in connz["connections"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default();
            if name.starts_with("magnet-") {
                *names.entry(name.to_owned()).or_default() += 1;
            }
        }
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_system_survives_losing_the_jetstream_leader() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let seeder = Seeder::with_upload_limit(Some(400_000)).await?;
    let names: Vec<(String, u32)> = (0..TASKS as u32)
        .map(|i| (format!("Clip {i}"), 3 + i % 3))
        .collect();
    let magnets = clips(&seeder, dir.path(), &names).await?;
    let mut stack = stack::start_clustered(&dir.path().join("stack"), 3, 1, |_| {})?;
    let base = stack.gateway_url();
    let http = reqwest::Client::new();
    let monitors: BTreeMap<String, SocketAddr> = stack.nats_monitors.iter().cloned().collect();
    assert_eq!(monitors.len(), 3);
    let all: Vec<SocketAddr> = monitors.values().copied().collect();
    let before = connections(&http, &all).await?;
    assert!(before.len() >= 5, "every service connected: {before:?}");

    // The streams really are replicated.
    let any = all[0];
    let jsz = monitor(&http, any, "/jsz?streams=true").await?;
    assert_eq!(jsz["meta_cluster"]["cluster_size"], 3, "{jsz}");

    let mut ids = Vec::new();
    for magnet in &magnets[..TASKS / 2] {
        ids.push(submit_magnet(&http, &base, magnet).await?);
    }
    // Mid-run: the first task is ready (its job and events went through JetStream), the
    // others are somewhere on their way.
    task_reaches(&http, &base, &ids[0], "ready", Duration::from_secs(120)).await?;
    let leader = monitor(&http, any, "/jsz").await?["meta_cluster"]["leader"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let dead = *monitors
        .get(&leader)
        .ok_or_else(|| anyhow::anyhow!("no leader named {leader:?}"))?;
    stack.kill9(&leader)?;
    for magnet in &magnets[TASKS / 2..] {
        // The gateway may be failing over right now: it answers once it has.
        ids.push(submit_retrying(&http, &base, None, magnet, Duration::from_secs(10)).await?);
    }
    for id in &ids {
        if let Err(e) = task_reaches(&http, &base, id, "ready", Duration::from_secs(120)).await {
            let task = http.get(format!("{base}/api/tasks/{id}")).send().await?;
            let (status, task) = (task.status(), task.text().await?);
            let nodes = http
                .get(format!("{base}/api/nodes"))
                .send()
                .await?
                .text()
                .await?;
            anyhow::bail!("{e}: the gateway says {status} {task}; nodes {nodes}");
        }
    }

    // Every service that was on the dead server is on a survivor now, and none restarted.
    let survivors: Vec<SocketAddr> = all.iter().copied().filter(|m| *m != dead).collect();
    let after = connections(&http, &survivors).await?;
    assert_eq!(
        after, before,
        "connections before the kill and on the survivors after"
    );
    for admin in stack.admins() {
        assert_eq!(magnet_stack::http_status(admin, "/readyz")?, 200, "{admin}");
    }
    stack.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_server_killed_and_started_again_loses_nothing() -> anyhow::Result<()> {
    init_logging();
    let dir = tempfile::tempdir()?;
    let seeder = Seeder::start().await?;
    let names = [("Before".to_owned(), 3), ("During".to_owned(), 3)];
    let magnets = clips(&seeder, dir.path(), &names).await?;
    let mut stack = stack::start(&dir.path().join("stack"), 1, |_| {})?;
    let base = stack.gateway_url();
    let http = reqwest::Client::new();
    let before = submit_magnet(&http, &base, &magnets[0]).await?;
    task_reaches(&http, &base, &before, "ready", Duration::from_secs(120)).await?;

    stack.kill9("nats")?;
    // Submitted while NATS is down: the downloader takes it; its job waits for JetStream.
    let during = submit_magnet(&http, &base, &magnets[1]).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.restart("nats")?;

    task_reaches(&http, &base, &during, "ready", Duration::from_secs(120)).await?;
    task_reaches(&http, &base, &before, "ready", Duration::from_secs(5)).await?;
    for admin in stack.admins() {
        assert_eq!(magnet_stack::http_status(admin, "/readyz")?, 200, "{admin}");
    }
    // The node is listed again (its registry record and the gateway's watch came back).
    let nodes: Value = http
        .get(format!("{base}/api/nodes"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(nodes["data"][0]["id"], "node-1", "{nodes}");
    stack.stop();
    Ok(())
}
