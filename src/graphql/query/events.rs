use async_graphql::{Context, ID, InputObject, Object, Result, connection::Connection};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    domain::{events::EventFilter as DomainFilter, pagination::PageRequest},
    graphql::{
        budget,
        context::ContextExt,
        types::{
            connection,
            event::{Event, wants_payload},
            ids,
        },
    },
};

#[derive(InputObject, Default)]
pub struct EventFilter {
    /// Only events of this type.
    #[graphql(name = "type")]
    event_type: Option<String>,
    /// Published at or after.
    since: Option<DateTime<Utc>>,
    /// Published before.
    until: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    async fn event(&self, ctx: &Context<'_>, id: ID) -> Result<Event> {
        let principal = ctx.require(Role::Viewer)?;
        let _turn = budget::payload_read(ctx, wants_payload(&ctx.look_ahead())).await?;
        Ok(Event(
            ctx.state()
                .events
                .find_in_tenant(&principal.tenant, &ids::parse(&id)?)
                .await?,
        ))
    }

    /// Published events, newest first.
    #[graphql(complexity = "crate::graphql::page_complexity(first, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<EventFilter>,
    ) -> Result<Connection<String, Event>> {
        let principal = ctx.require(Role::Viewer)?;
        let page = PageRequest::new(first, after)?;
        let selection = ctx.look_ahead();
        let wanted = wants_payload(&selection.field("edges").field("node"))
            || wants_payload(&selection.field("nodes"));
        let _turn = budget::payload_read(ctx, wanted).await?;
        let filter = filter.unwrap_or_default();
        let filter = DomainFilter {
            event_type: filter.event_type,
            since: filter.since.map(|t| t.timestamp_millis()),
            until: filter.until.map(|t| t.timestamp_millis()),
        };
        let found = ctx
            .state()
            .events
            .list(&principal.tenant, &filter, &page)
            .await?;
        Ok(connection(found, |e| e.id.to_string(), Event))
    }
}
