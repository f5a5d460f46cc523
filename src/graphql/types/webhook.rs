use async_graphql::{Context, Enum, Json, Object, Result, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};
use entity::{endpoint, webhook};

use super::{
    datetime,
    delivery::{Delivery, DeliveryStatus, delivery_connection},
};
use crate::{
    domain::{
        deliveries::DeliveryFilter,
        labels,
        webhooks::{WebhookRecord, header_pairs},
    },
    graphql::context::ContextExt,
    ids::IdFilter,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "webhook::WebhookStatus")]
pub enum WebhookStatus {
    /// Receives events.
    Active,
    /// Paused by an admin: receives nothing until set ACTIVE again.
    Paused,
    /// Disabled by hookline after `410 Gone` or persistent failure; an admin
    /// sets it ACTIVE again once the endpoint is fixed.
    Disabled,
}

/// A customer's subscription: which events, delivered where, and how.
pub struct Webhook(pub WebhookRecord);

#[Object]
impl Webhook {
    async fn id(&self) -> async_graphql::ID {
        self.0.webhook.id.clone().into()
    }

    async fn name(&self) -> &str {
        &self.0.webhook.name
    }

    async fn description(&self) -> &str {
        &self.0.webhook.description
    }

    async fn status(&self) -> WebhookStatus {
        self.0.webhook.status.into()
    }

    /// Why hookline disabled the webhook, when it did.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.webhook.disabled_reason.as_deref()
    }

    /// Event type patterns: exact names, `object.*` or `*`.
    async fn event_types(&self) -> Vec<String> {
        self.0.patterns()
    }

    async fn endpoints(&self) -> Vec<Endpoint> {
        self.0.endpoints.iter().cloned().map(Endpoint).collect()
    }

    /// Label -> value pairs an event must all carry to be delivered here.
    async fn label_filter(&self) -> Option<Json<serde_json::Value>> {
        self.0.label_filter().map(|f| Json(labels::to_json(&f)))
    }

    async fn team(&self) -> Option<&str> {
        self.0.webhook.team.as_deref()
    }

    async fn retry_policy(&self) -> RetryPolicy {
        let policy = self.0.retry_policy();
        RetryPolicy {
            max_attempts: policy.max_attempts as i32,
            initial_interval_ms: policy.initial_interval.as_millis() as i64,
            max_interval_ms: policy.max_interval.as_millis() as i64,
        }
    }

    /// How long an endpoint has to answer, in milliseconds.
    async fn timeout_ms(&self) -> i32 {
        self.0.webhook.timeout_ms
    }

    /// Login of the admin who created it.
    async fn created_by(&self) -> &str {
        &self.0.webhook.created_by
    }

    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.webhook.created_at)
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        datetime(self.0.webhook.updated_at)
    }

    /// When a request was last sent to any of its endpoints.
    async fn last_sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.webhook.last_sent_at.map(datetime)
    }

    /// This webhook's deliveries, newest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<DeliveryStatus>,
    ) -> Result<Connection<String, Delivery>> {
        let filter = DeliveryFilter {
            webhook_id: Some(IdFilter::Is(self.0.webhook.id.clone())),
            status: status.map(Into::into),
            ..DeliveryFilter::default()
        };
        delivery_connection(ctx, &self.0.webhook.tenant_id, filter, first, after).await
    }

    /// Pull links for this webhook's events, newest first.
    async fn feed_links(&self, ctx: &Context<'_>) -> Result<Vec<super::feed::FeedLink>> {
        let links = ctx
            .state()
            .feeds
            .list(&self.0.webhook.tenant_id, &self.0.webhook.id)
            .await?;
        Ok(links.into_iter().map(super::feed::FeedLink).collect())
    }

    /// Until when the secret replaced by the last rotation still signs.
    async fn previous_secret_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0
            .webhook
            .previous_secret_expires_at
            .filter(|at| *at > crate::time::now_ms())
            .map(datetime)
    }
}

/// A URL a webhook delivers to, with the headers sent along.
pub struct Endpoint(pub endpoint::Model);

#[Object]
impl Endpoint {
    async fn id(&self) -> async_graphql::ID {
        self.0.id.clone().into()
    }

    async fn url(&self) -> &str {
        &self.0.url
    }

    async fn headers(&self) -> Vec<Header> {
        header_pairs(&self.0.headers)
            .into_iter()
            .map(|(name, value)| Header { name, value })
            .collect()
    }
}

#[derive(SimpleObject)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Exponential backoff with jitter: the wait doubles after each failure, from
/// `initialIntervalMs` up to `maxIntervalMs`, for `maxAttempts` attempts in all.
#[derive(SimpleObject)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub initial_interval_ms: i64,
    pub max_interval_ms: i64,
}
