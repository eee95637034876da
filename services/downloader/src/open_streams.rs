//! The file streams open on the node's stream endpoint, by task and file. A stream ends when
//! its task is deleted (the torrent sends no more pieces) or when its file is no longer
//! wanted (another video was chosen): librqbit fetches whatever an open stream reads, so a
//! reader left behind would download a video nobody plays.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use magnet_core::TaskId;
use tokio_util::sync::CancellationToken;

/// Tokens that end the open streams, per task and file index.
#[derive(Debug, Default)]
pub struct OpenStreams {
    by_task: Mutex<HashMap<TaskId, HashMap<usize, CancellationToken>>>,
}

impl OpenStreams {
    /// The token that ends the streams of file `index` of task `id`. Take it before checking
    /// that the file is wanted: a choice made after the check then ends the stream.
    pub fn token(&self, id: &TaskId, index: usize) -> CancellationToken {
        self.lock()
            .entry(id.clone())
            .or_default()
            .entry(index)
            .or_default()
            .clone()
    }

    /// Ends every stream of a task.
    pub fn end_task(&self, id: &TaskId) {
        if let Some(files) = self.lock().remove(id) {
            files.values().for_each(CancellationToken::cancel);
        }
    }

    /// Ends the streams of the task's files outside `wanted`.
    pub fn end_unwanted(&self, id: &TaskId, wanted: &HashSet<usize>) {
        if let Some(files) = self.lock().get_mut(id) {
            files.retain(|index, token| {
                let keep = wanted.contains(index);
                if !keep {
                    token.cancel();
                }
                keep
            });
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TaskId, HashMap<usize, CancellationToken>>> {
        self.by_task.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_ends_the_other_files_and_a_delete_ends_all() {
        let streams = OpenStreams::default();
        let id = |s: &str| TaskId::parse(s).expect("id");
        let (a, b) = (id("task_1"), id("task_2"));
        let (a0, a3, b0) = (
            streams.token(&a, 0),
            streams.token(&a, 3),
            streams.token(&b, 0),
        );
        streams.end_unwanted(&a, &HashSet::from([3, 4]));
        assert!(a0.is_cancelled());
        assert!(!a3.is_cancelled() && !b0.is_cancelled());
        // A file chosen again gets a fresh token; the one still wanted keeps its own.
        assert!(!streams.token(&a, 0).is_cancelled());
        assert!(!streams.token(&a, 3).is_cancelled());
        streams.end_task(&a);
        assert!(a3.is_cancelled());
        assert!(!b0.is_cancelled());
    }
}
