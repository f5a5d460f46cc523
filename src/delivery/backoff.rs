//! When to try again: exponential backoff with jitter, and `Retry-After`.

use std::time::{Duration, SystemTime};

use crate::domain::retry::RetryPolicy;

/// Jitter spreads retries of many deliveries that failed together: each wait
/// is the exponential value times a factor in `[1 - JITTER, 1 + JITTER)`.
pub const JITTER: f64 = 0.2;

/// The wait after attempt number `failed_attempt` (1-based) failed:
/// `initial * 2^(n-1)`, capped at `max_interval`, then jittered by `unit`
/// (a uniform random number in `[0, 1)`), never beyond `max_interval`.
pub fn delay_after(policy: &RetryPolicy, failed_attempt: u32, unit: f64) -> Duration {
    let exponent = failed_attempt.saturating_sub(1).min(63) as i32;
    let max = policy.max_interval.as_secs_f64();
    let base = (policy.initial_interval.as_secs_f64() * 2f64.powi(exponent)).min(max);
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    Duration::from_secs_f64((base * factor).min(max))
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before the next attempt when the endpoint asked for one with
/// `Retry-After` (429 or 503): honoured up to `cap`, and never shorter than
/// the backoff would have been.
pub fn honour_retry_after(backoff: Duration, retry_after: Duration, cap: Duration) -> Duration {
    backoff.max(retry_after.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 10,
        initial_interval: Duration::from_secs(5),
        max_interval: Duration::from_secs(3600),
    };

    #[test]
    fn delays_double_from_the_initial_interval() {
        let middle = 0.5; // factor exactly 1.0
        assert_eq!(delay_after(&POLICY, 1, middle), Duration::from_secs(5));
        assert_eq!(delay_after(&POLICY, 2, middle), Duration::from_secs(10));
        assert_eq!(delay_after(&POLICY, 3, middle), Duration::from_secs(20));
        assert_eq!(delay_after(&POLICY, 6, middle), Duration::from_secs(160));
    }

    #[test]
    fn delays_are_capped_at_the_max_interval() {
        assert_eq!(delay_after(&POLICY, 20, 0.5), Duration::from_secs(3600));
        assert_eq!(delay_after(&POLICY, 20, 0.999), Duration::from_secs(3600));
        assert_eq!(
            delay_after(&POLICY, u32::MAX, 0.5),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for attempt in 1..8 {
            let exact = delay_after(&POLICY, attempt, 0.5);
            let low = delay_after(&POLICY, attempt, 0.0);
            let high = delay_after(&POLICY, attempt, 0.9999);
            assert_eq!(low, exact.mul_f64(0.8));
            assert!(high < exact.mul_f64(1.2) && high > exact.mul_f64(1.19));
        }
    }

    #[test]
    fn jittered_gaps_still_grow() {
        // The worst case: a high draw, then a low one.
        for attempt in 1..10 {
            assert!(delay_after(&POLICY, attempt + 1, 0.0) > delay_after(&POLICY, attempt, 0.9999));
        }
    }

    #[test]
    fn default_schedule_spans_more_than_a_day_even_with_unlucky_jitter() {
        let policy = RetryPolicy::DEFAULT;
        let shortest: Duration = (1..policy.max_attempts)
            .map(|n| delay_after(&policy, n, 0.0))
            .sum();
        assert!(shortest >= Duration::from_secs(24 * 3600), "{shortest:?}");
        let longest: Duration = (1..policy.max_attempts)
            .map(|n| delay_after(&policy, n, 0.9999))
            .sum();
        assert!(longest <= Duration::from_secs(3 * 24 * 3600), "{longest:?}");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn retry_after_is_capped_and_never_shortens_the_backoff() {
        let cap = Duration::from_secs(3600);
        let backoff = Duration::from_secs(10);
        assert_eq!(
            honour_retry_after(backoff, Duration::from_secs(60), cap),
            Duration::from_secs(60)
        );
        assert_eq!(
            honour_retry_after(backoff, Duration::from_secs(86_400), cap),
            cap
        );
        assert_eq!(
            honour_retry_after(backoff, Duration::from_secs(1), cap),
            backoff
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn retry_after_parsing_never_panics(text in "\\PC{0,60}") {
            let _ = parse_retry_after(&text, SystemTime::now());
        }

        #[test]
        fn retry_after_seconds_round_trip(seconds in 0u64..10_000_000) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            prop_assert_eq!(parse_retry_after(&seconds.to_string(), now), Some(Duration::from_secs(seconds)));
        }

        #[test]
        fn delays_stay_within_the_policy(
            attempt in 1u32..100,
            unit in 0.0f64..1.0,
            initial_ms in 10u64..100_000,
            extra_ms in 0u64..10_000_000,
        ) {
            let policy = RetryPolicy {
                max_attempts: 100,
                initial_interval: Duration::from_millis(initial_ms),
                max_interval: Duration::from_millis(initial_ms + extra_ms),
            };
            let delay = delay_after(&policy, attempt, unit);
            prop_assert!(delay <= policy.max_interval);
            prop_assert!(delay >= policy.initial_interval.mul_f64(1.0 - JITTER) - Duration::from_micros(1));
        }
    }
}
