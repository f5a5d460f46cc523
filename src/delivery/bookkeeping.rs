//! A webhook's bookkeeping after its attempts: `lastSentAt`, the failure
//! streak, and disabling (410 Gone at once, or every attempt failing for
//! the configured period).

use std::{collections::HashMap, time::Duration};

use entity::{
    delivery_attempt::AttemptOutcome,
    webhook::{self, WebhookStatus},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};

use super::recorder::AttemptRecord;
use crate::{domain::tenant_config::bump_for_webhook, ids::WebhookId};

/// `lastSentAt`, the failure streak, and disabling: per webhook, from the
/// latest attempt in the batch.
pub(super) async fn update_webhooks(
    txn: &DatabaseTransaction,
    attempts: &[&AttemptRecord],
    disable_after: Duration,
    now: i64,
) -> Result<(), DbErr> {
    let mut latest: HashMap<&WebhookId, &AttemptRecord> = HashMap::new();
    let mut gone: HashMap<&WebhookId, &str> = HashMap::new();
    for record in attempts {
        let entry = latest.entry(&record.live.webhook_id).or_insert(record);
        if record.live.attempt.started_at >= entry.live.attempt.started_at {
            *entry = record;
        }
        if let Some(reason) = &record.disable_webhook {
            gone.insert(&record.live.webhook_id, reason);
        }
    }
    for (webhook_id, record) in latest {
        let sent_at = record.live.attempt.started_at;
        let last_sent = Expr::case(
            Expr::col(webhook::Column::LastSentAt)
                .is_null()
                .or(Expr::col(webhook::Column::LastSentAt).lt(sent_at)),
            sent_at,
        )
        .finally(Expr::col(webhook::Column::LastSentAt));
        let streak = if record.live.attempt.outcome == AttemptOutcome::Succeeded {
            Expr::value(Option::<i64>::None)
        } else {
            Expr::col(webhook::Column::FailingSince).if_null(sent_at)
        };
        webhook::Entity::update_many()
            .col_expr(webhook::Column::LastSentAt, last_sent.into())
            .col_expr(webhook::Column::FailingSince, streak)
            .filter(webhook::Column::Id.eq(webhook_id.as_str()))
            .exec(txn)
            .await?;
        if record.live.attempt.outcome == AttemptOutcome::Failed {
            let cutoff = now - disable_after.as_millis() as i64;
            let reason = format!(
                "every attempt failed for {}",
                humantime::format_duration(disable_after)
            );
            disable(txn, webhook_id, &reason, now, Some(cutoff)).await?;
        }
    }
    for (webhook_id, reason) in gone {
        disable(txn, webhook_id, reason, now, None).await?;
    }
    Ok(())
}

/// Disables an active webhook; with `failing_before`, only if its failure
/// streak started at or before that time.
async fn disable<C: ConnectionTrait>(
    db: &C,
    webhook_id: &WebhookId,
    reason: &str,
    now: i64,
    failing_before: Option<i64>,
) -> Result<(), DbErr> {
    let mut update = webhook::Entity::update_many()
        .col_expr(
            webhook::Column::Status,
            Expr::value(WebhookStatus::Disabled),
        )
        .col_expr(
            webhook::Column::DisabledReason,
            Expr::value(Some(reason.to_owned())),
        )
        .col_expr(webhook::Column::UpdatedAt, Expr::value(now))
        .filter(webhook::Column::Id.eq(webhook_id.as_str()))
        .filter(webhook::Column::Status.eq(WebhookStatus::Active));
    if let Some(cutoff) = failing_before {
        update = update.filter(webhook::Column::FailingSince.lte(cutoff));
    }
    let result = update.exec(db).await?;
    if result.rows_affected > 0 {
        bump_for_webhook(db, webhook_id).await?;
        tracing::warn!(%webhook_id, reason, "webhook disabled");
    }
    Ok(())
}
