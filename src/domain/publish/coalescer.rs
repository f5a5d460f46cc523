//! Gathers single publishes into group commits.
//!
//! A publish that finds no commit running and none waiting commits at once,
//! on its own request's task: at a moderate load, where nearly every group
//! holds one publish, this saves handing it to a lane's task and its answer
//! back (two wake-ups of another thread per event). Publishes that arrive
//! while a commit runs wait in the queue, and the next free lane commits
//! whatever is waiting as one group. Under load commits always run, so
//! publishes keep sharing them: a publish that went alone whenever some lane
//! was free made a fifth more commits per event at saturation.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

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
    publisher: Arc<Publisher>,
    /// One per lane: a commit, queued or at once, runs holding one.
    lanes: Arc<Semaphore>,
    /// How many lanes there are.
    lane_count: usize,
    tasks: TaskTracker,
    stop: CancellationToken,
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
        let lanes = lanes.max(1);
        let permits = Arc::new(Semaphore::new(lanes));
        for _ in 0..lanes {
            tasks.spawn(commit_lane(
                publisher.clone(),
                rx.clone(),
                permits.clone(),
                stop.clone(),
            ));
        }
        Self {
            tx,
            publisher,
            lanes: permits,
            lane_count: lanes,
            tasks: tasks.clone(),
            stop: stop.clone(),
        }
    }

    /// Publishes through the next group commit, or at once when no commit
    /// runs or waits.
    pub async fn submit(&self, submission: Checked) -> AppResult<Committed> {
        let stopped = || AppError::internal(anyhow::anyhow!("the publisher has stopped"));
        let idle = self.lanes.available_permits() == self.lane_count
            && self.tx.capacity() == self.tx.max_capacity()
            && !self.stop.is_cancelled();
        if let Some(lane) = idle
            .then(|| self.lanes.clone().try_acquire_owned().ok())
            .flatten()
        {
            let publisher = self.publisher.clone();
            let commit = async move {
                let _lane = lane;
                let mut results = publisher.commit(std::slice::from_ref(&submission)).await;
                results.pop().unwrap_or(Ok(Committed::CheckAgain))
            };
            return Finished::new(commit, &self.tasks).await;
        }
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Pending { submission, reply }).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Takes whatever is waiting, commits it as one group once a lane is free,
/// answers each.
async fn commit_lane(
    publisher: Arc<Publisher>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    lanes: Arc<Semaphore>,
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
        // The semaphore is never closed.
        let _lane = lanes.acquire().await.ok();
        // What arrived while this lane waited for its turn joins the group.
        if let Ok(mut rx) = rx.try_lock() {
            while group.len() < MAX_GROUP {
                let Ok(pending) = rx.try_recv() else { break };
                group.push(pending);
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

/// A commit run on the caller's task that is finished even if the caller
/// goes away (a client that hangs up drops its request's future): dropped
/// before it ends, it goes on as a task of its own, so a statement is never
/// cut off halfway and what it stored is still handed to the worker.
struct Finished<T: Send + 'static> {
    commit: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
    tasks: TaskTracker,
}

impl<T: Send + 'static> Finished<T> {
    fn new(commit: impl Future<Output = T> + Send + 'static, tasks: &TaskTracker) -> Self {
        Self {
            commit: Some(Box::pin(commit.in_current_span())),
            tasks: tasks.clone(),
        }
    }
}

impl<T: Send + 'static> Future for Finished<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let Some(commit) = self.commit.as_mut() else {
            panic!("polled after it finished");
        };
        let done = commit.as_mut().poll(cx);
        if done.is_ready() {
            self.commit = None;
        }
        done
    }
}

impl<T: Send + 'static> Drop for Finished<T> {
    fn drop(&mut self) {
        // A commit that panicked is not resumed.
        let Some(commit) = self.commit.take().filter(|_| !std::thread::panicking()) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                self.tasks.spawn_on(
                    async move {
                        commit.await;
                    },
                    &runtime,
                );
            }
            Err(_) => tracing::warn!("a commit was dropped halfway with no runtime to finish it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_commit_whose_caller_goes_away_is_finished() {
        let tasks = TaskTracker::new();
        let (go, going) = oneshot::channel::<()>();
        let (tx, rx) = oneshot::channel();
        let commit = async move {
            let _ = going.await;
            let _ = tx.send("stored");
        };
        let caller = tokio::time::timeout(Duration::from_millis(1), Finished::new(commit, &tasks));
        assert!(caller.await.is_err(), "the caller gave up first");
        assert_eq!(tasks.len(), 1, "the rest of the commit is a tracked task");
        go.send(()).expect("the commit is still waiting");
        assert_eq!(rx.await, Ok("stored"));
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn a_finished_commit_answers_its_caller() {
        let tasks = TaskTracker::new();
        assert_eq!(Finished::new(async { 7 }, &tasks).await, 7);
        assert!(tasks.is_empty());
    }
}
