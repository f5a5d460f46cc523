//! A tenant's share of the worker's requests in flight.
//!
//! Windows (`window`) hold a hung endpoint to one or two requests, but a
//! tenant may have thousands of endpoints (1 000 webhooks of up to 10), and
//! a few hundred of them hanging at once would still hold every request
//! slot of the worker until their timeouts, for every tenant. So each
//! tenant runs at most `tenant_concurrency` requests at once (half the
//! worker by default). Its other jobs wait in their lanes, and the lanes
//! that bound held back start in turn as the tenant's requests end: while
//! any waits, a lane whose request ended goes to the back of the line
//! instead of starting its next job, so one busy endpoint cannot keep the
//! tenant's share from its others.
//!
//! Requests that left their slots (`lingering`) leave the share too, but a
//! tenant has at most [`IN_ALL`] times its share in flight in all: however
//! many of its endpoints hang, once its hung requests linger it holds no
//! slot at all, and it never takes more than its part of the lingering.

use std::collections::{HashMap, VecDeque};

use crate::ids::EndpointId;

/// How many times its share a tenant may have in flight, lingering
/// requests included.
pub(super) const IN_ALL: usize = 2;

/// Requests in flight per tenant, and the lanes their tenant's bound holds
/// back.
#[derive(Default)]
pub(super) struct Shares {
    /// Requests in slots, per tenant.
    running: HashMap<String, usize>,
    /// Requests that left their slots, per tenant.
    lingering: HashMap<String, usize>,
    /// Per tenant, lanes with a queued job their window had room for, in
    /// the order they were held back.
    held_back: HashMap<String, VecDeque<EndpointId>>,
}

impl Shares {
    /// Whether `tenant` may start another request, running at most `most`
    /// in slots and [`IN_ALL`] times that in all.
    pub(super) fn has_room(&self, tenant: &str, most: usize) -> bool {
        let running = self.running.get(tenant).copied().unwrap_or(0);
        let lingering = self.lingering.get(tenant).copied().unwrap_or(0);
        running < most && running + lingering < most * IN_ALL
    }

    /// A request of `tenant` left its slot, and lingers.
    pub(super) fn lingered(&mut self, tenant: &str) {
        self.ended(tenant);
        *self.lingering.entry(tenant.to_owned()).or_default() += 1;
    }

    /// A lingering request of `tenant` ended.
    pub(super) fn lingering_ended(&mut self, tenant: &str) {
        if let Some(lingering) = self.lingering.get_mut(tenant) {
            *lingering -= 1;
            if *lingering == 0 {
                self.lingering.remove(tenant);
            }
        }
    }

    /// A request of `tenant` started.
    pub(super) fn started(&mut self, tenant: &str) {
        match self.running.get_mut(tenant) {
            Some(running) => *running += 1,
            None => {
                self.running.insert(tenant.to_owned(), 1);
            }
        }
    }

    /// A request of `tenant` ended.
    pub(super) fn ended(&mut self, tenant: &str) {
        if let Some(running) = self.running.get_mut(tenant) {
            *running -= 1;
            if *running == 0 {
                self.running.remove(tenant);
            }
        }
    }

    /// `endpoint`'s lane has a job its window would start but `tenant`'s
    /// bound held back.
    pub(super) fn hold_back(&mut self, tenant: &str, endpoint: &EndpointId) {
        let lanes = match self.held_back.get_mut(tenant) {
            Some(lanes) => lanes,
            None => self.held_back.entry(tenant.to_owned()).or_default(),
        };
        if !lanes.contains(endpoint) {
            lanes.push_back(endpoint.clone());
        }
    }

    /// Whether lanes of `tenant` wait for their turn.
    pub(super) fn holds_back(&self, tenant: &str) -> bool {
        self.held_back.contains_key(tenant)
    }

    /// Whether lanes of any tenant wait for their turn.
    pub(super) fn holds_back_any(&self) -> bool {
        !self.held_back.is_empty()
    }

    /// How many lanes each tenant's share holds back.
    pub(super) fn held_back_counts(&self) -> HashMap<String, usize> {
        self.held_back
            .iter()
            .map(|(tenant, lanes)| (tenant.clone(), lanes.len()))
            .collect()
    }

    /// The lane of `tenant` held back longest, if any.
    pub(super) fn next_held_back(&mut self, tenant: &str) -> Option<EndpointId> {
        let lanes = self.held_back.get_mut(tenant)?;
        let next = lanes.pop_front();
        if lanes.is_empty() {
            self.held_back.remove(tenant);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_runs_at_most_its_share_and_its_held_back_lanes_go_in_turn() {
        let mut shares = Shares::default();
        for _ in 0..2 {
            assert!(shares.has_room("acme", 2));
            shares.started("acme");
        }
        assert!(!shares.has_room("acme", 2), "at its share");
        assert!(shares.has_room("other", 2), "another tenant is not held");
        let (first, second) = (EndpointId::new(), EndpointId::new());
        shares.hold_back("acme", &first);
        shares.hold_back("acme", &second);
        shares.hold_back("acme", &first);
        shares.ended("acme");
        assert!(shares.has_room("acme", 2));
        assert_eq!(
            shares.next_held_back("acme"),
            Some(first),
            "held back first"
        );
        assert_eq!(shares.next_held_back("acme"), Some(second), "once each");
        assert_eq!(shares.next_held_back("acme"), None);
        shares.ended("acme");
        assert!(shares.running.is_empty() && shares.held_back.is_empty());
    }

    #[test]
    fn lingering_leaves_the_share_but_counts_in_all() {
        let mut shares = Shares::default();
        for _ in 0..2 {
            shares.started("acme");
        }
        shares.lingered("acme");
        shares.lingered("acme");
        assert!(shares.has_room("acme", 2), "two lingering, none in slots");
        shares.started("acme");
        shares.started("acme");
        assert!(!shares.has_room("acme", 2), "at its share");
        shares.lingered("acme");
        assert!(
            !shares.has_room("acme", 2),
            "one slot free, but four in flight in all"
        );
        shares.lingering_ended("acme");
        assert!(shares.has_room("acme", 2));
        for _ in 0..2 {
            shares.lingering_ended("acme");
        }
        shares.ended("acme");
        assert!(shares.running.is_empty() && shares.lingering.is_empty());
    }
}
