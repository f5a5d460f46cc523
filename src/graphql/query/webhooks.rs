use async_graphql::{Context, ID, InputObject, Object, Result, connection::Connection};

use crate::{
    domain::{pagination::PageRequest, webhooks::WebhookFilter as DomainFilter},
    graphql::{
        context::ContextExt,
        types::{
            connection, ids,
            webhook::{Webhook, WebhookStatus},
        },
    },
};

#[derive(InputObject, Default)]
pub struct WebhookFilter {
    status: Option<WebhookStatus>,
    /// Webhooks that receive this event type, exactly or through a wildcard.
    event_type: Option<String>,
    /// Case-insensitive text in the name or description.
    search: Option<String>,
    team: Option<String>,
    /// Only the webhooks of this partner login (a partner always sees only
    /// its own).
    for_login: Option<String>,
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Webhook> {
        let (principal, reach) = ctx.reader()?;
        let found = ctx
            .state()
            .webhooks
            .get(&principal.tenant, &ids::parse(&id)?)
            .await?;
        reach.check(&found.webhook)?;
        Ok(Webhook(found))
    }

    /// The tenant's webhooks, newest first; a partner's own only.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn webhooks(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<WebhookFilter>,
    ) -> Result<Connection<String, Webhook>> {
        let (principal, reach) = ctx.reader()?;
        let page = PageRequest::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let for_login = reach.login().map(str::to_owned).or(filter.for_login);
        let filter = DomainFilter {
            status: filter.status.map(Into::into),
            event_type: filter.event_type,
            search: filter.search,
            team: filter.team,
            for_login,
        };
        let found = ctx
            .state()
            .webhooks
            .list(&principal.tenant, &filter, &page)
            .await?;
        Ok(connection(found, |w| w.webhook.id.to_string(), Webhook))
    }
}
