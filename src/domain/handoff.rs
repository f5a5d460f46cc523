//! Deliveries a publish hands straight to this instance's worker.
//!
//! When the local worker has room, publishing inserts its deliveries already
//! claimed by this instance (under the usual lease) and passes them, with the
//! event body and the webhook it has at hand, to the worker once the
//! transaction commits. That saves the worker a claim and three reads per
//! batch, and a publish → arrival round trip. What the worker cannot take is
//! left unclaimed for the normal queue; a crash before the hand-over is
//! covered by the lease and the heartbeat like any other claim.

use std::sync::Arc;

use bytes::Bytes;
use entity::{delivery, endpoint, webhook};

/// A committed, already claimed delivery with what attempting it needs.
pub struct HandOver {
    pub delivery: delivery::Model,
    pub event_type: Arc<str>,
    pub body: Bytes,
    /// The publish's `traceparent`, for the attempt to continue.
    pub trace_context: Option<Arc<str>>,
    pub webhook: Arc<webhook::Model>,
    pub endpoint: Arc<endpoint::Model>,
}

/// What publishing needs from the local worker. Implemented by the delivery
/// worker; absent when this instance runs without one.
pub trait LocalWorker: Send + Sync {
    /// The claim stamp for deliveries it takes: (instance id, lease in ms).
    fn claimant(&self) -> (String, i64);
    /// Which of these deliveries (by endpoint) it takes now. Taken ones count
    /// against its capacity until handed over or given back.
    fn reserve(&self, endpoint_ids: &[&str]) -> Vec<bool>;
    /// Gives back `count` reservations of a publish that did not commit.
    fn unreserve(&self, count: usize);
    /// The reserved deliveries, committed.
    fn hand_over(&self, jobs: Vec<HandOver>);
}

/// Reservations that go back to the worker unless handed over.
pub struct Reservation {
    worker: Option<Arc<dyn LocalWorker>>,
    count: usize,
}

impl Reservation {
    pub fn none() -> Self {
        Self {
            worker: None,
            count: 0,
        }
    }

    pub fn new(worker: Arc<dyn LocalWorker>, count: usize) -> Self {
        Self {
            worker: Some(worker),
            count,
        }
    }

    pub fn hand_over(mut self, jobs: Vec<HandOver>) {
        if let Some(worker) = self.worker.take() {
            worker.hand_over(jobs);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take()
            && self.count > 0
        {
            worker.unreserve(self.count);
        }
    }
}
