//! Backlogs stalled behind slow endpoints go back to the queue when other
//! endpoints need the room.
//!
//! Every claimed delivery counts against the worker's `concurrency`, the
//! ones waiting in a lane as much as the ones in flight. A few hung or
//! throttled endpoints could fill it between them (each lane holds up to
//! `LANE_DEPTH` times its concurrency) and stop the claims, and with them
//! every other endpoint of every tenant, until that backlog was worked off.
//! So when the worker is full, the deliveries queued in a lane whose oldest
//! one has waited longer than [`STALLED_AFTER`] are handed back (due now,
//! as they were), and the lane is left out of claims and of publishes'
//! hand-overs for [`COOL_DOWN`]: the room goes to the others, which the
//! claim then finds ahead of the stalled endpoints' rows. Requests in
//! flight are never cut short.

use std::time::{Duration, Instant};

use super::{Lanes, Worker};
use crate::ids::DeliveryId;

/// How long a lane's oldest queued delivery may wait before the lane counts
/// as stalled. A healthy endpoint works off a full lane in milliseconds.
pub(super) const STALLED_AFTER: Duration = Duration::from_secs(1);
/// How long a lane whose backlog was handed back takes no new deliveries.
const COOL_DOWN: Duration = Duration::from_secs(5);

impl Worker {
    /// When the worker has no room for a claim, takes the backlog out of
    /// stalled lanes: what to hand back, (delivery, claim token) each.
    pub(super) fn unload_stalled(&self, lanes: &mut Lanes) -> Vec<(DeliveryId, i64)> {
        if self.settings.concurrency.saturating_sub(lanes.held) >= self.refill_at() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut unloaded = Vec::new();
        for lane in lanes.endpoints.values_mut() {
            let stalled = lane
                .queued
                .front()
                .is_some_and(|oldest| now.duration_since(oldest.claimed_at) > STALLED_AFTER);
            if stalled {
                unloaded.extend(
                    lane.queued
                        .drain(..)
                        .map(|job| (job.delivery_id, job.claim_token)),
                );
                lane.cool_until = Some(now + COOL_DOWN);
            }
        }
        lanes.held -= unloaded.len();
        if !unloaded.is_empty() {
            tracing::info!(
                handed_back = unloaded.len(),
                "the worker is full: handing back deliveries stalled behind slow endpoints"
            );
        }
        unloaded
    }
}

/// Whether a lane is cooling down after its backlog was handed back.
pub(super) fn cooling(cool_until: Option<Instant>) -> bool {
    cool_until.is_some_and(|until| Instant::now() < until)
}
