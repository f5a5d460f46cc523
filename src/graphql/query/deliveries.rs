use async_graphql::{
    Context, ID, InputObject, Object, Result, SimpleObject, connection::Connection,
};

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

/// Deliveries by status.
#[derive(SimpleObject)]
pub struct DeliveryStats {
    pending: u64,
    retrying: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    /// Attempts made, over all these deliveries.
    attempts: u64,
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

    /// How many deliveries are in each status, for the tenant or one webhook.
    async fn delivery_stats(
        &self,
        ctx: &Context<'_>,
        webhook_id: Option<ID>,
    ) -> Result<DeliveryStats> {
        let principal = ctx.principal()?;
        let stats = ctx
            .state()
            .deliveries
            .stats(&principal.tenant, webhook_id.as_ref().map(|id| id.as_str()))
            .await?;
        Ok(DeliveryStats {
            pending: stats.pending,
            retrying: stats.retrying,
            succeeded: stats.succeeded,
            failed: stats.failed,
            cancelled: stats.cancelled,
            attempts: stats.attempts,
        })
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
