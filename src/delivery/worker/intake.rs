//! The worker's side of the intake port: new deliveries taken at their
//! publish's commit.
//!
//! Publishing asks [`WorkerIntake::reserve`] which new deliveries this
//! worker has room for (lane room, as for a claim); it writes those held by
//! the reservation's claim in its own transaction, and after the commit
//! hands them over with what sending them needs, so the worker starts them
//! without a claim of its own and without reading anything back. Until then
//! the room counts against the worker's capacity; a commit that fails gives
//! it back. Shutdown waits for reservations in flight before handing back
//! what its lanes hold, so none is stranded under a claim.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
    time::Instant,
};

use entity::delivery;

use super::Worker;
use crate::{
    delivery::job::Job,
    domain::intake::{Intake, Queued, Reservation},
    ids::EndpointId,
    time::now_ms,
};

/// The intake port as this instance's worker implements it. It holds the
/// worker weakly: publishing outlives the worker at shutdown.
pub struct WorkerIntake {
    worker: Weak<Worker>,
}

impl WorkerIntake {
    pub fn new(worker: &Arc<Worker>) -> Self {
        Self {
            worker: Arc::downgrade(worker),
        }
    }
}

impl Intake for WorkerIntake {
    fn reserve(&self, deliveries: &[delivery::Model]) -> Option<Reservation> {
        self.worker.upgrade()?.reserve(deliveries)
    }

    fn take(&self, queued: Vec<Queued>) {
        // Without the worker, the rows come back when their lease runs out
        // (or when this instance's heartbeat is found stale).
        if let Some(worker) = self.worker.upgrade() {
            worker.take(queued);
        }
    }

    fn give_back(&self, count: usize) {
        if let Some(worker) = self.worker.upgrade() {
            worker.give_back(count);
        }
    }
}

impl Worker {
    /// Which of `deliveries` (by endpoint) it has room for now, as a
    /// reservation under a fresh claim; `None` if none, or if it is
    /// stopping.
    fn reserve(&self, deliveries: &[delivery::Model]) -> Option<Reservation> {
        let mut lanes = self.lanes();
        if self.stop.is_cancelled() || lanes.held >= self.settings.concurrency {
            return None;
        }
        let mut added: HashMap<&EndpointId, usize> = HashMap::new();
        let mut count = 0;
        let taken: Vec<bool> = deliveries
            .iter()
            .map(|delivery| {
                let endpoint = &delivery.endpoint_id;
                let lane = lanes.endpoints.get(endpoint);
                let in_lane = lane.map_or(0, |lane| lane.running + lane.queued.len());
                let cooling = lanes.is_cooling(endpoint);
                // An ordered delivery waits for its turn in its sequence.
                let room = delivery.ordering_key.is_none()
                    && !cooling
                    && lanes.held + count < self.settings.concurrency
                    && in_lane + added.get(endpoint).copied().unwrap_or(0)
                        < self.lane_limit(&lanes.windows, endpoint);
                if room {
                    count += 1;
                    *added.entry(endpoint).or_default() += 1;
                }
                room
            })
            .collect();
        if count == 0 {
            return None;
        }
        lanes.held += count;
        lanes.reserved += count;
        drop(lanes);
        let now = now_ms();
        let stamp = self.stamp(now, rand::random());
        Some(Reservation {
            now,
            lease_until: stamp.lease_until,
            token: stamp.token,
            instance: self.instance.clone(),
            taken,
        })
    }

    /// Starts reserved deliveries, committed held by their reservation.
    fn take(self: &Arc<Self>, queued: Vec<Queued>) {
        let claimed_at = Instant::now();
        let now = now_ms();
        let count = queued.len();
        let mut unready = 0;
        for queued in queued {
            // One it cannot prepare is left to its lease, like a claimed row.
            // So is one the worker, stopping, did not take.
            let taken = self
                .job_of(queued, claimed_at, now)
                .is_some_and(|job| self.dispatch(false, job).is_none());
            if !taken {
                unready += 1;
            }
        }
        self.settle_reserved(count, unready);
    }

    /// `count` reserved deliveries that were not committed.
    fn give_back(&self, count: usize) {
        self.settle_reserved(count, count);
    }

    /// `count` reservations settled, of which `freed` hold nothing any more.
    fn settle_reserved(&self, count: usize, freed: usize) {
        if count == 0 {
            return;
        }
        let mut lanes = self.lanes();
        lanes.reserved = lanes.reserved.saturating_sub(count);
        lanes.held = lanes.held.saturating_sub(freed);
        let settled = lanes.reserved == 0;
        drop(lanes);
        if freed > 0 {
            self.capacity_freed.notify_one();
        }
        if settled {
            self.reservations_settled.notify_waiters();
        }
    }

    fn job_of(&self, queued: Queued, claimed_at: Instant, now: i64) -> Option<Job> {
        let delivery = queued.delivery;
        let prepared = self
            .targets
            .targets(&queued.webhook, &queued.endpoint, &self.secrets, now);
        let (webhook, endpoint) = prepared
            .map_err(|err| {
                tracing::error!(delivery_id = %delivery.id, "cannot prepare a new delivery: {err:#}");
            })
            .ok()?;
        Some(Job {
            claim_token: queued.claim_token,
            delivery_id: delivery.id,
            tenant_id: delivery.tenant_id,
            event_id: delivery.event_id,
            event_type: queued.event_type,
            body: queued.body,
            trace_context: queued.trace_context,
            webhook,
            endpoint,
            attempt: 1,
            claimed_at,
            read_at: claimed_at,
            // Ordered deliveries are never taken at their commit.
            ordering_key: None,
        })
    }
}
