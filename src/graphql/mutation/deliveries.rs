use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    domain::replay::ReplayRequest,
    graphql::{
        context::ContextExt,
        types::{
            delivery::{Delivery, DeliveryStatus},
            event::Event,
            ids,
        },
    },
};

#[derive(SimpleObject)]
pub struct ResendEventPayload {
    /// The new deliveries, one per endpoint of the webhook.
    deliveries: Vec<Delivery>,
}

#[derive(SimpleObject)]
pub struct ReplayWebhookPayload {
    /// Deliveries queued by this call.
    delivery_count: i32,
    /// Events of the window the webhook subscribes to, gone through by this
    /// call.
    event_count: i32,
    /// Deliveries left as they were: still being attempted, or settled with
    /// a status not asked for.
    skipped_count: i32,
    /// Whether the whole window is done. When `false`, call again with the
    /// same arguments and `after: <after>`.
    complete: bool,
    /// Where to go on (`complete: false`), as `replayWebhook(after: …)`.
    after: Option<String>,
}

fn count(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
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
    /// FAILED). An admin, or the partner whose webhook it is for.
    async fn retry_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<Delivery> {
        let (principal, reach) = ctx.manager()?;
        let id = ids::parse(&id)?;
        let deliveries = &ctx.state().deliveries;
        deliveries
            .find_reachable(&principal.tenant, &reach, &id)
            .await?;
        Ok(Delivery(deliveries.retry(&principal.tenant, &id).await?))
    }

    /// Stops a pending or retrying delivery. Admin only.
    async fn cancel_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<Delivery> {
        let principal = ctx.require(Role::Admin)?;
        Ok(Delivery(
            ctx.state()
                .deliveries
                .cancel(&principal.tenant, &ids::parse(&id)?)
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
            .resend(
                &principal.tenant,
                &ids::parse(&event_id)?,
                &ids::parse(&webhook_id)?,
            )
            .await?;
        Ok(ResendEventPayload {
            deliveries: deliveries.into_iter().map(Delivery).collect(),
        })
    }

    /// Sends the webhook, again, the events created in `[since, until)` that
    /// it subscribes to (event types and label filter), oldest first: those
    /// never sent to an endpoint, and those whose delivery ended with one of
    /// `statuses` (default FAILED and CANCELLED; add SUCCEEDED to send
    /// everything again). Deliveries still being attempted are left alone.
    /// One call queues at most 10 000 deliveries and reads at most 100 000
    /// events; `complete: false` says to call again with `after`. Admin only.
    async fn replay_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        statuses: Option<Vec<DeliveryStatus>>,
        after: Option<String>,
    ) -> Result<ReplayWebhookPayload> {
        let principal = ctx.require(Role::Admin)?;
        let request = ReplayRequest {
            since: since.timestamp_millis(),
            until: until.map(|until| until.timestamp_millis()),
            statuses: match statuses {
                Some(statuses) => statuses.into_iter().map(Into::into).collect(),
                None => ReplayRequest::DEFAULT_STATUSES.to_vec(),
            },
            after,
        };
        let replayed = ctx
            .state()
            .deliveries
            .replay(&principal.tenant, &ids::parse(&id)?, &request)
            .await?;
        Ok(ReplayWebhookPayload {
            delivery_count: count(replayed.queued),
            event_count: count(replayed.events),
            skipped_count: count(replayed.skipped),
            complete: replayed.after.is_none(),
            after: replayed.after,
        })
    }

    /// Sends a `webhook.test` ping to each endpoint of the webhook. An
    /// admin, or the partner it belongs to.
    async fn send_test_event(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
    ) -> Result<SendTestEventPayload> {
        let (principal, reach) = ctx.manager()?;
        let webhook_id = ids::parse(&webhook_id)?;
        let state = ctx.state();
        state
            .webhooks
            .reachable(&principal.tenant, &reach, &webhook_id)
            .await?;
        let (event, deliveries) = state
            .deliveries
            .send_test(&principal.tenant, &principal.login, &webhook_id)
            .await?;
        Ok(SendTestEventPayload {
            event: Event(event),
            deliveries: deliveries.into_iter().map(Delivery).collect(),
        })
    }
}
