use async_graphql::{Context, ID, InputObject, Object, Result, connection::Connection};

use crate::{
    domain::{deliveries::DeliveryFilter as DomainFilter, pagination::PageRequest},
    graphql::{
        context::ContextExt,
        types::{
            connection,
            delivery::{Delivery, DeliveryStatus},
        },
    },
};

#[derive(InputObject, Default)]
pub struct DeliveryFilter {
    webhook_id: Option<ID>,
    event_id: Option<ID>,
    endpoint_id: Option<ID>,
    status: Option<DeliveryStatus>,
}

#[derive(Default)]
pub struct DeliveryQuery;

#[Object]
impl DeliveryQuery {
    async fn delivery(&self, ctx: &Context<'_>, id: ID) -> Result<Delivery> {
        let principal = ctx.principal()?;
        Ok(Delivery(
            ctx.state()
                .deliveries
                .find_in_tenant(&principal.tenant, &id)
                .await?,
        ))
    }

    /// Deliveries, newest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<DeliveryFilter>,
    ) -> Result<Connection<String, Delivery>> {
        let principal = ctx.principal()?;
        let page = PageRequest::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let filter = DomainFilter {
            webhook_id: filter.webhook_id.map(|id| id.0),
            event_id: filter.event_id.map(|id| id.0),
            endpoint_id: filter.endpoint_id.map(|id| id.0),
            status: filter.status.map(Into::into),
        };
        let found = ctx
            .state()
            .deliveries
            .list(&principal.tenant, &filter, &page)
            .await?;
        Ok(connection(found, |d| d.id.clone(), Delivery))
    }
}
