//! A stand-in for the one piece of the Kubernetes API the autoscaler calls — a Deployment's
//! scale subresource (`GET` and merge `PATCH` of `/apis/apps/v1/namespaces/<ns>/deployments/
//! <name>/scale`) — on a loopback port (no API server runs here), with a kubeconfig that
//! points a process's kube client at it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SCALE: &str = "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale";

/// The replicas the Deployment is asked for, as the API server keeps them, and every change
/// asked for with its time.
#[derive(Clone, Default)]
pub struct Replicas(Arc<AtomicU32>, Arc<Mutex<Vec<(Instant, u32)>>>);

impl Replicas {
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Each `PATCH` so far: when, and the replicas it asked for.
    pub fn patches(&self) -> Vec<(Instant, u32)> {
        self.1.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

fn scale(ns: &str, name: &str, replicas: u32) -> Json<Value> {
    Json(json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "replicas": replicas },
        "status": { "replicas": replicas },
    }))
}

async fn read(State(r): State<Replicas>, Path((ns, name)): Path<(String, String)>) -> Json<Value> {
    scale(&ns, &name, r.get())
}

async fn patch(
    State(r): State<Replicas>,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if let Some(n) = body["spec"]["replicas"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
    {
        r.0.store(n, Ordering::Relaxed);
        if let Ok(mut h) = r.1.lock() {
            h.push((Instant::now(), n));
        }
    }
    scale(&ns, &name, r.get())
}

/// Serves the scale subresource starting at `initial` replicas until `stop`; its address.
pub async fn serve(
    initial: u32,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, Replicas)> {
    let replicas = Replicas::default();
    replicas.0.store(initial, Ordering::Relaxed);
    let app = axum::Router::new()
        .route(SCALE, get(read).patch(patch))
        .with_state(replicas.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok((addr, replicas))
}

/// A kube client for the stand-in at `addr`.
pub fn client(addr: SocketAddr, namespace: &str) -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::new(format!("http://{addr}").parse()?);
    config.default_namespace = namespace.to_owned();
    Ok(kube::Client::try_from(config)?)
}

/// A kubeconfig file in `dir` whose current context is the stand-in at `addr`, namespace
/// `namespace` (give it to a process as `KUBECONFIG`).
pub fn kubeconfig(
    dir: &std::path::Path,
    addr: SocketAddr,
    namespace: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("kubeconfig.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: stand-in\n  user: {{}}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: stand-in\n    namespace: {namespace}\n\
             current-context: stand-in\n"
        ),
    )?;
    Ok(path)
}
