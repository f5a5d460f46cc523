//! The delivery worker: claims due deliveries, runs them in per-endpoint
//! lanes, and hands the results to the recorder.
//!
//! Concurrency is bounded twice: at most `concurrency` claimed deliveries are
//! held in memory at once, and at most `endpoint_concurrency` requests go to
//! one endpoint at a time; the rest of that endpoint's claimed deliveries
//! queue in its lane. A lane holding `LANE_DEPTH` times its concurrency is
//! left out of the next claims, so a slow or dead endpoint only ever ties up
//! its own lane and never holds back deliveries to other endpoints. When a
//! claim finds nothing but rows of full lanes, the claimer waits for a lane
//! to drain instead of scanning the queue again on every publish.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use bytes::Bytes;
use entity::{delivery_attempt, webhook::WebhookStatus};
use reqwest::header::{HeaderName, HeaderValue};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{Notify, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use super::{
    client::{self, DeliveryClient, Request},
    job::{Job, TargetCache},
    outcome::{self, Rules},
    queue::{self, ClaimStamp},
    recorder::{AttemptRecord, Record},
    signer::signature_header,
};
use crate::{
    bus::{Bus, LiveAttempt},
    crypto::SecretBox,
    domain::handoff::{HandOver, LocalWorker},
    ids::{IdKind, new_id},
    telemetry,
    time::now_ms,
};

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
    pub lease: Duration,
    pub poll_interval: Duration,
    pub retry_after_cap: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Default)]
struct Lanes {
    /// Claimed deliveries not yet recorded, over all endpoints.
    held: usize,
    endpoints: HashMap<String, Lane>,
}

#[derive(Default)]
struct Lane {
    /// Left out of claims because it was full; a completion that drains it
    /// below the limit wakes the claimer.
    excluded: bool,
    /// Requests in flight (each has a task).
    running: usize,
    /// Claimed, waiting for a free slot in this lane.
    queued: VecDeque<Job>,
    /// (delivery id, claim token) of the requests in flight, to hand back if
    /// shutdown cuts them short.
    in_flight: Vec<(String, i64)>,
}

pub struct Worker {
    db: DatabaseConnection,
    client: DeliveryClient,
    bus: Arc<Bus>,
    secrets: SecretBox,
    settings: WorkerSettings,
    /// This instance's id, stamped on its claims.
    instance: String,
    targets: TargetCache,
    lanes: Mutex<Lanes>,
    capacity_freed: Notify,
    records: mpsc::Sender<Record>,
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
        bus: Arc<Bus>,
        secrets: SecretBox,
        settings: WorkerSettings,
        instance: String,
        records: mpsc::Sender<Record>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            client,
            bus,
            secrets,
            settings,
            instance,
            targets: TargetCache::default(),
            lanes: Mutex::default(),
            capacity_freed: Notify::new(),
            records,
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

    /// How many free slots make a claim worth making.
    fn refill_at(&self) -> usize {
        (self.settings.concurrency.min(CLAIM_BATCH) / 2).max(1)
    }

    fn lane_limit(&self) -> usize {
        self.settings.endpoint_concurrency * LANE_DEPTH
    }

    /// Claims one batch.
    async fn claim_once(self: &Arc<Self>) -> Result<Claim, DbErr> {
        let (room, busy) = {
            let mut lanes = self.lanes();
            let room = self.settings.concurrency.saturating_sub(lanes.held);
            let limit = self.lane_limit();
            let mut busy = Vec::new();
            for (id, lane) in lanes.endpoints.iter_mut() {
                if lane.running + lane.queued.len() >= limit {
                    lane.excluded = true;
                    busy.push(id.clone());
                }
            }
            (room, busy)
        };
        if room < self.refill_at() {
            tokio::select! {
                () = self.capacity_freed.notified() => {}
                () = self.stop.cancelled() => {}
            }
            return Ok(Claim::Full);
        }
        let limit = room.min(CLAIM_BATCH);
        let now = now_ms();
        let token: i64 = rand::random();
        let stamp = ClaimStamp {
            now,
            lease_until: now + self.settings.lease.as_millis() as i64,
            token,
            instance: &self.instance,
        };
        let claimed = queue::claim(&self.db, limit as u64, &busy, &stamp).await?;
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
        let details = queue::load_details(&self.db, &claimed).await?;
        type Sendable = (Arc<str>, Bytes, Option<Arc<str>>);
        let mut bodies: HashMap<String, Sendable> = HashMap::new();
        let claimed_at = Instant::now();
        for row in claimed {
            let webhook = details.webhooks.get(&row.webhook_id).and_then(|model| {
                self.targets
                    .webhook(model, &self.secrets, now)
                    .map_err(|err| {
                        tracing::error!(webhook_id = %row.webhook_id, "cannot read the webhook's signing secret: {err:#}")
                    })
                    .ok()
            });
            let endpoint = details.endpoints.get(&row.endpoint_id).and_then(|model| {
                let version = details
                    .webhooks
                    .get(&row.webhook_id)
                    .map_or(0, |w| w.updated_at);
                self.targets.endpoint(model, version).ok()
            });
            let body = match bodies.get(&row.event_id) {
                Some(found) => Some(found.clone()),
                None => details
                    .events
                    .get(&row.event_id)
                    .map(|(kind, body, trace)| {
                        let entry = (
                            Arc::<str>::from(kind.as_str()),
                            Bytes::from(body.clone()),
                            trace.as_deref().map(Arc::<str>::from),
                        );
                        bodies.insert(row.event_id.clone(), entry.clone());
                        entry
                    }),
            };
            match (webhook, endpoint, body) {
                (Some(webhook), Some(endpoint), Some((event_type, body, trace_context)))
                    if webhook.status == WebhookStatus::Active =>
                {
                    self.dispatch(
                        true,
                        Job {
                            delivery_id: row.id,
                            tenant_id: row.tenant_id,
                            event_id: row.event_id,
                            event_type,
                            body,
                            trace_context,
                            webhook,
                            endpoint,
                            attempt: row.attempt_count.max(0) as u32 + 1,
                            claim_token: token,
                            claimed_at,
                        },
                    );
                }
                (Some(webhook), _, _) if webhook.status != WebhookStatus::Active => {
                    self.record(Record::Cancel {
                        delivery_id: row.id,
                        claim_token: token,
                    })
                    .await;
                }
                // Unreadable secrets or a vanished row: leave it to the lease,
                // so a fixed configuration picks it up again.
                _ => {}
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
            () = self.bus.wait_deliveries_due(), if !futile => {}
            () = self.capacity_freed.notified() => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Queues a job in its endpoint's lane, starting the lane if it has
    /// room. `count` adds the job to the held total (hand-overs were counted
    /// when reserved).
    fn dispatch(self: &Arc<Self>, count: bool, job: Job) {
        let start = {
            let mut lanes = self.lanes();
            if count {
                lanes.held += 1;
            }
            let lane = lanes.endpoints.entry(job.endpoint.id.clone()).or_default();
            if lane.running < self.settings.endpoint_concurrency {
                lane.running += 1;
                Some(job)
            } else {
                lane.queued.push_back(job);
                None
            }
        };
        if let Some(job) = start {
            self.tasks.spawn(self.clone().run_lane(job));
        }
    }

    /// Runs jobs for one endpoint, one after another, until its queue is empty.
    async fn run_lane(self: Arc<Self>, first: Job) {
        let endpoint_id = first.endpoint.id.clone();
        let mut job = first;
        loop {
            let record = self.process(job).await;
            self.record(record).await;
            let (next, wake) = {
                let mut lanes = self.lanes();
                lanes.held -= 1;
                // Room reopened enough for a useful claim.
                let mut wake =
                    self.settings.concurrency.saturating_sub(lanes.held) == self.refill_at();
                let limit = self.lane_limit();
                let lane = lanes.endpoints.entry(endpoint_id.clone()).or_default();
                let next = if self.stop.is_cancelled() {
                    None
                } else {
                    lane.queued.pop_front()
                };
                if next.is_none() {
                    lane.running -= 1;
                }
                if lane.excluded && lane.running + lane.queued.len() < limit {
                    lane.excluded = false;
                    wake = true;
                }
                if lane.running == 0 && lane.queued.is_empty() {
                    lanes.endpoints.remove(&endpoint_id);
                }
                (next, wake)
            };
            if wake {
                self.capacity_freed.notify_one();
            }
            match next {
                Some(next) => job = next,
                None => break,
            }
        }
    }

    async fn process(&self, job: Job) -> Record {
        // The lease started at the claim: a job that waited in its lane too
        // long could still be running when another instance takes it over.
        let budget = self
            .settings
            .lease
            .saturating_sub(job.webhook.timeout + Duration::from_secs(5));
        if job.claimed_at.elapsed() > budget {
            return Record::Release {
                delivery_id: job.delivery_id,
                claim_token: job.claim_token,
            };
        }
        let key = (job.delivery_id.clone(), job.claim_token);
        self.with_lane(&job.endpoint.id, |lane| lane.in_flight.push(key.clone()));
        // A span per attempt only when traces are exported: it costs a
        // registry entry and its formatted fields, and a log line needs it
        // only when something is logged (see `log_attempt`).
        let span = if telemetry::exporting() {
            attempt_span(&job)
        } else {
            tracing::Span::none()
        };
        telemetry::continue_trace(&span, job.trace_context.as_deref());
        let record = tokio::select! {
            record = self.attempt(&job).instrument(span) => Record::Attempt(Box::new(record)),
            () = self.abort.cancelled() => Record::Release { delivery_id: key.0.clone(), claim_token: key.1 },
        };
        self.with_lane(&job.endpoint.id, |lane| {
            lane.in_flight.retain(|k| *k != key)
        });
        record
    }

    fn with_lane(&self, endpoint_id: &str, f: impl FnOnce(&mut Lane)) {
        if let Some(lane) = self.lanes().endpoints.get_mut(endpoint_id) {
            f(lane);
        }
    }

    /// Makes one signed request and decides what it means.
    async fn attempt(&self, job: &Job) -> AttemptRecord {
        let started_at = now_ms();
        let clock = Instant::now();
        let timestamp = started_at / 1000;
        let mut headers = job.endpoint.headers.clone();
        let signature = signature_header(&job.webhook.keys, &job.event_id, timestamp, &job.body);
        for (name, value) in [
            ("webhook-id", job.event_id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
            (super::ATTEMPT_HEADER, job.attempt.to_string()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        // The receiver's trace continues from this attempt.
        let trace =
            telemetry::traceparent_of(&tracing::Span::current(), job.trace_context.as_deref());
        if let Some(value) = trace.and_then(|t| HeaderValue::from_str(&t).ok()) {
            headers.insert(HeaderName::from_static(telemetry::TRACEPARENT), value);
        }
        let result = self
            .client
            .send(Request {
                url: &job.endpoint.url,
                headers,
                body: job.body.clone(),
                timeout: job.webhook.timeout,
            })
            .await;
        let duration_ms = clock.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let rules = Rules {
            policy: job.webhook.policy,
            retry_after_cap: self.settings.retry_after_cap,
        };
        let decision = outcome::decide(&result, job.attempt, &rules, now_ms(), rand::random());
        log_attempt(job, &result, &decision, duration_ms);
        let response = result.as_ref().ok();
        AttemptRecord {
            live: LiveAttempt {
                attempt: delivery_attempt::Model {
                    id: new_id(IdKind::Attempt),
                    tenant_id: job.tenant_id.clone(),
                    delivery_id: job.delivery_id.clone(),
                    attempt_number: job.attempt as i32,
                    endpoint_url: job.endpoint.url.to_string(),
                    outcome: decision.outcome,
                    started_at,
                    duration_ms,
                    response_status: response.map(|r| i32::from(r.status)),
                    response_body: response.map(|r| r.body.clone()).filter(|b| !b.is_empty()),
                    error_kind: decision.error_kind.map(str::to_owned),
                    error_message: decision.error_message,
                    next_attempt_at: decision.next_attempt_at,
                    instance_id: Some(self.instance.clone()),
                },
                event_id: job.event_id.clone(),
                event_type: job.event_type.to_string(),
                webhook_id: job.webhook.id.clone(),
                endpoint_id: job.endpoint.id.clone(),
            },
            claim_token: job.claim_token,
            delivery_status: decision.status,
            disable_webhook: decision.disable_webhook,
        }
    }

    async fn record(&self, record: Record) {
        // Only fails once the recorder is gone, after shutdown; the lease
        // then brings the delivery back.
        let _ = self.records.send(record).await;
    }

    /// Stops claiming, hands back queued deliveries, lets requests in flight
    /// finish within the grace period, then hands back the rest.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let queued: Vec<(String, i64)> = {
            let mut lanes = self.lanes();
            let mut queued = Vec::new();
            for lane in lanes.endpoints.values_mut() {
                queued.extend(
                    lane.queued
                        .drain(..)
                        .map(|job| (job.delivery_id, job.claim_token)),
                );
            }
            lanes.held -= queued.len();
            queued
        };
        for (delivery_id, claim_token) in queued {
            self.record(Record::Release {
                delivery_id,
                claim_token,
            })
            .await;
        }
        self.tasks.close();
        if tokio::time::timeout(self.settings.shutdown_grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.settings.shutdown_grace, "requests still in flight after the grace period; handing them back");
            self.abort.cancel();
            self.tasks.wait().await;
        }
    }
}

/// The worker as publishing sees it: taking deliveries straight from a
/// commit, without a claim. Holds the worker weakly, so that a stopped worker
/// is dropped (and its recorder finishes) even though publishing keeps this.
pub struct LocalHandle(pub Weak<Worker>);

impl LocalWorker for LocalHandle {
    fn claimant(&self) -> (String, i64) {
        match self.0.upgrade() {
            Some(worker) => (
                worker.instance.clone(),
                worker.settings.lease.as_millis() as i64,
            ),
            None => (String::new(), 0),
        }
    }

    fn reserve(&self, endpoint_ids: &[&str]) -> Vec<bool> {
        let Some(worker) = self.0.upgrade().filter(|w| !w.stop.is_cancelled()) else {
            return vec![false; endpoint_ids.len()];
        };
        let limit = worker.lane_limit();
        let mut lanes = worker.lanes();
        endpoint_ids
            .iter()
            .map(|endpoint_id| {
                let room = lanes.held < worker.settings.concurrency;
                let lane_full = lanes
                    .endpoints
                    .get(*endpoint_id)
                    .is_some_and(|lane| lane.running + lane.queued.len() >= limit);
                if room && !lane_full {
                    lanes.held += 1;
                }
                room && !lane_full
            })
            .collect()
    }

    fn unreserve(&self, count: usize) {
        if let Some(worker) = self.0.upgrade() {
            let mut lanes = worker.lanes();
            lanes.held = lanes.held.saturating_sub(count);
            drop(lanes);
            worker.capacity_freed.notify_one();
        }
    }

    fn hand_over(&self, jobs: Vec<HandOver>) {
        let Some(worker) = self.0.upgrade() else {
            // Stopped meanwhile: the claims run out with their lease.
            return;
        };
        let now = now_ms();
        let claimed_at = Instant::now();
        for job in jobs {
            let delivery = job.delivery;
            let targets = worker
                .targets
                .webhook(&job.webhook, &worker.secrets, now)
                .and_then(|webhook| {
                    Ok((
                        webhook,
                        worker
                            .targets
                            .endpoint(&job.endpoint, job.webhook.updated_at)?,
                    ))
                });
            match (targets, delivery.claim_token) {
                (Ok((webhook, endpoint)), Some(claim_token)) => worker.dispatch(
                    false,
                    Job {
                        delivery_id: delivery.id,
                        tenant_id: delivery.tenant_id,
                        event_id: delivery.event_id,
                        event_type: job.event_type,
                        body: job.body,
                        trace_context: job.trace_context,
                        webhook,
                        endpoint,
                        attempt: 1,
                        claim_token,
                        claimed_at,
                    },
                ),
                // Left to the lease, like an unreadable claim.
                (Err(err), _) => {
                    tracing::error!(delivery_id = %delivery.id, "cannot prepare a handed-over delivery: {err:#}");
                    self.unreserve(1);
                }
                (_, None) => self.unreserve(1),
            }
        }
    }
}

/// One line per attempt: DEBUG when it succeeded, WARN when it failed (and
/// when the delivery gives up), so that an operator sees failures at the
/// default level. The `attempt` span around it names the delivery, webhook,
/// event type and attempt number.
/// The span naming an attempt: its delivery, webhook, event type and
/// number. At WARN, so that a failed attempt's WARN line carries it at every
/// log level.
fn attempt_span(job: &Job) -> tracing::Span {
    tracing::warn_span!(
        "attempt",
        delivery_id = %job.delivery_id,
        webhook_id = %job.webhook.id,
        event_type = %job.event_type,
        attempt = job.attempt,
    )
}

fn log_attempt(
    job: &Job,
    result: &Result<client::Response, client::SendError>,
    decision: &outcome::Decision,
    duration_ms: i32,
) {
    if decision.error_kind.is_none() && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    // Inside the attempt's span: the exported one, or one made for the line.
    let current = tracing::Span::current();
    let span = if current.is_none() {
        attempt_span(job)
    } else {
        current
    };
    let _entered = span.enter();
    let endpoint = job.endpoint.url.host_str().unwrap_or("?");
    let status = result.as_ref().ok().map(|response| response.status);
    let Some(kind) = decision.error_kind else {
        tracing::debug!(endpoint, status, duration_ms, "delivered");
        return;
    };
    let error = decision.error_message.as_deref().unwrap_or("");
    match decision.next_attempt_at {
        Some(next) => {
            // Whole seconds read better; below one, milliseconds.
            let next_in = Duration::from_millis(next.saturating_sub(now_ms()).max(0) as u64);
            let next_in = if next_in.as_secs() > 0 {
                Duration::from_secs(next_in.as_secs())
            } else {
                next_in
            };
            tracing::warn!(
                endpoint,
                kind,
                status,
                duration_ms,
                next_attempt_in = %humantime::format_duration(next_in),
                "attempt failed, will retry: {error}"
            );
        }
        None => tracing::warn!(
            endpoint,
            kind,
            status,
            duration_ms,
            attempts = job.attempt,
            "delivery gave up: {error}"
        ),
    }
}
