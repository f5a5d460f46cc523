//! Gathers single publishes into group commits.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{Committed, Publisher};
use crate::{
    domain::publish_check::Checked,
    error::{AppError, AppResult},
};

/// Most single publishes one group commit carries.
const MAX_GROUP: usize = 256;

/// A single publish waiting for the next group commit.
struct Pending {
    submission: Checked,
    reply: oneshot::Sender<AppResult<Committed>>,
}

#[derive(Clone)]
pub struct Coalescer {
    tx: mpsc::Sender<Pending>,
}

impl Coalescer {
    /// `lanes` group commits may run at once (one on SQLite, which has a
    /// single writer), as tasks of `tasks`; they end when `stop` is
    /// cancelled, once what was submitted is committed.
    pub fn start(
        publisher: Arc<Publisher>,
        lanes: usize,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(4 * MAX_GROUP);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..lanes.max(1) {
            tasks.spawn(commit_lane(publisher.clone(), rx.clone(), stop.clone()));
        }
        Self { tx }
    }

    /// Publishes through the next group commit.
    pub async fn submit(&self, submission: Checked) -> AppResult<Committed> {
        let stopped = || AppError::internal(anyhow::anyhow!("the publisher has stopped"));
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Pending { submission, reply }).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Takes whatever is waiting, commits it as one group, answers each.
async fn commit_lane(
    publisher: Arc<Publisher>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    stop: CancellationToken,
) {
    loop {
        let mut group = Vec::new();
        {
            let mut rx = rx.lock().await;
            let received = tokio::select! {
                received = rx.recv_many(&mut group, MAX_GROUP) => received,
                // What is still waiting is committed before the lane ends.
                () = stop.cancelled() => {
                    while group.len() < MAX_GROUP {
                        let Ok(pending) = rx.try_recv() else { break };
                        group.push(pending);
                    }
                    group.len()
                }
            };
            if received == 0 {
                return;
            }
        }
        let (submissions, replies): (Vec<Checked>, Vec<_>) =
            group.into_iter().map(|p| (p.submission, p.reply)).unzip();
        let results = publisher.commit(&submissions).await;
        for (result, reply) in results.into_iter().zip(replies) {
            let _ = reply.send(result);
        }
    }
}
