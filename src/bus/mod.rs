//! What happened, told to whoever is listening: the delivery worker (new
//! deliveries are due) and live GraphQL subscriptions (attempts, delivery
//! status changes, published events).
//!
//! Locally it is tokio channels: a `Notify` for the worker and one bounded
//! `broadcast` ring per kind of news, so a slow subscriber lags (and is told
//! how much it missed) instead of slowing the worker or growing memory.
//! News known only by id (changed deliveries, and everything another
//! instance reports) goes through the [`loader`], which reads the rows and
//! broadcasts them. On PostgreSQL the [`relay`] forwards news, as ids, to the
//! other instances with LISTEN/NOTIFY. A delivery change also carries the
//! state it changed to, so a subscriber sees every status a delivery went
//! through even when the row has moved on by the time it is read.

pub mod loader;
pub mod relay;

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use entity::{
    delivery::{self, DeliveryStatus},
    delivery_attempt, event,
};
use tokio::sync::{Notify, broadcast, mpsc};

/// Notices waiting for the loader or the relay; beyond this they are dropped
/// (they only feed live views, which can re-read the log).
const QUEUE_CAPACITY: usize = 4_096;

/// A finished attempt, with what a monitor needs to place it.
#[derive(Clone, Debug)]
pub struct LiveAttempt {
    pub attempt: delivery_attempt::Model,
    pub event_id: String,
    pub event_type: String,
    pub webhook_id: String,
    pub endpoint_id: String,
}

/// A delivery's status right after it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryChange {
    pub id: String,
    pub status: DeliveryStatus,
    /// Set when an attempt made the change.
    pub attempt: Option<AttemptState>,
}

/// A delivery's attempt bookkeeping right after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptState {
    pub count: i32,
    pub at: i64,
    pub response_status: Option<i32>,
    pub next_attempt_at: Option<i64>,
}

impl DeliveryChange {
    /// The change as the row shows it now.
    pub fn of(row: &delivery::Model) -> Self {
        Self {
            id: row.id.clone(),
            status: row.status,
            attempt: row.last_attempt_at.map(|at| AttemptState {
                count: row.attempt_count,
                at,
                response_status: row.last_response_status,
                next_attempt_at: row.next_attempt_at,
            }),
        }
    }

    /// What an attempt changed a delivery to.
    pub fn after_attempt(attempt: &delivery_attempt::Model, status: DeliveryStatus) -> Self {
        Self {
            id: attempt.delivery_id.clone(),
            status,
            attempt: Some(AttemptState {
                count: attempt.attempt_number,
                at: attempt.started_at,
                response_status: attempt.response_status,
                next_attempt_at: attempt.next_attempt_at,
            }),
        }
    }

    /// A delivery the worker cancelled (its webhook is no longer active).
    pub fn cancelled(id: String) -> Self {
        Self {
            id,
            status: DeliveryStatus::Cancelled,
            attempt: None,
        }
    }

    /// `row`, read later, as it was at this change.
    pub fn apply(&self, mut row: delivery::Model) -> delivery::Model {
        row.status = self.status;
        if let Some(attempt) = self.attempt {
            row.attempt_count = attempt.count;
            row.last_attempt_at = Some(attempt.at);
            row.last_response_status = attempt.response_status;
            row.next_attempt_at = attempt.next_attempt_at;
        }
        if !self.status.is_open() {
            row.next_attempt_at = None;
        }
        row
    }
}

/// News known by id only (and, for deliveries, their new state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    DeliveriesDue,
    Events(Vec<String>),
    Attempts(Vec<String>),
    Deliveries(Vec<DeliveryChange>),
    /// The link to the other instances was down: re-read what they may have
    /// reported meanwhile.
    Resync {
        since_ms: i64,
    },
}

/// The receiving ends the bus's background tasks consume.
pub struct BusQueues {
    pub loader: mpsc::Receiver<Notice>,
    pub relay: Option<mpsc::Receiver<Notice>>,
}

pub struct Bus {
    deliveries_due: Notify,
    attempts: broadcast::Sender<Arc<LiveAttempt>>,
    deliveries: broadcast::Sender<Arc<delivery::Model>>,
    events: broadcast::Sender<Arc<event::Model>>,
    loader: mpsc::Sender<Notice>,
    relay: Option<mpsc::Sender<Notice>>,
    /// Ids recently broadcast, so a resync does not repeat them.
    seen: Mutex<Seen>,
}

impl Bus {
    /// A bus whose rings hold `capacity` items each (a subscriber further
    /// behind loses the oldest and is told how many); with `relayed`, news
    /// also goes to other instances.
    pub fn new(capacity: usize, relayed: bool) -> (Self, BusQueues) {
        let (loader, loader_rx) = mpsc::channel(QUEUE_CAPACITY);
        let (relay, relay_rx) = if relayed {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let bus = Self {
            deliveries_due: Notify::new(),
            attempts: broadcast::channel(capacity).0,
            deliveries: broadcast::channel(capacity).0,
            events: broadcast::channel(capacity).0,
            loader,
            relay,
            seen: Mutex::default(),
        };
        (
            bus,
            BusQueues {
                loader: loader_rx,
                relay: relay_rx,
            },
        )
    }

    fn relay(&self, notice: Notice) {
        if let Some(relay) = &self.relay
            && relay.try_send(notice).is_err()
        {
            tracing::debug!("relay queue full; other instances will catch up by polling");
        }
    }

    /// New deliveries are due now (after a commit): wakes the workers.
    pub fn deliveries_due(&self) {
        self.deliveries_due.notify_one();
        self.relay(Notice::DeliveriesDue);
    }

    /// Wakes this instance's worker only.
    pub(crate) fn wake_worker(&self) {
        self.deliveries_due.notify_one();
    }

    /// Resolves at the next `deliveries_due` (or at once if one came since the
    /// last wait).
    pub async fn wait_deliveries_due(&self) {
        self.deliveries_due.notified().await;
    }

    pub fn announce_events(&self, events: &[event::Model]) {
        if events.is_empty() {
            return;
        }
        self.relay(Notice::Events(
            events.iter().map(|e| e.id.clone()).collect(),
        ));
        self.broadcast_events(events.iter().cloned());
    }

    pub fn announce_attempts(&self, attempts: Vec<LiveAttempt>) {
        if attempts.is_empty() {
            return;
        }
        self.relay(Notice::Attempts(
            attempts.iter().map(|a| a.attempt.id.clone()).collect(),
        ));
        self.broadcast_attempts(attempts);
    }

    /// Whether anyone hears of delivery changes: local subscribers, or other
    /// instances (which may have some).
    pub fn wants_delivery_changes(&self) -> bool {
        self.relay.is_some() || self.has_delivery_subscribers()
    }

    /// Deliveries whose status changed; the loader reads the rest of them
    /// for local subscribers, and other instances are told.
    pub fn announce_delivery_changes(&self, changes: Vec<DeliveryChange>) {
        if changes.is_empty() {
            return;
        }
        self.relay(Notice::Deliveries(changes.clone()));
        self.to_loader(Notice::Deliveries(changes));
    }

    /// News from another instance, to be loaded and broadcast here.
    pub(crate) fn to_loader(&self, notice: Notice) {
        if self.loader.try_send(notice).is_err() {
            tracing::debug!("loader queue full; live subscribers will see a gap");
        }
    }

    pub(crate) fn broadcast_events(&self, events: impl IntoIterator<Item = event::Model>) {
        if !self.has_event_subscribers() {
            return;
        }
        for event in events {
            if self.first_sight(&event.id) {
                let _ = self.events.send(Arc::new(event));
            }
        }
    }

    pub(crate) fn broadcast_attempts(&self, attempts: impl IntoIterator<Item = LiveAttempt>) {
        if !self.has_attempt_subscribers() {
            return;
        }
        for attempt in attempts {
            if self.first_sight(&attempt.attempt.id) {
                let _ = self.attempts.send(Arc::new(attempt));
            }
        }
    }

    pub(crate) fn broadcast_deliveries(
        &self,
        deliveries: impl IntoIterator<Item = delivery::Model>,
    ) {
        for delivery in deliveries {
            let _ = self.deliveries.send(Arc::new(delivery));
        }
    }

    fn first_sight(&self, id: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id)
    }

    pub(crate) fn already_seen(&self, id: &str) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    pub fn subscribe_attempts(&self) -> broadcast::Receiver<Arc<LiveAttempt>> {
        self.attempts.subscribe()
    }

    pub fn subscribe_deliveries(&self) -> broadcast::Receiver<Arc<delivery::Model>> {
        self.deliveries.subscribe()
    }

    pub fn subscribe_events(&self) -> broadcast::Receiver<Arc<event::Model>> {
        self.events.subscribe()
    }

    pub fn has_attempt_subscribers(&self) -> bool {
        self.attempts.receiver_count() > 0
    }

    pub fn has_delivery_subscribers(&self) -> bool {
        self.deliveries.receiver_count() > 0
    }

    pub fn has_event_subscribers(&self) -> bool {
        self.events.receiver_count() > 0
    }

    /// Live subscriptions open on this instance.
    pub fn subscriber_count(&self) -> usize {
        self.attempts.receiver_count()
            + self.deliveries.receiver_count()
            + self.events.receiver_count()
    }
}

/// The last [`Seen::CAPACITY`] ids broadcast, oldest forgotten first.
#[derive(Default)]
struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Seen {
    const CAPACITY: usize = 32_768;

    fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == Self::CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_shows_the_state_it_went_to_even_when_read_later() {
        let later = delivery::Model {
            id: "del_1".into(),
            tenant_id: "acme".into(),
            event_id: "evt_1".into(),
            webhook_id: "wh_1".into(),
            endpoint_id: "ep_1".into(),
            status: DeliveryStatus::Succeeded,
            attempt_count: 2,
            next_attempt_at: None,
            claim_token: None,
            claimed_by: None,
            last_attempt_at: Some(2_000),
            last_response_status: Some(200),
            created_at: 500,
            updated_at: 2_100,
        };
        let first_failure = DeliveryChange {
            id: "del_1".into(),
            status: DeliveryStatus::Retrying,
            attempt: Some(AttemptState {
                count: 1,
                at: 1_000,
                response_status: Some(500),
                next_attempt_at: Some(1_100),
            }),
        };
        let then = first_failure.apply(later.clone());
        assert_eq!(then.status, DeliveryStatus::Retrying);
        assert_eq!(then.attempt_count, 1);
        assert_eq!(then.last_response_status, Some(500));
        assert_eq!(then.next_attempt_at, Some(1_100));
        assert_eq!(then.event_id, "evt_1", "the rest comes from the row");
        assert_eq!(DeliveryChange::of(&later).apply(then), later);
    }

    #[test]
    fn seen_forgets_the_oldest_beyond_capacity() {
        let mut seen = Seen::default();
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        for n in 0..Seen::CAPACITY {
            seen.insert(&n.to_string());
        }
        assert!(!seen.contains("a"));
        assert!(seen.contains(&(Seen::CAPACITY - 1).to_string()));
    }
}
