//! The transcoder autoscaler (`downloader.autoscale`, Kubernetes only): every
//! `interval_secs` it counts the node's transcode jobs still in the JetStream work queue
//! (queued or running: a job leaves the queue when it is acked), and sets the replicas of the
//! node's transcoder Deployment through its scale subresource — within `min`..`max`, one
//! replica per `jobs_per_replica` jobs, at most one change per `cooldown_secs`. The only
//! Kubernetes calls are `get` and `patch` of that Deployment's scale, which is all its Role
//! grants. With the autoscaler off, `kubectl scale` is the way.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use magnet_runtime::config::AutoscaleSettings;
use magnet_runtime::subjects;
use tokio_util::sync::CancellationToken;

/// What the autoscaler should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Leave the replicas as they are.
    Keep,
    /// Set them to this.
    Scale(u32),
}

/// The replicas wanted for `jobs` queued or running jobs, given the current replicas and the
/// time since the last change (none: never changed). Pure, so it is unit-tested.
pub fn decide(
    jobs: u64,
    current: u32,
    since_last_change: Option<Duration>,
    cfg: &AutoscaleSettings,
) -> Decision {
    let per = u64::from(cfg.jobs_per_replica.max(1));
    let wanted = jobs.div_ceil(per).min(u64::from(u32::MAX)) as u32;
    let wanted = wanted.clamp(cfg.min, cfg.max.max(cfg.min));
    if wanted == current {
        return Decision::Keep;
    }
    // Out of bounds (e.g. someone scaled by hand past max): correct at once.
    let out_of_bounds = current < cfg.min || current > cfg.max;
    let cooling = since_last_change.is_some_and(|d| d < Duration::from_secs(cfg.cooldown_secs));
    if cooling && !out_of_bounds {
        return Decision::Keep;
    }
    Decision::Scale(wanted)
}

/// Why an autoscaler step failed; the step is logged and tried again at the next interval.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("JetStream: {0}")]
    Queue(String),
}

/// The scale subresource of one Deployment.
pub struct Scaler {
    api: Api<Deployment>,
    name: String,
}

impl Scaler {
    /// Makes no Kubernetes call: the Deployment `name` in `namespace` is only read or
    /// patched by [`Scaler::replicas`] and [`Scaler::set`].
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
        }
    }

    /// Replicas the Deployment is asked to have.
    pub async fn replicas(&self) -> Result<u32, Error> {
        let scale = self.api.get_scale(&self.name).await?;
        Ok(scale
            .spec
            .and_then(|s| s.replicas)
            .map_or(0, |r| r.max(0) as u32))
    }

    /// Asks the Deployment for `replicas` replicas (a merge patch of its scale subresource).
    pub async fn set(&self, replicas: u32) -> Result<(), Error> {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.api
            .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

/// Jobs of `node` still in the work queue (queued, or delivered and not yet acked).
pub async fn jobs_in_queue(js: &async_nats::jetstream::Context, node: &str) -> Result<u64, Error> {
    let stream = js
        .get_stream(subjects::JOBS_STREAM)
        .await
        .map_err(|e| Error::Queue(e.to_string()))?;
    let subject = subjects::transcode_jobs(node);
    let mut counts = stream
        .info_with_subjects(&subject)
        .await
        .map_err(|e| Error::Queue(e.to_string()))?;
    let mut total = 0;
    while let Some(c) = counts.next().await {
        let (_, n) = c.map_err(|e| Error::Queue(e.to_string()))?;
        total += n as u64;
    }
    Ok(total)
}

/// Runs until `shutdown`; errors are logged and retried at the next interval.
pub async fn run(
    scaler: Scaler,
    js: async_nats::jetstream::Context,
    node: String,
    cfg: AutoscaleSettings,
    shutdown: CancellationToken,
) {
    let mut last_change: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_secs.max(1)));
    tracing::info!(deployment = %scaler.name, min = cfg.min, max = cfg.max, jobs_per_replica = cfg.jobs_per_replica, "transcoder autoscaler on");
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let step = async {
            let jobs = jobs_in_queue(&js, &node).await?;
            let current = scaler.replicas().await?;
            if let Decision::Scale(n) =
                decide(jobs, current, last_change.map(|t| t.elapsed()), &cfg)
            {
                scaler.set(n).await?;
                last_change = Some(Instant::now());
                tracing::info!(jobs, from = current, to = n, "transcoders scaled");
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = step.await {
            tracing::warn!(error = %e, "autoscaler step failed; retrying");
        }
    }
}

/// The pod's namespace, from its service account.
pub fn own_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min: u32, max: u32, per: u32) -> AutoscaleSettings {
        AutoscaleSettings {
            enabled: true,
            deployment: "mm-worker-a-transcoder".into(),
            min,
            max,
            jobs_per_replica: per,
            cooldown_secs: 60,
            ..Default::default()
        }
    }

    #[test]
    fn one_replica_per_jobs_per_replica_within_bounds() {
        let c = cfg(1, 4, 2);
        assert_eq!(decide(0, 2, None, &c), Decision::Scale(1), "down to min");
        assert_eq!(decide(1, 1, None, &c), Decision::Keep);
        assert_eq!(decide(3, 1, None, &c), Decision::Scale(2), "rounds up");
        assert_eq!(
            decide(100, 2, None, &c),
            Decision::Scale(4),
            "capped at max"
        );
        assert_eq!(decide(8, 4, None, &c), Decision::Keep);
        let zero = cfg(0, 3, 1);
        assert_eq!(
            decide(0, 1, None, &zero),
            Decision::Scale(0),
            "min 0 scales to zero"
        );
        assert_eq!(
            decide(1, 0, None, &zero),
            Decision::Scale(1),
            "and back on the first job"
        );
    }

    #[test]
    fn cooldown_holds_changes_but_not_corrections_out_of_bounds() {
        let c = cfg(1, 4, 1);
        let recent = Some(Duration::from_secs(10));
        let old = Some(Duration::from_secs(61));
        assert_eq!(decide(3, 1, recent, &c), Decision::Keep);
        assert_eq!(decide(3, 1, old, &c), Decision::Scale(3));
        assert_eq!(
            decide(0, 9, recent, &c),
            Decision::Scale(1),
            "scaled by hand past max"
        );
        assert_eq!(decide(2, 0, recent, &c), Decision::Scale(2), "under min");
    }

    #[test]
    fn no_jobs_per_replica_is_treated_as_one() {
        assert_eq!(decide(3, 1, None, &cfg(1, 5, 0)), Decision::Scale(3));
    }

    /// The scale subresource calls against a fake API server (tower-test): the paths, the
    /// verb and the merge patch body are what the Role allows and the API expects.
    #[tokio::test]
    async fn reads_and_patches_the_scale_subresource() {
        use http::{Method, Request, Response};
        use kube::client::Body;

        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let scale = |n: u32| {
                serde_json::json!({
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": "mm-worker-a-transcoder", "namespace": "media"},
                    "spec": {"replicas": n}, "status": {"replicas": n}
                })
            };
            let path = "/apis/apps/v1/namespaces/media/deployments/mm-worker-a-transcoder/scale";
            let (req, send) = handle.next_request().await.expect("get");
            assert_eq!((req.method(), req.uri().path()), (&Method::GET, path));
            send.send_response(
                Response::builder()
                    .body(Body::from(scale(2).to_string().into_bytes()))
                    .expect("response"),
            );
            let (req, send) = handle.next_request().await.expect("patch");
            assert_eq!((req.method(), req.uri().path()), (&Method::PATCH, path));
            assert_eq!(
                req.headers()["content-type"],
                "application/merge-patch+json"
            );
            let body = req.into_body().collect_bytes().await.expect("body");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v, serde_json::json!({"spec": {"replicas": 3}}));
            send.send_response(
                Response::builder()
                    .body(Body::from(scale(3).to_string().into_bytes()))
                    .expect("response"),
            );
        });
        let client = kube::Client::new(service, "media");
        let scaler = Scaler::new(client, "media", "mm-worker-a-transcoder");
        assert_eq!(scaler.replicas().await.expect("replicas"), 2);
        scaler.set(3).await.expect("patch");
        server.await.expect("fake API server");
    }
}
