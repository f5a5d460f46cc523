use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Result, Subscription};

use super::{Live, live};
use crate::{
    auth::Role,
    domain::patterns::Pattern,
    error::AppError,
    graphql::{
        context::ContextExt,
        types::delivery::{AttemptOutcome, Delivery, DeliveryAttempt},
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
    /// Every delivery attempt of the tenant the moment it finishes. Viewer or above.
    async fn delivery_attempts(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeliveryAttemptFilter>,
    ) -> Result<Live<DeliveryAttempt>> {
        let principal = ctx.require(Role::Viewer)?;
        let filter = filter.unwrap_or_default();
        let pattern = filter
            .event_type
            .as_deref()
            .map(Pattern::parse)
            .transpose()
            .map_err(|m| AppError::bad_input("filter.eventType", m))?;
        let tenant = principal.tenant.clone();
        let webhook_id = filter.webhook_id.map(|id| id.0);
        let outcome = filter
            .outcome
            .map(entity::delivery_attempt::AttemptOutcome::from);
        let ring = ctx.state().live.attempts();
        Ok(live(
            ring,
            move |item: &Arc<crate::domain::facts::LiveAttempt>| {
                let wanted = item.attempt.tenant_id == tenant
                    && webhook_id.as_ref().is_none_or(|w| *w == item.webhook_id)
                    && outcome.is_none_or(|o| o == item.attempt.outcome)
                    && pattern.as_ref().is_none_or(|p| p.matches(&item.event_type));
                wanted.then(|| DeliveryAttempt(item.clone()))
            },
        ))
    }

    /// A delivery each time its status changes. Viewer or above.
    async fn delivery_status_changed(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeliveryStatusFilter>,
    ) -> Result<Live<Delivery>> {
        let principal = ctx.require(Role::Viewer)?;
        let tenant = principal.tenant.clone();
        let webhook_id = filter.unwrap_or_default().webhook_id.map(|id| id.0);
        let ring = ctx.state().live.deliveries();
        Ok(live(ring, move |item: &Arc<entity::delivery::Model>| {
            let wanted = item.tenant_id == tenant
                && webhook_id.as_ref().is_none_or(|w| *w == item.webhook_id);
            wanted.then(|| Delivery(item.as_ref().clone()))
        }))
    }
}
