//! Each endpoint's health, and the only code that writes it: its status
//! (`ACTIVE`, or `DISABLED` with a reason and a time), its failure streak,
//! its last success and failure. An endpoint is disabled alone, so one dead
//! URL beside a live one stops only its own deliveries; a webhook none of
//! whose endpoints is left active is disabled with its last one, and comes
//! back with the first one enabled again.
//!
//! Attempt statistics (counts, success rate, duration percentiles over the
//! last hour and day) are read from the attempts themselves, through the
//! `(endpoint_id, started_at)` index.

use entity::{
    delivery_attempt::{self, AttemptOutcome},
    endpoint::{self, EndpointStatus},
    webhook::{self, WebhookStatus},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};

use serde_json::json;

use super::{
    operational::{self, ENDPOINT_DISABLED, EndpointRef, Notice},
    tenant_config,
    webhooks::WebhookService,
};
use crate::{
    error::{AppError, AppResult},
    ids::{EndpointId, WebhookId},
    time::now_ms,
};

/// One endpoint's attempts in a batch, summed up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Streak {
    pub last_success: Option<i64>,
    pub last_failure: Option<i64>,
    /// Failures after the batch's last success (all of them if none).
    pub trailing_failures: i32,
    /// When the first of those trailing failures started.
    pub trailing_since: Option<i64>,
    /// Why the endpoint must be disabled at once (`410 Gone`), if it must.
    pub gone: Option<String>,
}

impl Streak {
    /// Sums up one endpoint's attempts, in any order: when each started,
    /// whether it succeeded, and why it asks to be disabled, if it does.
    pub fn of(mut attempts: Vec<(i64, bool, Option<&str>)>) -> Self {
        attempts.sort_by_key(|(at, ..)| *at);
        let mut streak = Self::default();
        for (at, succeeded, gone) in attempts {
            if succeeded {
                streak.last_success = Some(at);
                streak.trailing_failures = 0;
                streak.trailing_since = None;
            } else {
                streak.last_failure = Some(at);
                streak.trailing_failures += 1;
                streak.trailing_since.get_or_insert(at);
            }
            if let Some(reason) = gone {
                streak.gone = Some(reason.to_owned());
            }
        }
        streak
    }

    /// Whether the endpoint's latest attempt in the batch failed.
    pub fn failing(&self) -> bool {
        self.trailing_failures > 0
    }
}

/// The later of a column and `at`, when there is an `at`.
fn later(column: endpoint::Column, at: Option<i64>) -> Expr {
    match at {
        Some(at) => Expr::case(Expr::col(column).is_null().or(Expr::col(column).lt(at)), at)
            .finally(Expr::col(column))
            .into(),
        None => Expr::col(column),
    }
}

/// Adds a batch's attempts to an endpoint's streak and last times.
pub async fn record_streak<C: ConnectionTrait>(
    db: &C,
    endpoint_id: &EndpointId,
    streak: &Streak,
) -> Result<(), DbErr> {
    let update = endpoint::Entity::update_many()
        .col_expr(
            endpoint::Column::LastSuccessAt,
            later(endpoint::Column::LastSuccessAt, streak.last_success),
        )
        .col_expr(
            endpoint::Column::LastFailureAt,
            later(endpoint::Column::LastFailureAt, streak.last_failure),
        );
    let update = if streak.last_success.is_some() {
        // A success in the batch ends the streak; failures after it start
        // the next one.
        update
            .col_expr(
                endpoint::Column::ConsecutiveFailures,
                Expr::value(streak.trailing_failures),
            )
            .col_expr(
                endpoint::Column::FailingSince,
                Expr::value(streak.trailing_since),
            )
    } else if streak.failing() {
        update
            .col_expr(
                endpoint::Column::ConsecutiveFailures,
                Expr::col(endpoint::Column::ConsecutiveFailures).add(streak.trailing_failures),
            )
            .col_expr(
                endpoint::Column::FailingSince,
                Expr::col(endpoint::Column::FailingSince).if_null(streak.trailing_since),
            )
    } else {
        return Ok(());
    };
    update
        .filter(endpoint::Column::Id.eq(endpoint_id.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Disables an active endpoint; with `failing_before`, only if its failure
/// streak started at or before that time. When it did, a webhook left with
/// no active endpoint is disabled too, and every instance's caches learn it.
/// Whether it did.
pub async fn disable<C: ConnectionTrait>(
    db: &C,
    webhook_id: &WebhookId,
    endpoint_id: &EndpointId,
    reason: &str,
    now: i64,
    failing_before: Option<i64>,
) -> Result<bool, DbErr> {
    let mut update = endpoint::Entity::update_many()
        .col_expr(
            endpoint::Column::Status,
            Expr::value(EndpointStatus::Disabled),
        )
        .col_expr(
            endpoint::Column::DisabledReason,
            Expr::value(Some(reason.to_owned())),
        )
        .col_expr(endpoint::Column::DisabledAt, Expr::value(Some(now)))
        .filter(endpoint::Column::Id.eq(endpoint_id.as_str()))
        .filter(endpoint::Column::Status.eq(EndpointStatus::Active));
    if let Some(cutoff) = failing_before {
        update = update.filter(endpoint::Column::FailingSince.lte(cutoff));
    }
    if update.exec(db).await?.rows_affected == 0 {
        return Ok(false);
    }
    tracing::warn!(%endpoint_id, %webhook_id, reason, "endpoint disabled");
    disable_webhook_without_endpoints(db, webhook_id, reason, now).await?;
    tenant_config::bump_for_webhook(db, webhook_id).await?;
    Ok(true)
}

/// Disables an active webhook none of whose endpoints is left active.
async fn disable_webhook_without_endpoints<C: ConnectionTrait>(
    db: &C,
    webhook_id: &WebhookId,
    reason: &str,
    now: i64,
) -> Result<(), DbErr> {
    let active = endpoint::Entity::find()
        .filter(endpoint::Column::WebhookId.eq(webhook_id.as_str()))
        .filter(endpoint::Column::Status.eq(EndpointStatus::Active))
        .count(db)
        .await?;
    if active > 0 {
        return Ok(());
    }
    let result = webhook::Entity::update_many()
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
        .filter(webhook::Column::Status.eq(WebhookStatus::Active))
        .exec(db)
        .await?;
    if result.rows_affected > 0 {
        tracing::warn!(%webhook_id, reason, "webhook disabled: none of its endpoints is active");
    }
    Ok(())
}

/// Enables endpoints (all of a webhook's disabled ones when `only` is
/// `None`) with a fresh failure streak, and brings a disabled webhook back.
pub(super) async fn enable<C: ConnectionTrait>(
    db: &C,
    webhook_id: &WebhookId,
    only: Option<&EndpointId>,
    now: i64,
) -> Result<(), DbErr> {
    let mut update = endpoint::Entity::update_many()
        .col_expr(
            endpoint::Column::Status,
            Expr::value(EndpointStatus::Active),
        )
        .col_expr(
            endpoint::Column::DisabledReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            endpoint::Column::DisabledAt,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(
            endpoint::Column::FailingSince,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(endpoint::Column::ConsecutiveFailures, Expr::value(0))
        .filter(endpoint::Column::WebhookId.eq(webhook_id.as_str()))
        .filter(endpoint::Column::Status.eq(EndpointStatus::Disabled));
    if let Some(id) = only {
        update = update.filter(endpoint::Column::Id.eq(id.as_str()));
    }
    update.exec(db).await?;
    webhook::Entity::update_many()
        .col_expr(webhook::Column::Status, Expr::value(WebhookStatus::Active))
        .col_expr(
            webhook::Column::DisabledReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(webhook::Column::UpdatedAt, Expr::value(now))
        .filter(webhook::Column::Id.eq(webhook_id.as_str()))
        .filter(webhook::Column::Status.eq(WebhookStatus::Disabled))
        .exec(db)
        .await?;
    tenant_config::bump_for_webhook(db, webhook_id).await
}

/// An endpoint's attempts over a window ending now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptWindow {
    pub attempts: u64,
    pub succeeded: u64,
    /// Durations by nearest rank; `None` without attempts.
    pub duration_p50_ms: Option<i32>,
    pub duration_p95_ms: Option<i32>,
}

impl WebhookService {
    /// Enables an endpoint of the tenant's (an operator's), with a fresh
    /// failure streak; a webhook disabled for want of active endpoints is
    /// active again.
    pub async fn enable_endpoint(
        &self,
        tenant: &str,
        id: &EndpointId,
    ) -> AppResult<endpoint::Model> {
        let found = self.endpoint_in_tenant(tenant, id).await?;
        let txn = self.db.begin().await?;
        enable(&txn, &found.webhook_id, Some(id), now_ms()).await?;
        txn.commit().await?;
        self.endpoint_in_tenant(tenant, id).await
    }

    /// Disables an endpoint of the tenant's (an operator's): it receives
    /// nothing, and its open deliveries are cancelled when they come due,
    /// until it is enabled again. `hookline.endpoint.disabled` says so.
    pub async fn disable_endpoint(
        &self,
        tenant: &str,
        login: &str,
        id: &EndpointId,
        reason: Option<&str>,
    ) -> AppResult<endpoint::Model> {
        let reason = match super::validate::optional_text("reason", reason, 500)? {
            Some(reason) => reason,
            None => format!("disabled by {login}"),
        };
        let found = self.endpoint_in_tenant(tenant, id).await?;
        let now = now_ms();
        let txn = self.db.begin().await?;
        let mut published = None;
        if disable(&txn, &found.webhook_id, id, &reason, now, None).await? {
            let about = EndpointRef {
                tenant,
                webhook_id: &found.webhook_id,
                endpoint_id: id,
                url: &found.url,
            };
            let notice = Notice::endpoint(ENDPOINT_DISABLED, &about, json!({ "reason": reason }));
            published = Some(operational::publish(&txn, &notice, now).await?);
        }
        txn.commit().await?;
        if let Some((event, deliveries)) = published {
            // Live subscribers see it, and workers anywhere send it now.
            let count = deliveries.len() as u64;
            self.facts
                .published(std::slice::from_ref(&event), count, count);
        }
        self.endpoint_in_tenant(tenant, id).await
    }

    async fn endpoint_in_tenant(
        &self,
        tenant: &str,
        id: &EndpointId,
    ) -> AppResult<endpoint::Model> {
        endpoint::Entity::find_by_id(id.clone())
            .filter(endpoint::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound("endpoint"))
    }

    /// The endpoint's attempts since `since` (epoch ms).
    pub async fn endpoint_attempts(
        &self,
        endpoint_id: &EndpointId,
        since: i64,
    ) -> AppResult<AttemptWindow> {
        use delivery_attempt::Column;
        let window = || {
            delivery_attempt::Entity::find()
                .filter(Column::EndpointId.eq(endpoint_id.as_str()))
                .filter(Column::StartedAt.gte(since))
        };
        let (attempts, succeeded): (i64, Option<i64>) = window()
            .select_only()
            .column_as(Column::Id.count(), "attempts")
            .column_as(
                Expr::case(Column::Outcome.eq(AttemptOutcome::Succeeded), 1)
                    .finally(0)
                    .sum(),
                "succeeded",
            )
            .into_tuple()
            .one(&self.read)
            .await?
            .unwrap_or((0, None));
        let attempts = Ord::max(attempts, 0) as u64;
        let mut found = AttemptWindow {
            attempts,
            succeeded: Ord::max(succeeded.unwrap_or(0), 0) as u64,
            ..AttemptWindow::default()
        };
        if attempts == 0 {
            return Ok(found);
        }
        let at_rank = |quantile: f64| async move {
            let offset = nearest_rank(attempts, quantile) - 1;
            window()
                .select_only()
                .column(Column::DurationMs)
                .order_by_asc(Column::DurationMs)
                .offset(offset)
                .limit(1)
                .into_tuple::<i32>()
                .one(&self.read)
                .await
        };
        found.duration_p50_ms = at_rank(0.50).await?;
        found.duration_p95_ms = at_rank(0.95).await?;
        Ok(found)
    }
}

/// The 1-based nearest rank of `quantile` among `count` sorted values.
fn nearest_rank(count: u64, quantile: f64) -> u64 {
    ((quantile * count as f64).ceil() as u64).clamp(1, Ord::max(count, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_ends_a_streak_and_the_failures_after_it_start_the_next() {
        let streak = Streak::of(vec![(30, false, None), (10, false, None), (20, true, None)]);
        assert_eq!(
            streak,
            Streak {
                last_success: Some(20),
                last_failure: Some(30),
                trailing_failures: 1,
                trailing_since: Some(30),
                gone: None,
            }
        );
        assert!(streak.failing());
    }

    #[test]
    fn failures_alone_all_count_and_a_gone_answer_is_kept() {
        let streak = Streak::of(vec![(5, false, None), (7, false, Some("410"))]);
        assert_eq!(streak.trailing_failures, 2);
        assert_eq!(streak.trailing_since, Some(5));
        assert_eq!(streak.last_success, None);
        assert_eq!(streak.gone.as_deref(), Some("410"));
        let healthy = Streak::of(vec![(1, false, None), (2, true, None)]);
        assert!(!healthy.failing());
        assert_eq!(healthy.trailing_since, None);
    }

    #[test]
    fn nearest_ranks() {
        assert_eq!(nearest_rank(1, 0.5), 1);
        assert_eq!(nearest_rank(1, 0.95), 1);
        assert_eq!(nearest_rank(10, 0.5), 5);
        assert_eq!(nearest_rank(10, 0.95), 10);
        assert_eq!(nearest_rank(100, 0.95), 95);
        assert_eq!(nearest_rank(101, 0.5), 51);
    }
}
