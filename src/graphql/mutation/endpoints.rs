use async_graphql::{Context, ID, Object, Result};

use crate::graphql::{
    context::ContextExt,
    types::{ids, webhook::Endpoint},
};

#[derive(Default)]
pub struct EndpointMutation;

#[Object]
impl EndpointMutation {
    /// Lets a disabled endpoint receive deliveries again, with a fresh failure
    /// streak; its webhook is active again if it was disabled. Deliveries
    /// cancelled meanwhile stay cancelled (`retryDelivery` sends one again).
    /// An admin, or the partner whose webhook it is.
    async fn enable_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<Endpoint> {
        let (principal, reach) = ctx.manager()?;
        let id = ids::parse(&id)?;
        let webhooks = &ctx.state().webhooks;
        webhooks
            .endpoint_reachable(&principal.tenant, &reach, &id)
            .await?;
        let endpoint = webhooks.enable_endpoint(&principal.tenant, &id).await?;
        Ok(Endpoint(endpoint))
    }

    /// Stops deliveries to one endpoint of a webhook, leaving its others;
    /// its open deliveries are cancelled when they come due. `reason` (at
    /// most 500 characters) is shown as `disabledReason`. An admin, or the
    /// partner whose webhook it is.
    async fn disable_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> Result<Endpoint> {
        let (principal, reach) = ctx.manager()?;
        let id = ids::parse(&id)?;
        let webhooks = &ctx.state().webhooks;
        webhooks
            .endpoint_reachable(&principal.tenant, &reach, &id)
            .await?;
        let endpoint = webhooks
            .disable_endpoint(&principal.tenant, &principal.login, &id, reason.as_deref())
            .await?;
        Ok(Endpoint(endpoint))
    }
}
