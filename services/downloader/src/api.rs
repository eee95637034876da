//! The gRPC `TaskService`: converts requests, calls [`Tasks`], maps errors through the
//! runtime's error-code table.

use std::sync::Arc;

use magnet_proto::v1 as pb;
use magnet_proto::v1::task_service_server::TaskService;
use magnet_runtime::telemetry;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::convert;
use crate::tasks::Tasks;

/// The downloader's gRPC `TaskService`, served on its gRPC listener; a thin layer over
/// [`Tasks`], which does the work.
pub struct TaskApi {
    tasks: Arc<Tasks>,
}

impl TaskApi {
    /// Wraps the node's one [`Tasks`], shared with the rest of the service.
    pub fn new(tasks: Arc<Tasks>) -> Self {
        Self { tasks }
    }
}

fn span<T>(name: &'static str, req: &Request<T>) -> tracing::Span {
    let span = tracing::info_span!("grpc", rpc = name);
    telemetry::extract_grpc(&span, req.metadata());
    span
}

#[tonic::async_trait]
impl TaskService for TaskApi {
    async fn submit(
        &self,
        req: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let span = span("Submit", &req);
        let req = req.into_inner();
        let (task, existing) = if req.torrent.is_empty() {
            self.tasks
                .submit(&req.magnet_url, &req.owner)
                .instrument(span)
                .await?
        } else {
            self.tasks
                .submit_torrent(bytes::Bytes::from(req.torrent), &req.owner)
                .instrument(span)
                .await?
        };
        Ok(Response::new(pb::SubmitResponse {
            task: Some(convert::task(task)),
            existing,
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let span = span("List", &req);
        let tasks = self.tasks.list().instrument(span).await?;
        Ok(Response::new(pb::ListResponse {
            tasks: tasks.into_iter().map(convert::summary).collect(),
        }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::Task>, Status> {
        let span = span("Get", &req);
        let req = req.into_inner();
        let task = self.tasks.get(&req.task_id).instrument(span).await?;
        Ok(Response::new(convert::page(
            task,
            req.files_offset,
            req.files_limit,
        )))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let span = span("Delete", &req);
        self.tasks
            .delete(&req.into_inner().task_id)
            .instrument(span)
            .await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn pause(
        &self,
        req: Request<pb::PauseRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let span = span("Pause", &req);
        let req = req.into_inner();
        let task = self
            .tasks
            .set_paused(&req.task_id, req.paused)
            .instrument(span)
            .await?;
        Ok(Response::new(convert::task(task)))
    }

    async fn retry(
        &self,
        req: Request<pb::RetryRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let span = span("Retry", &req);
        let task = self
            .tasks
            .retry(&req.into_inner().task_id)
            .instrument(span)
            .await?;
        Ok(Response::new(convert::task(task)))
    }

    async fn stop_seeding(
        &self,
        req: Request<pb::StopSeedingRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let span = span("StopSeeding", &req);
        let task = self
            .tasks
            .stop_seeding(&req.into_inner().task_id)
            .instrument(span)
            .await?;
        Ok(Response::new(convert::task(task)))
    }

    async fn pin(&self, req: Request<pb::PinRequest>) -> Result<Response<pb::Task>, Status> {
        let span = span("Pin", &req);
        let req = req.into_inner();
        let task = self
            .tasks
            .set_pinned(&req.task_id, req.pinned)
            .instrument(span)
            .await?;
        Ok(Response::new(convert::task(task)))
    }

    async fn play(&self, req: Request<pb::PlayRequest>) -> Result<Response<pb::Task>, Status> {
        let span = span("Play", &req);
        let req = req.into_inner();
        let task = self
            .tasks
            .play(&req.task_id, req.file_index)
            .instrument(span)
            .await?;
        Ok(Response::new(convert::page(task, 0, 0)))
    }
}
