//! NATS: connecting with retry and backoff (to one server or to any member of a cluster), and
//! declaring the JetStream streams and the KV buckets that services share (names from
//! [`crate::subjects`]) with the configured replicas. Every declaration is idempotent, brings
//! an existing stream to the configured replicas, and uses only what nats-server 2.9 supports.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::subjects;
use crate::{Error, Result};

/// How long a transcode job may wait in the queue before it is dropped.
const JOB_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long transcode events are kept for a downloader that is down.
const EVENT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Connects to NATS (`url`: one server, or a cluster's members separated by commas),
/// retrying with capped exponential backoff until `deadline` passes, and reconnecting forever
/// afterwards, to whichever member answers.
pub async fn connect(url: &str, service: &str, deadline: Duration) -> Result<async_nats::Client> {
    let servers = servers(url)?;
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    let mut pauses = crate::backoff::Backoff::new(RETRY_FIRST, RETRY_MOST);
    loop {
        // The first `Connected` is the connection itself; later ones are reconnections.
        let connected_before = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let options = async_nats::ConnectOptions::new()
            .name(service)
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(3))
            .reconnect_delay_callback(|attempt| {
                crate::backoff::nth(RETRY_FIRST, RETRY_MOST, attempt)
            })
            .event_callback(move |event| {
                let connected_before = connected_before.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            if connected_before.swap(true, std::sync::atomic::Ordering::Relaxed) {
                                crate::metrics::NATS_RECONNECTS.inc();
                            }
                            tracing::info!("NATS connected")
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS disconnected; reconnecting")
                        }
                        other => tracing::debug!(event = %other, "NATS event"),
                    }
                }
            });
        let options = match inbox_prefix(&servers[0]) {
            Some(prefix) => options.custom_inbox_prefix(prefix),
            None => options,
        };
        let options = with_url_credentials(options, &servers[0]);
        match options.connect(servers.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(source) if started.elapsed() >= deadline => {
                return Err(Error::NatsConnect {
                    url: redacted(url),
                    source,
                });
            }
            Err(e) => {
                attempt += 1;
                let wait = pauses.next_pause();
                let url = redacted(url);
                tracing::warn!(%url, error = %e, attempt, ?wait, "NATS not reachable yet; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The servers of `url`: one URL or several separated by commas.
fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| Error::Config(format!("nats.url: {}: {e}", redacted(u))))
        })
        .collect::<Result<Vec<_>>>()?;
    if servers.is_empty() {
        return Err(Error::Config("nats.url: no server".into()));
    }
    Ok(servers)
}

/// async-nats reads no credentials from the URL itself: `nats://user:password@host` gives
/// user and password, `nats://token@host` a token.
fn with_url_credentials(
    options: async_nats::ConnectOptions,
    addr: &async_nats::ServerAddr,
) -> async_nats::ConnectOptions {
    match (addr.username(), addr.password()) {
        (Some(user), Some(password)) => options.user_and_password(user.into(), password.into()),
        (Some(token), None) => options.token(token.into()),
        _ => options,
    }
}

/// Replies to a NATS user come to `_INBOX_<user>.…`, the only inboxes its permissions let it
/// read (`charts/magnetm3u8/files/nats-permissions.json`), so no service reads another's
/// replies. Without a user in the URL: the default `_INBOX`.
fn inbox_prefix(addr: &async_nats::ServerAddr) -> Option<String> {
    // A URL with a user but no password carries a token there: never put it in subjects.
    addr.password()?;
    addr.username().map(|u| format!("_INBOX_{u}"))
}

/// The URL (or URLs) without credentials (`nats://user:pass@host` → `nats://***@host`), for
/// logs and errors.
pub fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| match url::Url::parse(one.trim()) {
            Ok(u) if u.username().is_empty() && u.password().is_none() => one.to_owned(),
            Ok(u) => format!("{}://***@{}", u.scheme(), &u[url::Position::BeforeHost..]),
            // Not a URL: whatever comes before an `@` may be a credential.
            Err(_) => match one.rsplit_once('@') {
                Some((_, host)) => format!("***@{host}"),
                None => one.to_owned(),
            },
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Pauses between attempts to reach NATS: 100 ms, 200 ms, 400 ms … up to 5 s, jittered.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(5);

/// How long a durable publish keeps trying: a clustered JetStream elects a new stream leader
/// within seconds of losing one.
pub const PUBLISH_PATIENCE: Duration = Duration::from_secs(30);

/// Publishes `message` to a stream and waits for the stream's ack, trying again with jittered
/// exponential backoff (200 ms up to 5 s, for [`PUBLISH_PATIENCE`] in all) while JetStream
/// cannot take it: a server lost, a stream leader being elected, a reconnection. A message id
/// in `message` makes a retry of a message already stored a no-op (the stream's duplicate
/// window); without one a consumer may see it twice. Returns the last error after that.
pub async fn publish_durable(
    js: &jetstream::Context,
    subject: String,
    message: jetstream::message::PublishMessage,
) -> std::result::Result<(), String> {
    use backon::Retryable;
    let attempt = || async {
        let ack = js
            .send_publish(subject.clone(), message.clone())
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|_| ()).map_err(|e| e.to_string())
    };
    attempt
        .retry(
            crate::backoff::builder(Duration::from_millis(200), Duration::from_secs(5))
                .with_total_delay(Some(PUBLISH_PATIENCE)),
        )
        .notify(|e, wait| tracing::warn!(%subject, error = %e, ?wait, "JetStream did not take the message; trying again"))
        .await
}

fn js_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::JetStream(format!("{what}: {e}"))
}

/// Declares a stream, or brings an existing one to `config`'s replicas (JetStream scales a
/// stream's copies up or down in place).
async fn declare(js: &jetstream::Context, config: stream::Config) -> Result<stream::Stream> {
    let name = config.name.clone();
    let replicas = config.num_replicas;
    let mut stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|e| js_err(&name, e))?;
    let current = stream.cached_info().config.clone();
    if current.num_replicas != replicas {
        tracing::info!(stream = %name, from = current.num_replicas, to = replicas, "changing the stream's replicas");
        js.update_stream(stream::Config {
            num_replicas: replicas,
            ..current
        })
        .await
        .map_err(|e| js_err(&name, e))?;
        stream = js.get_stream(&name).await.map_err(|e| js_err(&name, e))?;
    }
    Ok(stream)
}

/// The transcode job work queue: each job to exactly one consumer, removed once acked.
pub async fn jobs_stream(js: &jetstream::Context, replicas: usize) -> Result<stream::Stream> {
    declare(
        js,
        stream::Config {
            name: subjects::JOBS_STREAM.into(),
            subjects: vec![subjects::JOBS_WILDCARD.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: JOB_MAX_AGE,
            duplicate_window: Duration::from_secs(120),
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await
}

/// Transcode events (results, transitions), kept until the node's downloader acks them, also
/// while it is down (work-queue retention: nothing else consumes them).
pub async fn events_stream(js: &jetstream::Context, replicas: usize) -> Result<stream::Stream> {
    declare(
        js,
        stream::Config {
            name: subjects::EVENTS_STREAM.into(),
            subjects: vec![subjects::EVENTS_WILDCARD.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: EVENT_MAX_AGE,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await
}

/// The node registry bucket; a record lives `ttl` after its last heartbeat.
///
/// The bucket's stream is declared here with the settings a KV bucket has, because
/// async-nats's `create_key_value` first asks for account limits in a form that nats-server
/// 2.9 does not answer; `get_key_value` then binds to it as to any bucket.
pub async fn nodes_bucket(
    js: &jetstream::Context,
    ttl: Duration,
    replicas: usize,
) -> Result<kv::Store> {
    kv_bucket(js, subjects::NODES_BUCKET, ttl, replicas).await
}

/// A KV bucket declared as its stream directly (see [`nodes_bucket`]); `max_age` zero keeps
/// entries forever.
pub async fn kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store> {
    declare(
        js,
        stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_bytes: -1,
            max_message_size: -1,
            max_age,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| js_err(bucket, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_never_reach_logs() {
        assert_eq!(
            super::redacted("nats://u:secret@nats:4222"),
            "nats://***@nats:4222"
        );
        assert_eq!(
            super::redacted("nats://token@nats:4222"),
            "nats://***@nats:4222"
        );
        assert_eq!(
            super::redacted("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            super::redacted("nats://u:pw@a:4222,nats://u:pw@b:4222"),
            "nats://***@a:4222,nats://***@b:4222"
        );
        assert_eq!(
            super::redacted("nats://u:p@ss@nats:4222"),
            "nats://***@nats:4222"
        );
        assert_eq!(super::redacted("not a url:secret@nats"), "***@nats");
    }

    #[test]
    fn a_url_may_name_a_clusters_members() {
        let servers = super::servers("nats://u:pw@a:4222, nats://u:pw@b:4223").expect("two");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[1].port(), 4223);
        assert!(super::servers(" , ").is_err());
        assert!(super::servers("nats://a:4222,nats://b:notaport").is_err());
    }

    #[test]
    fn each_user_gets_its_own_inboxes() {
        let prefix = |url: &str| super::inbox_prefix(&url.parse().expect("a URL"));
        assert_eq!(
            prefix("nats://gateway:pw@127.0.0.1:4222").as_deref(),
            Some("_INBOX_gateway")
        );
        assert_eq!(prefix("nats://sometoken@nats:4222"), None);
        assert_eq!(prefix("nats://127.0.0.1:4222"), None);
    }
}
