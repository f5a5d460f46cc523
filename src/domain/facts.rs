//! What happened, as typed facts told after the commit that made them
//! true: events published with their new deliveries, attempts recorded with
//! the status they left their delivery in, deliveries changed by an operator
//! or the worker, deliveries due. Domain and delivery tell them through the
//! [`Facts`] port; `bus` implements it for live subscriptions and the other
//! instances. (New deliveries reach this instance's worker at their commit
//! through another port, `intake`.)

use std::sync::Arc;

use entity::{
    delivery::{self, DeliveryStatus},
    delivery_attempt::{self, AttemptOutcome},
    event,
};
use tokio::sync::Notify;

use crate::ids::{DeliveryId, EndpointId, EventId, WebhookId};

/// Told after each commit. Implementations must not block: they hand work
/// to their own tasks.
pub trait Facts: Send + Sync {
    /// Events were committed with `delivery_count` new deliveries, of which
    /// `due` are waiting for any worker to claim them (the rest were taken
    /// at the commit through the `intake`).
    fn published(&self, events: &[event::Model], delivery_count: u64, due: u64);
    /// Deliveries were made due now (a resend, a replay, a retry): workers
    /// here and on other instances should look.
    fn deliveries_due(&self);
    /// Attempts were recorded.
    fn attempts_recorded(&self, attempts: Vec<LiveAttempt>);
    /// Deliveries changed status, in the order they changed.
    fn deliveries_changed(&self, changes: Vec<DeliveryChange>);
    /// `writer` made one write of a group of publishes or a batch of
    /// attempts, the way `path` says. A group may take several: some of its
    /// publishes in one statement and the rest in a transaction, a refused
    /// statement then the transaction, a write retried or split. (The
    /// recorder, in `delivery`, counts its own writes on the metrics.)
    fn written(&self, _writer: Writer, _path: WritePath) {}
}

/// The writers every event goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Writer {
    /// Group commits of publishes (`domain::publish`).
    Publish,
    /// Batches of attempts and their outcomes (`delivery::recorder`).
    Recorder,
}

/// The way a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WritePath {
    /// The cheap way: one statement (on SQLite, one trip to the
    /// connection's thread) that wrote rows.
    OneStatement,
    /// A transaction that committed: what one statement does not take
    /// (idempotency keys, failed attempts, large groups on SQLite), or what
    /// it refused.
    Transaction,
    /// The one statement was refused and wrote nothing (a race with a
    /// removal, or a fault in it); the transactional way takes the rest.
    /// Seen steadily, that writer's cheap way is broken.
    Refused,
}

/// Wakes this instance's delivery worker: "something may be due". Shared
/// by whoever learns it (the bus, from another instance) and the worker.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next `wake` (or at once if one came since the last
    /// wait).
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

/// A finished attempt, with what a monitor needs to place it.
#[derive(Clone, Debug)]
pub struct LiveAttempt {
    pub attempt: delivery_attempt::Model,
    pub event_id: EventId,
    pub event_type: String,
    pub webhook_id: WebhookId,
    pub endpoint_id: EndpointId,
}

/// A delivery's status right after it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryChange {
    pub id: DeliveryId,
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

    /// What a recorded attempt changed its delivery to, read back from the
    /// attempt alone (as `delivery::outcome` decided it): SUCCEEDED, RETRYING
    /// while another attempt is scheduled, FAILED otherwise.
    pub fn of_attempt(attempt: &delivery_attempt::Model) -> Self {
        let status = match (attempt.outcome, attempt.next_attempt_at) {
            (AttemptOutcome::Succeeded, _) => DeliveryStatus::Succeeded,
            (AttemptOutcome::Failed, Some(_)) => DeliveryStatus::Retrying,
            (AttemptOutcome::Failed, None) => DeliveryStatus::Failed,
        };
        Self::after_attempt(attempt, status)
    }

    /// Whether this change, made by attempt number `attempt_number`, is told
    /// as a status change: a first attempt (PENDING becomes RETRYING or
    /// settled) or a final one. Retries in between leave it RETRYING.
    pub fn is_news(attempt_number: i32, status: DeliveryStatus) -> bool {
        attempt_number == 1 || !status.is_open()
    }

    /// A delivery the worker cancelled (its webhook is no longer active).
    pub fn cancelled(id: DeliveryId) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_shows_the_state_it_went_to_even_when_read_later() {
        let id = DeliveryId::new();
        let event_id = EventId::new();
        let later = delivery::Model {
            id: id.clone(),
            tenant_id: "acme".into(),
            event_id: event_id.clone(),
            webhook_id: WebhookId::new(),
            endpoint_id: EndpointId::new(),
            status: DeliveryStatus::Succeeded,
            attempt_count: 2,
            next_attempt_at: None,
            last_attempt_at: Some(2_000),
            last_response_status: Some(200),
            created_at: 500,
            updated_at: 2_100,
            recovery_job_id: None,
            ordering_key: None,
            ordering_seq: 0,
        };
        let first_failure = DeliveryChange {
            id,
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
        assert_eq!(then.event_id, event_id, "the rest comes from the row");
        assert_eq!(DeliveryChange::of(&later).apply(then), later);
    }

    #[test]
    fn an_attempt_read_back_tells_the_status_it_left_its_delivery_in() {
        let attempt = |outcome, next_attempt_at| delivery_attempt::Model {
            id: crate::ids::AttemptId::new(),
            tenant_id: "acme".into(),
            delivery_id: DeliveryId::new(),
            attempt_number: 2,
            endpoint_url: "http://127.0.0.1/hook".into(),
            outcome,
            started_at: 1_000,
            duration_ms: 30,
            response_status: None,
            response_body: None,
            error_kind: None,
            error_message: None,
            next_attempt_at,
            instance_id: None,
            endpoint_id: None,
        };
        let status = |outcome, next| DeliveryChange::of_attempt(&attempt(outcome, next)).status;
        assert_eq!(
            status(AttemptOutcome::Succeeded, None),
            DeliveryStatus::Succeeded
        );
        assert_eq!(
            status(AttemptOutcome::Failed, Some(2_000)),
            DeliveryStatus::Retrying
        );
        assert_eq!(status(AttemptOutcome::Failed, None), DeliveryStatus::Failed);
        assert!(!DeliveryChange::is_news(2, DeliveryStatus::Retrying));
        assert!(DeliveryChange::is_news(1, DeliveryStatus::Retrying));
        assert!(DeliveryChange::is_news(2, DeliveryStatus::Failed));
    }
}
