//! Deliveries and their attempts: reading the log, and the operator's
//! actions on it (retry, cancel, resend, replay, test).

use entity::{
    delivery::{self, DeliveryStatus},
    delivery_attempt, endpoint, event,
    webhook::{self, WebhookStatus},
};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use serde_json::json;

use super::{
    catalog::TEST_EVENT_TYPE,
    events::EventService,
    facts::{DeliveryChange, Facts},
    labels, queue,
    replay::{self, ReplayRequest, Replayed},
    targets::{Target, active_targets},
    webhooks::WebhookService,
};
use crate::{
    db::{Db, LogReads, Served},
    error::{AppError, AppResult},
    ids::{DeliveryId, EndpointId, EventId, IdFilter, PublicId, WebhookId},
    time::now_ms,
};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub webhook_id: Option<IdFilter<WebhookId>>,
    pub event_id: Option<IdFilter<EventId>>,
    pub endpoint_id: Option<IdFilter<EndpointId>>,
    pub status: Option<DeliveryStatus>,
    /// Of events of this type.
    pub event_type: Option<String>,
    /// Whose last attempt got this HTTP status.
    pub http_status: Option<i32>,
    /// Created at or after (epoch ms).
    pub since: Option<i64>,
    /// Created before (epoch ms).
    pub until: Option<i64>,
    /// Only deliveries for the webhooks of this partner login.
    pub for_login: Option<String>,
}

/// How many deliveries are in each status.
#[derive(Clone, Debug, Default)]
pub struct DeliveryStats {
    pub pending: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Attempts recorded, over all deliveries counted.
    pub attempts: u64,
}

/// Attempts in one time bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttemptBucket {
    /// Start of the bucket (epoch ms).
    pub start: i64,
    pub succeeded: u64,
    pub failed: u64,
    /// Mean and longest request duration over the bucket's attempts.
    pub mean_duration_ms: f64,
    pub max_duration_ms: i64,
}

/// Longest span `attempt_metrics` covers, and most buckets it returns.
pub const MAX_METRICS_SPAN_MS: i64 = 7 * 24 * 3600 * 1000;
pub const MAX_METRICS_BUCKETS: i64 = 1_440;

#[derive(Clone)]
pub struct DeliveryService {
    db: DatabaseConnection,
    pub(super) read: DatabaseConnection,
    /// The log's reads: a replica while it is fresh enough.
    pub(super) log: LogReads,
    events: EventService,
    facts: Arc<dyn Facts>,
    /// Replays running on this instance (one per tenant at a time).
    replays: replay::ReplayTurns,
}

impl DeliveryService {
    pub fn new(databases: &Db, events: EventService, facts: Arc<dyn Facts>) -> Self {
        Self {
            db: databases.write.clone(),
            read: databases.read.clone(),
            log: databases.log.clone(),
            events,
            facts,
            replays: replay::ReplayTurns::default(),
        }
    }

    pub async fn find_in_tenant(
        &self,
        tenant: &str,
        id: &DeliveryId,
    ) -> AppResult<delivery::Model> {
        let query =
            delivery::Entity::find_by_id(id.clone()).filter(delivery::Column::TenantId.eq(tenant));
        match self.log.read(|db| Box::pin(query.clone().one(db))).await? {
            (Some(found), _) => Ok(found),
            (None, Served::Replica) => Self::find_on(self.log.primary(), tenant, id).await,
            (None, Served::Primary) => Err(AppError::NotFound("delivery")),
        }
    }

    /// The delivery, read through `db`: the writer when it decides a change.
    async fn find_on<C: ConnectionTrait>(
        db: &C,
        tenant: &str,
        id: &DeliveryId,
    ) -> AppResult<delivery::Model> {
        delivery::Entity::find_by_id(id.clone())
            .filter(delivery::Column::TenantId.eq(tenant))
            .one(db)
            .await?
            .ok_or(AppError::NotFound("delivery"))
    }

    /// Deliveries by status, for the tenant or one of its webhooks.
    pub async fn stats(
        &self,
        tenant: &str,
        webhook_id: Option<&IdFilter<WebhookId>>,
    ) -> AppResult<DeliveryStats> {
        let mut query = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::Status)
            .column_as(delivery::Column::Id.count(), "n")
            .column_as(delivery::Column::AttemptCount.sum(), "attempts")
            .filter(delivery::Column::TenantId.eq(tenant))
            .group_by(delivery::Column::Status);
        if let Some(webhook_id) = webhook_id {
            query = query.filter(id_is(delivery::Column::WebhookId, webhook_id));
        }
        let (rows, _) = self
            .log
            .read(|db| Box::pin(query.clone().into_tuple().all(db)))
            .await?;
        let rows: Vec<(DeliveryStatus, i64, Option<i64>)> = rows;
        let mut stats = DeliveryStats::default();
        for (status, n, attempts) in rows {
            let n = n.max(0) as u64;
            stats.attempts += attempts.unwrap_or(0).max(0) as u64;
            match status {
                DeliveryStatus::Pending => stats.pending = n,
                DeliveryStatus::Retrying => stats.retrying = n,
                DeliveryStatus::Succeeded => stats.succeeded = n,
                DeliveryStatus::Failed => stats.failed = n,
                DeliveryStatus::Cancelled => stats.cancelled = n,
            }
        }
        Ok(stats)
    }

    /// Attempts from `since` to now in buckets of `bucket_ms`, oldest first,
    /// every bucket present (empty ones as zeros).
    pub async fn attempt_metrics(
        &self,
        tenant: &str,
        webhook_id: Option<&IdFilter<WebhookId>>,
        since: i64,
        bucket_ms: i64,
    ) -> AppResult<Vec<AttemptBucket>> {
        let now = now_ms();
        if since >= now || now - since > MAX_METRICS_SPAN_MS {
            return Err(AppError::bad_input("since", "must be in the last 7 days"));
        }
        if bucket_ms < 1_000 || (now - since) / bucket_ms > MAX_METRICS_BUCKETS {
            return Err(AppError::bad_input(
                "bucketSeconds",
                format!("must be at least 1 and give at most {MAX_METRICS_BUCKETS} buckets"),
            ));
        }
        let start = since - since.rem_euclid(bucket_ms);
        let mut values: Vec<sea_orm::Value> =
            vec![bucket_ms.into(), start.into(), tenant.into(), start.into()];
        let webhook = match webhook_id {
            Some(IdFilter::Is(id)) => {
                values.push(id.as_str().into());
                " AND d.webhook_id = $5"
            }
            Some(IdFilter::MatchesNothing) => " AND 1 = 0",
            None => "",
        };
        let sql = format!(
            "SELECT (a.started_at - $2) / $1 AS bucket, a.outcome AS outcome, COUNT(*) AS n, \
                    CAST(AVG(a.duration_ms) AS DOUBLE PRECISION) AS mean, \
                    CAST(MAX(a.duration_ms) AS BIGINT) AS longest \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE a.tenant_id = $3 AND a.started_at >= $4{webhook} \
             GROUP BY (a.started_at - $2) / $1, a.outcome"
        );
        let statement = crate::db::statement(self.read.get_database_backend(), &sql, values);
        let (rows, _) = self
            .log
            .read(|db| Box::pin(db.query_all_raw(statement.clone())))
            .await?;
        let count = ((now - start) / bucket_ms + 1) as usize;
        let mut buckets: Vec<AttemptBucket> = (0..count)
            .map(|i| AttemptBucket {
                start: start + i as i64 * bucket_ms,
                ..AttemptBucket::default()
            })
            .collect();
        let mut weights = vec![0u64; count];
        for row in rows {
            let index: i64 = row.try_get("", "bucket")?;
            let outcome: String = row.try_get("", "outcome")?;
            let n: i64 = row.try_get("", "n")?;
            let mean: f64 = row.try_get("", "mean")?;
            let longest: i64 = row.try_get("", "longest")?;
            let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) else {
                continue;
            };
            let n = n.max(0) as u64;
            if outcome == "SUCCEEDED" {
                bucket.succeeded += n
            } else {
                bucket.failed += n
            }
            let weight = &mut weights[index as usize];
            bucket.mean_duration_ms = (bucket.mean_duration_ms * *weight as f64 + mean * n as f64)
                / (*weight + n).max(1) as f64;
            *weight += n;
            bucket.max_duration_ms = bucket.max_duration_ms.max(longest);
        }
        Ok(buckets)
    }

    /// A delivery's attempts, first to last.
    pub async fn attempts(
        &self,
        tenant: &str,
        delivery_id: &DeliveryId,
    ) -> AppResult<Vec<delivery_attempt::Model>> {
        let query = delivery_attempt::Entity::find()
            .filter(delivery_attempt::Column::TenantId.eq(tenant))
            .filter(delivery_attempt::Column::DeliveryId.eq(delivery_id.as_str()))
            .order_by_asc(delivery_attempt::Column::AttemptNumber);
        Ok(self.log.read(|db| Box::pin(query.clone().all(db))).await?.0)
    }

    pub async fn endpoint(
        &self,
        tenant: &str,
        endpoint_id: &EndpointId,
    ) -> AppResult<Option<endpoint::Model>> {
        Ok(endpoint::Entity::find_by_id(endpoint_id.clone())
            .filter(endpoint::Column::TenantId.eq(tenant))
            .one(&self.read)
            .await?)
    }

    /// Attempts the delivery again now, whatever its status, unless a worker
    /// holds it this very moment.
    pub async fn retry(&self, tenant: &str, id: &DeliveryId) -> AppResult<delivery::Model> {
        let current = Self::find_on(&self.db, tenant, id).await?;
        let now = now_ms();
        if queue::held(&self.db, &current.id, now).await? {
            return Err(AppError::Conflict(
                "the delivery is being attempted right now".into(),
            ));
        }
        queue::reschedule(&self.db, &current, now).await?;
        self.facts.deliveries_due();
        let retried = Self::find_on(&self.db, tenant, id).await?;
        self.facts
            .deliveries_changed(vec![DeliveryChange::of(&retried)]);
        Ok(retried)
    }

    /// Stops a delivery that is still pending or retrying.
    pub async fn cancel(&self, tenant: &str, id: &DeliveryId) -> AppResult<delivery::Model> {
        let current = Self::find_on(&self.db, tenant, id).await?;
        if !current.status.is_open() {
            return Err(AppError::Conflict(format!(
                "the delivery is already {}",
                current.status.to_value()
            )));
        }
        queue::cancel(&self.db, tenant, id, now_ms()).await?;
        let sequences = queue::sequences_of(std::slice::from_ref(&current));
        queue::promote(&self.db, &sequences, now_ms()).await?;
        let cancelled = Self::find_on(&self.db, tenant, id).await?;
        self.facts
            .deliveries_changed(vec![DeliveryChange::of(&cancelled)]);
        Ok(cancelled)
    }

    /// Sends an event to one webhook again, as new deliveries (one per
    /// endpoint), whether or not the webhook subscribes to it.
    pub async fn resend(
        &self,
        tenant: &str,
        event_id: &EventId,
        webhook_id: &WebhookId,
    ) -> AppResult<Vec<delivery::Model>> {
        let event = EventService::find_on(&self.db, tenant, event_id).await?;
        let webhook = self.active_webhook(tenant, webhook_id).await?;
        let endpoint_ids = self.endpoint_ids(&webhook).await?;
        let target = Target::of(&webhook, endpoint_ids);
        let labels = labels::from_json(&event.labels);
        let deliveries = target
            .endpoint_ids
            .iter()
            .map(|endpoint_id| target.delivery(tenant, &event.id, &labels, endpoint_id, now_ms()))
            .collect::<Vec<_>>();
        let deliveries = queue::enqueue_to_existing(&self.db, deliveries).await?;
        self.facts.deliveries_due();
        Ok(deliveries)
    }

    /// Sends the webhook the events of a window again: see [`replay`].
    pub async fn replay(
        &self,
        tenant: &str,
        webhook_id: &WebhookId,
        request: &ReplayRequest,
    ) -> AppResult<Replayed> {
        let webhook = self.active_webhook(tenant, webhook_id).await?;
        let target = active_targets(&self.db, tenant)
            .await?
            .into_iter()
            .find(|t| t.webhook_id == webhook.id)
            .ok_or(AppError::NotFound("webhook"))?;
        let replayed = replay::replay(
            &self.read,
            &self.db,
            &self.replays,
            tenant,
            &target,
            request,
        )
        .await?;
        if replayed.queued > 0 {
            self.facts.deliveries_due();
        }
        Ok(replayed)
    }

    /// Sends a `webhook.test` ping to every endpoint of one webhook.
    pub async fn send_test(
        &self,
        tenant: &str,
        login: &str,
        webhook_id: &WebhookId,
    ) -> AppResult<(event::Model, Vec<delivery::Model>)> {
        let webhook = self.active_webhook(tenant, webhook_id).await?;
        let endpoints = self.endpoint_ids(&webhook).await?;
        let data = json!({
            "webhookId": webhook.id,
            "webhookName": webhook.name,
            "requestedBy": login,
            "message": "This is a test event sent from hookline.",
        });
        self.events
            .publish_to(tenant, TEST_EVENT_TYPE, &data, &webhook.id, &endpoints)
            .await
    }

    async fn active_webhook(&self, tenant: &str, id: &WebhookId) -> AppResult<webhook::Model> {
        let webhook = WebhookService::find_in_tenant(&self.db, tenant, id).await?;
        if webhook.status != WebhookStatus::Active {
            return Err(AppError::Conflict(format!(
                "the webhook is {}; set it ACTIVE first",
                webhook.status.to_value()
            )));
        }
        Ok(webhook)
    }

    async fn endpoint_ids(&self, webhook: &webhook::Model) -> AppResult<Vec<EndpointId>> {
        Ok(endpoint::Entity::find()
            .filter(endpoint::Column::WebhookId.eq(webhook.id.as_str()))
            .order_by_asc(endpoint::Column::Position)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect())
    }
}

/// `column` holds the filter's id; nothing does when it is no such id.
pub(super) fn id_is<T: PublicId>(column: delivery::Column, filter: &IdFilter<T>) -> Expr {
    match filter {
        IdFilter::Is(id) => column.eq(id.as_str()),
        IdFilter::MatchesNothing => Expr::cust("1 = 0"),
    }
}
