//! Backlogs stalled behind slow endpoints go back to the queue when other
//! endpoints need the room.
//!
//! Every claimed delivery counts against the worker's `concurrency`, the
//! ones waiting in a lane as much as the ones in flight. A few hung or
//! throttled endpoints could fill it between them (each lane holds up to
//! `LANE_DEPTH` times its window) and stop the claims, and with them
//! every other endpoint of every tenant, until that backlog was worked off.
//! So when the worker is full, a lane is judged by its pace: one whose
//! oldest queued delivery has waited longer than [`STALLED_AFTER`] and which
//! would take longer than [`DRAIN_WITHIN`] to work off its queue at the
//! rate its requests finished in the last second is stalled. Its queued
//! deliveries are handed back (due now, as a lease that ran out would make
//! them), and the endpoint is left out of claims and of publishes'
//! hand-overs for [`COOL_DOWN`]: the room goes to the others, which the
//! claim then finds ahead of the stalled endpoints' rows. Requests in
//! flight are never cut short.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::{Lanes, Worker};
use crate::ids::{DeliveryId, EndpointId};

/// How long a lane's oldest queued delivery may wait before the lane may
/// count as stalled.
pub(super) const STALLED_AFTER: Duration = Duration::from_secs(1);
/// How long a lane's queue may take to work off at its recent pace.
const DRAIN_WITHIN: u32 = 2;
/// How long an endpoint whose backlog was handed back takes no new
/// deliveries.
const COOL_DOWN: Duration = Duration::from_secs(5);
const SECOND: Duration = Duration::from_secs(1);

/// Requests a lane finished, counted by whole seconds.
#[derive(Default)]
pub(super) struct Pace {
    /// When the current second began; `None` before the first request ended.
    since: Option<Instant>,
    this_second: u32,
    last_second: u32,
}

impl Pace {
    /// A request of the lane finished at `now`.
    pub(super) fn done(&mut self, now: Instant) {
        self.roll(now);
        self.this_second += 1;
    }

    /// Requests finished in the last whole second, or so far in this one if
    /// more.
    fn per_second(&mut self, now: Instant) -> u32 {
        self.roll(now);
        self.last_second.max(self.this_second)
    }

    fn roll(&mut self, now: Instant) {
        match self.since {
            Some(since) if now.duration_since(since) < SECOND => {}
            Some(since) if now.duration_since(since) < 2 * SECOND => {
                self.last_second = self.this_second;
                self.this_second = 0;
                self.since = Some(since + SECOND);
            }
            // A whole second or more without a request finishing.
            _ => {
                (self.last_second, self.this_second) = (0, 0);
                self.since = Some(now);
            }
        }
    }
}

impl Lanes {
    /// Empties the queues of the lanes `take` picks: what to hand back,
    /// (delivery, claim token) each, and those lanes' endpoints.
    pub(super) fn hand_back(
        &mut self,
        mut take: impl FnMut(&mut super::Lane) -> bool,
    ) -> (Vec<EndpointId>, Vec<(DeliveryId, i64)>) {
        let (mut endpoints, mut queued) = (Vec::new(), Vec::new());
        for (id, lane) in &mut self.endpoints {
            if lane.queued.is_empty() || !take(lane) {
                continue;
            }
            endpoints.push(id.clone());
            queued.extend(
                lane.queued
                    .drain(..)
                    .map(|job| (job.delivery_id, job.claim_token)),
            );
        }
        self.held -= queued.len();
        (endpoints, queued)
    }

    /// Whether `endpoint` is cooling down after its backlog was handed back.
    pub(super) fn is_cooling(&self, endpoint: &EndpointId) -> bool {
        self.cooling
            .get(endpoint)
            .is_some_and(|until| Instant::now() < *until)
    }
}

impl Worker {
    /// When the worker has no room for a claim, takes the backlog out of
    /// stalled lanes: what to hand back, (delivery, claim token) each.
    pub(super) fn unload_stalled(&self, lanes: &mut Lanes) -> Vec<(DeliveryId, i64)> {
        let now = Instant::now();
        lanes.cooling.retain(|_, until| now < *until);
        if self.settings.concurrency.saturating_sub(lanes.held) >= self.refill_at() {
            return Vec::new();
        }
        let (endpoints, unloaded) = lanes.hand_back(|lane| {
            let waited = lane
                .queued
                .front()
                .is_some_and(|oldest| now.duration_since(oldest.claimed_at) > STALLED_AFTER);
            waited && lane.pace.per_second(now) * DRAIN_WITHIN < lane.queued.len() as u32
        });
        if !unloaded.is_empty() {
            tracing::info!(
                handed_back = unloaded.len(),
                endpoints = endpoints.len(),
                "the worker is full: handing back deliveries stalled behind slow endpoints"
            );
        }
        let cooling: HashMap<_, _> = endpoints
            .into_iter()
            .map(|e| (e, now + COOL_DOWN))
            .collect();
        lanes.cooling.extend(cooling);
        unloaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lanes_pace_is_what_finished_in_the_last_whole_second() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut pace = Pace::default();
        assert_eq!(pace.per_second(at(0)), 0);
        for ms in [0, 100, 200, 900] {
            pace.done(at(ms));
        }
        assert_eq!(pace.per_second(at(950)), 4, "so far in this second");
        pace.done(at(1_100));
        assert_eq!(pace.per_second(at(1_200)), 4, "the last whole second");
        assert_eq!(pace.per_second(at(2_500)), 1, "the second before");
        assert_eq!(pace.per_second(at(4_000)), 0, "nothing for over a second");
    }
}
