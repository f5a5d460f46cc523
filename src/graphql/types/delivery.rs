use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result, connection::Connection};
use chrono::{DateTime, Utc};
use entity::{delivery, delivery_attempt};

use super::{
    connection, datetime,
    event::{Event, wants_payload},
    webhook::{Endpoint, Webhook},
};
use crate::{
    domain::facts::LiveAttempt,
    domain::{deliveries::DeliveryFilter, pagination::PageRequest},
    graphql::{budget, context::ContextExt},
    ids::{EndpointId, EventId, WebhookId},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "delivery::DeliveryStatus")]
pub enum DeliveryStatus {
    /// Not attempted yet.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Attempts failed; another is scheduled (`nextAttemptAt`).
    Retrying,
    /// Every attempt failed, or the endpoint answered 410 Gone.
    Failed,
    /// Stopped by an admin, or its webhook was paused or disabled.
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "delivery_attempt::AttemptOutcome")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
}

/// Why an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "delivery_attempt::AttemptErrorKind")]
pub enum AttemptErrorKind {
    /// No complete answer within the webhook's timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The TLS handshake failed.
    Tls,
    /// The host name did not resolve.
    Dns,
    /// The host resolved to a private, loopback or link-local address.
    BlockedAddress,
    /// The endpoint answered with a status outside 2xx.
    Non2xx,
    /// No request was made: the webhook's body template or URL macros could
    /// not be rendered for this event (a field it lacks, say). The delivery
    /// fails at once; fix the template and retry it.
    Render,
}

/// One event on its way to one endpoint.
pub struct Delivery(pub delivery::Model);

/// A page of the tenant's deliveries matching `filter`, newest first.
pub async fn delivery_connection(
    ctx: &Context<'_>,
    tenant: &str,
    mut filter: DeliveryFilter,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Connection<String, Delivery>> {
    // A partner sees only its own webhooks' deliveries, however it got here
    // (an event it can read has deliveries to other webhooks).
    let (_, reach) = ctx.reader()?;
    if let Some(login) = reach.login() {
        filter.for_login = Some(login.to_owned());
    }
    let page = PageRequest::new(first, after)?;
    let found = ctx.state().deliveries.list(tenant, &filter, &page).await?;
    Ok(connection(found, |d| d.id.to_string(), Delivery))
}

#[Object]
impl Delivery {
    async fn id(&self) -> ID {
        self.0.id.clone().into()
    }

    async fn status(&self) -> DeliveryStatus {
        self.0.status.into()
    }

    async fn attempt_count(&self) -> i32 {
        self.0.attempt_count
    }

    /// When the next attempt is due, while the delivery is open.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        if self.0.status.is_open() {
            self.0.next_attempt_at.map(datetime)
        } else {
            None
        }
    }

    async fn last_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_attempt_at.map(datetime)
    }

    /// HTTP status of the last attempt, if it got an answer.
    async fn last_response_status(&self) -> Option<i32> {
        self.0.last_response_status
    }

    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        datetime(self.0.updated_at)
    }

    async fn event_id(&self) -> ID {
        self.0.event_id.clone().into()
    }

    async fn webhook_id(&self) -> ID {
        self.0.webhook_id.clone().into()
    }

    async fn endpoint_id(&self) -> ID {
        self.0.endpoint_id.clone().into()
    }

    async fn event(&self, ctx: &Context<'_>) -> Result<Event> {
        let _turn = budget::payload_read(ctx, wants_payload(&ctx.look_ahead())).await?;
        let event = ctx
            .state()
            .events
            .find_in_tenant(&self.0.tenant_id, &self.0.event_id)
            .await?;
        Ok(Event(event))
    }

    async fn webhook(&self, ctx: &Context<'_>) -> Result<Webhook> {
        let webhook = ctx
            .state()
            .webhooks
            .get(&self.0.tenant_id, &self.0.webhook_id)
            .await?;
        Ok(Webhook(webhook))
    }

    async fn endpoint(&self, ctx: &Context<'_>) -> Result<Option<Endpoint>> {
        let endpoint = ctx
            .state()
            .deliveries
            .endpoint(&self.0.tenant_id, &self.0.endpoint_id)
            .await?;
        Ok(endpoint.map(Endpoint))
    }

    /// Every attempt, first to last.
    async fn attempts(&self, ctx: &Context<'_>) -> Result<Vec<DeliveryAttempt>> {
        let attempts = ctx
            .state()
            .deliveries
            .attempts(&self.0.tenant_id, &self.0.id)
            .await?;
        Ok(attempts
            .into_iter()
            .map(|a| DeliveryAttempt::of(&self.0, a))
            .collect())
    }
}

/// One HTTP request of a delivery, and what came of it.
pub enum DeliveryAttempt {
    /// As it was recorded, with its event's type at hand.
    Live(Arc<LiveAttempt>),
    /// Read from the log, placed by its delivery; the log query does not
    /// join the event, so its type is read when asked for.
    Logged {
        attempt: Box<delivery_attempt::Model>,
        event_id: EventId,
        webhook_id: WebhookId,
        endpoint_id: EndpointId,
    },
}

impl DeliveryAttempt {
    /// An attempt read from the log, placed by its delivery.
    pub fn of(delivery: &delivery::Model, attempt: delivery_attempt::Model) -> Self {
        Self::Logged {
            attempt: Box::new(attempt),
            event_id: delivery.event_id.clone(),
            webhook_id: delivery.webhook_id.clone(),
            endpoint_id: delivery.endpoint_id.clone(),
        }
    }

    fn model(&self) -> &delivery_attempt::Model {
        match self {
            Self::Live(live) => &live.attempt,
            Self::Logged { attempt, .. } => attempt,
        }
    }

    /// (event, webhook, endpoint) ids.
    fn placed(&self) -> (&EventId, &WebhookId, &EndpointId) {
        match self {
            Self::Live(live) => (&live.event_id, &live.webhook_id, &live.endpoint_id),
            Self::Logged {
                event_id,
                webhook_id,
                endpoint_id,
                ..
            } => (event_id, webhook_id, endpoint_id),
        }
    }
}

#[Object]
impl DeliveryAttempt {
    async fn id(&self) -> ID {
        self.model().id.clone().into()
    }

    async fn delivery_id(&self) -> ID {
        self.model().delivery_id.clone().into()
    }

    async fn event_id(&self) -> ID {
        self.placed().0.clone().into()
    }

    async fn event_type(&self, ctx: &Context<'_>) -> Result<String> {
        if let Self::Live(live) = self {
            return Ok(live.event_type.clone());
        }
        let event = ctx
            .state()
            .events
            .find_in_tenant(&self.model().tenant_id, self.placed().0)
            .await?;
        Ok(event.event_type)
    }

    async fn webhook_id(&self) -> ID {
        self.placed().1.clone().into()
    }

    async fn endpoint_id(&self) -> ID {
        self.placed().2.clone().into()
    }

    /// 1 for the first attempt.
    async fn attempt_number(&self) -> i32 {
        self.model().attempt_number
    }

    async fn outcome(&self) -> AttemptOutcome {
        self.model().outcome.into()
    }

    /// The URL the request went to.
    async fn endpoint_url(&self) -> &str {
        &self.model().endpoint_url
    }

    async fn started_at(&self) -> DateTime<Utc> {
        datetime(self.model().started_at)
    }

    async fn duration_ms(&self) -> i32 {
        self.model().duration_ms
    }

    async fn response_status(&self) -> Option<i32> {
        self.model().response_status
    }

    /// The first 4 KiB of the response body.
    async fn response_body(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        let body = self.model().response_body.as_deref();
        budget::charge(ctx, body.map_or(0, str::len))?;
        Ok(body)
    }

    async fn error_kind(&self) -> Option<AttemptErrorKind> {
        self.model().error_kind.map(Into::into)
    }

    async fn error_message(&self) -> Option<&str> {
        self.model().error_message.as_deref()
    }

    /// When the next attempt was scheduled, if this one failed and another follows.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.model().next_attempt_at.map(datetime)
    }

    /// The delivery as it is now.
    async fn delivery(&self, ctx: &Context<'_>) -> Result<Delivery> {
        let delivery = ctx
            .state()
            .deliveries
            .find_in_tenant(&self.model().tenant_id, &self.model().delivery_id)
            .await?;
        Ok(Delivery(delivery))
    }
}
