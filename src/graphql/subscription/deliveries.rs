use async_graphql::{Context, ID, InputObject, Result, Subscription};

use super::{Live, live};
use crate::{
    domain::{
        live::{AttemptFilter, DeliveryFilter},
        patterns::Pattern,
    },
    error::AppError,
    graphql::{
        context::{ContextExt, partner_names_own_webhook},
        types::{
            delivery::{AttemptOutcome, Delivery, DeliveryAttempt},
            ids,
        },
    },
};

#[derive(InputObject, Default)]
pub struct DeliveryAttemptFilter {
    webhook_id: Option<ID>,
    /// An exact type, `object.*` or `*`.
    event_type: Option<String>,
    outcome: Option<AttemptOutcome>,
}

#[derive(InputObject, Default)]
pub struct DeliveryStatusFilter {
    webhook_id: Option<ID>,
}

#[derive(Default)]
pub struct DeliverySubscription;

#[Subscription]
impl DeliverySubscription {
    /// Every delivery attempt of the tenant the moment it finishes. Viewer or
    /// above, or a partner for one of its own webhooks (`webhookId`).
    async fn delivery_attempts(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeliveryAttemptFilter>,
    ) -> Result<Live<DeliveryAttempt>> {
        let filter = filter.unwrap_or_default();
        let principal =
            partner_names_own_webhook(ctx, filter.webhook_id.as_ref(), "filter.webhookId").await?;
        let pattern = filter
            .event_type
            .as_deref()
            .map(Pattern::parse)
            .transpose()
            .map_err(|m| AppError::bad_input("filter.eventType", m))?;
        let keep = AttemptFilter {
            tenant: principal.tenant.clone(),
            webhook_id: ids::filter(filter.webhook_id.as_ref()),
            outcome: filter.outcome.map(Into::into),
            event_type: pattern,
        };
        let ring = ctx.state().live.attempts();
        Ok(live(ring, move |item| {
            keep.keeps(item)
                .then(|| DeliveryAttempt::Live(item.clone()))
        }))
    }

    /// A delivery each time its status changes. Viewer or above, or a
    /// partner for one of its own webhooks (`webhookId`).
    async fn delivery_status_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeliveryStatusFilter>,
    ) -> Result<Live<Delivery>> {
        let filter = filter.unwrap_or_default();
        let principal =
            partner_names_own_webhook(ctx, filter.webhook_id.as_ref(), "filter.webhookId").await?;
        let keep = DeliveryFilter {
            tenant: principal.tenant.clone(),
            webhook_id: ids::filter(filter.webhook_id.as_ref()),
        };
        let ring = ctx.state().live.deliveries();
        Ok(live(ring, move |item| {
            keep.keeps(item).then(|| Delivery(item.as_ref().clone()))
        }))
    }
}
