//! One attempt: the signed request, what its result means, and its log
//! line.

use std::time::{Duration, Instant};

use entity::delivery_attempt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sea_orm::ActiveEnum;

use super::{
    client::{self, DeliveryClient, Request, SendError},
    job::Job,
    outcome::{self, Rules},
    recorder::AttemptRecord,
    signer::signature_header,
};
use crate::{
    domain::{facts::LiveAttempt, payload},
    ids::{AttemptId, InstanceId},
    telemetry,
    time::now_ms,
};

/// Makes one signed request and decides what it means.
pub async fn attempt(
    client: &DeliveryClient,
    job: &Job,
    retry_after_cap: Duration,
    instance: &InstanceId,
) -> AttemptRecord {
    let started_at = now_ms();
    let clock = Instant::now();
    let timestamp = started_at / 1000;
    // Rendered first: a request that cannot be made fails here, unsent.
    let outgoing = payload::render(&job.webhook.shape, &job.endpoint.address, &job.body);
    let result = match &outgoing {
        Ok(outgoing) => {
            let headers = signed_headers(job, outgoing, timestamp);
            client
                .send(Request {
                    method: outgoing.method.http(),
                    url: &outgoing.url,
                    content_type: outgoing.content_type,
                    headers,
                    body: outgoing.body.clone(),
                    timeout: job.webhook.timeout,
                })
                .await
        }
        Err(reason) => Err(SendError::Render(reason.clone())),
    };
    let duration_ms = clock.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let rules = Rules {
        policy: job.webhook.policy,
        retry_after_cap,
    };
    let decision = outcome::decide(&result, job.attempt, &rules, now_ms(), rand::random());
    log_attempt(job, &result, &decision, duration_ms);
    let response = result.as_ref().ok();
    AttemptRecord {
        live: LiveAttempt {
            attempt: delivery_attempt::Model {
                id: AttemptId::new(),
                tenant_id: job.tenant_id.clone(),
                delivery_id: job.delivery_id.clone(),
                attempt_number: job.attempt as i32,
                endpoint_url: outgoing
                    .as_ref()
                    .map_or(&job.endpoint.url, |o| &o.url)
                    .to_string(),
                outcome: decision.outcome,
                started_at,
                duration_ms,
                response_status: response.map(|r| i32::from(r.status)),
                response_body: response.map(|r| r.body.clone()).filter(|b| !b.is_empty()),
                error_kind: decision.error_kind,
                error_message: decision.error_message,
                next_attempt_at: decision.next_attempt_at,
                instance_id: Some(instance.clone()),
                endpoint_id: Some(job.endpoint.id.clone()),
            },
            event_id: job.event_id.clone(),
            event_type: job.event_type.to_string(),
            webhook_id: job.webhook.id.clone(),
            endpoint_id: job.endpoint.id.clone(),
        },
        claim_token: job.claim_token,
        delivery_status: decision.status,
        disable_endpoint: decision.disable_endpoint,
        sequence: job.sequence(),
    }
}

/// The endpoint's headers, the Standard Webhooks headers signing
/// `outgoing`, the attempt number and the trace context.
fn signed_headers(job: &Job, outgoing: &payload::Outgoing, timestamp: i64) -> HeaderMap {
    let mut headers = job.endpoint.headers.clone();
    let signature = signature_header(
        &job.webhook.keys,
        job.event_id.as_str(),
        timestamp,
        &outgoing.signed,
    );
    for (name, value) in [
        ("webhook-id", job.event_id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
        (super::ATTEMPT_HEADER, job.attempt.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    // The receiver's trace continues from this attempt.
    let trace = telemetry::traceparent_of(&tracing::Span::current(), job.trace_context.as_deref());
    if let Some(value) = trace.and_then(|t| HeaderValue::from_str(&t).ok()) {
        headers.insert(HeaderName::from_static(telemetry::TRACEPARENT), value);
    }
    headers
}

/// The span naming an attempt: its delivery, webhook, event type and
/// number. At WARN, so that a failed attempt's WARN line carries it at every
/// log level.
pub(super) fn attempt_span(job: &Job) -> tracing::Span {
    tracing::warn_span!(
        "attempt",
        delivery_id = %job.delivery_id,
        webhook_id = %job.webhook.id,
        event_type = %job.event_type,
        attempt = job.attempt,
    )
}

/// One line per attempt: DEBUG when it succeeded, WARN when it failed (and
/// when the delivery gives up), so that an operator sees failures at the
/// default level. The `attempt` span around it names the delivery, webhook,
/// event type and attempt number.
fn log_attempt(
    job: &Job,
    result: &Result<client::Response, client::SendError>,
    decision: &outcome::Decision,
    duration_ms: i32,
) {
    if decision.error_kind.is_none() && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    // Inside the attempt's span: the exported one, or one made for the line.
    let current = tracing::Span::current();
    let span = if current.is_none() {
        attempt_span(job)
    } else {
        current
    };
    let _entered = span.enter();
    let endpoint = job.endpoint.url.host_str().unwrap_or("?");
    let status = result.as_ref().ok().map(|response| response.status);
    // Logged as stored and served, so a log line greps like the API's value.
    let Some(kind) = decision.error_kind.map(|kind| kind.to_value()) else {
        tracing::debug!(endpoint, status, duration_ms, "delivered");
        return;
    };
    let error = decision.error_message.as_deref().unwrap_or("");
    match decision.next_attempt_at {
        Some(next) => {
            // Whole seconds read better; below one, milliseconds.
            let next_in = Duration::from_millis(next.saturating_sub(now_ms()).max(0) as u64);
            let next_in = if next_in.as_secs() > 0 {
                Duration::from_secs(next_in.as_secs())
            } else {
                next_in
            };
            tracing::warn!(
                endpoint,
                kind,
                status,
                duration_ms,
                next_attempt_in = %humantime::format_duration(next_in),
                "attempt failed, will retry: {error}"
            );
        }
        None => tracing::warn!(
            endpoint,
            kind,
            status,
            duration_ms,
            attempts = job.attempt,
            "delivery gave up: {error}"
        ),
    }
}
