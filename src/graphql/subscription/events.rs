use async_graphql::{Context, InputObject, Result, Subscription};

use super::{Live, live};
use crate::{
    auth::Role,
    domain::patterns::Pattern,
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
        let tenant = principal.tenant.clone();
        let ring = ctx.state().live.events();
        Ok(live(
            ring,
            move |item: &std::sync::Arc<entity::event::Model>| {
                let wanted = item.tenant_id == tenant
                    && pattern.as_ref().is_none_or(|p| p.matches(&item.event_type));
                wanted.then(|| Event(item.as_ref().clone()))
            },
        ))
    }
}
