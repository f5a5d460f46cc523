//! Per-tenant publish rate limit: a token bucket (GCRA) per tenant on each
//! instance, refilled at the configured rate, holding two seconds' worth.

use std::{num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::error::AppError;

pub struct PublishLimit {
    /// `None` when the limit is off.
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl PublishLimit {
    /// `per_second` events per tenant; 0 turns the limit off. The burst is
    /// at least a full batch, so any valid batch can eventually pass.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = rate
                .saturating_mul(NonZeroU32::MIN.saturating_add(1))
                .max(NonZeroU32::new(super::publish::MAX_BATCH as u32).unwrap_or(NonZeroU32::MIN));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Takes `events` tokens from the tenant's bucket, or says when to retry.
    pub fn check(&self, tenant: &str, events: usize) -> Result<(), AppError> {
        let (Some(limiter), Some(n)) = (&self.limiter, NonZeroU32::new(events as u32)) else {
            return Ok(());
        };
        match limiter.check_key_n(&tenant.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(AppError::RateLimited {
                retry_after: not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_millis(1)),
            }),
            // More than the whole bucket: cannot pass at this rate.
            Err(_) => Err(AppError::RateLimited {
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// Drops the buckets of tenants that have been quiet (full buckets).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_over_its_rate_is_told_when_to_retry() {
        let limit = PublishLimit::new(1_000);
        assert!(limit.check("acme", 1_000).is_ok());
        assert!(
            limit.check("acme", 1_000).is_ok(),
            "burst holds two seconds' worth"
        );
        match limit.check("acme", 500) {
            Err(AppError::RateLimited { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected RATE_LIMITED, got {other:?}"),
        }
        assert!(
            limit.check("globex", 1_000).is_ok(),
            "tenants have their own buckets"
        );
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limit = PublishLimit::new(0);
        for _ in 0..100 {
            assert!(limit.check("acme", 1_000).is_ok());
        }
    }
}
