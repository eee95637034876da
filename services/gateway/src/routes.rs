//! The original's HTTP API (`/api/…`) and the video relay (`/video/<task_id>/<file>`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use magnet_core::{ErrorCode, Magnet, Reason, TaskId};
use magnet_proto::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{self, User};
use crate::convert;
use crate::error::{ApiError, ApiResult, QueryParams, json_body, query};
use crate::turns::Turn;

fn ok(data: Value) -> Json<Value> {
    Json(json!({ "success": true, "data": data }))
}

/// `GET /api/nodes`: the online nodes, by id; `[]` when none.
pub async fn nodes(State(s): State<AppState>) -> Json<Value> {
    let nodes: Vec<Value> = s
        .registry
        .online()
        .await
        .iter()
        .map(convert::node)
        .collect();
    ok(Value::Array(nodes))
}

/// `GET /api/nodes/:id`: one node, or 404 when it is unknown or offline.
pub async fn node(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let n = s.registry.get(&id).await.ok_or_else(|| {
        ApiError::because(
            Reason::NodeNotFound,
            format!("node {id} is unknown or offline"),
        )
    })?;
    Ok(ok(convert::node(&n)))
}

/// Tasks of every online node, each asked with a time limit so that one slow node does not
/// stall the answer. A node that failed or was too slow is named in `node_errors` (its tasks
/// are missing, and the UI says so), never silently left out. Concurrent requests share one
/// `List` call per node ([`AppState::node_tasks`]).
pub async fn tasks(State(s): State<AppState>, Extension(user): Extension<User>) -> Json<Value> {
    let nodes = s.registry.online().await;
    let asks = nodes.iter().map(|n| s.node_tasks(n));
    let lists = futures::future::join_all(asks).await;
    let mut all: Vec<(&pb::Task, pb::NodeKind)> = Vec::new();
    let mut errors = Vec::new();
    for (node, list) in nodes.iter().zip(&lists) {
        match list {
            Ok(tasks) => all.extend(tasks.iter().map(|t| (t, node.kind()))),
            Err(e) => errors.push(json!({ "node_id": node.id, "error": e })),
        }
    }
    all.sort_by(|(a, _), (b, _)| b.created_at.cmp(&a.created_at));
    ok(json!({
        "tasks": all.into_iter().map(|(t, kind)| convert::task(t, &user, kind)).collect::<Vec<_>>(),
        "node_errors": errors,
    }))
}

/// Which page of a task's files `GET /api/tasks/:id` returns.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(default)]
pub struct FilesPage {
    files_offset: u32,
    files_limit: u32,
}

/// Locating a task to act on it needs none of its files.
const FILES_PROBE: FilesPage = FilesPage {
    files_offset: 0,
    files_limit: 1,
};

/// Finds which online node holds a task, asking every node at once. Not found anywhere is
/// 404; not found where nodes answered but some node failed or was too slow is 503, since
/// the task may be there.
async fn locate(s: &AppState, id: &str, page: FilesPage) -> ApiResult<(pb::NodeRecord, pb::Task)> {
    TaskId::parse(id).map_err(|e| ApiError::because(Reason::TaskIdInvalid, e.to_string()))?;
    let asks = s.registry.online().await.into_iter().map(|n| {
        let client = s.downloader(&n.downloader_endpoint);
        let timeout = s.node_timeout;
        let req = pb::GetRequest {
            task_id: id.to_owned(),
            files_offset: page.files_offset,
            files_limit: page.files_limit,
        };
        let workers = s.originals.clone();
        async move {
            if n.kind() == pb::NodeKind::Original {
                return match workers.get(&n, req).await? {
                    Some(t) => Ok(Some((n, t))),
                    None => Ok(None),
                };
            }
            let mut client = client.map_err(|e| e.message)?;
            let get = client.get(req);
            match tokio::time::timeout(timeout, get).await {
                Ok(Ok(r)) => Ok(Some((n, r.into_inner()))),
                Ok(Err(e)) if e.code() == tonic::Code::NotFound => Ok(None),
                Ok(Err(e)) => Err(format!("node {}: {}", n.id, e.message())),
                Err(_) => Err(format!("node {} did not answer in time", n.id)),
            }
        }
    });
    let mut failed = None;
    for answer in futures::future::join_all(asks).await {
        match answer {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => Err(ApiError::because(
            Reason::NodeUnavailable,
            format!("task not found on the nodes that answered; {e}"),
        )),
        None => Err(ApiError::because(Reason::TaskNotFound, "Task not found")),
    }
}

/// `GET /api/tasks/:id`: the task from whichever online node holds it, with one page of its
/// files (`files_offset`, `files_limit`).
pub async fn task(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    page: QueryParams<FilesPage>,
) -> ApiResult<Json<Value>> {
    let (n, t) = locate(&s, &id, query(page)?).await?;
    Ok(ok(convert::task(&t, &user, n.kind())))
}

/// The node and task `id` for an action (`verb`: "delete", "pause", …) that only the task's
/// submitter or an admin may take, on one of our nodes (the original's workers take none).
async fn own_task(
    s: &AppState,
    user: &User,
    id: &str,
    verb: &str,
) -> ApiResult<(pb::NodeRecord, pb::Task)> {
    auth::may_change(user)?;
    let (n, t) = locate(s, id, FILES_PROBE).await?;
    if n.kind() == pb::NodeKind::Original {
        return Err(ApiError::because(
            Reason::NodeIsOriginal,
            format!(
                "node {} is an original worker, which cannot {verb} tasks",
                n.id
            ),
        ));
    }
    if !convert::owns(user, &t) {
        return Err(ApiError::because(
            Reason::NotOwner,
            format!("only the user who submitted this task, or an admin, may {verb} it"),
        ));
    }
    Ok((n, t))
}

/// `DELETE /api/tasks/:id`: its submitter or an admin removes a task with its torrent,
/// payload and HLS output (not on an original worker).
pub async fn delete_task(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (n, _) = own_task(&s, &user, &id, "delete").await?;
    let mut client = s.downloader(&n.downloader_endpoint)?;
    client.delete(pb::DeleteRequest { task_id: id }).await?;
    Ok(Json(json!({ "success": true, "message": "Task deleted" })))
}

/// `POST /api/tasks/:id/retry`: its submitter or an admin tries a task in error again.
pub async fn retry(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (n, _) = own_task(&s, &user, &id, "retry").await?;
    let mut client = s.downloader(&n.downloader_endpoint)?;
    let t = client
        .retry(pb::RetryRequest { task_id: id })
        .await?
        .into_inner();
    Ok(ok(convert::task(&t, &user, n.kind())))
}

/// `POST /api/tasks/:id/stop`: stop and keep. Its submitter or an admin stops a completed
/// task's seeding; its files and HLS stay and it plays as before.
pub async fn stop_seeding(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (n, _) = own_task(&s, &user, &id, "stop").await?;
    let mut client = s.downloader(&n.downloader_endpoint)?;
    let t = client
        .stop_seeding(pb::StopSeedingRequest { task_id: id })
        .await?
        .into_inner();
    Ok(ok(convert::task(&t, &user, n.kind())))
}

/// The body of `POST /api/tasks/:id/play`.
#[derive(Deserialize)]
pub struct Play {
    /// Index in the torrent's files of the video to fetch and play.
    file: u32,
}

/// `POST /api/tasks/:id/play` `{"file": 3}`: its submitter or an admin makes one video of the
/// torrent the one fetched and played (an episode of a season pack): only it and its
/// subtitles download, and its HLS goes to its own folder (`videos[].playlist`).
pub async fn play(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    body: crate::error::JsonBody<Play>,
) -> ApiResult<Json<Value>> {
    let body = crate::error::json_body(body)?;
    let (n, _) = own_task(&s, &user, &id, "choose what to play of").await?;
    let mut client = s.downloader(&n.downloader_endpoint)?;
    let t = client
        .play(pb::PlayRequest {
            task_id: id,
            file_index: body.file,
        })
        .await?
        .into_inner();
    Ok(ok(convert::task(&t, &user, n.kind())))
}

/// `POST /api/tasks/:id/pin` and `/unpin`: its submitter or an admin keeps a task from ever
/// being evicted to make room under the node's disk quota, or lets it be again.
async fn set_pinned(s: AppState, user: User, id: String, pinned: bool) -> ApiResult<Json<Value>> {
    let verb = if pinned { "pin" } else { "unpin" };
    let (n, _) = own_task(&s, &user, &id, verb).await?;
    let mut client = s.downloader(&n.downloader_endpoint)?;
    let t = client
        .pin(pb::PinRequest {
            task_id: id,
            pinned,
        })
        .await?
        .into_inner();
    Ok(ok(convert::task(&t, &user, n.kind())))
}

/// `POST /api/tasks/:id/pin`: the node's disk quota never evicts the task.
pub async fn pin(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_pinned(s, user, id, true).await
}

/// `POST /api/tasks/:id/unpin`: the task may be evicted under the node's disk quota again.
pub async fn unpin(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_pinned(s, user, id, false).await
}

/// `POST /api/tasks/:id/pause` and `/resume`: its submitter or an admin pauses a task that
/// still downloads (no transfers, also after a node restart) or resumes it.
async fn set_paused(s: AppState, user: User, id: String, paused: bool) -> ApiResult<Json<Value>> {
    let verb = if paused { "pause" } else { "resume" };
    let (n, _) = own_task(&s, &user, &id, verb).await?;
    let mut client = s.downloader(&n.downloader_endpoint)?;
    let t = client
        .pause(pb::PauseRequest {
            task_id: id,
            paused,
        })
        .await?
        .into_inner();
    Ok(ok(convert::task(&t, &user, n.kind())))
}

/// `POST /api/tasks/:id/pause`: a task still downloading moves no bytes until resumed, also
/// across a node restart.
pub async fn pause(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_paused(s, user, id, true).await
}

/// `POST /api/tasks/:id/resume`: a paused task downloads again, from what is on disk.
pub async fn resume(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_paused(s, user, id, false).await
}

/// A submit's JSON body: a magnet, or a `.torrent` file in standard base64.
#[derive(Deserialize)]
pub struct Submit {
    #[serde(default)]
    worker_id: String,
    #[serde(default)]
    magnet_url: String,
    #[serde(default)]
    torrent: String,
}

/// What a submit names.
enum Source {
    Magnet(String),
    Torrent(Vec<u8>),
}

fn form_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::because(Reason::BodyInvalid, format!("invalid form: {e}"))
}

/// The node asked for and the source of a submit: JSON (`magnet_url`, or `torrent` in base64)
/// or a multipart form (fields `worker_id`, `magnet_url`, or the file `torrent`), as the UI's
/// file picker and drop zone send it. Exactly one of magnet and torrent.
async fn read_submit(req: axum::extract::Request) -> ApiResult<(String, Source)> {
    use axum::extract::FromRequest;
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (worker_id, magnet, torrent) = if form {
        let mut form = axum::extract::Multipart::from_request(req, &())
            .await
            .map_err(|e| {
                ApiError::body(
                    e.status().as_u16(),
                    format!("invalid form: {}", e.body_text()),
                )
            })?;
        let (mut worker, mut magnet, mut torrent) = (String::new(), String::new(), None);
        while let Some(field) = form.next_field().await.map_err(form_error)? {
            match field.name() {
                Some("worker_id") => worker = field.text().await.map_err(form_error)?,
                Some("magnet_url") => magnet = field.text().await.map_err(form_error)?,
                Some("torrent") => {
                    torrent = Some(field.bytes().await.map_err(form_error)?.to_vec())
                }
                _ => {}
            }
        }
        (worker, magnet, torrent)
    } else {
        let body = json_body(axum::Json::<Submit>::from_request(req, &()).await)?;
        let torrent = (!body.torrent.is_empty())
            .then(|| {
                data_encoding::BASE64
                    .decode(body.torrent.trim().as_bytes())
                    .map_err(|e| {
                        ApiError::because(
                            Reason::TorrentInvalid,
                            format!("torrent: not base64: {e}"),
                        )
                    })
            })
            .transpose()?;
        (body.worker_id, body.magnet_url, torrent)
    };
    match (magnet.trim().is_empty(), torrent) {
        (false, None) => Ok((worker_id, Source::Magnet(magnet))),
        (true, Some(t)) if t.is_empty() => Err(ApiError::because(
            Reason::TorrentInvalid,
            "the .torrent file is empty",
        )),
        (true, Some(t)) => Ok((worker_id, Source::Torrent(t))),
        (true, None) => Err(ApiError::because(
            Reason::SourceRequired,
            "give magnet_url or a .torrent file (torrent)",
        )),
        (false, Some(_)) => Err(ApiError::because(
            Reason::SourceRequired,
            "give magnet_url or a .torrent file, not both",
        )),
    }
}

/// Submits to the chosen node, or to the least-loaded online one when none is named.
pub async fn submit(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
    req: axum::extract::Request,
) -> ApiResult<Json<Value>> {
    let (worker_id, source) = read_submit(req).await?;
    auth::may_change(&user)?;
    // Refuse bad magnets here too, with the same message, before touching any node.
    if let Source::Magnet(m) = &source {
        Magnet::parse(m).map_err(|e| {
            ApiError::because(Reason::MagnetInvalid, format!("invalid magnet link: {e}"))
        })?;
    }
    let node = if worker_id.is_empty() {
        let mut online = s.registry.online().await;
        online.sort_by_key(|n| n.active_tasks);
        online
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::because(Reason::NoNodeOnline, "no worker node is online"))?
    } else {
        s.registry.get(&worker_id).await.ok_or_else(|| {
            ApiError::because(
                Reason::NodeNotFound,
                format!("node {worker_id} is unknown or offline"),
            )
        })?
    };
    let _reserved = check_active_tasks(&s, &user).await?;
    tracing::info!(user = %user.username, node = %node.id, "submit");
    let submit = match source {
        Source::Magnet(magnet_url) => pb::SubmitRequest {
            magnet_url,
            owner: user.id.clone(),
            torrent: Vec::new(),
        },
        Source::Torrent(torrent) => pb::SubmitRequest {
            magnet_url: String::new(),
            owner: user.id.clone(),
            torrent,
        },
    };
    let r = if node.kind() == pb::NodeKind::Original {
        if !submit.torrent.is_empty() {
            return Err(ApiError::because(
                Reason::NodeIsOriginal,
                format!(
                    "node {} is an original worker, which takes magnet links only",
                    node.id
                ),
            ));
        }
        s.originals
            .submit(&node, submit)
            .await
            .map_err(|e| ApiError::because(Reason::NodeUnavailable, e))?
    } else {
        let mut client = s.downloader(&node.downloader_endpoint)?;
        client.submit(submit).await?.into_inner()
    };
    let task = r
        .task
        .map(|t| convert::task(&t, &user, node.kind()))
        .unwrap_or(Value::Null);
    let message = if r.existing {
        "Task already exists"
    } else {
        "Task submitted successfully"
    };
    Ok(Json(
        json!({ "success": true, "message": message, "data": task }),
    ))
}

/// A user (admins aside) may have at most `gateway.max_active_tasks_per_user` tasks not yet
/// finished, over all nodes: five magnets that never resolve must not hold every download
/// slot of the cluster.
/// A user's submits take turns (held until the submit returns), so parallel submits cannot
/// all pass the check before any of their tasks exists.
async fn check_active_tasks(s: &AppState, user: &User) -> ApiResult<Option<Turn>> {
    if user.role == auth::Role::Admin {
        return Ok(None);
    }
    let turn = s.submitting.take(&user.id).await;
    let nodes = s.registry.online().await;
    // Lists of their own, not the shared in-flight ones: one started before a task of this
    // user was created would miss it.
    let lists = futures::future::join_all(nodes.iter().map(|n| s.list_call(n))).await;
    let active = lists
        .iter()
        .flatten()
        .flat_map(|l| l.iter())
        .filter(|t| t.owner == user.id)
        .filter(|t| {
            matches!(
                t.status(),
                pb::TaskStatus::Pending
                    | pb::TaskStatus::Downloading
                    | pb::TaskStatus::Downloaded
                    | pb::TaskStatus::Transcoding
            )
        })
        .count();
    let limit = s.max_active_tasks as usize;
    if active >= limit {
        return Err(ApiError::because(
            Reason::TooManyTasks,
            format!(
                "you have {active} tasks in progress, the most one user may have; wait for one to finish or delete one"
            ),
        )
        .retry_after(60));
    }
    Ok(Some(turn))
}

/// `GET /api/status`: how many nodes are online and how many were seen since start
/// (`active_sessions` is always 0).
pub async fn status(State(s): State<AppState>) -> Json<Value> {
    ok(json!({
        "online_nodes": s.registry.online().await.len(),
        "total_nodes": s.registry.total().await,
        "active_sessions": 0,
    }))
}

/// `GET /api/webrtc/ice-servers`: the STUN/TURN servers for the caller's peer connections,
/// the TURN services first (ours with a credential made for this user), and how long they last.
pub async fn ice_servers(
    State(s): State<AppState>,
    Extension(user): Extension<User>,
) -> Json<Value> {
    // TURN first: credentials of this user's own, expiring with the TTL answered.
    let turn = s.turn.for_user(&format!("user-{}", user.id)).await;
    let servers: Vec<Value> = turn
        .servers
        .iter()
        .chain(s.ice_servers.iter())
        .map(|i| {
            let mut v = json!({ "urls": i.urls });
            if !i.username.is_empty() {
                v["username"] = i.username.clone().into();
                v["credential"] = i.credential.clone().into();
            }
            v
        })
        .collect();
    let ttl = match (turn.ttl_secs, servers.is_empty()) {
        (Some(ttl), _) => ttl,
        (None, true) => 0,
        (None, false) => 3600,
    };
    Json(json!({ "success": true, "iceServers": servers, "ttl": ttl }))
}

/// The fallback when P2P fails: the node's streamer reads the file over gRPC and the bytes
/// stream through, with `Range` support.
pub async fn video(
    State(s): State<AppState>,
    Path((task_id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (node, _) = locate(&s, &task_id, FILES_PROBE).await?;
    if node.kind() == pb::NodeKind::Original {
        return Err(ApiError::because(
            Reason::NodeIsOriginal,
            format!(
                "node {} is an original worker: it serves video over P2P only, with no relay",
                node.id
            ),
        ));
    }
    if node.streamer_endpoint.is_empty() {
        return Err(ApiError::because(
            Reason::NodeUnavailable,
            format!("node {} has no streamer", node.id),
        ));
    }
    let mut client = s.streamer(&node.streamer_endpoint)?;
    let ranged = headers.contains_key(header::RANGE);
    let range = if ranged {
        // The size first, to check the range against it: a one-byte read answers with it.
        let probe = pb::ReadRequest {
            task_id: task_id.clone(),
            file: file.clone(),
            offset: 0,
            length: 1,
        };
        let total = client
            .read(probe)
            .await?
            .into_inner()
            .message()
            .await?
            .map_or(0, |c| c.total_size);
        let value = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        match magnet_core::range::single(value, total) {
            Ok(r) => r,
            Err(magnet_core::range::Unsatisfiable) => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{total}"))],
                    Json(json!({
                        "success": false,
                        "error": "range not satisfiable: nothing of the file is in that range",
                    })),
                )
                    .into_response());
            }
        }
    } else {
        None
    };
    let (offset, length) = range.map_or((0, None), |(o, l)| (o, Some(l)));
    let read = client
        .read(pb::ReadRequest {
            task_id,
            file,
            offset,
            length: length.unwrap_or(0),
        })
        .await;
    let mut stream = match read {
        Ok(r) => r.into_inner(),
        Err(e) if e.code() == tonic::Code::OutOfRange => {
            return Err(ApiError::because(
                Reason::RangeNotSatisfiable,
                "range not satisfiable: it starts past the end of the file",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let first = stream
        .message()
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "empty reply from the streamer"))?;
    let total = first.total_size;
    let content_type = first.content_type.clone();
    let sent = length
        .unwrap_or(total.saturating_sub(offset))
        .min(total.saturating_sub(offset));
    let rest = futures::stream::iter([Ok::<_, tonic::Status>(first)]).chain(stream);
    let body = Body::from_stream(rest.map(|c| {
        c.map(|c| bytes::Bytes::from(c.data))
            .map_err(std::io::Error::other)
    }));
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, sent)
        .header(header::CACHE_CONTROL, "no-cache");
    resp = if range.is_some() {
        resp.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                offset,
                offset.saturating_add(sent.saturating_sub(1)),
                total
            ),
        )
    } else {
        resp.status(StatusCode::OK)
    };
    resp.body(body)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// The fallback for any other route: 404 `route_not_found` in the API's error shape.
pub async fn not_found() -> impl IntoResponse {
    ApiError::because(Reason::RouteNotFound, "no such route")
}

/// Bound for calls to nodes (list, get) so one slow node cannot stall a request.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(3);
