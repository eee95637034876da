//! magnet-gateway: the only public HTTP entry. It serves the original's API field for field
//! (`/api/nodes`, `/api/tasks`, `/api/tasks/submit`, `/api/status`, …) from the NATS KV node
//! registry and the nodes' downloaders (gRPC), and relays video files from the nodes'
//! streamers (`/video/<task_id>/<file>`, gRPC FileService) when P2P fails. Stateless.

pub mod auth;
pub mod convert;
pub mod counted;
pub mod error;
pub mod events;
pub mod metrics;
pub mod origin;
pub mod originals;
pub mod passwords;
pub mod registry;
pub mod routes;
pub mod server;
pub mod streams;
pub mod throttle;
pub mod turns;
pub mod web;
pub mod webrtc;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use magnet_core::ErrorCode;
use magnet_proto::v1 as pb;
use magnet_proto::v1::file_service_client::FileServiceClient;
use magnet_proto::v1::signaling_client::SignalingClient;
use magnet_proto::v1::task_service_client::TaskServiceClient;
use magnet_runtime::admin::Admin;
use magnet_runtime::config::IceServerSettings;
use magnet_runtime::{Settings, grpc, nats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::error::ApiError;

/// Why the gateway failed to start or run: configuration, NATS, binding its ports, or other
/// I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] magnet_runtime::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The gateway's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub registry: registry::Registry,
    pub ice_servers: Arc<Vec<IceServerSettings>>,
    /// TURN with credentials made per request, and Cloudflare's (`turn` settings).
    pub turn: Arc<magnet_runtime::turn::TurnServers>,
    pub node_timeout: Duration,
    /// The signaling service's gRPC endpoint.
    pub signaling: String,
    /// Accounts; `None` when they are off (every caller is a local admin).
    pub accounts: Option<auth::Accounts>,
    /// `gateway.auth.public_reads`: status, nodes and tasks answer strangers too.
    pub public_reads: bool,
    /// Largest `.torrent` file a submit may carry, in bytes (`gateway.max_torrent_kib`).
    pub max_torrent: usize,
    pub events: events::Events,
    /// Sessions of `POST /api/webrtc/offer` clients.
    pub webrtc: webrtc::Sessions,
    /// Cancelled on shutdown: long-lived answers (events, WebSockets) end with it.
    pub shutdown: CancellationToken,
    pub metrics: metrics::HttpMetrics,
    /// Tasks in progress one user may have (`gateway.max_active_tasks_per_user`).
    pub max_active_tasks: u32,
    /// Each user's submits, one at a time, so that limit is checked and kept together.
    pub submitting: turns::Turns,
    /// WebSockets and event streams open per user.
    pub streams: streams::OpenStreams,
    /// Login and registration attempts per client address and username.
    pub logins: throttle::Logins,
    /// The original's workers joined through `/ws/nodes` (any replica's), and calls to them.
    pub originals: originals::Workers,
    /// Trace context and the service credential, on every call to our services.
    outgoing: grpc::Outgoing,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// `List` calls in flight, per node, shared by concurrent `GET /api/tasks`.
    listing: Arc<Mutex<HashMap<String, NodeTasks>>>,
}

/// One node's task list being fetched, or why the node gave none (failed, too slow).
type NodeTasks = Shared<BoxFuture<'static, Result<Arc<Vec<pb::Task>>, String>>>;

impl AppState {
    /// A lazily connected channel per endpoint, reused across requests.
    fn channel(&self, endpoint: &str) -> Result<Channel, ApiError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(endpoint) {
            return Ok(c.clone());
        }
        let c = Channel::from_shared(endpoint.to_owned())
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::Internal,
                    format!("bad node endpoint {endpoint:?}: {e}"),
                )
            })?
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        channels.insert(endpoint.to_owned(), c.clone());
        Ok(c)
    }

    fn client(&self, endpoint: &str) -> Result<grpc::Client, ApiError> {
        Ok(tonic::service::interceptor::InterceptedService::new(
            self.channel(endpoint)?,
            self.outgoing.clone(),
        ))
    }

    /// A node's downloader.
    pub fn downloader(&self, endpoint: &str) -> Result<TaskServiceClient<grpc::Client>, ApiError> {
        Ok(TaskServiceClient::new(self.client(endpoint)?)
            .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES))
    }

    /// A node's streamer (relay reads).
    pub fn streamer(&self, endpoint: &str) -> Result<FileServiceClient<grpc::Client>, ApiError> {
        Ok(FileServiceClient::new(self.client(endpoint)?)
            .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES))
    }

    /// The tasks of node `n`: joins the `List` call already in flight for that node, else
    /// starts one (bounded by `node_timeout`). Many browsers polling at once cost the node
    /// one call per round trip instead of one per browser.
    pub async fn node_tasks(&self, n: &pb::NodeRecord) -> Result<Arc<Vec<pb::Task>>, String> {
        let call = {
            let mut listing = self.listing.lock().unwrap_or_else(|p| p.into_inner());
            match listing.get(&n.id) {
                Some(call) => call.clone(),
                None => {
                    // Spawned, so the call runs to its end (and its timeout) even if every
                    // request waiting on it goes away.
                    let task = tokio::spawn(self.list_call(n));
                    let call = async move {
                        task.await
                            .unwrap_or_else(|e| Err(format!("listing failed: {e}")))
                    }
                    .boxed()
                    .shared();
                    listing.insert(n.id.clone(), call.clone());
                    call
                }
            }
        };
        let tasks = call.clone().await;
        let mut listing = self.listing.lock().unwrap_or_else(|p| p.into_inner());
        if listing.get(&n.id).is_some_and(|c| c.ptr_eq(&call)) {
            listing.remove(&n.id);
        }
        tasks
    }

    /// One `List` call to node `n` of its own (not shared), bounded by `node_timeout` (an
    /// original worker's by its own answer time).
    pub(crate) fn list_call(
        &self,
        n: &pb::NodeRecord,
    ) -> impl std::future::Future<Output = Result<Arc<Vec<pb::Task>>, String>> + Send + 'static
    {
        let original = (n.kind() == pb::NodeKind::Original).then(|| (self.originals.clone(), n.clone()));
        let client = self.downloader(&n.downloader_endpoint);
        let (timeout, node) = (self.node_timeout, n.id.clone());
        async move {
            if let Some((workers, n)) = original {
                return workers.list(&n).await.map(Arc::new);
            }
            let mut client = client.map_err(|e| e.message)?;
            match tokio::time::timeout(timeout, client.list(pb::ListRequest {})).await {
                Ok(Ok(r)) => Ok(Arc::new(r.into_inner().tasks)),
                Ok(Err(e)) => {
                    tracing::warn!(%node, error = %e, "node did not list its tasks");
                    Err(e.message().to_owned())
                }
                Err(_) => {
                    tracing::warn!(%node, "node too slow to list its tasks");
                    Err(format!("no answer within {} s", timeout.as_secs()))
                }
            }
        }
    }

    /// The signaling service, for the sessions of `POST /api/webrtc/offer` and of each
    /// `/ws/clients` socket.
    pub fn signaling(&self) -> Result<SignalingClient<grpc::Client>, ApiError> {
        Ok(SignalingClient::new(self.client(&self.signaling.clone())?)
            .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES))
    }
}

/// CORS for the configured origins only, with credentials; none when the list is empty.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<http::HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            http::Method::GET,
            http::Method::POST,
            http::Method::DELETE,
            http::Method::PATCH,
        ])
        .allow_headers([http::header::CONTENT_TYPE, http::header::AUTHORIZATION])
}

/// A request's span: method and path, never the query (an original worker's token rides in
/// it).
fn request_span<B>(req: &http::Request<B>) -> tracing::Span {
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
}

/// Every route of the gateway (public reads, routes behind a login, accounts, the web UI,
/// `/ws/nodes`) with the layers around them: origin check, metrics, body limits, compression,
/// CORS and request spans.
pub fn router(state: AppState, max_body: usize, cors_origins: &[String]) -> Router {
    // A submit may carry a .torrent file, in base64 (a third more) or a multipart form.
    let max_torrent = state
        .max_torrent
        .saturating_mul(4)
        .saturating_div(3)
        .saturating_add(max_body);
    // Video is already compressed, and server-sent events must not be buffered.
    let compress = CompressionLayer::new().compress_when(
        DefaultPredicate::new()
            .and(NotForContentType::const_new("video/"))
            .and(NotForContentType::const_new("text/event-stream")),
    );
    // The original's public reads: strangers too, unless `gateway.auth.public_reads` is off.
    let public = Router::new()
        .route("/api/nodes", get(routes::nodes))
        .route("/api/nodes/{id}", get(routes::node))
        .route("/api/tasks", get(routes::tasks))
        .route("/api/status", get(routes::status))
        .route_layer(from_fn_with_state(state.clone(), auth::reader));
    // Everything here needs a logged-in user when accounts are on.
    let protected = Router::new()
        .route(
            "/api/tasks/submit",
            post(routes::submit).layer(DefaultBodyLimit::max(max_torrent)),
        )
        .route(
            "/api/tasks/{id}",
            get(routes::task).delete(routes::delete_task),
        )
        .route("/api/tasks/{id}/pause", post(routes::pause))
        .route("/api/tasks/{id}/resume", post(routes::resume))
        .route("/api/tasks/{id}/stop", post(routes::stop_seeding))
        .route("/api/tasks/{id}/play", post(routes::play))
        .route("/api/tasks/{id}/pin", post(routes::pin))
        .route("/api/tasks/{id}/unpin", post(routes::unpin))
        .route("/api/tasks/{id}/retry", post(routes::retry))
        .route("/api/events", get(events::stream))
        .route("/api/webrtc/ice-servers", get(routes::ice_servers))
        .route("/api/webrtc/offer", post(webrtc::offer))
        .route("/api/webrtc/answer", post(webrtc::answer))
        .route("/api/webrtc/ice", post(webrtc::ice))
        .route("/api/admin/users", get(auth::users).post(auth::add_user))
        .route("/api/admin/users/{id}/ban", patch(auth::ban))
        .route("/video/{task_id}/{*file}", get(routes::video))
        .route("/ws/clients", get(ws::clients))
        .route_layer(from_fn_with_state(state.clone(), auth::require_user));
    Router::new()
        .merge(public)
        .merge(protected)
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/me", get(auth::me))
        .route("/", get(web::index))
        .route("/player", get(web::player))
        .route("/assets/{*path}", get(web::asset))
        .route("/favicon.svg", get(web::favicon))
        .route("/ws/nodes", get(originals::join))
        .fallback(routes::not_found)
        .layer(from_fn_with_state(
            origin::Allowed(Arc::new(cors_origins.to_vec())),
            origin::check,
        ))
        .layer(from_fn_with_state(state.metrics.clone(), metrics::record))
        .layer(DefaultBodyLimit::max(max_body))
        // No answer is to be sniffed into another type (a relayed file as HTML, say).
        .layer(SetResponseHeaderLayer::overriding(
            http::header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        ))
        .layer(compress)
        .layer(cors(cors_origins))
        // At INFO, so that request spans pass the default filter and reach the OTLP exporter
        // (each is the root of its trace: submit → downloader → transcoder).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}

/// A started gateway: the addresses of its HTTP and admin servers, and the task that ends
/// once it has stopped.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    join: JoinHandle<Result<()>>,
}

impl Running {
    /// Waits until the gateway has stopped: after shutdown, once its server and background
    /// tasks ended or the grace period passed.
    pub async fn wait(self) -> Result<()> {
        self.join
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

/// Connects to NATS, starts the admin server, the node registry's watch and the event feed,
/// and serves `gateway.listen` until `shutdown` is cancelled; returns once the gateway is ready.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running> {
    let admin = Admin::new();
    let (admin_addr, admin_task) = admin
        .serve(settings.gateway.admin_listen, shutdown.clone())
        .await?;
    let client = nats::connect(
        &settings.nats.url,
        "magnet-gateway",
        Duration::from_secs(30),
    )
    .await?;
    let js = async_nats::jetstream::new(client.clone());
    let ttl = Duration::from_secs(settings.nats.registry_ttl_secs);
    let bucket = nats::nodes_bucket(&js, ttl, settings.nats.replicas).await?;
    let registry = registry::Registry::new(ttl);
    let watcher = tokio::spawn(registry.clone().watch(bucket.clone(), shutdown.clone()));
    let originals = originals::Workers::new(
        settings.gateway.original_workers.clone(),
        client.clone(),
        bucket,
        registry.clone(),
        Duration::from_secs(settings.nats.heartbeat_secs),
        shutdown.clone(),
    );
    let accounts = if settings.gateway.auth.enabled {
        Some(auth::Accounts::open(&js, settings.gateway.auth.clone(), settings.nats.replicas).await?)
    } else {
        None
    };
    let events = events::Events::default();
    let feed = tokio::spawn(events.clone().feed(client.clone(), shutdown.clone()));
    let state = AppState {
        registry,
        ice_servers: Arc::new(settings.gateway.ice_servers.clone()),
        turn: Arc::new(magnet_runtime::turn::TurnServers::new(&settings.turn)?),
        node_timeout: routes::NODE_TIMEOUT,
        signaling: settings.gateway.signaling.clone(),
        accounts,
        public_reads: settings.gateway.auth.public_reads,
        max_torrent: settings.gateway.max_torrent_kib.saturating_mul(1024),
        events,
        webrtc: webrtc::Sessions::default(),
        shutdown: shutdown.clone(),
        metrics: metrics::HttpMetrics::registered(&admin),
        max_active_tasks: settings.gateway.max_active_tasks_per_user,
        submitting: turns::Turns::default(),
        streams: streams::OpenStreams::new(settings.gateway.max_streams_per_user),
        logins: throttle::Logins::new(
            settings.gateway.auth.attempts_per_minute_per_ip,
            settings.gateway.auth.attempts_per_minute_per_user,
        ),
        originals,
        outgoing: grpc::Outgoing::new(&settings.internal),
        channels: Arc::default(),
        listing: Arc::default(),
    };
    let app = router(
        state,
        settings.gateway.max_body_kib * 1024,
        &settings.gateway.cors_origins,
    );
    let listener = tokio::net::TcpListener::bind(settings.gateway.listen).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(server::serve(
        listener,
        app,
        Duration::from_secs(settings.gateway.header_timeout_secs),
        shutdown.clone(),
    ));
    admin.set_ready(true);
    tracing::info!(%addr, accounts = settings.gateway.auth.enabled, "gateway ready");
    let join = tokio::spawn(async move {
        shutdown.cancelled().await;
        admin.set_ready(false);
        let _ = tokio::time::timeout(magnet_runtime::shutdown::GRACE_PERIOD, async {
            let _ = server.await;
            let _ = watcher.await;
            let _ = feed.await;
            let _ = admin_task.await;
        })
        .await;
        tracing::info!("gateway stopped");
        Ok(())
    });
    Ok(Running {
        addr,
        admin_addr,
        join,
    })
}
