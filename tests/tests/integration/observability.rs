//! Observability across processes: with an OTLP endpoint configured, one task's life (submit
//! at the gateway → downloader → transcode job → transcoder → result applied) is one trace
//! with spans from the gateway, the downloader and the transcoder, each span's parent in the
//! same trace; a playback session is one trace across gateway, signaling and streamer; and
//! every service's `/metrics` is Prometheus text whose counters moved.
//! The collector is in-process (`magnet_tests::otlp`); the services are processes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use magnet_tests::otlp::Collector;
use magnet_tests::seeder::Seeder;
use magnet_tests::video::{Codec, generate};
use magnet_tests::{eventually, init_logging, json_of, stack};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn one_task_and_one_playback_are_each_one_trace_and_metrics_move() -> anyhow::Result<()> {
    init_logging();
    let collector = Collector::start().await?;
    let endpoint = format!("http://{}", collector.addr);
    let dir = tempfile::tempdir()?;
    let stack = stack::start_with_env(
        dir.path(),
        1,
        |_| {},
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )?;
    let base = stack.gateway_url();
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(15), "node listed", || async {
        let (_, b) = json_of(http.get(format!("{base}/api/nodes")).send().await.ok()?)
            .await
            .ok()?;
        b["data"].as_array().filter(|a| !a.is_empty()).map(|_| ())
    })
    .await?;

    let src = tempfile::tempdir()?;
    let video = src.path().join("traced.mp4");
    generate(&video, 4, Codec::H264Aac)?;
    let seeder = Seeder::start().await?;
    let seeded = seeder.seed(&video).await?;
    let (_, sub) = json_of(
        http.post(format!("{base}/api/tasks/submit"))
            .json(&json!({ "magnet_url": seeded.magnet }))
            .send()
            .await?,
    )
    .await?;
    let id = sub["data"]["id"].as_str().unwrap_or_default().to_owned();
    eventually(Duration::from_secs(60), "task ready", || async {
        let (_, t) = json_of(
            http.get(format!("{base}/api/tasks/{id}"))
                .send()
                .await
                .ok()?,
        )
        .await
        .ok()?;
        (t["data"]["status"] == "ready").then_some(())
    })
    .await?;

    // The trace of the submit request: spans of all three services, every parent inside it.
    let trace = eventually(
        Duration::from_secs(15),
        "spans of three services in one trace",
        || async {
            let spans = collector.spans();
            let submit = spans.iter().find(|s| {
                s.service == "magnet-gateway"
                    && s.name.contains("request")
                    && spans
                        .iter()
                        .any(|d| d.trace_id == s.trace_id && d.service == "magnet-downloader")
            })?;
            let trace: Vec<_> = spans
                .iter()
                .filter(|s| s.trace_id == submit.trace_id)
                .cloned()
                .collect();
            let services: HashSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
            (services.contains("magnet-downloader") && services.contains("magnet-transcoder"))
                .then_some(trace)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; traces seen: {:#?}", traces_seen(&collector)))?;
    let ids: HashSet<&[u8]> = trace.iter().map(|s| s.span_id.as_slice()).collect();
    let roots: Vec<_> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    assert_eq!(roots[0].service, "magnet-gateway");
    for s in &trace {
        assert!(
            s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_slice()),
            "{}:{} has a parent outside the trace",
            s.service,
            s.name
        );
    }
    // A browser playback session (the original's WebSocket) is one trace across the
    // gateway, signaling and the streamer.
    let peer = magnet_tests::peer::Client::connect_ws(
        stack.gateway,
        "node-1",
        "client-1700000000000-traceplay",
    )
    .await?;
    let playlist = peer.hijack(&format!("/video/{id}/index.m3u8")).await?;
    assert!(playlist.starts_with(b"#EXTM3U"));
    peer.close().await;
    eventually(
        Duration::from_secs(15),
        "a playback trace across gateway, signaling, streamer",
        || async {
            let spans = collector.spans();
            let traces: HashSet<&[u8]> = spans
                .iter()
                .filter(|s| s.service == "magnet-streamer")
                .map(|s| s.trace_id.as_slice())
                .collect();
            traces.into_iter().find_map(|t| {
                let services: HashSet<&str> = spans
                    .iter()
                    .filter(|s| s.trace_id == t)
                    .map(|s| s.service.as_str())
                    .collect();
                services
                    .is_superset(&HashSet::from([
                        "magnet-gateway",
                        "magnet-signaling",
                        "magnet-streamer",
                    ]))
                    .then_some(())
            })
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; traces seen: {:#?}", traces_seen(&collector)))?;

    // One relay read, to count.
    let relayed = http
        .get(format!("{base}/video/{id}/index.m3u8"))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(relayed.as_ref(), playlist.as_slice());

    // Every service's /metrics is Prometheus text, and the run moved the counters. The node's
    // gauges follow its heartbeat (1 s here).
    let downloader_admin = stack.nodes[0].downloader_admin;
    eventually(
        Duration::from_secs(10),
        "tasks gauge says one ready",
        || async {
            let text = reqwest::get(format!("http://{downloader_admin}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .any(|l| l == "magnet_tasks{status=\"ready\"} 1")
                .then_some(())
        },
    )
    .await?;
    let size = std::fs::metadata(&video)?.len() as f64;
    let mut admins = vec![
        ("gateway", stack.gateway_admin),
        ("signaling", stack.signaling_admin),
        ("downloader", stack.nodes[0].downloader_admin),
        ("streamer", stack.nodes[0].streamer_admin),
    ];
    admins.extend(
        stack.nodes[0]
            .transcoder_admins
            .iter()
            .map(|a| ("transcoder", *a)),
    );
    let mut samples: HashMap<&str, Vec<prometheus_parse::Sample>> = HashMap::new();
    for (service, admin) in admins {
        let text = http
            .get(format!("http://{admin}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines)
            .map_err(|e| anyhow::anyhow!("{service}: /metrics is not Prometheus text: {e}"))?;
        assert!(
            scrape
                .samples
                .iter()
                .all(|s| s.metric.starts_with("magnet_")),
            "{service}: every metric is named magnet_…"
        );
        samples.insert(service, scrape.samples);
    }
    let value = |service: &str, metric: &str| -> f64 {
        samples[service]
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(value("downloader", "magnet_downloaded_bytes_total"), size);
    assert_eq!(value("downloader", "magnet_tasks_submitted_total"), 1.0);
    assert_eq!(value("downloader", "magnet_downloads_completed_total"), 1.0);
    assert_eq!(value("transcoder", "magnet_transcodes_done_total"), 1.0);
    assert_eq!(value("transcoder", "magnet_transcodes_running"), 0.0);
    assert_eq!(value("downloader", "magnet_transcode_jobs_queued"), 0.0);
    for service in [
        "gateway",
        "signaling",
        "downloader",
        "streamer",
        "transcoder",
    ] {
        assert!(
            samples[service]
                .iter()
                .any(|s| s.metric == "magnet_nats_reconnects_total"),
            "{service} counts NATS reconnects"
        );
    }
    let histogram_count = |service: &str, metric: &str, label: Option<(&str, &str)>| -> f64 {
        samples[service]
            .iter()
            .filter(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Histogram(ref h) => h.last().map_or(0.0, |b| b.count),
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        histogram_count(
            "downloader",
            "magnet_grpc_request_duration_seconds",
            Some(("method", "/magnet.v1.TaskService/Submit"))
        ),
        1.0,
        "the downloader timed the gateway's Submit"
    );
    assert_eq!(
        histogram_count("transcoder", "magnet_transcode_speed_ratio", None),
        1.0
    );
    assert_eq!(
        value("streamer", "magnet_relay_bytes_total"),
        playlist.len() as f64
    );
    assert!(
        value("streamer", "magnet_datachannel_bytes_total") > playlist.len() as f64,
        "the playlist went over the data channel (base64 slices in JSON)"
    );
    let submits = samples["gateway"].iter().any(|s| {
        s.metric == "magnet_http_requests_total"
            && s.labels.get("route") == Some("/api/tasks/submit")
            && s.labels.get("status") == Some("2xx")
            // OpenMetrics names counters' TYPE without `_total`; the parser then says Untyped.
            && matches!(s.value, prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) if v == 1.0)
    });
    assert!(
        submits,
        "gateway counted the submit: {:?}",
        samples["gateway"]
    );

    eprintln!(
        "trace of {id}: {:?}",
        trace
            .iter()
            .map(|s| format!("{}:{}", s.service, s.name))
            .collect::<Vec<_>>()
    );
    stack.stop();
    Ok(())
}

/// The spans received so far, by (the start of) their trace id, for failure messages.
fn traces_seen(collector: &Collector) -> HashMap<String, Vec<String>> {
    let mut by: HashMap<String, Vec<String>> = HashMap::new();
    for s in collector.spans() {
        by.entry(format!("{:02x?}", &s.trace_id[..4]))
            .or_default()
            .push(format!("{}:{}", s.service, s.name));
    }
    by
}
