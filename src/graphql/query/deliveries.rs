use async_graphql::{
    Context, ID, InputObject, Object, Result, SimpleObject, connection::Connection,
};
use chrono::{DateTime, Utc};

use crate::{
    domain::{
        deliveries::DeliveryFilter as DomainFilter,
        log_search::AttemptFilter as DomainAttemptFilter, pagination::PageRequest,
    },
    graphql::{
        context::{ContextExt, partner_names_own_webhook},
        types::{
            connection, datetime,
            delivery::{
                AttemptOutcome, Delivery, DeliveryAttempt, DeliveryStatus, delivery_connection,
            },
            ids,
        },
    },
};

#[derive(InputObject, Default)]
pub struct DeliveryFilter {
    webhook_id: Option<ID>,
    event_id: Option<ID>,
    endpoint_id: Option<ID>,
    status: Option<DeliveryStatus>,
    /// Deliveries of events of this type.
    event_type: Option<String>,
    /// Whose last attempt was answered with this HTTP status.
    http_status: Option<i32>,
    /// Created at or after.
    since: Option<DateTime<Utc>>,
    /// Created before.
    until: Option<DateTime<Utc>>,
}

/// Which attempts `deliveryAttempts` lists; every field narrows.
#[derive(InputObject, Default)]
pub struct AttemptFilter {
    webhook_id: Option<ID>,
    endpoint_id: Option<ID>,
    delivery_id: Option<ID>,
    /// Attempts at events of this type.
    event_type: Option<String>,
    outcome: Option<AttemptOutcome>,
    /// Answered with this HTTP status.
    http_status: Option<i32>,
    /// Started at or after.
    since: Option<DateTime<Utc>>,
    /// Started before.
    until: Option<DateTime<Utc>>,
}

/// Deliveries by status.
#[derive(SimpleObject)]
pub struct DeliveryStats {
    pending: u64,
    retrying: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    /// Attempts made, over all these deliveries.
    attempts: u64,
}

/// Attempts in one time bucket.
#[derive(SimpleObject)]
pub struct AttemptBucket {
    start: DateTime<Utc>,
    succeeded: u64,
    failed: u64,
    /// Mean request duration over the bucket (0 when empty).
    mean_duration_ms: f64,
    max_duration_ms: i64,
}

#[derive(Default)]
pub struct DeliveryQuery;

#[Object]
impl DeliveryQuery {
    async fn delivery(&self, ctx: &Context<'_>, id: ID) -> Result<Delivery> {
        let (principal, reach) = ctx.reader()?;
        Ok(Delivery(
            ctx.state()
                .deliveries
                .find_reachable(&principal.tenant, &reach, &ids::parse(&id)?)
                .await?,
        ))
    }

    /// How many deliveries are in each status, for the tenant or one webhook.
    async fn delivery_stats(
        &self,
        ctx: &Context<'_>,
        webhook_id: Option<ID>,
    ) -> Result<DeliveryStats> {
        let principal = partner_names_own_webhook(ctx, webhook_id.as_ref(), "webhookId").await?;
        let stats = ctx
            .state()
            .deliveries
            .stats(&principal.tenant, ids::filter(webhook_id.as_ref()).as_ref())
            .await?;
        Ok(DeliveryStats {
            pending: stats.pending,
            retrying: stats.retrying,
            succeeded: stats.succeeded,
            failed: stats.failed,
            cancelled: stats.cancelled,
            attempts: stats.attempts,
        })
    }

    /// Attempts over time, for success-rate and latency charts: buckets of
    /// `bucketSeconds` (default 60) from `since` (default an hour ago) to now,
    /// oldest first, empty buckets included. At most 7 days and 1 440 buckets.
    async fn attempt_metrics(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime<Utc>>,
        bucket_seconds: Option<i32>,
        webhook_id: Option<ID>,
    ) -> Result<Vec<AttemptBucket>> {
        let principal = partner_names_own_webhook(ctx, webhook_id.as_ref(), "webhookId").await?;
        let since = since.unwrap_or_else(|| Utc::now() - chrono::Duration::hours(1));
        let bucket_ms = i64::from(bucket_seconds.unwrap_or(60)) * 1000;
        let buckets = ctx
            .state()
            .deliveries
            .attempt_metrics(
                &principal.tenant,
                ids::filter(webhook_id.as_ref()).as_ref(),
                since.timestamp_millis(),
                bucket_ms,
            )
            .await?;
        Ok(buckets
            .into_iter()
            .map(|b| AttemptBucket {
                start: datetime(b.start),
                succeeded: b.succeeded,
                failed: b.failed,
                mean_duration_ms: b.mean_duration_ms,
                max_duration_ms: b.max_duration_ms,
            })
            .collect())
    }

    /// Deliveries, newest first.
    #[graphql(complexity = "crate::graphql::page_complexity(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<DeliveryFilter>,
    ) -> Result<Connection<String, Delivery>> {
        let (principal, _) = ctx.reader()?;
        let filter = filter.unwrap_or_default();
        let filter = DomainFilter {
            webhook_id: ids::filter(filter.webhook_id.as_ref()),
            event_id: ids::filter(filter.event_id.as_ref()),
            endpoint_id: ids::filter(filter.endpoint_id.as_ref()),
            status: filter.status.map(Into::into),
            event_type: filter.event_type,
            http_status: filter.http_status,
            since: filter.since.map(|t| t.timestamp_millis()),
            until: filter.until.map(|t| t.timestamp_millis()),
            for_login: None,
        };
        delivery_connection(ctx, &principal.tenant, filter, first, after).await
    }

    /// The attempt log: every attempt of the tenant's deliveries, newest
    /// first, with what the receiver answered (`responseBody`, its first
    /// 4 KiB), narrowed by `filter`.
    #[graphql(complexity = "crate::graphql::page_complexity(first, child_complexity)")]
    async fn delivery_attempts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<AttemptFilter>,
    ) -> Result<Connection<String, DeliveryAttempt>> {
        let (principal, reach) = ctx.reader()?;
        let filter = filter.unwrap_or_default();
        let filter = DomainAttemptFilter {
            webhook_id: ids::filter(filter.webhook_id.as_ref()),
            endpoint_id: ids::filter(filter.endpoint_id.as_ref()),
            delivery_id: ids::filter(filter.delivery_id.as_ref()),
            event_type: filter.event_type,
            outcome: filter.outcome.map(Into::into),
            http_status: filter.http_status,
            since: filter.since.map(|t| t.timestamp_millis()),
            until: filter.until.map(|t| t.timestamp_millis()),
            for_login: reach.login().map(str::to_owned),
        };
        let page = PageRequest::new(first, after)?;
        let found = ctx
            .state()
            .deliveries
            .search_attempts(&principal.tenant, &filter, &page)
            .await?;
        Ok(connection(
            found,
            |(attempt, _)| attempt.id.to_string(),
            |(attempt, delivery)| DeliveryAttempt::of(&delivery, attempt),
        ))
    }
}
