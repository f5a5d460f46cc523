use async_graphql::{Context, InputObject, Object, Result, connection::Connection};

use crate::{
    domain::{event_types::EventTypeFilter as DomainFilter, pagination::PageRequest},
    graphql::{
        context::ContextExt,
        types::{connection, event_type::EventType},
    },
};

#[derive(InputObject, Default)]
pub struct EventTypeFilter {
    /// Only types of this object, e.g. `offer`.
    object: Option<String>,
    /// Only types with this action, e.g. `created`.
    action: Option<String>,
    /// Case-insensitive text in the name or description.
    search: Option<String>,
    /// Include archived custom types (default false).
    #[graphql(default)]
    include_archived: bool,
}

#[derive(Default)]
pub struct EventTypeQuery;

#[Object]
impl EventTypeQuery {
    /// The built-in catalog and the tenant's own types, ordered by name.
    #[graphql(complexity = "crate::graphql::page_complexity(first, child_complexity)")]
    async fn event_types(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<EventTypeFilter>,
    ) -> Result<Connection<String, EventType>> {
        let principal = ctx.principal()?;
        let page = PageRequest::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let filter = DomainFilter {
            object: filter.object,
            action: filter.action,
            search: filter.search,
            include_archived: filter.include_archived,
        };
        let found = ctx
            .state()
            .event_types
            .list(&principal.tenant, &filter, &page)
            .await?;
        Ok(connection(found, |t| t.name.clone(), EventType))
    }

    /// One event type by name.
    async fn event_type(&self, ctx: &Context<'_>, name: String) -> Result<EventType> {
        let principal = ctx.principal()?;
        let found = ctx
            .state()
            .event_types
            .get(&principal.tenant, &name)
            .await?;
        Ok(EventType(found))
    }
}
