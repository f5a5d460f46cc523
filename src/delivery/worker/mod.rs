//! The delivery worker: claims due deliveries, runs them in per-endpoint
//! lanes, and hands the results to the recorder.
//!
//! Concurrency is bounded twice: at most `concurrency` claimed deliveries are
//! held in memory at once, and at most `endpoint_concurrency` requests go to
//! one endpoint at a time; the rest of that endpoint's claimed deliveries
//! queue in its lane. An endpoint earns that concurrency by answering
//! (`window`): one that hangs keeps one or two requests in flight; and a
//! tenant runs at most `tenant_concurrency` at once (`shares`). When the
//! worker is nearly full, requests that have run for a second may leave
//! their slots (`lingering`), so tenants whose endpoints all hang do not
//! hold them. A lane
//! holding `LANE_DEPTH` times its window is left out of the next claims, so
//! a slow or dead endpoint only ever ties up its own lane and never holds
//! back deliveries to other endpoints; when such lanes together fill the
//! worker, their stalled backlog goes back to the queue (`stalled`). When a
//! claim finds nothing but rows of full lanes, the claimer waits for a lane
//! to drain instead of scanning the queue again on every publish. A
//! throttled endpoint's jobs wait for their sending slot in its lane
//! (`throttled`).

mod ended;
mod intake;
mod lingering;
mod run;
mod shares;
mod shutdown;
mod stalled;
mod throttled;
mod window;

pub use intake::WorkerIntake;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::{Duration, Instant},
};

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{Notify, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    client::DeliveryClient,
    details::{Prepared, prepare},
    job::{Job, TargetCache},
    recorder::Record,
};
use crate::{
    crypto::SecretBox,
    domain::{
        facts::Wakeup,
        queue::{self, ClaimStamp},
        removal::{self, Removed},
    },
    ids::{DeliveryId, EndpointId, InstanceId},
    time::now_ms,
};
use lingering::{InFlight, Lingering, Slot};
use shares::Shares;
use window::Windows;

/// Most deliveries claimed by one statement.
const CLAIM_BATCH: usize = 256;
/// An endpoint's lane may hold this many times its concurrency (running and
/// queued) before its deliveries are left out of claims.
const LANE_DEPTH: usize = 4;

/// How a claim went.
enum Claim {
    /// As many rows as asked: there may be more right away.
    Full,
    /// Fewer rows than asked: nothing more is due for now.
    Partial,
    /// Nothing, while lanes were left out: what is due belongs to full lanes,
    /// so claiming again before one of them drains would only scan in vain.
    Futile,
}

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub endpoint_concurrency: usize,
    /// Most requests in flight for one tenant (`shares`).
    pub tenant_concurrency: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub retry_after_cap: Duration,
    pub shutdown_grace: Duration,
    /// This instance's id, stamped on its claims.
    pub instance: InstanceId,
}

#[derive(Default)]
struct Lanes {
    /// Claimed (or reserved) deliveries not yet recorded, over all
    /// endpoints, but for the requests that left their slots (`lingering`).
    held: usize,
    /// Of `held`: reserved by a publish not yet committed and handed over
    /// (see `intake`).
    reserved: usize,
    endpoints: HashMap<EndpointId, Lane>,
    /// Endpoints left out of claims and hand-overs until then: their
    /// stalled backlog was handed back (`stalled`).
    cooling: HashMap<EndpointId, Instant>,
    /// How many requests each endpoint may have in flight (`window`).
    windows: Windows,
    /// Requests in flight per tenant (`shares`).
    shares: Shares,
    /// Requests that left their slots (`lingering`).
    lingering: Lingering,
}

#[derive(Default)]
struct Lane {
    /// Its endpoint's tenant.
    tenant: String,
    /// Left out of claims because it was full; a completion that drains it
    /// below the limit wakes the claimer.
    excluded: bool,
    /// Requests in flight (each has a task).
    running: usize,
    /// How fast its requests finish (`stalled`).
    pace: stalled::Pace,
    /// Claimed, waiting for a free slot in this lane.
    queued: VecDeque<Job>,
    /// Requests in flight, with how long they run (`lingering`).
    in_flight: Vec<InFlight>,
}

pub struct Worker {
    db: DatabaseConnection,
    client: DeliveryClient,
    /// Woken when deliveries may be due.
    wakeup: Wakeup,
    secrets: SecretBox,
    settings: WorkerSettings,
    /// This instance's id, stamped on its claims.
    instance: InstanceId,
    targets: TargetCache,
    lanes: Mutex<Lanes>,
    capacity_freed: Notify,
    /// Notified when no reservation is in flight any more.
    reservations_settled: Notify,
    records: mpsc::Sender<Record>,
    /// Numbers requests in flight.
    requests: AtomicU64,
    /// How many requests linger (`lingering`), for `/metrics`.
    lingering: metrics::Gauge,
    /// Stop claiming; lanes finish what they hold.
    stop: CancellationToken,
    /// Grace is over: lanes hand back what they are still doing.
    abort: CancellationToken,
    tasks: TaskTracker,
}

impl Worker {
    pub fn new(
        db: DatabaseConnection,
        client: DeliveryClient,
        wakeup: Wakeup,
        secrets: SecretBox,
        settings: WorkerSettings,
        records: mpsc::Sender<Record>,
        lingering: metrics::Gauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            client,
            wakeup,
            secrets,
            instance: settings.instance.clone(),
            settings,
            targets: TargetCache::default(),
            lanes: Mutex::default(),
            capacity_freed: Notify::new(),
            reservations_settled: Notify::new(),
            records,
            requests: AtomicU64::new(0),
            lingering,
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims and dispatches until [`Worker::shutdown`].
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        while !self.stop.is_cancelled() {
            match self.claim_once().await {
                Ok(Claim::Full) => backoff = Duration::from_millis(100),
                Ok(Claim::Partial) => {
                    backoff = Duration::from_millis(100);
                    self.idle(false).await;
                }
                Ok(Claim::Futile) => {
                    backoff = Duration::from_millis(100);
                    self.idle(true).await;
                }
                Err(err) => {
                    tracing::warn!(retry_in = ?backoff, "claiming deliveries failed: {err}");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// This worker's claim at `now` under `token`, for a lease from now.
    fn stamp(&self, now: i64, token: i64) -> ClaimStamp<'_> {
        ClaimStamp {
            now,
            lease_until: now + self.settings.lease.as_millis() as i64,
            token,
            instance: &self.instance,
        }
    }

    /// How many free slots make a claim worth making.
    fn refill_at(&self) -> usize {
        (self.settings.concurrency.min(CLAIM_BATCH) / 2).max(1)
    }

    /// How many jobs `endpoint`'s lane may hold, running and queued.
    fn lane_limit(&self, windows: &Windows, endpoint: &EndpointId) -> usize {
        windows.size(endpoint, self.settings.endpoint_concurrency) * LANE_DEPTH
    }

    /// Room for a claim, the endpoints it must leave out (full or cooling
    /// lanes), and the stalled backlog to hand back (`stalled`).
    fn take_stock(&self) -> (usize, Vec<EndpointId>, Vec<(DeliveryId, i64)>) {
        let mut lanes = self.lanes();
        let unloaded = self.unload_stalled(&mut lanes);
        let room = self.settings.concurrency.saturating_sub(lanes.held);
        let mut busy = Vec::new();
        let Lanes {
            endpoints, windows, ..
        } = &mut *lanes;
        for (id, lane) in endpoints.iter_mut() {
            if lane.running + lane.queued.len() >= self.lane_limit(windows, id) {
                lane.excluded = true;
                busy.push(id.clone());
            }
        }
        busy.extend(lanes.cooling.keys().cloned());
        (room, busy, unloaded)
    }

    /// Claims one batch.
    async fn claim_once(self: &Arc<Self>) -> Result<Claim, DbErr> {
        for job in self.linger_slow() {
            self.start_lane(job);
        }
        let (room, busy, unloaded) = self.take_stock();
        self.release_all(unloaded).await;
        if room < self.refill_at() {
            // A lane stalls without freeing anything: look again then.
            tokio::select! {
                () = self.capacity_freed.notified() => {}
                () = tokio::time::sleep(stalled::STALLED_AFTER) => {}
                () = self.stop.cancelled() => {}
            }
            return Ok(Claim::Full);
        }
        let limit = room.min(CLAIM_BATCH);
        let now = now_ms();
        let token: i64 = rand::random();
        let stamp = self.stamp(now, token);
        let claimed = queue::claim_due(&self.db, limit as u64, &busy, &stamp).await?;
        if claimed.is_empty() {
            return Ok(if busy.is_empty() {
                Claim::Partial
            } else {
                Claim::Futile
            });
        }
        let full = if claimed.len() == limit {
            Claim::Full
        } else {
            Claim::Partial
        };
        let prepared = prepare(&self.db, claimed, token, &self.targets, &self.secrets, now).await?;
        let mut removed = Vec::new();
        for job in prepared {
            match job {
                Prepared::Ready(job) => {
                    if let Some(job) = self.dispatch(true, job) {
                        self.release_all(vec![(job.delivery_id, job.claim_token)])
                            .await;
                    }
                }
                Prepared::Inactive {
                    delivery_id,
                    sequence,
                } => {
                    self.record(Record::Cancel {
                        delivery_id,
                        claim_token: token,
                        sequence,
                    })
                    .await;
                }
                Prepared::Removed(endpoint_id) => removed.push(endpoint_id.to_string()),
                Prepared::Unready => {}
            }
        }
        if !removed.is_empty() {
            removed.sort();
            removed.dedup();
            let removed = Removed::Endpoints(removed);
            tracing::info!(
                ?removed,
                "deleting deliveries to endpoints that no longer exist (a removal's sweep did not run)"
            );
            if let Err(err) = removal::forget_now(&self.db, &removed).await {
                // Nothing deleted: the lease brings them back to try again.
                tracing::warn!(
                    ?removed,
                    "could not delete deliveries whose endpoint is gone: {err}"
                );
            }
        }
        Ok(full)
    }

    /// Waits until something may be due: a publish, a drained lane, the next
    /// scheduled attempt, or the poll interval. After a futile claim, publishes
    /// do not wake it: only a lane draining (or the poll interval) can make
    /// the next claim find something.
    async fn idle(&self, futile: bool) {
        let now = now_ms();
        let poll = now + self.settings.poll_interval.as_millis() as i64;
        // A due time in the past means the due rows belong to busy endpoints;
        // a freed lane wakes us for those.
        let wake_at = match queue::next_due(&self.db).await {
            Ok(Some(due)) if due > now => due.min(poll),
            _ => poll,
        };
        let sleep = Duration::from_millis((wake_at - now).max(1) as u64);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = self.wakeup.wait(), if !futile => {}
            () = self.capacity_freed.notified() => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Queues a job in its endpoint's lane, starting the lane if it has
    /// room. `count` adds the job to the held total (hand-overs were counted
    /// when reserved). Gives the job back once the worker is stopping: a
    /// claim that ends after shutdown emptied the lanes would strand it
    /// there until its lease ran out.
    #[must_use]
    fn dispatch(self: &Arc<Self>, count: bool, job: Job) -> Option<Job> {
        let start = {
            let mut guard = self.lanes();
            let lanes = &mut *guard;
            if self.stop.is_cancelled() {
                return Some(job);
            }
            if count {
                lanes.held += 1;
            }
            let concurrency = lanes
                .windows
                .size(&job.endpoint.id, self.lane_concurrency(&job.endpoint));
            let tenant_room = lanes
                .shares
                .has_room(&job.tenant_id, self.settings.tenant_concurrency);
            let lane = lanes
                .endpoints
                .entry(job.endpoint.id.clone())
                .or_insert_with(|| Lane {
                    tenant: job.tenant_id.clone(),
                    ..Lane::default()
                });
            if lane.running < concurrency && tenant_room {
                lane.running += 1;
                lanes.shares.started(&job.tenant_id);
                Some(job)
            } else {
                if lane.running < concurrency {
                    lanes.shares.hold_back(&job.tenant_id, &job.endpoint.id);
                }
                lane.queued.push_back(job);
                None
            }
        };
        if let Some(job) = start {
            self.start_lane(job);
        }
        None
    }

    /// Starts a task of `job`'s lane.
    fn start_lane(self: &Arc<Self>, job: Job) {
        self.tasks.spawn(self.clone().run_lane(job));
    }

    /// Hands `queued` (delivery, claim token) back to the queue, due now.
    async fn release_all(&self, queued: Vec<(DeliveryId, i64)>) {
        for (delivery_id, claim_token) in queued {
            self.record(Record::Release {
                delivery_id,
                claim_token,
            })
            .await;
        }
    }

    async fn record(&self, record: Record) {
        // Only fails once the recorder is gone, after shutdown; the lease
        // then brings the delivery back.
        let _ = self.records.send(record).await;
    }
}
