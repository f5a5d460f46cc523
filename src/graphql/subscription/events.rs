use async_graphql::{Context, InputObject, Result, Subscription};

use super::{Live, live};
use crate::{
    auth::Role,
    domain::{live::EventFilter, patterns::Pattern},
    error::AppError,
    graphql::{context::ContextExt, types::event::Event},
};

#[derive(InputObject, Default)]
pub struct EventPublishedFilter {
    /// An exact type, `object.*` or `*`.
    #[graphql(name = "type")]
    event_type: Option<String>,
}

#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// Each event of the tenant as soon as it is committed. Viewer or above.
    async fn events_published(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventPublishedFilter>,
    ) -> Result<Live<Event>> {
        let principal = ctx.require(Role::Viewer)?;
        let pattern = filter
            .unwrap_or_default()
            .event_type
            .as_deref()
            .map(Pattern::parse)
            .transpose()
            .map_err(|m| AppError::bad_input("filter.type", m))?;
        let keep = EventFilter {
            tenant: principal.tenant.clone(),
            event_type: pattern,
        };
        let ring = ctx.state().live.events();
        Ok(live(ring, move |item| {
            keep.keeps(item).then(|| Event(item.as_ref().clone()))
        }))
    }
}
