//! HTTP load for benchmarks and the scaling sim: keep-alive connections, each a client of its
//! own, sending GETs back to back for a while; throughput and latency percentiles.

use std::time::{Duration, Instant};

/// What a load run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `connections` connections GET for `seconds`, connection `i` asking `urls[i % len]` (so
/// several gateways share the load); every answer must be a success.
pub async fn get(urls: &[String], connections: usize, seconds: u64) -> anyhow::Result<Load> {
    anyhow::ensure!(!urls.is_empty(), "no URL to load");
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..connections).map(|i| {
        let url = urls[i % urls.len()].clone();
        tokio::spawn(async move {
            // One client per worker: its own keep-alive connection.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let start = Instant::now();
                let r = http.get(&url).send().await?;
                anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
                r.bytes().await?;
                latencies.push(start.elapsed());
            }
            anyhow::Ok(latencies)
        })
    });
    let started = Instant::now();
    let mut all = Vec::new();
    for w in futures::future::join_all(workers).await {
        all.extend(w??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Load {
        rps: all.len() as f64 / elapsed,
        p50_ms: percentile_ms(&all, 50).unwrap_or(0.0),
        p99_ms: percentile_ms(&all, 99).unwrap_or(0.0),
    })
}

/// The `p`-th percentile (0 to 100, nearest rank) of `xs` in milliseconds; none of no
/// values.
pub fn percentile_ms(xs: &[Duration], p: usize) -> Option<f64> {
    let mut sorted = xs.to_vec();
    sorted.sort_unstable();
    sorted
        .get((sorted.len().saturating_sub(1) * p).div_ceil(100))
        .map(|d| d.as_secs_f64() * 1000.0)
}
