//! Latency histograms and the lost / duplicate count of a run.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::receiver::{Arrival, EventKey};

/// Longest latency recorded exactly (1 hour); longer ones count as 1 hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// Latencies in microseconds.
#[derive(Clone)]
pub struct Latencies(Histogram<u64>);

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    /// 3 significant digits: 0.1 % precision.
    pub fn precise() -> Self {
        Self::with_digits(3)
    }

    /// 2 significant digits (1 %), a tenth of the memory: one per subscriber.
    pub fn compact() -> Self {
        Self::with_digits(2)
    }

    fn with_digits(digits: u8) -> Self {
        Self(Histogram::new_with_bounds(1, MAX_MICROS, digits).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_micros(micros);
    }

    pub fn record_micros(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn add(&mut self, other: &Self) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn summary(&self) -> Summary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if self.0.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.0.len(),
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            max_ms: ms(self.0.max()),
        }
    }
}

/// Did every (event, endpoint) pair arrive exactly once?
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Integrity {
    /// Events × endpoints that should have arrived.
    pub expected: u64,
    /// Distinct (event, endpoint) pairs that arrived.
    pub delivered: u64,
    /// Expected pairs that never arrived.
    pub lost: u64,
    /// Arrivals beyond the first of a pair.
    pub duplicates: u64,
    /// Arrivals of events the bench did not publish in this run.
    pub unexpected: u64,
}

impl Integrity {
    pub fn check(events: &[EventKey], endpoints: &[u32], arrivals: &[Arrival]) -> Self {
        let wanted_events: HashSet<EventKey> = events.iter().copied().collect();
        let wanted_endpoints: HashSet<u32> = endpoints.iter().copied().collect();
        let mut seen: HashSet<(EventKey, u32)> = HashSet::with_capacity(arrivals.len());
        let mut result = Self {
            expected: (wanted_events.len() * wanted_endpoints.len()) as u64,
            ..Self::default()
        };
        for arrival in arrivals {
            if !seen.insert((arrival.event, arrival.endpoint)) {
                result.duplicates += 1;
            } else if wanted_events.contains(&arrival.event)
                && wanted_endpoints.contains(&arrival.endpoint)
            {
                result.delivered += 1;
            } else {
                result.unexpected += 1;
            }
        }
        result.lost = result.expected.saturating_sub(result.delivered);
        result
    }

    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0
    }
}

/// When each event first arrived (at any endpoint).
pub fn first_arrivals(arrivals: &[Arrival]) -> HashMap<EventKey, Instant> {
    let mut first: HashMap<EventKey, Instant> = HashMap::with_capacity(arrivals.len());
    for arrival in arrivals {
        first
            .entry(arrival.event)
            .and_modify(|at| *at = (*at).min(arrival.at))
            .or_insert(arrival.at);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(event: EventKey, endpoint: u32) -> Arrival {
        Arrival {
            at: Instant::now(),
            event,
            endpoint,
        }
    }

    #[test]
    fn integrity_counts_lost_duplicates_and_strangers() {
        let arrivals = [
            arrival(1, 0),
            arrival(1, 1),
            arrival(2, 0),
            arrival(2, 0),
            arrival(9, 0),
        ];
        let integrity = Integrity::check(&[1, 2, 3], &[0, 1], &arrivals);
        assert_eq!(integrity.expected, 6);
        assert_eq!(integrity.delivered, 3);
        assert_eq!(integrity.lost, 3);
        assert_eq!(integrity.duplicates, 1);
        assert_eq!(integrity.unexpected, 1);
        assert!(!integrity.clean());
    }

    #[test]
    fn summary_is_in_milliseconds() {
        let mut latencies = Latencies::precise();
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 100);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
    }
}
