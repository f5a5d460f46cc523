//! What the worker hands the recorder: a finished attempt, or a claimed
//! delivery given back or cancelled unattempted.

use entity::delivery::DeliveryStatus;

use crate::{
    domain::{facts::LiveAttempt, queue::Sequence},
    ids::DeliveryId,
};

/// One finished attempt, with what it decided.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// The attempt as live subscribers see it.
    pub live: LiveAttempt,
    pub claim_token: i64,
    /// The delivery's status after the attempt.
    pub delivery_status: DeliveryStatus,
    /// Why the endpoint must be disabled, if it must (`410 Gone`).
    pub disable_endpoint: Option<String>,
    /// Its ordered sequence, if it has one: settled, it lets the next go.
    pub sequence: Option<Sequence>,
}

impl Record {
    /// The ordered sequence whose next delivery this record may make
    /// first: its delivery's, when it settles it or cancels it.
    pub(super) fn frees(&self) -> Option<&Sequence> {
        match self {
            Record::Attempt(a) if !a.delivery_status.is_open() => a.sequence.as_ref(),
            Record::Cancel { sequence, .. } => sequence.as_ref(),
            _ => None,
        }
    }

    pub(super) fn is_ordered(&self) -> bool {
        match self {
            Record::Attempt(a) => a.sequence.is_some(),
            Record::Cancel { sequence, .. } => sequence.is_some(),
            Record::Release { .. } => false,
        }
    }
}

#[derive(Debug)]
pub enum Record {
    Attempt(Box<AttemptRecord>),
    /// Not attempted after all: due again now (shutdown, or waited too long).
    Release {
        delivery_id: DeliveryId,
        claim_token: i64,
    },
    /// Not attempted because the webhook is no longer active.
    Cancel {
        delivery_id: DeliveryId,
        claim_token: i64,
        /// Its ordered sequence, whose next delivery is then first.
        sequence: Option<Sequence>,
    },
}
