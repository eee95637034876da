//! magnet-tests: helpers for cross-service tests — a real `nats-server` with JetStream on a
//! free port, a librqbit seeder on loopback, a generator of small test videos with ffmpeg, and
//! launchers for our services (in-process or as a child process that a test may `kill -9`).
//! The tests themselves are in `tests/integration/` (`main.rs`, a module per area).

pub mod chaos;
pub mod images;
pub mod kube_api;
pub mod load;
pub mod nats;
pub mod original_worker;
pub mod otlp;
pub mod peer;
pub mod queue;
pub mod seeder;
pub mod services;
pub mod stack;
pub mod tracker;
pub mod turn;
pub mod video;

use std::time::Duration;

/// Polls `check` every 100 ms until it returns `Some`, or fails after `limit` with `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `GET url` every 100 ms until its JSON answer satisfies `wanted`, or fails after
/// `limit` with `what`; the answer then.
pub async fn json_until(
    url: &str,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let http = reqwest::Client::new();
    let (http, wanted) = (&http, &wanted);
    eventually(limit, what, || async move {
        let v: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
        wanted(&v).then_some(v)
    })
    .await
}

/// Logs of the code under test, shown for failing tests (`RUST_LOG` to tune).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,librqbit=warn,sqlx=warn")
            }),
        )
        .with_test_writer()
        .try_init();
}

/// Status and JSON body of an HTTP answer; fails with the text if the body is not JSON.
pub async fn json_of(
    r: reqwest::Response,
) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
    let status = r.status();
    let text = r.text().await?;
    let body = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{status}: not JSON ({e}): {text:?}"))?;
    Ok((status, body))
}

/// Submits `magnet` through the gateway at `base`; the new task's id.
pub async fn submit_magnet(
    http: &reqwest::Client,
    base: &str,
    magnet: &str,
) -> anyhow::Result<String> {
    submit_to(http, base, None, magnet).await
}

/// Submits `magnet` through the gateway at `base` to `node` (none: the gateway's choice);
/// the new task's id.
pub async fn submit_to(
    http: &reqwest::Client,
    base: &str,
    node: Option<&str>,
    magnet: &str,
) -> anyhow::Result<String> {
    let mut body = serde_json::json!({ "magnet_url": magnet });
    if let Some(node) = node {
        body["worker_id"] = node.into();
    }
    let (status, body) = json_of(
        http.post(format!("{base}/api/tasks/submit"))
            .json(&body)
            .send()
            .await?,
    )
    .await?;
    anyhow::ensure!(status == 200, "submit: {status} {body}");
    Ok(body["data"]["id"].as_str().unwrap_or_default().to_owned())
}

/// [`submit_to`], again every 500 ms for `patience` while the gateway, NATS or the node is
/// down or failing over (a submit that went through before its answer was lost answers with
/// the same task the second time).
pub async fn submit_retrying(
    http: &reqwest::Client,
    base: &str,
    node: Option<&str>,
    magnet: &str,
    patience: Duration,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match submit_to(http, base, node, magnet).await {
            Ok(id) => return Ok(id),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "submit failed; again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `GET /api/tasks/<id>` through the gateway at `base`: the task (the answer's `data`).
pub async fn task_of(
    http: &reqwest::Client,
    base: &str,
    id: &str,
) -> anyhow::Result<serde_json::Value> {
    let (status, body) = json_of(http.get(format!("{base}/api/tasks/{id}")).send().await?).await?;
    anyhow::ensure!(status == 200, "task {id}: {status} {body}");
    Ok(body["data"].clone())
}

/// Waits (at most `limit`) until the task's status is `status`; the task then.
pub async fn task_reaches(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    status: &str,
    limit: std::time::Duration,
) -> anyhow::Result<serde_json::Value> {
    eventually(limit, &format!("{id} {status}"), || async {
        task_of(http, base, id)
            .await
            .ok()
            .filter(|t| t["status"] == status)
    })
    .await
}

/// The `data` of each event of a server-sent event stream (`GET /api/events`), as JSON.
pub fn sse_json(
    r: reqwest::Response,
) -> impl futures::Stream<Item = anyhow::Result<serde_json::Value>> {
    use futures::StreamExt;
    futures::stream::unfold(
        (r.bytes_stream(), String::new()),
        |(mut body, mut buf)| async move {
            loop {
                if let Some(end) = buf.find("\n\n") {
                    let event: String = buf.drain(..end + 2).collect();
                    let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                        continue;
                    };
                    let v = serde_json::from_str(data.trim()).map_err(anyhow::Error::from);
                    return Some((v, (body, buf)));
                }
                match body.next().await? {
                    Ok(chunk) => buf.push_str(&String::from_utf8_lossy(&chunk)),
                    Err(e) => return Some((Err(e.into()), (body, buf))),
                }
            }
        },
    )
}
