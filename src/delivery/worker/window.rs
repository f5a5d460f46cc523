//! How many requests an endpoint may have in flight, learnt from how it
//! answers.
//!
//! Every request in flight holds one of the worker's `concurrency` slots
//! until it ends, and requests are never cut short. If each endpoint could
//! start `endpoint_concurrency` requests at once, a handful of endpoints
//! that accept connections and never answer (16 with the defaults) would
//! hold every slot until their timeouts, and every other tenant's
//! deliveries would wait behind them. So an endpoint earns its concurrency,
//! as a TCP sender earns its window: it starts at [`INITIAL`] requests in
//! flight, each answer (any status) lets it have one more, up to
//! `endpoint_concurrency` (a healthy endpoint doubles its window every
//! round trip, so reaches it within a few milliseconds), and a request
//! that ended without an answer within its timeout, or after
//! [`SLOW_FAILURE`] or more (a connection that hung), halves it, down to
//! one. A hung endpoint then holds two slots, then one, instead of
//! `endpoint_concurrency`. What an endpoint learnt is forgotten after
//! [`FORGET_AFTER`] without a request.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use entity::delivery_attempt::AttemptErrorKind;

use crate::{delivery::recorder::Record, ids::EndpointId};

/// Requests in flight an endpoint starts with.
pub(super) const INITIAL: usize = 2;
/// A failure without an answer that took this long halves the window.
const SLOW_FAILURE: Duration = Duration::from_secs(1);
/// An endpoint's window is forgotten after this long without a request
/// ending.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// What an ended request says about its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// It answered (any status): one more request may be in flight.
    Answered,
    /// It ended without an answer within its timeout, or after a long
    /// wait: half as many.
    Hung,
    /// Nothing learnt: it failed fast, or was not attempted.
    Nothing,
}

impl Answer {
    pub(super) fn of(record: &Record) -> Self {
        let Record::Attempt(record) = record else {
            return Self::Nothing;
        };
        let attempt = &record.live.attempt;
        let slow = i64::from(attempt.duration_ms) >= SLOW_FAILURE.as_millis() as i64;
        if attempt.response_status.is_some() {
            Self::Answered
        } else if slow || attempt.error_kind == Some(AttemptErrorKind::Timeout) {
            Self::Hung
        } else {
            Self::Nothing
        }
    }
}

/// The windows of the endpoints that had requests lately.
#[derive(Default)]
pub(super) struct Windows {
    /// Window and when a request to the endpoint last ended.
    learnt: HashMap<EndpointId, (usize, Instant)>,
    /// When forgotten windows were last swept.
    swept: Option<Instant>,
}

impl Windows {
    /// How many requests `endpoint` may have in flight, at most `cap`.
    pub(super) fn size(&self, endpoint: &EndpointId, cap: usize) -> usize {
        let size = self.learnt.get(endpoint).map_or(INITIAL, |(size, _)| *size);
        size.min(cap).max(1)
    }

    /// A request to `endpoint` ended with `answer`; `max` is the most its
    /// window may grow to.
    pub(super) fn learn(
        &mut self,
        endpoint: &EndpointId,
        answer: Answer,
        max: usize,
        now: Instant,
    ) {
        // Looked up before it is made: no key copied per request.
        let (size, touched) = match self.learnt.get_mut(endpoint) {
            Some(learnt) => learnt,
            None => self
                .learnt
                .entry(endpoint.clone())
                .or_insert((INITIAL, now)),
        };
        *size = match answer {
            Answer::Answered => (*size + 1).min(max.max(1)),
            Answer::Hung => (*size / 2).max(1),
            Answer::Nothing => *size,
        };
        *touched = now;
        self.sweep(now);
    }

    /// Forgets the windows of endpoints without a request for a while
    /// (looked over at most once a [`FORGET_AFTER`]).
    fn sweep(&mut self, now: Instant) {
        match self.swept {
            Some(swept) if now.duration_since(swept) < FORGET_AFTER => {}
            _ => {
                self.learnt
                    .retain(|_, (_, touched)| now.duration_since(*touched) < FORGET_AFTER);
                self.swept = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_earns_its_window_by_answering_and_loses_half_by_hanging() {
        let start = Instant::now();
        let endpoint = EndpointId::new();
        let mut windows = Windows::default();
        assert_eq!(windows.size(&endpoint, 32), INITIAL);
        assert_eq!(windows.size(&endpoint, 1), 1, "never above the cap");
        for _ in 0..100 {
            windows.learn(&endpoint, Answer::Answered, 32, start);
        }
        assert_eq!(windows.size(&endpoint, 32), 32, "grows up to the most");
        windows.learn(&endpoint, Answer::Hung, 32, start);
        assert_eq!(windows.size(&endpoint, 32), 16);
        windows.learn(&endpoint, Answer::Nothing, 32, start);
        assert_eq!(
            windows.size(&endpoint, 32),
            16,
            "a fast failure says nothing"
        );
        for _ in 0..10 {
            windows.learn(&endpoint, Answer::Hung, 32, start);
        }
        assert_eq!(windows.size(&endpoint, 32), 1, "never below one");
        windows.learn(&endpoint, Answer::Answered, 32, start);
        assert_eq!(windows.size(&endpoint, 32), 2);

        // Another endpoint's request, a while later, sweeps it away.
        let later = start + FORGET_AFTER + Duration::from_secs(1);
        windows.learn(&EndpointId::new(), Answer::Answered, 32, later);
        assert_eq!(windows.size(&endpoint, 32), INITIAL, "forgotten");
    }
}
