//! Deliveries offered straight from a publish's commit.
//!
//! Publishing tells the [`Facts`] port what it committed, with what sending
//! each new delivery needs. [`Offers`] wraps the port on this instance: it
//! passes everything on, and sends the new deliveries to the worker, which
//! claims the ones it has room for by id (one statement per batch of
//! offers) and starts them without reading anything back. What it has no
//! room for, or cannot claim, is left due in the queue for the claim loop
//! and the other instances.

use std::{collections::HashSet, sync::Arc, time::Instant};

use entity::event;
use tokio::sync::mpsc;

use super::Worker;
use crate::{
    delivery::job::Job,
    domain::{
        facts::{DeliveryChange, Facts, LiveAttempt, Queued},
        queue,
    },
    ids::DeliveryId,
    time::now_ms,
};

/// Offers waiting for the worker; beyond this they stay in the queue for the
/// claim loop.
const OFFERS_WAITING: usize = 1_024;

/// The port as this instance's publishing sees it: `inner` hears
/// everything, and the worker is offered the new deliveries.
pub struct Offers {
    inner: Arc<dyn Facts>,
    tx: mpsc::Sender<Vec<Queued>>,
}

impl Offers {
    /// The wrapper, and the receiving end [`take_offers`] consumes.
    pub fn new(inner: Arc<dyn Facts>) -> (Self, mpsc::Receiver<Vec<Queued>>) {
        let (tx, rx) = mpsc::channel(OFFERS_WAITING);
        (Self { inner, tx }, rx)
    }
}

impl Facts for Offers {
    fn published(&self, events: &[event::Model], delivery_count: u64, queued: Vec<Queued>) {
        let offered = queued.len() as u64;
        self.inner
            .published(events, delivery_count.saturating_sub(offered), Vec::new());
        if !queued.is_empty() && self.tx.try_send(queued).is_err() {
            // Full, or the worker stopped: the queue has them.
            self.inner.deliveries_due();
        }
    }

    fn takes_queued(&self) -> bool {
        true
    }

    fn deliveries_due(&self) {
        self.inner.deliveries_due();
    }

    fn attempts_recorded(&self, attempts: Vec<LiveAttempt>) {
        self.inner.attempts_recorded(attempts);
    }

    fn deliveries_changed(&self, changes: Vec<DeliveryChange>) {
        self.inner.deliveries_changed(changes);
    }
}

/// Takes offers, whatever waits at once as one batch, until the worker
/// stops.
pub async fn take_offers(worker: Arc<Worker>, mut rx: mpsc::Receiver<Vec<Queued>>) {
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, 64) => if received == 0 { return },
            () = worker.stop.cancelled() => return,
        }
        let offered: Vec<Queued> = batch.drain(..).flatten().collect();
        worker.take_offered(offered).await;
    }
}

impl Worker {
    /// Claims what it has room for among `offered` and starts it.
    async fn take_offered(self: &Arc<Self>, offered: Vec<Queued>) {
        let room = self.reserve(&offered);
        let (mine, left): (Vec<_>, Vec<_>) =
            offered.into_iter().zip(room).partition(|(_, room)| *room);
        let mut reserved = mine.len();
        let now = now_ms();
        let token: i64 = rand::random();
        let stamp = self.stamp(now, token);
        let ids: Vec<&DeliveryId> = mine.iter().map(|(q, _)| &q.delivery.id).collect();
        let claimed: HashSet<DeliveryId> = match queue::claim_offered(&self.db, &ids, &stamp).await
        {
            Ok(claimed) => claimed.into_iter().collect(),
            Err(err) => {
                tracing::warn!(
                    "claiming offered deliveries failed; the claim loop takes them: {err}"
                );
                self.facts.deliveries_due();
                HashSet::new()
            }
        };
        let claimed_at = Instant::now();
        for (queued, _) in mine {
            if !claimed.contains(&queued.delivery.id) {
                continue;
            }
            // One it cannot prepare is left to its lease, like a claimed row.
            if let Some(job) = self.job_of(queued, token, claimed_at, now) {
                reserved -= 1;
                self.dispatch(false, job);
            }
        }
        self.unreserve(reserved);
        if !left.is_empty() {
            self.facts.deliveries_due();
        }
    }

    /// Which of these deliveries (by endpoint) it has room for now; those
    /// count against its capacity until dispatched or given back.
    fn reserve(&self, offered: &[Queued]) -> Vec<bool> {
        if self.stop.is_cancelled() {
            return vec![false; offered.len()];
        }
        let limit = self.lane_limit();
        let mut lanes = self.lanes();
        offered
            .iter()
            .map(|queued| {
                let room = lanes.held < self.settings.concurrency;
                let lane_full = lanes
                    .endpoints
                    .get(&queued.delivery.endpoint_id)
                    .is_some_and(|lane| lane.running + lane.queued.len() >= limit);
                if room && !lane_full {
                    lanes.held += 1;
                }
                room && !lane_full
            })
            .collect()
    }

    fn unreserve(&self, count: usize) {
        if count == 0 {
            return;
        }
        let mut lanes = self.lanes();
        lanes.held = lanes.held.saturating_sub(count);
        drop(lanes);
        self.capacity_freed.notify_one();
    }

    fn job_of(&self, queued: Queued, token: i64, claimed_at: Instant, now: i64) -> Option<Job> {
        let prepared = self
            .targets
            .webhook(&queued.webhook, &self.secrets, now)
            .and_then(|webhook| {
                let endpoint = self
                    .targets
                    .endpoint(&queued.endpoint, queued.webhook.updated_at)?;
                Ok((webhook, endpoint))
            });
        let (webhook, endpoint) = prepared
            .map_err(|err| {
                tracing::error!(delivery_id = %queued.delivery.id, "cannot prepare an offered delivery: {err:#}");
            })
            .ok()?;
        let delivery = queued.delivery;
        Some(Job {
            delivery_id: delivery.id,
            tenant_id: delivery.tenant_id,
            event_id: delivery.event_id,
            event_type: queued.event_type,
            body: queued.body,
            trace_context: queued.trace_context,
            webhook,
            endpoint,
            attempt: 1,
            claim_token: token,
            claimed_at,
        })
    }
}
