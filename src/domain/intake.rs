//! New deliveries taken at their commit: the port through which a delivery
//! worker on this instance takes the deliveries a publish creates, without a
//! claim of its own.
//!
//! Before writing a group's rows, publishing asks the [`Intake`] which of
//! the new deliveries it has room for. Those are written already held by the
//! intake's claim ([`queue::Holding`](super::queue::Holding)), inside the
//! publish's transaction, so taking them costs no second write; after the
//! commit they are handed over with what sending them needs ([`Queued`]),
//! and nothing is read back. If the commit fails, the room is given back
//! (the [`Held`] guard does it when dropped); the rows never existed. A
//! delivery the intake has no room for is written due, for any worker to
//! claim.

use std::sync::Arc;

use bytes::Bytes;
use entity::{delivery, endpoint, webhook};

use super::queue::ClaimStamp;
use crate::ids::InstanceId;

/// Where new deliveries are taken at their commit: implemented by the
/// delivery worker of this instance.
pub trait Intake: Send + Sync {
    /// Room for which of `deliveries` (true where taken), counted against
    /// the worker's capacity until handed over by [`Intake::take`] or given
    /// back. `None`: no room at all, or the worker is stopping.
    fn reserve(&self, deliveries: &[delivery::Model]) -> Option<Reservation>;
    /// The reserved deliveries, committed held by the reservation's claim:
    /// start them.
    fn take(&self, queued: Vec<Queued>);
    /// `count` reserved deliveries that were not committed.
    fn give_back(&self, count: usize);
}

/// Room for some new deliveries, and the claim they are written under.
#[derive(Debug)]
pub struct Reservation {
    pub now: i64,
    /// End of the lease: the rows fall due for anyone then, whatever happens.
    pub lease_until: i64,
    pub token: i64,
    pub instance: InstanceId,
    /// Per delivery asked about: whether it is taken.
    pub taken: Vec<bool>,
}

impl Reservation {
    pub fn stamp(&self) -> ClaimStamp<'_> {
        ClaimStamp {
            now: self.now,
            lease_until: self.lease_until,
            token: self.token,
            instance: &self.instance,
        }
    }

    fn count(&self) -> usize {
        self.taken.iter().filter(|taken| **taken).count()
    }
}

/// A reservation until its deliveries are handed over: dropped before that
/// (the commit failed, or returned early), it gives its room back.
pub struct Held {
    intake: Arc<dyn Intake>,
    reservation: Reservation,
    handed_over: bool,
}

impl Held {
    /// Asks `intake` for room for `deliveries`; `None` when it has none.
    pub fn reserve(intake: &Arc<dyn Intake>, deliveries: &[delivery::Model]) -> Option<Self> {
        if deliveries.is_empty() {
            return None;
        }
        let reservation = intake.reserve(deliveries)?;
        Some(Self {
            intake: intake.clone(),
            reservation,
            handed_over: false,
        })
    }

    pub fn reservation(&self) -> &Reservation {
        &self.reservation
    }

    /// How many deliveries it holds room for.
    pub fn count(&self) -> usize {
        self.reservation.count()
    }

    /// The committed deliveries, to the intake. The room of any reserved
    /// delivery missing from `queued` is given back.
    pub fn hand_over(mut self, queued: Vec<Queued>) {
        self.handed_over = true;
        let missing = self.count().saturating_sub(queued.len());
        if missing > 0 {
            self.intake.give_back(missing);
        }
        self.intake.take(queued);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.handed_over {
            self.intake.give_back(self.count());
        }
    }
}

/// A committed delivery held by its intake's claim, with what attempting it
/// needs, as publishing had it at hand: the delivery side starts it without
/// reading anything back.
#[derive(Clone, Debug)]
pub struct Queued {
    pub delivery: delivery::Model,
    /// The claim it was queued under.
    pub claim_token: i64,
    pub event_type: Arc<str>,
    pub body: Bytes,
    /// The publish's `traceparent`, for the attempt to continue.
    pub trace_context: Option<Arc<str>>,
    pub webhook: Arc<webhook::Model>,
    pub endpoint: Arc<endpoint::Model>,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use entity::delivery::DeliveryStatus;

    use super::*;
    use crate::ids::{DeliveryId, EndpointId, EventId, WebhookId};

    /// Takes every other delivery; remembers what it was given and given back.
    #[derive(Default)]
    struct Recording {
        taken: AtomicUsize,
        given_back: AtomicUsize,
    }

    impl Intake for Recording {
        fn reserve(&self, deliveries: &[delivery::Model]) -> Option<Reservation> {
            Some(Reservation {
                now: 1,
                lease_until: 2,
                token: 3,
                instance: InstanceId::new(),
                taken: (0..deliveries.len()).map(|n| n % 2 == 0).collect(),
            })
        }

        fn take(&self, queued: Vec<Queued>) {
            self.taken.fetch_add(queued.len(), SeqCst);
        }

        fn give_back(&self, count: usize) {
            self.given_back.fetch_add(count, SeqCst);
        }
    }

    fn deliveries(count: usize) -> Vec<delivery::Model> {
        (0..count)
            .map(|_| delivery::Model {
                id: DeliveryId::new(),
                tenant_id: "acme".into(),
                event_id: EventId::new(),
                webhook_id: WebhookId::new(),
                endpoint_id: EndpointId::new(),
                status: DeliveryStatus::Pending,
                attempt_count: 0,
                next_attempt_at: Some(1),
                last_attempt_at: None,
                last_response_status: None,
                created_at: 1,
                updated_at: 1,
                recovery_job_id: None,
                ordering_key: None,
                ordering_seq: 0,
            })
            .collect()
    }

    #[test]
    fn a_reservation_dropped_before_its_commit_gives_its_room_back() {
        let recording = Arc::new(Recording::default());
        let intake: Arc<dyn Intake> = recording.clone();
        let held = Held::reserve(&intake, &deliveries(5)).expect("room");
        assert_eq!(held.count(), 3);
        drop(held);
        assert_eq!(recording.given_back.load(SeqCst), 3);
        assert_eq!(recording.taken.load(SeqCst), 0);
    }

    #[test]
    fn room_of_reserved_deliveries_missing_at_the_hand_over_is_given_back() {
        let recording = Arc::new(Recording::default());
        let intake: Arc<dyn Intake> = recording.clone();
        let held = Held::reserve(&intake, &deliveries(4)).expect("room");
        assert_eq!(held.count(), 2);
        held.hand_over(Vec::new());
        assert_eq!(
            recording.given_back.load(SeqCst),
            2,
            "once, not again on drop"
        );
    }

    #[test]
    fn nothing_is_reserved_for_no_deliveries() {
        let intake: Arc<dyn Intake> = Arc::new(Recording::default());
        assert!(Held::reserve(&intake, &[]).is_none());
    }
}
