//! Deliveries to a throttled endpoint: each waits for a sending slot from
//! `domain::throttle` before its request goes.
//!
//! The wait happens in the endpoint's own lane, so a throttled endpoint's
//! backlog holds up that lane alone; other endpoints' lanes, and their
//! claims, go on as before. A lane of a throttled endpoint runs at most
//! one second's worth of its limit at a time: each running job holds at
//! most one slot, so every instance takes at most about a second of the
//! endpoint's slots ahead, and the next free slot is at most about a
//! second per instance sending to the endpoint away, far within a claim's
//! lease.

use std::time::Duration;

use super::Worker;
use crate::{
    delivery::job::{EndpointTarget, Job},
    domain::throttle::{self, Slot},
};

impl Worker {
    /// How many requests a lane for `endpoint` runs at once.
    pub(super) fn lane_concurrency(&self, endpoint: &EndpointTarget) -> usize {
        let concurrency = self.settings.endpoint_concurrency;
        match endpoint.rate_limit {
            Some(limit) => concurrency.min(limit.get() as usize).max(1),
            None => concurrency,
        }
    }

    /// Takes the job's slot at its throttled endpoint and sleeps until it.
    /// False when the job must be handed back instead: no slot comes before
    /// its claim's `budget` runs out (none is taken then), the worker is
    /// stopping, or the database failed (the delivery comes back). The
    /// limit is the endpoint's current one, read by the statement: one
    /// lifted since the job was prepared lets it go at once.
    pub(super) async fn wait_turn(&self, job: &Job, budget: Duration) -> bool {
        let left = budget.saturating_sub(job.claimed_at.elapsed());
        let wait = match throttle::take_slot(&self.db, &job.endpoint.id, left).await {
            Ok(Slot::In(wait)) => wait,
            Ok(Slot::Unlimited) => return true,
            Ok(Slot::Later) => {
                tracing::debug!(delivery_id = %job.delivery_id, endpoint_id = %job.endpoint.id,
                    "no sending slot before the claim runs out; handing the delivery back");
                return false;
            }
            Err(err) => {
                tracing::warn!(delivery_id = %job.delivery_id, endpoint_id = %job.endpoint.id,
                    "taking a sending slot failed; handing the delivery back: {err}");
                return false;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // Not started yet: handed back like the lane's queued jobs.
            () = self.stop.cancelled() => return false,
        }
        // The slot came within the budget, unless this task was late to run.
        job.claimed_at.elapsed() <= budget
    }
}
