//! `cargo xtask sim [part…]`: how the system scales, measured on one machine — `drain`: a
//! node's queue of 200 transcode jobs drained by 1, 2 and 4 transcoder replicas and by the
//! autoscaler; `gateway`: `/api/tasks` and `/api/events` with 10 nodes and 1,000 tasks behind
//! one gateway and behind two; `signaling`: 100 sessions at once. Ends with one line
//! `sim: drain_s_r1=… drain_s_r2=… drain_s_r4=… drain_s_auto=… tasks_p99_ms_10nodes=… …
//! events_clients=… … signaling_sessions=… …` (a part not run shows 0). What the figures mean,
//! and what saturates first: `docs/scaling.md`.

mod drain;
mod gateway;
mod signaling;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        magnet_tests::init_logging();
    }
    let parts: Vec<String> = std::env::args().skip(1).collect();
    let run = |p: &str| parts.is_empty() || parts.iter().any(|a| a == p);
    for p in &parts {
        anyhow::ensure!(
            ["drain", "gateway", "signaling"].contains(&p.as_str()),
            "unknown part {p:?}; known: drain, gateway, signaling"
        );
    }
    let d = if run("drain") {
        let d = drain::drains().await?;
        eprintln!(
            "sim: the autoscaler asked for (seconds, replicas): {:?}",
            d.auto_steps
        );
        Some(d)
    } else {
        None
    };
    let g = if run("gateway") {
        Some(gateway::gateways().await?)
    } else {
        None
    };
    let s = if run("signaling") {
        let s = signaling::sessions(100).await?;
        eprintln!(
            "sim: {} signaling sessions at once: {} with their data channel and segment, offer to segment p50 {:.0} ms, p99 {:.0} ms",
            s.asked, s.ok, s.p50_ms, s.p99_ms
        );
        Some(s)
    } else {
        None
    };
    let drain_s = |n: u32| {
        d.iter()
            .flat_map(|d| &d.fixed)
            .find(|(k, _)| *k == n)
            .map_or(0.0, |(_, s)| *s)
    };
    let tasks_p99 = |n: usize| {
        g.iter()
            .flat_map(|g| &g.tasks)
            .find(|(k, _)| *k == n)
            .map_or(0.0, |(_, l)| l.p99_ms)
    };
    let events = |n: usize| {
        g.iter()
            .flat_map(|g| &g.events)
            .find(|(k, _, _)| *k == n)
            .map_or(0, |(_, c, _)| *c)
    };
    println!(
        "sim: drain_s_r1={:.1} drain_s_r2={:.1} drain_s_r4={:.1} drain_s_auto={:.1} tasks_p99_ms_10nodes={:.1} tasks_p99_ms_10nodes_2gw={:.1} events_clients={} events_clients_2gw={} signaling_sessions={} signaling_p99_ms={:.0}",
        drain_s(1),
        drain_s(2),
        drain_s(4),
        d.as_ref().map_or(0.0, |d| d.auto_s),
        tasks_p99(1),
        tasks_p99(2),
        events(1),
        events(2),
        s.as_ref().map_or(0, |s| s.ok),
        s.as_ref().map_or(0.0, |s| s.p99_ms),
    );
    Ok(())
}
