//! A webhook's retry policy and its bounds. The schedule it produces lives in
//! `delivery::backoff`.

use std::time::Duration;

use crate::error::AppError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait after the first failure; each later wait doubles, up to `max_interval`.
    pub initial_interval: Duration,
    pub max_interval: Duration,
}

impl RetryPolicy {
    /// 5 s doubling to a 10 h cap, 16 attempts: about 31 hours of retries,
    /// in line with Svix (~28 h) and short of Stripe (3 days).
    pub const DEFAULT: Self = Self {
        max_attempts: 16,
        initial_interval: Duration::from_secs(5),
        max_interval: Duration::from_secs(10 * 3600),
    };

    pub const MAX_ATTEMPTS: u32 = 50;
    pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
    pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Checks values given in milliseconds, as the API takes them.
    pub fn from_millis(max_attempts: i64, initial_ms: i64, max_ms: i64) -> Result<Self, AppError> {
        let field = |name: &str| format!("retryPolicy.{name}");
        if !(1..=i64::from(Self::MAX_ATTEMPTS)).contains(&max_attempts) {
            return Err(AppError::bad_input(
                field("maxAttempts"),
                format!("must be between 1 and {}", Self::MAX_ATTEMPTS),
            ));
        }
        let bounds = Self::MIN_INTERVAL.as_millis() as i64..=Self::MAX_INTERVAL.as_millis() as i64;
        for (name, value) in [("initialIntervalMs", initial_ms), ("maxIntervalMs", max_ms)] {
            if !bounds.contains(&value) {
                return Err(AppError::bad_input(
                    field(name),
                    format!("must be between {} and {}", bounds.start(), bounds.end()),
                ));
            }
        }
        if max_ms < initial_ms {
            return Err(AppError::bad_input(
                field("maxIntervalMs"),
                "must not be less than initialIntervalMs",
            ));
        }
        Ok(Self {
            max_attempts: max_attempts as u32,
            initial_interval: Duration::from_millis(initial_ms as u64),
            max_interval: Duration::from_millis(max_ms as u64),
        })
    }
}

/// The longest per-webhook timeout an admin may set. A rule of the domain
/// that the configuration must respect: the claim lease has to outlast it.
pub const MAX_ENDPOINT_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-webhook request timeout bounds, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: i32 = 15_000;
pub const MIN_TIMEOUT_MS: i32 = 100;
pub const MAX_TIMEOUT_MS: i32 = MAX_ENDPOINT_TIMEOUT.as_millis() as i32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy_bounds_are_enforced() {
        assert!(RetryPolicy::from_millis(5, 100, 1_000).is_ok());
        assert!(RetryPolicy::from_millis(0, 100, 1_000).is_err());
        assert!(RetryPolicy::from_millis(51, 100, 1_000).is_err());
        assert!(RetryPolicy::from_millis(5, 1, 1_000).is_err());
        let err = RetryPolicy::from_millis(5, 2_000, 1_000).expect_err("max < initial");
        assert!(err.to_string().starts_with("retryPolicy.maxIntervalMs"));
    }
}
