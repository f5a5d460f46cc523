use async_graphql::{Context, Enum, Json, Object, Result, SimpleObject, connection::Connection};
use chrono::{DateTime, Utc};
use entity::{endpoint, webhook};

use super::{
    datetime,
    delivery::{Delivery, DeliveryStatus, delivery_connection},
    payload::{DeliveryMethod, PayloadFormat},
};
use crate::{
    crypto,
    domain::{
        deliveries::DeliveryFilter,
        labels, payload as domain_payload,
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
    /// Disabled by hookline when none of its endpoints was left active (each
    /// is disabled alone after `410 Gone` or persistent failure); an admin
    /// sets it ACTIVE again, which enables its endpoints too, or enables one
    /// endpoint with `enableEndpoint`.
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

    /// Labels an event must all carry to be delivered here: label -> the
    /// value, or the list of values, allowed.
    async fn label_filter(&self) -> Option<Json<serde_json::Value>> {
        self.0
            .label_filter()
            .map(|f| Json(labels::filter_to_json(&f)))
    }

    /// Conditions on the event's `data`, in `DataFilterInput`'s shape.
    async fn data_filter(&self) -> Option<Json<serde_json::Value>> {
        self.0.webhook.data_filter.clone().map(Json)
    }

    async fn signature_scheme(&self) -> SignatureScheme {
        if self.0.webhook.public_key.is_some() {
            SignatureScheme::Ed25519
        } else {
            SignatureScheme::HmacSha256
        }
    }

    /// For `ED25519`: the `whpk_…` public key receivers verify `v1a`
    /// signatures with. Not secret: publish it where receivers fetch it.
    async fn public_key(&self) -> Option<&str> {
        self.0.webhook.public_key.as_deref()
    }

    /// What its `POST`s carry.
    async fn payload_format(&self) -> PayloadFormat {
        domain_payload::PayloadFormat::of_stored(self.0.webhook.payload_format.as_deref()).into()
    }

    /// The body template, with `payloadFormat: TEMPLATE`.
    async fn body_template(&self) -> Option<&str> {
        self.0.webhook.body_template.as_deref()
    }

    /// `POST`, or a `GET` / `POST_FORM` postback.
    async fn method(&self) -> DeliveryMethod {
        domain_payload::DeliveryMethod::of_stored(self.0.webhook.http_method.as_deref()).into()
    }

    /// Set when deliveries are made in order.
    async fn ordering(&self) -> Option<Ordering> {
        self.0.webhook.ordering.as_ref().map(|key| Ordering {
            key: (!key.is_empty()).then(|| key.clone()),
        })
    }

    async fn team(&self) -> Option<&str> {
        self.0.webhook.team.as_deref()
    }

    /// The partner login it belongs to; null for the network's own.
    async fn for_login(&self) -> Option<&str> {
        self.0.webhook.for_login.as_deref()
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
    #[graphql(complexity = "crate::graphql::page_complexity(first, child_complexity)")]
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
        ctx.require(crate::auth::Role::Viewer)?;
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

/// A URL a webhook delivers to, with the headers sent along, and its health.
pub struct Endpoint(pub endpoint::Model);

/// How deliveries are signed (Standard Webhooks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum SignatureScheme {
    /// `v1,` signatures: HMAC-SHA256 with the shared `whsec_` secret.
    #[graphql(name = "HMAC_SHA256")]
    HmacSha256,
    /// `v1a,` signatures: ed25519, verified with the webhook's `whpk_`
    /// `publicKey`; the private key never leaves hookline.
    #[graphql(name = "ED25519")]
    Ed25519,
}

impl From<SignatureScheme> for crypto::SignatureScheme {
    fn from(scheme: SignatureScheme) -> Self {
        match scheme {
            SignatureScheme::HmacSha256 => Self::HmacSha256,
            SignatureScheme::Ed25519 => Self::Ed25519,
        }
    }
}

/// Ordered delivery: one sequence per endpoint, or per endpoint and value
/// of the label `key`.
#[derive(SimpleObject)]
pub struct Ordering {
    key: Option<String>,
}

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

    async fn status(&self) -> EndpointStatus {
        self.0.status.into()
    }

    /// Most requests a second it receives, from all instances together;
    /// null when unlimited.
    async fn rate_limit_per_second(&self) -> Option<i32> {
        self.0.rate_limit_per_second
    }

    /// Why it was disabled (by hookline or by whom), while it is.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }

    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled_at.map(datetime)
    }

    /// Failed attempts since its last success.
    async fn consecutive_failures(&self) -> i32 {
        self.0.consecutive_failures
    }

    /// When its current run of failed attempts began, if it is failing.
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since.map(datetime)
    }

    async fn last_success_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_success_at.map(datetime)
    }

    async fn last_failure_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_failure_at.map(datetime)
    }

    /// Its attempts over the last hour.
    async fn last_hour(&self, ctx: &Context<'_>) -> Result<AttemptStats> {
        self.attempts_since(ctx, 3_600_000).await
    }

    /// Its attempts over the last 24 hours.
    async fn last_day(&self, ctx: &Context<'_>) -> Result<AttemptStats> {
        self.attempts_since(ctx, 86_400_000).await
    }
}

impl Endpoint {
    async fn attempts_since(&self, ctx: &Context<'_>, window_ms: i64) -> Result<AttemptStats> {
        let since = crate::time::now_ms() - window_ms;
        let window = ctx
            .state()
            .webhooks
            .endpoint_attempts(&self.0.id, since)
            .await?;
        Ok(AttemptStats {
            attempts: window.attempts as i64,
            succeeded: window.succeeded as i64,
            success_rate: (window.attempts > 0)
                .then(|| window.succeeded as f64 / window.attempts as f64),
            duration_p50_ms: window.duration_p50_ms,
            duration_p95_ms: window.duration_p95_ms,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "endpoint::EndpointStatus")]
pub enum EndpointStatus {
    /// Receives deliveries.
    Active,
    /// Receives nothing: hookline disabled it (`410 Gone`, or every attempt
    /// failing for the configured period) or an admin did. `enableEndpoint`
    /// brings it back.
    Disabled,
}

/// An endpoint's attempts over a window ending now.
#[derive(SimpleObject)]
pub struct AttemptStats {
    pub attempts: i64,
    pub succeeded: i64,
    /// `succeeded / attempts`, from 0 to 1; null without attempts.
    pub success_rate: Option<f64>,
    /// Median time to an answer (or to the failure), by nearest rank.
    pub duration_p50_ms: Option<i32>,
    pub duration_p95_ms: Option<i32>,
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
