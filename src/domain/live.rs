//! What live subscriptions read: the [`LiveFeed`] port (implemented by the
//! bus) and the filters that pick a subscriber's items out of it.

use std::sync::Arc;

use entity::{delivery, delivery_attempt::AttemptOutcome, event};
use tokio::sync::broadcast;

use super::{facts::LiveAttempt, patterns::Pattern};
use crate::ids::{IdFilter, WebhookId};

/// Live streams of what happened, each a bounded ring: a receiver that
/// falls behind loses the oldest items and is told how many. Implemented by
/// the bus; read by live subscriptions.
pub trait LiveFeed: Send + Sync {
    fn attempts(&self) -> broadcast::Receiver<Arc<LiveAttempt>>;
    fn deliveries(&self) -> broadcast::Receiver<Arc<delivery::Model>>;
    fn events(&self) -> broadcast::Receiver<Arc<event::Model>>;
    /// Receivers open on this instance.
    fn receiver_count(&self) -> usize;
}

/// Which attempts a `deliveryAttempts` subscriber gets.
pub struct AttemptFilter {
    pub tenant: String,
    pub webhook_id: Option<IdFilter<WebhookId>>,
    pub outcome: Option<AttemptOutcome>,
    pub event_type: Option<Pattern>,
}

impl AttemptFilter {
    pub fn keeps(&self, item: &LiveAttempt) -> bool {
        item.attempt.tenant_id == self.tenant
            && self
                .webhook_id
                .as_ref()
                .is_none_or(|w| w.matches(&item.webhook_id))
            && self.outcome.is_none_or(|o| o == item.attempt.outcome)
            && self
                .event_type
                .as_ref()
                .is_none_or(|p| p.matches(&item.event_type))
    }
}

/// Which delivery changes a `deliveryStatusChanged` subscriber gets.
pub struct DeliveryFilter {
    pub tenant: String,
    pub webhook_id: Option<IdFilter<WebhookId>>,
}

impl DeliveryFilter {
    pub fn keeps(&self, item: &delivery::Model) -> bool {
        item.tenant_id == self.tenant
            && self
                .webhook_id
                .as_ref()
                .is_none_or(|w| w.matches(&item.webhook_id))
    }
}

/// Which events an `eventsPublished` subscriber gets.
pub struct EventFilter {
    pub tenant: String,
    pub event_type: Option<Pattern>,
}

impl EventFilter {
    pub fn keeps(&self, item: &event::Model) -> bool {
        item.tenant_id == self.tenant
            && self
                .event_type
                .as_ref()
                .is_none_or(|p| p.matches(&item.event_type))
    }
}
