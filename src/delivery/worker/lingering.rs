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
//! So when the worker is full, a request in flight for longer than
//! [`LINGER_AFTER`] leaves its slot and its tenant's share and lingers
//! (and when it is not, one of a tenant whose share holds back its other
//! endpoints: its hung endpoints would hold up its healthy ones):
//! it still counts in its endpoint's window, and it ends as any other.
//! Lingering requests are bounded in their turn: twice `concurrency` in
//! all, twice `tenant_concurrency` per tenant, and [`LINGER_BYTES`] of
//! bodies. A request with no room to linger keeps its slot.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::{Job, Lanes, Worker};

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

/// The most lingering requests: in all, per tenant, and by bytes.
#[derive(Clone, Copy)]
pub(super) struct Caps {
    pub(super) count: usize,
    pub(super) per_tenant: usize,
    pub(super) bytes: usize,
}

/// Lingering requests, counted.
#[derive(Default)]
pub(super) struct Lingering {
    count: usize,
    bytes: usize,
    per_tenant: HashMap<String, usize>,
}

impl Lingering {
    /// Counts a request of `tenant` with a body of `bytes` in, if `caps`
    /// leave it room.
    pub(super) fn admit(&mut self, tenant: &str, bytes: usize, caps: Caps) -> bool {
        let of_tenant = self.per_tenant.get(tenant).copied().unwrap_or(0);
        if self.count >= caps.count
            || of_tenant >= caps.per_tenant
            || self.bytes + bytes > caps.bytes
        {
            return false;
        }
        self.count += 1;
        self.bytes += bytes;
        *self.per_tenant.entry(tenant.to_owned()).or_default() += 1;
        true
    }

    /// A lingering request of `tenant` with a body of `bytes` ended.
    /// Answers how many linger now.
    pub(super) fn ended(&mut self, tenant: &str, bytes: usize) -> usize {
        self.count -= 1;
        self.bytes -= bytes;
        if let Some(count) = self.per_tenant.get_mut(tenant) {
            *count -= 1;
            if *count == 0 {
                self.per_tenant.remove(tenant);
            }
        }
        self.count
    }

    fn is_full(&self, caps: Caps) -> bool {
        self.count >= caps.count
    }
}

impl Worker {
    fn linger_caps(&self) -> Caps {
        Caps {
            count: self.settings.concurrency * 2,
            per_tenant: self.settings.tenant_concurrency * 2,
            bytes: LINGER_BYTES,
        }
    }

    /// Moves the requests in flight for longer than [`LINGER_AFTER`] out
    /// of their slots while there is room for them (when the worker is
    /// full, any; otherwise those of tenants whose share holds back other
    /// lanes), and returns the jobs their tenants' shares held back that
    /// may start now.
    pub(super) fn linger_slow(&self) -> Vec<Job> {
        let caps = self.linger_caps();
        let now = Instant::now();
        let mut guard = self.lanes();
        let lanes = &mut *guard;
        let full = self.settings.concurrency.saturating_sub(lanes.held) < self.refill_at();
        if !full && !lanes.shares.holds_back_any() {
            return Vec::new();
        }
        let Lanes {
            endpoints,
            lingering,
            shares,
            held,
            ..
        } = lanes;
        let mut freed: Vec<String> = Vec::new();
        'lanes: for lane in endpoints.values_mut() {
            for request in &mut lane.in_flight {
                if lingering.is_full(caps) {
                    break 'lanes;
                }
                if request.lingering
                    || now.duration_since(request.started) < LINGER_AFTER
                    || !(full || shares.holds_back(&lane.tenant))
                    || !lingering.admit(&lane.tenant, request.bytes, caps)
                {
                    continue;
                }
                request.lingering = true;
                *held -= 1;
                shares.ended(&lane.tenant);
                if !freed.contains(&lane.tenant) {
                    freed.push(lane.tenant.clone());
                }
            }
        }
        if freed.is_empty() {
            return Vec::new();
        }
        self.lingering.set(lanes.lingering.count as f64);
        tracing::info!(
            lingering = lanes.lingering.count,
            tenants = freed.len(),
            full,
            "requests running for over {LINGER_AFTER:?} leave their slots"
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
    fn lingering_is_bounded_in_all_per_tenant_and_by_bytes() {
        let caps = Caps {
            count: 4,
            per_tenant: 2,
            bytes: 100,
        };
        let mut lingering = Lingering::default();
        assert!(lingering.admit("acme", 10, caps));
        assert!(lingering.admit("acme", 10, caps));
        assert!(!lingering.admit("acme", 10, caps), "acme's two are in");
        assert!(lingering.admit("other", 70, caps));
        assert!(!lingering.admit("third", 20, caps), "past the bytes");
        assert!(lingering.admit("third", 10, caps));
        assert!(lingering.is_full(caps));
        assert!(!lingering.admit("fourth", 0, caps), "four in all");
        lingering.ended("acme", 10);
        assert!(lingering.admit("acme", 10, caps), "room again");
        for (tenant, bytes) in [("acme", 10), ("acme", 10), ("other", 70), ("third", 10)] {
            lingering.ended(tenant, bytes);
        }
        assert_eq!((lingering.count, lingering.bytes), (0, 0));
        assert!(lingering.per_tenant.is_empty());
    }
}
