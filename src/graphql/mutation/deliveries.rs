use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    graphql::{
        context::ContextExt,
        types::{delivery::Delivery, event::Event},
    },
};

#[derive(SimpleObject)]
pub struct ResendEventPayload {
    /// The new deliveries, one per endpoint of the webhook.
    deliveries: Vec<Delivery>,
}

#[derive(SimpleObject)]
pub struct ReplayWebhookPayload {
    /// Deliveries queued.
    delivery_count: i32,
}

#[derive(SimpleObject)]
pub struct SendTestEventPayload {
    event: Event,
    deliveries: Vec<Delivery>,
}

#[derive(Default)]
pub struct DeliveryMutation;

#[Object]
impl DeliveryMutation {
    /// Attempts a delivery again right away, whatever its status (also
    /// FAILED). Admin only.
    async fn retry_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<Delivery> {
        let principal = ctx.require(Role::Admin)?;
        Ok(Delivery(
            ctx.state().deliveries.retry(&principal.tenant, &id).await?,
        ))
    }

    /// Stops a pending or retrying delivery. Admin only.
    async fn cancel_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<Delivery> {
        let principal = ctx.require(Role::Admin)?;
        Ok(Delivery(
            ctx.state()
                .deliveries
                .cancel(&principal.tenant, &id)
                .await?,
        ))
    }

    /// Sends an event to a webhook again, as new deliveries. Admin only.
    async fn resend_event(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
        webhook_id: ID,
    ) -> Result<ResendEventPayload> {
        let principal = ctx.require(Role::Admin)?;
        let deliveries = ctx
            .state()
            .deliveries
            .resend(&principal.tenant, &event_id, &webhook_id)
            .await?;
        Ok(ResendEventPayload {
            deliveries: deliveries.into_iter().map(Delivery).collect(),
        })
    }

    /// Queues every event published since `since` that the webhook matches
    /// (up to 10 000), e.g. after an outage on the receiving side. Admin only.
    async fn replay_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        since: DateTime<Utc>,
    ) -> Result<ReplayWebhookPayload> {
        let principal = ctx.require(Role::Admin)?;
        let count = ctx
            .state()
            .deliveries
            .replay(&principal.tenant, &id, since.timestamp_millis())
            .await?;
        Ok(ReplayWebhookPayload {
            delivery_count: count.min(i32::MAX as u64) as i32,
        })
    }

    /// Sends a `webhook.test` ping to each endpoint of the webhook. Admin only.
    async fn send_test_event(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
    ) -> Result<SendTestEventPayload> {
        let principal = ctx.require(Role::Admin)?;
        let (event, deliveries) = ctx
            .state()
            .deliveries
            .send_test(&principal.tenant, &principal.login, &webhook_id)
            .await?;
        Ok(SendTestEventPayload {
            event: Event(event),
            deliveries: deliveries.into_iter().map(Delivery).collect(),
        })
    }
}
