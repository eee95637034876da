//! Calls to an original worker from any gateway replica: NATS request/reply to the replica
//! holding its socket (the connection named in its registry record), which asks the worker
//! and answers with our types. Errors are texts for users ("did not answer within 5 s").

use std::time::Duration;

use magnet_proto::v1 as pb;
use magnet_runtime::subjects;
use prost::Message as _;

use super::Workers;

impl Workers {
    /// The worker's own wait, plus a second for the hop between replicas.
    fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.answer_timeout_secs.saturating_add(1))
    }

    async fn call(
        &self,
        node: &pb::NodeRecord,
        kind: pb::original_call::Kind,
    ) -> Result<pb::original_reply::Kind, String> {
        let subject = subjects::original_calls(&node.id, &node.connection);
        let call = pb::OriginalCall { kind: Some(kind) };
        let request = self.nats.request(subject, call.encode_to_vec().into());
        let reply = match tokio::time::timeout(self.call_timeout(), request).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(format!(
                    "original worker {} is not connected right now",
                    node.id
                ));
            }
            Ok(Err(e)) => return Err(format!("original worker {}: {e}", node.id)),
            Err(_) => {
                return Err(format!(
                    "original worker {} did not answer within {} s",
                    node.id,
                    self.call_timeout().as_secs()
                ));
            }
        };
        match pb::OriginalReply::decode(reply.payload) {
            Ok(pb::OriginalReply {
                kind: Some(pb::original_reply::Kind::Error(e)),
            }) => Err(e),
            Ok(pb::OriginalReply { kind: Some(k) }) => Ok(k),
            Ok(_) => Err(format!("empty reply for original worker {}", node.id)),
            Err(e) => Err(format!("malformed reply for original worker {}: {e}", node.id)),
        }
    }

    /// The worker's tasks as summaries (`get_tasks`).
    pub async fn list(&self, node: &pb::NodeRecord) -> Result<Vec<pb::Task>, String> {
        match self
            .call(node, pb::original_call::Kind::List(pb::ListRequest {}))
            .await?
        {
            pb::original_reply::Kind::List(l) => Ok(l.tasks),
            other => Err(unexpected(node, &other)),
        }
    }

    /// One task with a page of its files (`get_task_detail`); `None` when the worker has no
    /// such task.
    pub async fn get(
        &self,
        node: &pb::NodeRecord,
        req: pb::GetRequest,
    ) -> Result<Option<pb::Task>, String> {
        match self.call(node, pb::original_call::Kind::Get(req)).await? {
            pb::original_reply::Kind::Task(t) => Ok(Some(t)),
            pb::original_reply::Kind::NotFound(_) => Ok(None),
            other => Err(unexpected(node, &other)),
        }
    }

    /// `task_submit`; the answer's task is missing when the worker did not name it in time.
    pub async fn submit(
        &self,
        node: &pb::NodeRecord,
        req: pb::SubmitRequest,
    ) -> Result<pb::SubmitResponse, String> {
        match self.call(node, pb::original_call::Kind::Submit(req)).await? {
            pb::original_reply::Kind::Submitted(s) => Ok(s),
            other => Err(unexpected(node, &other)),
        }
    }
}

fn unexpected(node: &pb::NodeRecord, reply: &pb::original_reply::Kind) -> String {
    format!("unexpected reply for original worker {}: {reply:?}", node.id)
}
