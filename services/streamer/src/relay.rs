//! gRPC `FileService.Read`: the same files, with the same confinement, for the gateway's HTTP
//! relay (the fallback when peer-to-peer does not come up).

use std::pin::Pin;

use futures::Stream;
use magnet_proto::v1 as pb;
use magnet_proto::v1::file_service_server::FileService;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::{Request, Response, Status};

use crate::files::{FileError, FileRef, Root};

const CHUNK: usize = 64 * 1024;

/// The streamer's `FileService`: the gateway's HTTP relay reads the node's files through it,
/// in 64 KiB chunks.
pub struct Relay {
    root: Root,
    /// Counts the bytes read for the relay.
    sent: prometheus_client::metrics::counter::Counter,
}

impl Relay {
    /// `sent` is the `magnet_relay_bytes` counter, which counts the file bytes read.
    pub fn new(root: Root, sent: prometheus_client::metrics::counter::Counter) -> Self {
        Self { root, sent }
    }
}

fn status(e: &FileError) -> Status {
    magnet_runtime::grpc::status_because(e.reason(), e.to_string())
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ReadChunk, Status>> + Send>>;

#[tonic::async_trait]
impl FileService for Relay {
    type ReadStream = ChunkStream;

    async fn read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let span = tracing::info_span!("grpc", rpc = "Read");
        magnet_runtime::telemetry::extract_grpc(&span, req.metadata());
        let r = req.into_inner();
        let file_ref = FileRef::new(&r.task_id, &r.file).map_err(|e| status(&e))?;
        let (mut file, total) = self.root.open(&file_ref).await.map_err(|e| status(&e))?;
        if r.offset > total {
            return Err(Status::out_of_range("offset beyond the end of the file"));
        }
        let length = if r.length == 0 {
            total - r.offset
        } else {
            r.length.min(total - r.offset)
        };
        file.seek(std::io::SeekFrom::Start(r.offset))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let content_type = file_ref.content_type().to_owned();
        let stream = async_stream(file, total, length, content_type, self.sent.clone());
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Reads the range in chunks on a task of its own; the first chunk carries size and type.
fn async_stream(
    mut file: tokio::fs::File,
    total: u64,
    length: u64,
    content_type: String,
    sent: prometheus_client::metrics::counter::Counter,
) -> impl Stream<Item = Result<pb::ReadChunk, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut left = length;
        let mut first = true;
        let mut buf = vec![0u8; CHUNK];
        while left > 0 || first {
            let want = left.min(CHUNK as u64) as usize;
            let n = match file.read(&mut buf[..want]).await {
                Ok(0) if want > 0 => {
                    let _ = tx
                        .send(Err(Status::internal("file shrank while being read")))
                        .await;
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    let _ = tx
                        .send(Err(Status::internal(format!("cannot read the file: {e}"))))
                        .await;
                    return;
                }
            };
            left -= n as u64;
            sent.inc_by(n as u64);
            let chunk = pb::ReadChunk {
                total_size: if first { total } else { 0 },
                content_type: if first {
                    content_type.clone()
                } else {
                    String::new()
                },
                data: buf[..n].to_vec(),
            };
            first = false;
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
