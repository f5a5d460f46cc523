//! What a batch of attempts tells about the endpoints they went to (their
//! failure streaks, and disabling them: `410 Gone` at once, or every
//! attempt failing for the configured period; see
//! `domain::endpoint_health`), each webhook's `lastSentAt`, and the
//! operational events those changes raise (`domain::operational`), in the
//! batch's transaction.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use entity::{
    delivery::DeliveryStatus,
    delivery_attempt::{AttemptErrorKind, AttemptOutcome},
    endpoint, event, webhook,
};
use sea_orm::{
    ActiveEnum, ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};
use serde_json::json;

use super::recorder::AttemptRecord;
use crate::{
    domain::{
        endpoint_health::{self, Streak},
        operational::{self, EndpointRef, Notice},
    },
    ids::{EndpointId, WebhookId},
};

/// When an endpoint is disabled or reported failing.
#[derive(Clone, Copy, Debug)]
pub struct HealthRules {
    /// Every attempt failing for this long disables an endpoint.
    pub disable_after: Duration,
    /// This many failures in a row report it failing.
    pub failing_after: u32,
}

/// Each endpoint's health and each webhook's `lastSentAt`, from a batch of
/// attempts; returns the operational events published, with how many
/// deliveries each queued.
pub(super) async fn update(
    txn: &DatabaseTransaction,
    attempts: &[&AttemptRecord],
    rules: HealthRules,
    now: i64,
) -> Result<Vec<(event::Model, u64)>, DbErr> {
    type Summary<'a> = (i64, bool, Option<&'a str>, bool);
    // By endpoint id, so that concurrent recorders lock rows in one order.
    let mut by_endpoint: BTreeMap<(&EndpointId, &WebhookId), Vec<Summary<'_>>> = BTreeMap::new();
    let mut sent: BTreeMap<&WebhookId, i64> = BTreeMap::new();
    // A request that could not be rendered was never sent: it says nothing
    // about the endpoint's health.
    for record in attempts
        .iter()
        .filter(|r| r.live.attempt.error_kind != Some(AttemptErrorKind::Render))
    {
        let live = &record.live;
        by_endpoint
            .entry((&live.endpoint_id, &live.webhook_id))
            .or_default()
            .push((
                live.attempt.started_at,
                live.attempt.outcome == AttemptOutcome::Succeeded,
                record.disable_endpoint.as_deref(),
                operational::is_operational(&live.event_type),
            ));
        let at = sent
            .entry(&live.webhook_id)
            .or_insert(live.attempt.started_at);
        *at = Ord::max(*at, live.attempt.started_at);
    }
    for (webhook_id, sent_at) in sent {
        mark_sent(txn, webhook_id, sent_at).await?;
    }
    let before: HashMap<EndpointId, endpoint::Model> = endpoint::Entity::find()
        .filter(endpoint::Column::Id.is_in(by_endpoint.keys().map(|(id, _)| id.as_str())))
        .all(txn)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let mut notices = Vec::new();
    for ((endpoint_id, webhook_id), summaries) in by_endpoint {
        // An operational event's own deliveries never raise another.
        let quiet = summaries.iter().all(|s| s.3);
        let streak = Streak::of(
            summaries
                .into_iter()
                .map(|(at, ok, gone, _)| (at, ok, gone))
                .collect(),
        );
        endpoint_health::record_streak(txn, endpoint_id, &streak).await?;
        let disabled = match disabling(&streak, rules, now) {
            Some((reason, cutoff)) => {
                endpoint_health::disable(txn, webhook_id, endpoint_id, &reason, now, cutoff)
                    .await?
                    .then_some(reason)
            }
            None => None,
        };
        if let (false, Some(row)) = (quiet, before.get(endpoint_id)) {
            notices.extend(endpoint_notices(
                row,
                &streak,
                disabled,
                rules.failing_after,
            ));
        }
    }
    notices.extend(attempts.iter().filter_map(|r| exhausted(r)));
    let mut published = Vec::with_capacity(notices.len());
    for notice in &notices {
        let (event, deliveries) = operational::publish(txn, notice, now).await?;
        published.push((event, deliveries.len() as u64));
    }
    Ok(published)
}

/// Why and under which condition the streak disables its endpoint, if it
/// may: at once after `410 Gone`, or when failing since before the cutoff.
fn disabling(streak: &Streak, rules: HealthRules, now: i64) -> Option<(String, Option<i64>)> {
    if let Some(reason) = &streak.gone {
        return Some((reason.clone(), None));
    }
    streak.failing().then(|| {
        let reason = format!(
            "every attempt failed for {}",
            humantime::format_duration(rules.disable_after)
        );
        (reason, Some(now - rules.disable_after.as_millis() as i64))
    })
}

/// The endpoint notices a batch raises, from its row before the batch.
fn endpoint_notices(
    before: &endpoint::Model,
    streak: &Streak,
    disabled: Option<String>,
    failing_after: u32,
) -> Vec<Notice> {
    let about = EndpointRef {
        tenant: &before.tenant_id,
        webhook_id: &before.webhook_id,
        endpoint_id: &before.id,
        url: &before.url,
    };
    let threshold = failing_after as i32;
    // Failures in a row before this batch's trailing run, and after it.
    let prior = if streak.last_success.is_some() {
        0
    } else {
        before.consecutive_failures
    };
    let failures = prior + streak.trailing_failures;
    let mut notices = Vec::new();
    if streak.last_success.is_some() && before.consecutive_failures >= threshold {
        notices.push(Notice::endpoint(
            operational::ENDPOINT_RECOVERED,
            &about,
            json!({ "failedAttempts": before.consecutive_failures }),
        ));
    }
    if streak.failing() && prior < threshold && failures >= threshold {
        let since = before.failing_since.filter(|_| prior > 0);
        notices.push(Notice::endpoint(
            operational::ENDPOINT_FAILING,
            &about,
            json!({
                "consecutiveFailures": failures,
                "failingSince": since.or(streak.trailing_since).map(crate::time::to_datetime),
            }),
        ));
    }
    if let Some(reason) = disabled {
        notices.push(Notice::endpoint(
            operational::ENDPOINT_DISABLED,
            &about,
            json!({ "reason": reason }),
        ));
    }
    notices
}

/// `hookline.delivery.exhausted` for an attempt that failed its delivery
/// for good because its attempts ran out (not after `410 Gone`).
fn exhausted(record: &AttemptRecord) -> Option<Notice> {
    let live = &record.live;
    let a = &live.attempt;
    let ran_out = record.delivery_status == DeliveryStatus::Failed
        && record.disable_endpoint.is_none()
        && !operational::is_operational(&live.event_type);
    ran_out.then(|| {
        let about = EndpointRef {
            tenant: &a.tenant_id,
            webhook_id: &live.webhook_id,
            endpoint_id: &live.endpoint_id,
            url: &a.endpoint_url,
        };
        Notice::endpoint(
            operational::DELIVERY_EXHAUSTED,
            &about,
            json!({
                "deliveryId": a.delivery_id,
                "eventId": live.event_id,
                "eventType": live.event_type,
                "attempts": a.attempt_number,
                "lastResponseStatus": a.response_status,
                "errorKind": a.error_kind.map(|k| k.to_value()),
                "errorMessage": a.error_message,
            }),
        )
    })
}

async fn mark_sent(
    txn: &DatabaseTransaction,
    webhook_id: &WebhookId,
    at: i64,
) -> Result<(), DbErr> {
    let column = webhook::Column::LastSentAt;
    let last_sent = Expr::case(Expr::col(column).is_null().or(Expr::col(column).lt(at)), at)
        .finally(Expr::col(column));
    webhook::Entity::update_many()
        .col_expr(column, last_sent.into())
        .filter(webhook::Column::Id.eq(webhook_id.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}
