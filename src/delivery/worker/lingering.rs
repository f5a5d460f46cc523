//! Requests that take long give up their slot when the worker is full.
//!
//! A request holds one of the worker's `concurrency` slots, and its
//! tenant's share (`shares`), until it ends, and is never cut short. Shares
//! keep one tenant's hung endpoints to half the worker, and windows
//! (`window`) keep a hung endpoint to one or two requests; but two tenants
//! whose endpoints hang, or a few hundred whose webhooks all point at one
//! partner that went down, held every slot until their timeouts, and every
//! other tenant's deliveries waited that long.
//!
//! So a request in flight for longer than [`LINGER_AFTER`] may leave its
//! slot and its tenant's share, and linger: it still counts in its
//! endpoint's window, and it ends as any other. The oldest go first, and
//! only as many as are wanted: when the worker is full (fewer free slots
//! than make a claim worth it), enough to make one; when a tenant's share
//! holds back some of its lanes, one per lane held back (its hung endpoints
//! would hold up its healthy ones). A tenant has at most twice its share in
//! flight in all (`shares::IN_ALL`), so once its hung requests linger it
//! holds no slot. Lingering requests are bounded in their turn: twice
//! `concurrency`, and [`LINGER_BYTES`] of bodies. A request with no room
//! to linger keeps its slot. Throttled jobs waiting for their turn are not
//! requests yet, and keep theirs.

use std::time::{Duration, Instant};

use super::{Job, Worker};
use crate::ids::EndpointId;

/// How long a request runs before it may leave its slot.
pub(super) const LINGER_AFTER: Duration = Duration::from_secs(1);
/// Most bytes of bodies held by lingering requests (a body shared by
/// several deliveries of one event counts once for each).
const LINGER_BYTES: usize = 64 << 20;

/// A request in flight, in its lane.
pub(super) struct InFlight {
    /// The worker's number for it.
    pub(super) request: u64,
    pub(super) started: Instant,
    /// Its body's size.
    pub(super) bytes: usize,
    /// It left its slot.
    pub(super) lingering: bool,
}

/// Where a request that ended was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// In the worker's slots and its tenant's share.
    Held,
    /// Among the lingering, with its body's size.
    Lingering { bytes: usize },
}

/// The most lingering requests: in all, and by bytes (per tenant, see
/// `shares`).
#[derive(Clone, Copy)]
pub(super) struct Caps {
    pub(super) count: usize,
    pub(super) bytes: usize,
}

/// Lingering requests, counted.
#[derive(Default)]
pub(super) struct Lingering {
    count: usize,
    bytes: usize,
}

impl Lingering {
    /// Counts a request with a body of `bytes` in, if `caps` leave it room.
    pub(super) fn admit(&mut self, bytes: usize, caps: Caps) -> bool {
        if self.count >= caps.count || self.bytes + bytes > caps.bytes {
            return false;
        }
        self.count += 1;
        self.bytes += bytes;
        true
    }

    /// A lingering request with a body of `bytes` ended. Answers how many
    /// linger now.
    pub(super) fn ended(&mut self, bytes: usize) -> usize {
        self.count -= 1;
        self.bytes -= bytes;
        self.count
    }
}

impl Worker {
    fn linger_caps(&self) -> Caps {
        Caps {
            count: self.settings.concurrency * 2,
            bytes: LINGER_BYTES,
        }
    }

    /// Moves the requests in flight for longer than [`LINGER_AFTER`] that
    /// are wanted out of their slots (see the module's documentation),
    /// oldest first, while there is room for them; returns the jobs their
    /// tenants' shares held back that may start now.
    pub(super) fn linger_slow(&self) -> Vec<Job> {
        if self.stop.is_cancelled() {
            return Vec::new();
        }
        let caps = self.linger_caps();
        let now = Instant::now();
        let mut guard = self.lanes();
        let lanes = &mut *guard;
        let room = self.settings.concurrency.saturating_sub(lanes.held);
        let mut wanted = self.refill_at().saturating_sub(room);
        if wanted == 0 && !lanes.shares.holds_back_any() {
            return Vec::new();
        }
        let mut wanted_by = lanes.shares.held_back_counts();
        let mut oldest: Vec<(Instant, EndpointId, u64)> = Vec::new();
        for (id, lane) in &lanes.endpoints {
            if wanted == 0 && !wanted_by.contains_key(&lane.tenant) {
                continue;
            }
            oldest.extend(
                lane.in_flight
                    .iter()
                    .filter(|r| !r.lingering && now.duration_since(r.started) >= LINGER_AFTER)
                    .map(|r| (r.started, id.clone(), r.request)),
            );
        }
        oldest.sort_unstable_by_key(|(started, ..)| *started);
        let mut freed: Vec<String> = Vec::new();
        for (_, endpoint, request) in oldest {
            let Some(lane) = lanes.endpoints.get_mut(&endpoint) else {
                continue;
            };
            let for_tenant = wanted_by.get_mut(&lane.tenant).filter(|n| **n > 0);
            if wanted == 0 && for_tenant.is_none() {
                continue;
            }
            let Some(r) = lane.in_flight.iter_mut().find(|r| r.request == request) else {
                continue;
            };
            if !lanes.lingering.admit(r.bytes, caps) {
                break;
            }
            r.lingering = true;
            lanes.held -= 1;
            lanes.shares.lingered(&lane.tenant);
            wanted = wanted.saturating_sub(1);
            if let Some(n) = for_tenant {
                *n -= 1;
            }
            if !freed.contains(&lane.tenant) {
                freed.push(lane.tenant.clone());
            }
        }
        if freed.is_empty() {
            return Vec::new();
        }
        self.lingering.set(lanes.lingering.count as f64);
        tracing::debug!(
            lingering = lanes.lingering.count,
            tenants = freed.len(),
            "requests running for over {LINGER_AFTER:?} left their slots"
        );
        let mut started = Vec::new();
        for tenant in &freed {
            self.start_held_back(lanes, tenant, &mut started);
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lingering_is_bounded_in_count_and_bytes() {
        let caps = Caps {
            count: 3,
            bytes: 100,
        };
        let mut lingering = Lingering::default();
        assert!(lingering.admit(10, caps));
        assert!(lingering.admit(70, caps));
        assert!(!lingering.admit(30, caps), "past the bytes");
        assert!(lingering.admit(20, caps));
        assert!(!lingering.admit(0, caps), "three in all");
        assert_eq!(lingering.ended(70), 2);
        assert!(lingering.admit(70, caps), "room again");
        for bytes in [10, 70, 20] {
            lingering.ended(bytes);
        }
        assert_eq!((lingering.count, lingering.bytes), (0, 0));
    }
}
