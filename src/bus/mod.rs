//! The facts domain and delivery tell (see [`crate::domain::facts`]), passed
//! on to whoever is listening: live GraphQL subscriptions (attempts,
//! delivery status changes, published events), the other instances, and
//! this instance's worker when another instance says deliveries are due.
//!
//! Locally it is tokio channels: the worker's [`Wakeup`] and one bounded
//! `broadcast` ring per kind of news, so a slow subscriber lags (and is told
//! how much it missed) instead of slowing the worker or growing memory.
//! News known only by id (changed deliveries, and everything another
//! instance reports) goes through the [`loader`], which reads the rows and
//! broadcasts them. On PostgreSQL the [`relay`] forwards news, as ids, to the
//! other instances with LISTEN/NOTIFY. A delivery change also carries the
//! state it changed to, so a subscriber sees every status a delivery went
//! through even when the row has moved on by the time it is read.
//! What this instance did not hear (its LISTEN connection was down) or
//! could not read is re-read later (`resync`), and told once.

pub mod loader;
pub mod relay;
mod resync;
mod seen;

use std::sync::{Arc, Mutex};

use entity::{
    delivery::{self, DeliveryStatus},
    event,
};
use tokio::sync::{broadcast, mpsc};

use self::seen::Seen;
use crate::{
    domain::{
        facts::{DeliveryChange, Facts, LiveAttempt, Wakeup},
        instances::Peers,
        live::LiveFeed,
    },
    ids::{AttemptId, EventId},
};

/// Notices waiting for the loader or the relay; beyond this they are dropped
/// (they only feed live views, which can re-read the log).
const QUEUE_CAPACITY: usize = 4_096;

/// News known by id only (and, for deliveries, their new state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    DeliveriesDue,
    Events(Vec<EventId>),
    Attempts(Vec<AttemptId>),
    Deliveries(Vec<DeliveryChange>),
    /// Another instance started listening: this one is not alone.
    Hello,
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
    /// This instance's worker.
    wakeup: Wakeup,
    attempts: broadcast::Sender<Arc<LiveAttempt>>,
    deliveries: broadcast::Sender<Arc<delivery::Model>>,
    events: broadcast::Sender<Arc<event::Model>>,
    loader: mpsc::Sender<Notice>,
    relay: Option<mpsc::Sender<Notice>>,
    /// Whether other instances are alive to be told anything.
    peers: Peers,
    /// Ids recently broadcast (events' and attempts', told apart by their
    /// prefixes), so a resync does not repeat them.
    seen: Mutex<Seen>,
    /// Delivery changes recently broadcast, and those of them a resync told
    /// (see [`Bus::broadcast_deliveries`]).
    changes: Mutex<Seen>,
    changes_caught_up: Mutex<Seen>,
}

impl Bus {
    /// A bus whose rings hold `capacity` items each (a subscriber further
    /// behind loses the oldest and is told how many); with `relayed`, news
    /// also goes to other instances, and theirs wakes this instance's worker
    /// through `wakeup`.
    /// News is not relayed while `peers` says this instance is alone.
    pub fn new(capacity: usize, relayed: bool, wakeup: Wakeup, peers: Peers) -> (Self, BusQueues) {
        let (loader, loader_rx) = mpsc::channel(QUEUE_CAPACITY);
        let (relay, relay_rx) = if relayed {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let bus = Self {
            wakeup,
            attempts: broadcast::channel(capacity).0,
            deliveries: broadcast::channel(capacity).0,
            events: broadcast::channel(capacity).0,
            loader,
            relay,
            peers,
            seen: Mutex::default(),
            changes: Mutex::default(),
            changes_caught_up: Mutex::default(),
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
        if self.peers.alone() {
            return;
        }
        if let Some(relay) = &self.relay
            && relay.try_send(notice).is_err()
        {
            tracing::debug!("relay queue full; other instances will catch up by polling");
        }
    }

    /// Another instance is alive (it sent something): news is relayed from
    /// now on, without waiting for the next heartbeat to count it.
    pub(crate) fn heard_from_another(&self) {
        self.peers.heard_from_another();
    }

    /// Wakes this instance's worker (another instance said deliveries are
    /// due, or the link to them was down).
    pub(crate) fn wake_worker(&self) {
        self.wakeup.wake();
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
    /// Queues `notice` for the loader, waiting for room: for news that must
    /// not be dropped (a re-read after the link was down).
    pub(crate) async fn to_loader_surely(&self, notice: Notice) {
        let _ = self.loader.send(notice).await;
    }

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
            if self.first_sight(event.id.as_str()) {
                let _ = self.events.send(Arc::new(event));
            }
        }
    }

    pub(crate) fn broadcast_attempts(&self, attempts: impl IntoIterator<Item = LiveAttempt>) {
        if !self.has_attempt_subscribers() {
            return;
        }
        for attempt in attempts {
            if self.first_sight(attempt.attempt.id.as_str()) {
                let _ = self.attempts.send(Arc::new(attempt));
            }
        }
    }

    /// Deliveries as they were right after a change heard of as it
    /// happened. One a resync already told is not told again; otherwise a
    /// delivery may go through the same status and attempt count twice (an
    /// operator cancelling it, retrying it, cancelling it again), and each
    /// time is told.
    pub(crate) fn broadcast_deliveries(
        &self,
        deliveries: impl IntoIterator<Item = delivery::Model>,
    ) {
        let (mut told, mut caught_up) = (lock(&self.changes), lock(&self.changes_caught_up));
        for delivery in deliveries {
            let key = change_key(&delivery);
            told.insert(key);
            // Only the notice that crossed the re-read is skipped: the same
            // status and count may come again later (cancel, retry, cancel).
            if !caught_up.remove(key) {
                let _ = self.deliveries.send(Arc::new(delivery));
            }
        }
    }

    /// Deliveries whose change a resync found: told unless this instance
    /// already told the same status and attempt count.
    pub(crate) fn broadcast_caught_up_deliveries(
        &self,
        deliveries: impl IntoIterator<Item = delivery::Model>,
    ) {
        let (mut told, mut caught_up) = (lock(&self.changes), lock(&self.changes_caught_up));
        for delivery in deliveries {
            let key = change_key(&delivery);
            if told.insert(key) {
                caught_up.insert(key);
                let _ = self.deliveries.send(Arc::new(delivery));
            }
        }
    }

    fn first_sight(&self, id: &str) -> bool {
        lock(&self.seen).insert(id)
    }

    pub(crate) fn already_seen(&self, id: &str) -> bool {
        lock(&self.seen).contains(id)
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

impl LiveFeed for Bus {
    fn attempts(&self) -> broadcast::Receiver<Arc<LiveAttempt>> {
        self.subscribe_attempts()
    }

    fn deliveries(&self) -> broadcast::Receiver<Arc<delivery::Model>> {
        self.subscribe_deliveries()
    }

    fn events(&self) -> broadcast::Receiver<Arc<event::Model>> {
        self.subscribe_events()
    }

    fn receiver_count(&self) -> usize {
        self.subscriber_count()
    }
}

impl Facts for Bus {
    fn published(&self, events: &[event::Model], _delivery_count: u64, due: u64) {
        self.announce_events(events);
        // Nobody took them at the commit: the workers (this instance's,
        // when it has one, and the others') should look.
        if due > 0 {
            Facts::deliveries_due(self);
        }
    }

    fn deliveries_due(&self) {
        self.wakeup.wake();
        self.relay(Notice::DeliveriesDue);
    }

    fn attempts_recorded(&self, attempts: Vec<LiveAttempt>) {
        self.announce_attempts(attempts);
    }

    fn deliveries_changed(&self, changes: Vec<DeliveryChange>) {
        if self.wants_delivery_changes() {
            self.announce_delivery_changes(changes);
        }
    }
}

/// What tells one change of a delivery from another: the status it went
/// to, and after how many attempts.
fn change_key(delivery: &delivery::Model) -> (&str, DeliveryStatus, i32) {
    (
        delivery.id.as_str(),
        delivery.status,
        delivery.attempt_count,
    )
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner())
}
