//! What a batch of attempts tells about the endpoints they went to (their
//! failure streaks, and disabling them: `410 Gone` at once, or every
//! attempt failing for the configured period; see
//! `domain::endpoint_health`), and each webhook's `lastSentAt`.

use std::{collections::HashMap, time::Duration};

use entity::{delivery_attempt::AttemptOutcome, webhook};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};

use super::recorder::AttemptRecord;
use crate::{
    domain::endpoint_health::{self, Streak},
    ids::{EndpointId, WebhookId},
};

/// Each endpoint's health and each webhook's `lastSentAt`, from a batch of
/// attempts.
pub(super) async fn update(
    txn: &DatabaseTransaction,
    attempts: &[&AttemptRecord],
    disable_after: Duration,
    now: i64,
) -> Result<(), DbErr> {
    type Summary<'a> = (i64, bool, Option<&'a str>);
    let mut by_endpoint: HashMap<(&WebhookId, &EndpointId), Vec<Summary<'_>>> = HashMap::new();
    let mut sent: HashMap<&WebhookId, i64> = HashMap::new();
    for record in attempts {
        let live = &record.live;
        by_endpoint
            .entry((&live.webhook_id, &live.endpoint_id))
            .or_default()
            .push((
                live.attempt.started_at,
                live.attempt.outcome == AttemptOutcome::Succeeded,
                record.disable_endpoint.as_deref(),
            ));
        let at = sent
            .entry(&live.webhook_id)
            .or_insert(live.attempt.started_at);
        *at = Ord::max(*at, live.attempt.started_at);
    }
    for (webhook_id, sent_at) in sent {
        mark_sent(txn, webhook_id, sent_at).await?;
    }
    for ((webhook_id, endpoint_id), summaries) in by_endpoint {
        let streak = Streak::of(summaries);
        endpoint_health::record_streak(txn, endpoint_id, &streak).await?;
        if let Some(reason) = &streak.gone {
            endpoint_health::disable(txn, webhook_id, endpoint_id, reason, now, None).await?;
        } else if streak.failing() {
            let cutoff = now - disable_after.as_millis() as i64;
            let reason = format!(
                "every attempt failed for {}",
                humantime::format_duration(disable_after)
            );
            endpoint_health::disable(txn, webhook_id, endpoint_id, &reason, now, Some(cutoff))
                .await?;
        }
    }
    Ok(())
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
