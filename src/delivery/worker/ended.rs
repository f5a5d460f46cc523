//! A request ended: what its lane, its endpoint's window (`window`) and its
//! tenant's share (`shares`) start next.

use std::time::Instant;

use super::{Job, Lane, Lanes, Slot, Worker, window::Answer};
use crate::ids::EndpointId;

impl Worker {
    /// A request of `tenant` to `endpoint_id` ended with `answer` (its lane
    /// may run `cap` at once), counted in `slot`: this task's next job, the
    /// jobs started beside it (a window that grew, lanes of the tenant its
    /// share held back), and whether the claimer should look again.
    pub(super) fn lane_done(
        &self,
        endpoint_id: &EndpointId,
        tenant: &str,
        answer: Answer,
        cap: usize,
        slot: Slot,
    ) -> (Option<Job>, Vec<Job>, bool) {
        let now = Instant::now();
        let stopping = self.stop.is_cancelled();
        let most = self.settings.tenant_concurrency;
        let mut guard = self.lanes();
        let lanes = &mut *guard;
        match slot {
            Slot::Held => {
                lanes.held -= 1;
                lanes.shares.ended(tenant);
            }
            Slot::Lingering { bytes } => {
                lanes.shares.lingering_ended(tenant);
                let lingering = lanes.lingering.ended(bytes);
                self.lingering.set(lingering as f64);
            }
        }
        // Room reopened enough for a useful claim.
        let mut wake = self.settings.concurrency.saturating_sub(lanes.held) == self.refill_at();
        let max = self.settings.endpoint_concurrency;
        lanes.windows.learn(endpoint_id, answer, max, now);
        let window = lanes.windows.size(endpoint_id, cap);
        let limit = self.lane_limit(&lanes.windows, endpoint_id);
        let lane = lanes.endpoints.entry(endpoint_id.clone()).or_default();
        lane.pace.done(now);
        // This task goes on while the lane is within its window and the
        // tenant within its share, with none of its other lanes waiting for
        // their turn...
        let go_on = !stopping && !lanes.shares.holds_back(tenant);
        let next = (go_on && lane.running <= window && lanes.shares.has_room(tenant, most))
            .then(|| lane.queued.pop_front())
            .flatten();
        match next {
            Some(_) => lanes.shares.started(tenant),
            None => lane.running -= 1,
        }
        // ...and a window that grew starts more beside it.
        let mut more = Vec::new();
        while go_on && lane.running < window && lanes.shares.has_room(tenant, most) {
            let Some(job) = lane.queued.pop_front() else {
                break;
            };
            lane.running += 1;
            lanes.shares.started(tenant);
            more.push(job);
        }
        if !lane.queued.is_empty() && lane.running < window {
            lanes.shares.hold_back(tenant, endpoint_id);
        }
        if lane.excluded && lane.running + lane.queued.len() < limit {
            lane.excluded = false;
            wake = true;
        }
        if lane.running == 0 && lane.queued.is_empty() {
            lanes.endpoints.remove(endpoint_id);
        }
        if !stopping {
            self.start_held_back(lanes, tenant, &mut more);
        }
        (next, more, wake)
    }

    /// Starts jobs of `tenant`'s lanes its share held back, while it has
    /// room, into `started`.
    pub(super) fn start_held_back(&self, lanes: &mut Lanes, tenant: &str, started: &mut Vec<Job>) {
        let most = self.settings.tenant_concurrency;
        while lanes.shares.has_room(tenant, most) {
            let Some(endpoint) = lanes.shares.next_held_back(tenant) else {
                return;
            };
            let Some(lane) = lanes.endpoints.get_mut(&endpoint) else {
                continue;
            };
            let window = |lane: &Lane| {
                lane.queued.front().map_or(0, |job| {
                    let cap = self.lane_concurrency(&job.endpoint);
                    lanes.windows.size(&endpoint, cap)
                })
            };
            if lane.running >= window(lane) {
                continue;
            }
            let Some(job) = lane.queued.pop_front() else {
                continue;
            };
            lane.running += 1;
            lanes.shares.started(tenant);
            started.push(job);
            if lane.running < window(lane) {
                lanes.shares.hold_back(tenant, &endpoint);
            }
        }
    }
}
