//! What an attempt's result means for its delivery and its webhook. Pure, so
//! every rule of "Delivery semantics" is tested without a network.

use std::time::Duration;

use entity::{
    delivery::DeliveryStatus,
    delivery_attempt::{AttemptErrorKind, AttemptOutcome},
};

use super::{
    backoff::{delay_after, honour_retry_after},
    client::{Response, SendError},
};
use crate::domain::retry::RetryPolicy;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub outcome: AttemptOutcome,
    /// The delivery's status after this attempt.
    pub status: DeliveryStatus,
    /// When the next attempt is due, if there is one (epoch ms).
    pub next_attempt_at: Option<i64>,
    pub error_kind: Option<AttemptErrorKind>,
    pub error_message: Option<String>,
    /// Set when the endpoint asked never to be called again (`410 Gone`).
    pub disable_endpoint: Option<String>,
}

pub struct Rules {
    pub policy: RetryPolicy,
    pub retry_after_cap: Duration,
}

/// Decides the fate of attempt number `attempt` (1-based), finished at `now`.
/// `unit` is a uniform random number in `[0, 1)` for the jitter.
pub fn decide(
    result: &Result<Response, SendError>,
    attempt: u32,
    rules: &Rules,
    now_ms: i64,
    unit: f64,
) -> Decision {
    let response = match result {
        Ok(response) if (200..300).contains(&response.status) => {
            return Decision {
                outcome: AttemptOutcome::Succeeded,
                status: DeliveryStatus::Succeeded,
                next_attempt_at: None,
                error_kind: None,
                error_message: None,
                disable_endpoint: None,
            };
        }
        Ok(response) => Some(response),
        Err(_) => None,
    };
    let (error_kind, error_message) = match (result, response) {
        (Err(err), _) => (err.kind(), err.to_string()),
        (Ok(_), Some(response)) => (
            AttemptErrorKind::Non2xx,
            format!("endpoint answered HTTP {}", response.status),
        ),
        (Ok(_), None) => unreachable!("a 2xx response returned above"),
    };
    let failed = |status, next_attempt_at, disable_endpoint| Decision {
        outcome: AttemptOutcome::Failed,
        status,
        next_attempt_at,
        error_kind: Some(error_kind),
        error_message: Some(error_message.clone()),
        disable_endpoint,
    };
    if response.is_some_and(|r| r.status == 410) {
        return failed(
            DeliveryStatus::Failed,
            None,
            Some("the endpoint answered 410 Gone".to_owned()),
        );
    }
    // The same event renders the same way on every retry: fail it now, and
    // let a fixed template be retried by hand.
    if attempt >= rules.policy.max_attempts || matches!(result, Err(SendError::Render(_))) {
        return failed(DeliveryStatus::Failed, None, None);
    }
    let mut wait = delay_after(&rules.policy, attempt, unit);
    if let Some(retry_after) = response
        .filter(|r| matches!(r.status, 429 | 503))
        .and_then(|r| r.retry_after)
    {
        wait = honour_retry_after(wait, retry_after, rules.retry_after_cap);
    }
    failed(
        DeliveryStatus::Retrying,
        Some(now_ms + wait.as_millis() as i64),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn rules(max_attempts: u32) -> Rules {
        Rules {
            policy: RetryPolicy {
                max_attempts,
                initial_interval: Duration::from_secs(10),
                max_interval: Duration::from_secs(3600),
            },
            retry_after_cap: Duration::from_secs(600),
        }
    }

    fn status(code: u16, retry_after: Option<u64>) -> Result<Response, SendError> {
        Ok(Response {
            status: code,
            body: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    #[test]
    fn any_2xx_succeeds() {
        for code in [200, 201, 202, 204, 299] {
            let decision = decide(&status(code, None), 1, &rules(3), NOW, 0.5);
            assert_eq!(decision.status, DeliveryStatus::Succeeded, "{code}");
            assert_eq!(decision.next_attempt_at, None);
        }
    }

    #[test]
    fn failures_are_retried_with_backoff_until_attempts_run_out() {
        let first = decide(&status(500, None), 1, &rules(3), NOW, 0.5);
        assert_eq!(first.status, DeliveryStatus::Retrying);
        assert_eq!(first.next_attempt_at, Some(NOW + 10_000));
        assert_eq!(first.error_kind, Some(AttemptErrorKind::Non2xx));
        let second = decide(&status(302, None), 2, &rules(3), NOW, 0.5);
        assert_eq!(
            second.next_attempt_at,
            Some(NOW + 20_000),
            "redirects are failures"
        );
        let last = decide(&status(500, None), 3, &rules(3), NOW, 0.5);
        assert_eq!(last.status, DeliveryStatus::Failed);
        assert_eq!(last.next_attempt_at, None);
    }

    #[test]
    fn transport_errors_carry_their_kind() {
        let timeout = decide(&Err(SendError::Timeout(200)), 1, &rules(3), NOW, 0.5);
        assert_eq!(timeout.error_kind, Some(AttemptErrorKind::Timeout));
        assert_eq!(timeout.status, DeliveryStatus::Retrying);
        let blocked = decide(
            &Err(SendError::BlockedAddress("x".into())),
            1,
            &rules(3),
            NOW,
            0.5,
        );
        assert_eq!(blocked.error_kind, Some(AttemptErrorKind::BlockedAddress));
    }

    #[test]
    fn a_request_that_cannot_be_rendered_fails_at_once() {
        let decision = decide(&Err(SendError::Render("x".into())), 1, &rules(5), NOW, 0.5);
        assert_eq!(decision.status, DeliveryStatus::Failed);
        assert_eq!(decision.error_kind, Some(AttemptErrorKind::Render));
        assert_eq!(decision.next_attempt_at, None);
        assert!(decision.disable_endpoint.is_none());
    }

    #[test]
    fn gone_fails_the_delivery_and_disables_the_webhook() {
        let decision = decide(&status(410, None), 1, &rules(5), NOW, 0.5);
        assert_eq!(decision.status, DeliveryStatus::Failed);
        assert!(decision.disable_endpoint.is_some());
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_only() {
        let throttled = decide(&status(429, Some(120)), 1, &rules(5), NOW, 0.5);
        assert_eq!(throttled.next_attempt_at, Some(NOW + 120_000));
        let unavailable = decide(&status(503, Some(100_000)), 1, &rules(5), NOW, 0.5);
        assert_eq!(unavailable.next_attempt_at, Some(NOW + 600_000), "capped");
        let other = decide(&status(500, Some(120)), 1, &rules(5), NOW, 0.5);
        assert_eq!(other.next_attempt_at, Some(NOW + 10_000), "ignored on 500");
    }
}
